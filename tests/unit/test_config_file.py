"""The TOML config file under the environment, and `config show`'s redaction."""

from __future__ import annotations

from pathlib import Path

import pytest

from chat_outbox.entrypoints.config import ConfigError
from chat_outbox.entrypoints.config_command import redacted
from chat_outbox.entrypoints.config_file import load_settings

pytestmark = pytest.mark.unit


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "chat-outbox.toml"
    path.write_text(
        'topic = "from-file"\nmax_retry = 5\nretention = "7d"\n'
        '[kafka]\nsasl_password = "hunter2"\nenable_idempotence = true\n'
    )
    return path


def test_file_values_fill_in_what_the_environment_leaves_unset(config: Path) -> None:
    """Keys, including a table's (`[kafka]` + key), become settings; the rest stay defaults."""
    loaded = load_settings({}, str(config))
    settings = loaded.settings
    assert (settings.core.topic, settings.core.max_retry, settings.relay.retention) == (
        "from-file",
        5,
        604800.0,
    )
    assert (settings.kafka.sasl_password, settings.kafka.enable_idempotence) == ("hunter2", True)
    assert settings.consumer.batch_size == 500
    assert loaded.origins["topic"] == f"file {config}"
    assert loaded.origins["consumer_batch_size"] == "default"


def test_environment_variables_win_over_the_file(config: Path) -> None:
    """A set variable overrides the file, and the origin names the variable."""
    loaded = load_settings({"CHAT_OUTBOX_MAX_RETRY": "9"}, str(config))
    assert loaded.settings.core.max_retry == 9
    assert loaded.origins["max_retry"] == "CHAT_OUTBOX_MAX_RETRY"


def test_an_empty_variable_does_not_hide_the_files_value(config: Path) -> None:
    """CHAT_OUTBOX_TOPIC= (empty) means unset, as without a file, so the file's topic holds."""
    assert load_settings({"CHAT_OUTBOX_TOPIC": ""}, str(config)).settings.core.topic == "from-file"


def test_the_path_can_come_from_chat_outbox_config(config: Path, tmp_path: Path) -> None:
    """$CHAT_OUTBOX_CONFIG names the file when --config does not; --config wins over it."""
    env = {"CHAT_OUTBOX_CONFIG": str(config)}
    assert load_settings(env).settings.core.topic == "from-file"
    other = tmp_path / "other.toml"
    other.write_text('topic = "other"\n')
    assert load_settings(env, str(other)).settings.core.topic == "other"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("max_retri = 3\n", "x.toml: unknown key 'max_retri' (did you mean max_retry?)"),
        ("[kafka]\nsasl_pasword = 'x'\n", "unknown key 'kafka_sasl_pasword'"),
        ("max_retry = -3\n", "x.toml: max_retry must be positive, got -3"),
        ("retention = 'a week'\n", "x.toml: retention: 'a week' is not a duration"),
        ("max_retry = true\n", "x.toml: max_retry must be a whole number"),
        ("topic = ['a']\n", "x.toml: topic must be a string, number or boolean"),
        ("max_retry = \n", "config file x.toml is not valid TOML"),
        ("database_url = 'oracle://db/x'\n", "x.toml: database_url"),
    ],
)
def test_a_bad_file_is_refused_with_one_line_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, reason: str
) -> None:
    """Unknown keys, bad values and broken TOML raise ConfigError naming file and key."""
    monkeypatch.chdir(tmp_path)
    Path("x.toml").write_text(text)
    with pytest.raises(ConfigError) as error:
        load_settings({}, "x.toml")
    assert reason in str(error.value)
    assert "\n" not in str(error.value)


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    """A path that does not exist is refused, not silently ignored."""
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings({}, str(tmp_path / "absent.toml"))


@pytest.mark.parametrize(
    ("name", "value", "shown"),
    [
        (
            "database_url",
            "postgresql+asyncpg://chat:s3cret@db/chat",
            "postgresql+asyncpg://chat:***@db/chat",
        ),
        ("rabbitmq_url", "amqp://guest:guest@mq:5672/", "amqp://guest:***@mq:5672/"),
        (
            "database_url",
            "postgresql+asyncpg://chat@db/chat?password=hunter2&ssl=require",
            "postgresql+asyncpg://chat@db/chat?password=***&ssl=require",
        ),
        ("kafka_sasl_password", "hunter2", "***"),
        ("admin_token", "t0ken", "***"),
        ("kafka_sasl_password", "", ""),
        ("kafka_sasl_username", "alice", "alice"),
        ("max_retry", 20, 20),
    ],
)
def test_config_show_redacts_passwords_tokens_and_url_credentials(
    name: str, value: object, shown: object
) -> None:
    """Secrets are masked by their field's name, URLs keep all but their password."""
    assert redacted(name, value) == shown
