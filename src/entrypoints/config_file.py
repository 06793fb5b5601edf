"""Settings from a TOML file under the environment: the file fills in, CHAT_OUTBOX_* wins.

The file's keys are Settings field names (`max_retry = 20`); a table prefixes its keys
(`[kafka]` + `sasl_username` is `kafka_sasl_username`). Each value is checked by the same
parser as its environment variable, and an error names the file and the key.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Mapping

import attrs

from chat_outbox.entrypoints.config import PREFIX, ConfigError, Settings

CONFIG_ENV = PREFIX + "CONFIG"


def env_name(key: str) -> str:
    return PREFIX + key.upper()


@attrs.frozen
class LoadedSettings:
    settings: Settings
    origins: dict[str, str]
    """Where each field's value came from: the variable, the file, or 'default'."""


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
        key: (
            env_name(key)
            if env_name(key) in from_env
            else f"file {path}"
            if env_name(key) in from_file
            else "default"
        )
        for key in _keys()
    }
    return LoadedSettings(settings, origins)


def settings_of(values: Mapping[str, object], origin: str = "Settings.of") -> Settings:
    """Settings from keyword values (None leaves a default), each checked by the parser of
    its environment variable; the environment itself is not read."""
    for key in values:
        _check_known(origin, key)
    given = {key: value for key, value in values.items() if value is not None}
    return Settings.from_env({env_name(key): _as_text(origin, key, v) for key, v in given.items()})


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
    for key, value in _flatten(document).items():
        _check_known(path, key)
        raw = _as_text(path, key, value)
        try:
            Settings.from_env({env_name(key): raw})
        except ConfigError as error:
            raise ConfigError(str(error).replace(env_name(key), f"{path}: {key}", 1)) from None
        values[env_name(key)] = raw
    return values


def _keys() -> list[str]:
    return [field.name for field in attrs.fields(Settings)]


def _flatten(table: Mapping[str, object], prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in table.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[prefix + key] = value
    return flat


def _check_known(path: str, key: str) -> None:
    if key in _keys():
        return
    close = difflib.get_close_matches(key, _keys(), n=1)
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ConfigError(f"{path}: unknown key {key!r}{hint}")


def _as_text(path: str, key: str, value: object) -> str:
    """The value as its environment variable would spell it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(f"{path}: {key} must be a string, number or boolean")
