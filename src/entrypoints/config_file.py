"""Settings from a TOML file under the environment: the file fills in, CHAT_OUTBOX_* wins.

The file's keys are the variables' names without CHAT_OUTBOX_, in lower case
(`max_retry = 20`, `retention = "7d"`); a table prefixes its keys (`[kafka]` +
`sasl_username` is `kafka_sasl_username`), so a section's table takes its fields' names
(`[relay]` + `batch_size`, `[relay]` + `retention`). Each value is checked by the same
parser as its environment variable, and an error names the file and the key.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping
from typing import NoReturn

import attrs

from chat_outbox.entrypoints.config import BY_KEY, DECLARATIONS, PREFIX, ConfigError, Settings
from chat_outbox.entrypoints.config_schema import Declaration

CONFIG_ENV = PREFIX + "CONFIG"


# A section's table spells a field section_name; where that differs from the field's key
# (`[relay]` + `retention`), it names the field too.
QUALIFIED = {d.qualified: d for d in DECLARATIONS if d.qualified not in BY_KEY}


@attrs.frozen
class LoadedSettings:
    settings: Settings
    origins: dict[str, str]
    """Where each setting's value came from, by key: the variable, the file, or 'default'."""


def load_settings(
    environ: Mapping[str, str] | None = None, path: str | None = None
) -> LoadedSettings:
    """The effective settings: `path` (or $CHAT_OUTBOX_CONFIG) under the environment."""
    env = {name: value for name, value in (os.environ if environ is None else environ).items()}
    path = path or env.get(CONFIG_ENV) or None
    from_file = read_config_file(path) if path else {}
    # An empty variable means unset (as in from_env), so it must not hide the file's value.
    from_env = {name: value for name, value in env.items() if value != ""}
    settings = Settings.from_env({**from_file, **from_env})
    origins = {
        d.key: (
            d.variable
            if d.variable in from_env
            else f"file {path}"
            if d.variable in from_file
            else "default"
        )
        for d in DECLARATIONS
    }
    return LoadedSettings(settings, origins)


def settings_of(values: Mapping[str, object], origin: str = "Settings.of") -> Settings:
    """Settings from keyword values (None leaves a default), each checked by the parser of
    its environment variable; the environment itself is not read."""
    for key in values:
        if key not in BY_KEY:
            _refuse_unknown(origin, key, list(BY_KEY))
    given = {BY_KEY[key]: value for key, value in values.items() if value is not None}
    return Settings.from_env({d.variable: _as_text(origin, d.key, v) for d, v in given.items()})


def read_config_file(path: str) -> dict[str, str]:
    """The file's values as the environment variables they stand for, each one checked."""
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as error:
        raise ConfigError(f"config file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None
    except UnicodeDecodeError as error:  # TOML is UTF-8; tomllib decodes before it parses
        raise ConfigError(f"config file {path} is not UTF-8 at byte {error.start}") from None
    values: dict[str, str] = {}
    for written, value in _flatten(document).items():
        declaration = _known(path, written)
        key = declaration.key
        raw = _as_text(path, key, value)
        if declaration.variable in values:
            raise ConfigError(f"{path}: {key} is set twice (as {written} too)")
        try:
            declaration.read(raw)
        except ConfigError as error:
            raise ConfigError(
                str(error).replace(declaration.variable, f"{path}: {key}", 1)
            ) from None
        values[declaration.variable] = raw
    return values


def _flatten(table: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[prefix + key] = value
    return flat


def _known(path: str, key: str) -> Declaration:
    found = BY_KEY.get(key) or QUALIFIED.get(key)
    if found is None:
        _refuse_unknown(path, key, [*BY_KEY, *QUALIFIED])
    return found


def _refuse_unknown(path: str, key: str, known: list[str]) -> NoReturn:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(f"{path}: unknown key {key!r}{hint}")


def _as_text(path: str, key: str, value: object) -> str:
    """The value as its environment variable would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"{path}: {key} must be a string, number or boolean")
