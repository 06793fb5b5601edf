"""The parsers of settings' values: each turns one variable's text into a value or a
one-line ConfigError naming the variable."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit

from chat_outbox.adapters.sql import BadDatabaseUrl, check_url
from chat_outbox.entrypoints.durations import parse_duration

PREFIX = "CHAT_OUTBOX_"
SECRET_QUERY_PARAMETER = re.compile(
    r"([?&][^=&#]*(?:password|passwd|secret|token)[^=&#]*=)[^&#]*", re.IGNORECASE
)


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe for logs and error messages: the one in
    the authority, and query parameters like `password=` (libpq and asyncpg take both)."""
    url = SECRET_QUERY_PARAMETER.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in credentials:
        return url
    return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"


class ConfigError(ValueError):
    """Configuration that cannot work; the message is the one line the user sees."""


def text(name: str, raw: str) -> str:
    return raw.strip()


IMPORT_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*", re.ASCII)


def import_path(name: str, raw: str) -> str:
    """`package.module:name`, or empty for none."""
    value = raw.strip()
    if value and not IMPORT_PATH.fullmatch(value):
        raise ConfigError(f"{name} must look like package.module:name, got {value!r:.80}")
    return value


def trace_url(name: str, raw: str) -> str:
    """An http(s) URL template with one {trace_id} placeholder; the dashboard fills it in."""
    value = raw.strip()
    scheme = urlsplit(value.replace("{trace_id}", "x")).scheme
    if scheme not in ("http", "https") or value.count("{trace_id}") != 1:
        raise ConfigError(
            f"{name} must be an http(s) URL with one {{trace_id}} in it, got {raw!r:.60}"
        )
    return value


def utf8(name: str, raw: str) -> str:
    """Python smuggles a variable's undecodable bytes in as lone surrogates, which fail
    only where the value is first encoded: say so while reading the settings."""
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ConfigError(f"{PREFIX}{name.upper()} is not valid UTF-8 at {error.start}") from None
    return raw


def servers(name: str, raw: str) -> str:
    """host[:port] entries separated by commas, IPv6 hosts in brackets when with a port."""
    value = raw.strip()
    for server in value.split(","):
        server = server.strip()
        if server.startswith("["):
            _, bracket, after = server.partition("]")
            port = after.removeprefix(":") if bracket and after else None
        else:
            port = server.rpartition(":")[2] if server.count(":") == 1 else None
        valid_port = port is None or (port.isascii() and port.isdigit() and 0 < int(port) < 65536)
        if not server or not valid_port:
            raise ConfigError(f"{name} must be host:port entries (ports 1-65535), got {raw!r:.60}")
    return value


def database_url(name: str, raw: str) -> str:
    url = raw.strip()
    try:
        check_url(url)
    except BadDatabaseUrl as error:
        raise ConfigError(f"{name}: {error}") from None
    if "://" in url and not url.startswith("sqlite"):
        _check_port(name, url)
    return url


def amqp_url(name: str, raw: str) -> str:
    url = raw.strip()
    if not url.startswith(("amqp://", "amqps://")):
        raise ConfigError(f"{name} must be an amqp:// or amqps:// URL, got {redact_url(url)!r:.60}")
    _check_port(name, url)
    return url


def _check_port(name: str, url: str) -> None:
    """A port out of 1-65535 or not a number would fail only at the first connect."""
    try:
        port = urlsplit(url).port
    except ValueError as error:  # "Port out of range 0-65535", or not a number
        # Not the error's own text: it quotes the would-be port, which is the password
        # when a `#` or `?` in the password ends the authority early.
        reason = "port out of range 0-65535" if "out of range" in str(error) else "bad port"
        raise ConfigError(f"{name}: {reason} in {redact_url(url)!r:.80}") from None
    if port == 0:
        raise ConfigError(f"{name}: port 0 in {redact_url(url)!r:.80}")


def verbatim(name: str, raw: str) -> str:
    return raw


def boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r:.40}")


def choice(allowed: tuple[str, ...], upper: bool = False) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r:.40}")
        return value

    return parse


def positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r:.40}") from None
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value}")
    return value


def auto_or_positive_int(name: str, raw: str) -> int | None:
    if raw.strip().lower() == "auto":
        return None
    try:
        return positive_int(name, raw)
    except ConfigError:
        raise ConfigError(
            f"{name} must be auto or a positive whole number, got {raw!r:.40}"
        ) from None


def port(lowest: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a port number, got {raw!r:.40}") from None
        if not lowest <= value <= 65535:
            raise ConfigError(f"{name} must be {lowest}-65535, got {value}")
        return value

    return parse


def positive_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r:.40}") from None
    if not value > 0 or value == float("inf"):
        raise ConfigError(f"{name} must be a positive number, got {raw!r:.40}")
    return value


def non_negative_float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw!r:.40}") from None
    if not 0 <= value < float("inf"):
        raise ConfigError(f"{name} must be zero or more, got {raw!r:.40}")
    return value


def seconds(name: str, raw: str) -> float:
    """A duration with a unit (7d, 12h) or a number of seconds."""
    try:
        return non_negative_float(name, raw)
    except ConfigError:
        pass
    try:
        return parse_duration(raw).total_seconds()
    except ValueError as error:
        raise ConfigError(f"{name}: {error}") from None


def positive_seconds(name: str, raw: str) -> float:
    value = seconds(name, raw)
    if value <= 0:
        raise ConfigError(f"{name} must be a positive duration, got {raw!r:.40}")
    return value


def topic(name: str, raw: str) -> str:
    value = raw.strip()
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    if not 1 <= len(value) <= 249 or not set(value) <= allowed or value in (".", ".."):
        raise ConfigError(f"{name} must be 1-249 of [a-zA-Z0-9._-], got {raw!r:.40}")
    return value
