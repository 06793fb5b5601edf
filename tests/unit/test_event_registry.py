"""The host's event registry (entrypoints.events): types, their handlers, and loading the
registry from the `events` setting's `package.module:name`."""

from __future__ import annotations

import importlib
import itertools
import string
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncSession

from chat_outbox.domain import BIZ_TYPE_CHAT_HISTORY, Event, EventType, UnknownEventType
from chat_outbox.entrypoints.config_parsers import ConfigError, import_path
from chat_outbox.entrypoints.events import EventRegistry, load_registry

pytestmark = pytest.mark.unit

FINISHED = EventType("agent_run.finished")
STARTED = EventType("agent_run.started")


async def on_finished(event: Event, session: AsyncSession) -> None:
    """A handler doing nothing."""


async def other_handler(event: Event, session: AsyncSession) -> None:
    """Another handler doing nothing."""


def reject_everything(payload: Any) -> None:
    raise ValueError("never")


# --- types -----------------------------------------------------------------------------


def test_register_returns_the_type_and_lists_it_under_its_name() -> None:
    registry = EventRegistry()

    assert registry.register(FINISHED) is FINISHED
    assert registry.register(STARTED) is STARTED
    assert dict(registry.types) == {"agent_run.finished": FINISHED, "agent_run.started": STARTED}


def test_a_new_registry_has_no_types_and_no_handlers() -> None:
    registry = EventRegistry()

    assert (dict(registry.types), dict(registry.handlers)) == ({}, {})


def test_types_cannot_be_changed_through_the_mapping() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)

    with pytest.raises(TypeError):
        registry.types["agent_run.started"] = STARTED  # type: ignore[index]
    assert list(registry.types) == ["agent_run.finished"]


def test_registering_the_chat_type_is_refused() -> None:
    registry = EventRegistry()

    with pytest.raises(ValueError, match=f"{BIZ_TYPE_CHAT_HISTORY} is built in"):
        registry.register(EventType(BIZ_TYPE_CHAT_HISTORY))
    assert dict(registry.types) == {}


def test_registering_another_type_under_a_taken_name_is_refused() -> None:
    """Same name, different validator: the first registration stays."""
    registry = EventRegistry()
    registry.register(FINISHED)

    with pytest.raises(ValueError, match=r"'agent_run\.finished' is registered already"):
        registry.register(EventType("agent_run.finished", validate=reject_everything))
    with pytest.raises(ValueError, match="registered already"):
        registry.register(EventType("agent_run.finished", max_payload_bytes=10))
    assert registry.type_of("agent_run.finished") is FINISHED


def test_registering_the_identical_type_again_is_fine() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)

    assert registry.register(EventType("agent_run.finished")) == FINISHED
    assert dict(registry.types) == {"agent_run.finished": FINISHED}


def test_type_of_a_registered_name_is_its_type() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)

    assert registry.type_of("agent_run.finished") is FINISHED


def test_type_of_an_unknown_name_raises_unknown_event_type_naming_the_registered() -> None:
    registry = EventRegistry()
    registry.register(STARTED)
    registry.register(FINISHED)

    with pytest.raises(UnknownEventType) as refused:
        registry.type_of("agent_run.failed")

    assert str(refused.value) == (
        "event type 'agent_run.failed' is not registered "
        "(registered: agent_run.finished, agent_run.started)"
    )


def test_type_of_in_an_empty_registry_says_none_are_registered() -> None:
    with pytest.raises(UnknownEventType, match=r"\(registered: none\)"):
        EventRegistry().type_of("agent_run.finished")


# --- handlers --------------------------------------------------------------------------


def test_handler_decorator_returns_the_function_and_maps_the_name_to_it() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)

    decorated = registry.handler("agent_run.finished")(on_finished)

    assert decorated is on_finished
    assert dict(registry.handlers) == {"agent_run.finished": on_finished}


def test_handler_for_an_unregistered_type_raises_unknown_event_type_naming_the_registered() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)

    with pytest.raises(UnknownEventType) as refused:
        registry.handler("agent_run.started")
    assert str(refused.value) == (
        "event type 'agent_run.started' is not registered (registered: agent_run.finished)"
    )
    assert dict(registry.handlers) == {}


def test_a_second_different_handler_for_a_type_is_refused() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)
    registry.handler("agent_run.finished")(on_finished)

    with pytest.raises(ValueError, match=r"'agent_run\.finished' has a handler already"):
        registry.handler("agent_run.finished")(other_handler)
    assert registry.handlers["agent_run.finished"] is on_finished


def test_the_same_handler_again_is_fine() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)
    registry.handler("agent_run.finished")(on_finished)

    assert registry.handler("agent_run.finished")(on_finished) is on_finished
    assert dict(registry.handlers) == {"agent_run.finished": on_finished}


def test_handlers_of_two_types_are_kept_apart() -> None:
    registry = EventRegistry()
    registry.register(FINISHED)
    registry.register(STARTED)
    registry.handler("agent_run.finished")(on_finished)
    registry.handler("agent_run.started")(other_handler)

    assert dict(registry.handlers) == {
        "agent_run.finished": on_finished,
        "agent_run.started": other_handler,
    }


# --- load_registry ---------------------------------------------------------------------

_modules = itertools.count()


def host_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str) -> str:
    """Write a module of `source` under tmp_path, importable by the unique name returned."""
    name = f"event_registry_host_{next(_modules)}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    return name


