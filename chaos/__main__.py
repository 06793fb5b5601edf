"""Entry point: `python -m chaos [--messages N --conversations N --seed S --quick | --bounds]`."""

from chaos.cli import main

raise SystemExit(main())
