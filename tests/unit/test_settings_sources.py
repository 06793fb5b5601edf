"""The public Settings constructors: from arguments, from a file, from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_outbox import ConfigError, Settings

pytestmark = pytest.mark.unit


def test_arguments_set_their_fields_and_leave_the_rest_at_defaults() -> None:
    """`Settings.of` takes field names with native values (numbers, booleans, None)."""
    settings = Settings.of(
        topic="host.chat", max_retry=5, kafka_create_topics=False, relay_lanes=None
    )
    assert (settings.core.topic, settings.core.max_retry, settings.kafka.create_topics) == (
        "host.chat",
        5,
        False,
    )
    assert settings.relay.lanes is None
    assert settings.consumer.batch_size == Settings().consumer.batch_size


def test_arguments_ignore_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host's CHAT_OUTBOX_* variables do not leak into settings it spelled out."""
    monkeypatch.setenv("CHAT_OUTBOX_TOPIC", "from-env")
    assert Settings.of(max_retry=3).core.topic == Settings().core.topic


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({"max_retry": 0}, "CHAT_OUTBOX_MAX_RETRY"),
        ({"bus": "carrier-pigeon"}, "CHAT_OUTBOX_BUS must be one of"),
        ({"database_url": "oracle://x"}, "CHAT_OUTBOX_DATABASE_URL"),
        ({"topik": "t"}, "unknown key 'topik' (did you mean topic?)"),
        ({"topic": ["a", "b"]}, "topic must be a string, number or boolean"),
    ],
)
def test_bad_arguments_are_a_config_error_naming_the_setting(
    values: dict[str, object], reason: str
) -> None:
    """Arguments pass the same checks as the environment, with a one-line reason."""
    with pytest.raises(ConfigError) as raised:
        Settings.of(**values)
    assert reason in str(raised.value)
    assert "\n" not in str(raised.value)


@given(st.dictionaries(st.text(max_size=20), st.integers() | st.text(max_size=20), max_size=3))
def test_any_arguments_give_settings_or_a_config_error(values: dict[str, object]) -> None:
    """Whatever a host passes, the outcome is Settings or a ConfigError, never a crash."""
    outcome: Settings | str
    try:
        outcome = Settings.of(**values)
    except ConfigError as error:
        outcome = str(error)
    assert isinstance(outcome, Settings) or "\n" not in outcome


def test_a_file_fills_in_and_the_environment_wins(tmp_path: Path) -> None:
    """`Settings.from_file` reads the TOML file under the given environment."""
    path = tmp_path / "chat-outbox.toml"
    path.write_text('topic = "from-file"\nmax_retry = 5\n')
    settings = Settings.from_file(str(path), environ={"CHAT_OUTBOX_MAX_RETRY": "9"})
    assert (settings.core.topic, settings.core.max_retry) == ("from-file", 9)
