"""`python -m entrypoints` is the chat-outbox command line."""

import sys

from entrypoints.cli import main

sys.exit(main())
