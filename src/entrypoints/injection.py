"""dependency-injector without its web-framework hooks.

Importing `dependency_injector.containers` imports its wiring module, which imports FastAPI
and Starlette, when they are installed, only to recognise their `Depends` markers while
wiring. Nothing here is wired, and the relay and consumer never serve HTTP: those imports
cost every process about 175 ms of start-up and 20 MiB of memory (measured with
`python -X importtime` and the bench's peak RSS). So they are hidden for that one import;
`serve` imports FastAPI itself later, unaffected.
"""

from __future__ import annotations

import sys

_HOOKED = ("fastapi", "starlette")


def _import_quietly() -> None:
    hidden = [name for name in _HOOKED if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    try:
        import dependency_injector.containers  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


_import_quietly()

from dependency_injector import containers, providers  # noqa: E402

__all__ = ["containers", "providers"]
