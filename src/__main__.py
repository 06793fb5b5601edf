"""`python -m chat_outbox` is the chat-outbox command line."""

import sys

from chat_outbox.entrypoints.console import main

sys.exit(main())
