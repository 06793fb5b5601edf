"""dependency-injector without its web-framework and settings hooks.

Importing `dependency_injector.containers` imports its wiring module, which imports FastAPI
and Starlette, when they are installed, only to recognise their `Depends` markers while
wiring; and its providers import pydantic, only to tell pydantic 1 from 2 for
`Configuration.from_pydantic`, which needs pydantic-settings (not installed) on pydantic 2.
Nothing here is wired or configured from pydantic, and the relay and consumer never serve
HTTP: those imports would only slow every process's start-up and grow its memory. So
FastAPI and Starlette are hidden for that one import, and pydantic is stood in for by a
module that only says it is version 2; `serve` imports FastAPI and pydantic itself later,
unaffected.

Only the `chat-outbox` process does this (entrypoints/console.py, before anything imports
dependency-injector): a host that embeds the library keeps its modules as they are.
"""

from __future__ import annotations

import sys
from types import ModuleType

_HOOKED = ("fastapi", "starlette")


def _pydantic_2_stand_in() -> ModuleType:
    module = ModuleType("pydantic")
    module.VERSION = "2"  # type: ignore[attr-defined]
    return module


def import_quietly() -> None:
    hidden = [name for name in _HOOKED if name not in sys.modules]
    stand_in = None if "pydantic" in sys.modules else _pydantic_2_stand_in()
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    if stand_in is not None:
        sys.modules["pydantic"] = stand_in
    try:
        import dependency_injector.containers  # noqa: F401
    finally:
        for name in hidden:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
        if stand_in is not None and sys.modules.get("pydantic") is stand_in:
            del sys.modules["pydantic"]
