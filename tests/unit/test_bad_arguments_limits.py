"""Each numeric setting has a documented least and most value, and its default within them."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat_outbox.entrypoints.config import BY_KEY, LIMITS, ConfigError, Settings
from chat_outbox.entrypoints.config_file import read_config_file, settings_of
from tests.unit.test_bad_arguments import NUMBER_TEXT, numeric_settings

pytestmark = pytest.mark.unit


def test_every_numeric_setting_has_limits_that_hold_its_default() -> None:
    """A numeric setting added without bounds, or with a default outside them, fails here."""
    assert sorted(LIMITS) == sorted(numeric_settings())
    defaults = Settings()
    for name, (least, most) in LIMITS.items():
        default = defaults.value(BY_KEY[name])
        assert default is None or least <= default <= most, name


@given(name=st.sampled_from(sorted(LIMITS)), number=NUMBER_TEXT)
def test_settings_of_and_a_file_apply_the_same_limits(name: str, number: str) -> None:
    """Settings.of and a TOML file go through the same parsers: a value is within its
    LIMITS or refused in one line."""
    try:
        value = settings_of({name: number}).value(BY_KEY[name])
    except ConfigError as error:
        refusal = str(error)
        assert "\n" not in refusal
        return
    least, most = LIMITS[name]
    assert value is None or least <= value <= most


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_one_past_the_most_is_refused_and_the_most_is_kept(name: str) -> None:
    """The most value is accepted as is; the next whole number up is refused naming it."""
    most = LIMITS[name][1]
    assert Settings.of(**{name: most}).value(BY_KEY[name]) == most
    with pytest.raises(ConfigError, match=f"CHAT_OUTBOX_{name.upper()} must be"):
        Settings.of(**{name: most + 1})


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("relay_batch_size = 99999999999999999999999", "relay_batch_size"),
        ("relay_lease_seconds = 1e308", "relay_lease_seconds"),
        ("[kafka]\nrequest_timeout_ms = 86400001", "kafka_request_timeout_ms"),
        ('rabbitmq_url = "amqp://h:99999/"', "rabbitmq_url"),
    ],
)
def test_a_config_file_value_out_of_its_limits_is_refused_naming_file_and_key(
    tmp_path: Path, line: str, key: str
) -> None:
    """The TOML file's values pass the same bounds, and the error names the file's key."""
    path = tmp_path / "settings.toml"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"{path}: {key}") as refused:
        read_config_file(str(path))
    assert "\n" not in str(refused.value)