def test_load_registry_of_empty_path_is_an_empty_registry() -> None:
    registry = load_registry("")

    assert isinstance(registry, EventRegistry)
    assert (dict(registry.types), dict(registry.handlers)) == ({}, {})


def test_load_registry_returns_that_very_registry_object(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = host_module(
        tmp_path,
        monkeypatch,
        """
        from chat_outbox import EventRegistry, EventType

        events = EventRegistry()
        events.register(EventType("agent_run.finished"))
        """,
    )

    loaded = load_registry(f"{module}:events")

    assert loaded is importlib.import_module(module).events
    assert list(loaded.types) == ["agent_run.finished"]


def assert_one_line_config_error(path: str, *expected: str) -> str:
    with pytest.raises(ConfigError) as refused:
        load_registry(path)
    message = str(refused.value)
    assert message.splitlines() == [message]  # one line: no \n, \r or other line break
    for part in expected:
        assert part in message
    return message


def test_load_registry_of_a_missing_module_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))

    assert_one_line_config_error(
        "no_such_host_module_xyz:events",
        "cannot import 'no_such_host_module_xyz' for the event registry",
        "ModuleNotFoundError",
    )


def test_load_registry_of_a_module_raising_on_import_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = host_module(tmp_path, monkeypatch, 'raise RuntimeError("boom")\n')

    message = assert_one_line_config_error(f"{module}:events", "RuntimeError: boom")
    assert message.startswith(f"cannot import {module!r} for the event registry")


def test_load_registry_of_a_module_with_a_syntax_error_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = host_module(tmp_path, monkeypatch, "def broken(:\n    pass\n")

    assert_one_line_config_error(f"{module}:events", f"cannot import {module!r}", "SyntaxError")


@example(reason="database unreachable\nretry later")
@given(
    reason=st.text(
        alphabet=st.sampled_from(string.ascii_letters + " \n\r\t:"), min_size=1, max_size=60
    )
)
def test_load_registry_error_is_one_line_whatever_the_import_error_says(reason: str) -> None:
    """A host module's exception text may span lines (a traceback-like message, a nested
    error): the ConfigError is still the one line the user sees."""
    with tempfile.TemporaryDirectory() as directory:
        name = f"event_registry_raising_{next(_modules)}"
        (Path(directory) / f"{name}.py").write_text(
            f"raise RuntimeError({reason!r})\n", encoding="utf-8"
        )
        sys.path.insert(0, directory)
        try:
            assert_one_line_config_error(f"{name}:events", f"cannot import {name!r}")
        finally:
            sys.path.remove(directory)
            sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("events = 7\n", "found a int"),
        ("events = {}\n", "found a dict"),
        ("from chat_outbox import EventRegistry\nevents = EventRegistry\n", "found a type"),
        ("other = 1\n", "found nothing"),
    ],
    ids=["int", "dict", "the-class", "missing"],
)
def test_load_registry_of_an_attribute_that_is_not_a_registry_is_a_one_line_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, found: str
) -> None:
    module = host_module(tmp_path, monkeypatch, source)

    message = assert_one_line_config_error(f"{module}:events", found)
    assert message == f"{module}:events must be a chat_outbox.EventRegistry, {found}"


# --- the import_path setting parser ----------------------------------------------------

IDENTIFIER = st.builds(
    lambda head, tail: head + tail,
    st.sampled_from(string.ascii_letters + "_"),
    st.text(alphabet=string.ascii_letters + string.digits + "_", max_size=10),
)
IMPORT_PATH = st.builds(
    lambda modules, name: ".".join(modules) + ":" + name,
    st.lists(IDENTIFIER, min_size=1, max_size=4),
    IDENTIFIER,
)
SPACE = st.text(alphabet=" \t\n", max_size=3)


def is_import_path(text: str) -> bool:
    """`package.module:name` written out without a regex: ASCII identifiers, dots between
    the module's parts, one colon."""
    module, colon, name = text.partition(":")

    def identifier(part: str) -> bool:
        return part.isascii() and part.isidentifier()

    return colon == ":" and identifier(name) and all(identifier(p) for p in module.split("."))


@given(IMPORT_PATH, SPACE, SPACE)
def test_import_path_of_package_module_name_is_accepted_stripped(
    path: str, before: str, after: str
) -> None:
    assert import_path("events", before + path + after) == path


@given(
    st.text(
        alphabet=st.sampled_from(string.ascii_letters[:6] + "_0189.:-/ \t"), min_size=1, max_size=30
    )
    .map(str.strip)
    .filter(lambda text: text != "" and not is_import_path(text))
)
def test_import_path_of_anything_else_is_a_config_error_naming_the_setting(text: str) -> None:
    with pytest.raises(ConfigError) as refused:
        import_path("events", text)

    assert str(refused.value).startswith("events must look like package.module:name, got ")


@pytest.mark.parametrize(
    "text",
    ["module", ":events", "module:", "a..b:c", "a.:c", ".a:c", "a:b:c", "a:b.c", "1a:b", "a-b:c"],
)
def test_import_path_examples_that_are_not_package_module_name_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match=r"events must look like package\.module:name"):
        import_path("events", text)


@pytest.mark.parametrize("raw", ["", "   ", "\t\n"])
def test_import_path_empty_or_blank_is_accepted_as_empty(raw: str) -> None:
    assert import_path("events", raw) == ""
