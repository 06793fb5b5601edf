"""Entry point: `python -m bench [--quick] [--only drain,latency] [--profile]`."""

from bench.cli import main

raise SystemExit(main())
