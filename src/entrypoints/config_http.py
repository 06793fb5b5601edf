"""The HTTP API's settings (`serve`: limits, admin token, JWT authentication) and the
metrics endpoint's (`relay`, `consume`), each declared once (see config_schema)."""

from __future__ import annotations

import attrs

from chat_outbox.entrypoints import config_parsers as parsers
from chat_outbox.entrypoints.config_parsers import PREFIX, ConfigError
from chat_outbox.entrypoints.config_schema import setting
from chat_outbox.entrypoints.config_sections import MIB, YEAR

JWT_SYMMETRIC = ("HS256", "HS384", "HS512")
JWT_ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")
MIN_JWT_SECRET_BYTES = 32
"""RFC 7518 3.2: an HMAC key at least as long as the hash (256 bits for HS256)."""


def jwt_secret(name: str, raw: str) -> str:
    if len(raw.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(f"{name} must be at least {MIN_JWT_SECRET_BYTES} bytes")
    return raw


def jwt_algorithms(name: str, raw: str) -> str:
    chosen = [a.strip().upper() for a in raw.split(",") if a.strip()]
    allowed = JWT_SYMMETRIC + JWT_ASYMMETRIC
    for algorithm in chosen:
        if algorithm not in allowed:
            raise ConfigError(
                f"{name} must be a comma-separated list of {', '.join(allowed)}, "
                f"got {algorithm!r:.20}"
            )
    return ",".join(chosen)


def _seconds(default: float, doc: str) -> float:
    return setting(default, parsers.positive_float, doc, least=0, most=3600)


@attrs.frozen
class HttpSettings:
    """`chat-outbox serve`: where it listens, its limits, the admin token and the message
    routes' authentication (bearer JWTs; off unless a secret or a key file is set)."""

    host: str = setting("127.0.0.1", parsers.text, "Address `serve` listens on (--host wins)")
    port: int = setting(
        8080, parsers.port(1), "Port `serve` listens on (--port wins)", least=1, most=65_535
    )
    max_body_bytes: int = setting(
        2 * MIB, parsers.positive_int, "Largest request body read", least=1, most=1024 * MIB
    )
    max_response_bytes: int = setting(
        8 * MIB,
        parsers.positive_int,
        "A history page stops before it grows past this (it always holds one message)",
        least=1024,
        most=1024 * MIB,
    )
    header_timeout_seconds: float = _seconds(10.0, "Time a client has to send its headers")
    body_timeout_seconds: float = _seconds(30.0, "Longest pause within a request body")
    keep_alive_seconds: float = _seconds(5.0, "How long an idle keep-alive connection stays")
    max_connections: int = setting(
        1000,
        parsers.positive_int,
        "Connections and requests handled at once; beyond them `serve` answers 503",
        least=1,
        most=1_000_000,
    )
    admin_token: str = setting(
        "",
        parsers.text,
        "Bearer token of the admin routes (empty: they are disabled)",
        env="ADMIN_TOKEN",
        secret=True,
    )
    admin_trace_url: str = setting(
        "",
        parsers.trace_url,
        "The dashboard's link to a trace viewer, with {trace_id} where the trace id goes",
        env="ADMIN_TRACE_URL",
    )
    auth_jwt_secret: str = setting(
        "",
        jwt_secret,
        f"HMAC secret of bearer JWTs, at least {MIN_JWT_SECRET_BYTES} bytes; turns auth on",
        env="AUTH_JWT_SECRET",
        secret=True,
    )
    auth_jwt_public_key_file: str = setting(
        "",
        parsers.text,
        "PEM RSA or EC public key file of bearer JWTs; turns auth on",
        env="AUTH_JWT_PUBLIC_KEY_FILE",
    )
    auth_jwt_algorithms: str = setting(
        "",
        jwt_algorithms,
        "Comma-separated; empty: HS256 with a secret, else the key's own (RS256, ES256...)",
        env="AUTH_JWT_ALGORITHMS",
    )
    auth_user_claim: str = setting(
        "sub", parsers.text, "The claim holding the user id", env="AUTH_USER_CLAIM"
    )
    auth_audience: str = setting(
        "", parsers.text, "The required `aud` (empty: unchecked)", env="AUTH_AUDIENCE"
    )
    auth_issuer: str = setting(
        "", parsers.text, "The required `iss` (empty: unchecked)", env="AUTH_ISSUER"
    )
    auth_service_scope: str = setting(
        "chat-outbox:service",
        parsers.text,
        "The scope (in `scope` or `scp`) that makes a token a service's",
        env="AUTH_SERVICE_SCOPE",
    )

    @property
    def auth_enabled(self) -> bool:
        """Whether the message routes ask for a bearer JWT."""
        return bool(self.auth_jwt_secret or self.auth_jwt_public_key_file)

    def __attrs_post_init__(self) -> None:
        self.check_auth()

    def check_auth(self) -> None:
        """One kind of key at a time, and algorithms that fit it: a token is never verified
        with an algorithm the operator did not choose for that key."""
        secret, key_file = self.auth_jwt_secret, self.auth_jwt_public_key_file
        algorithms = [a for a in self.auth_jwt_algorithms.split(",") if a]
        if secret and key_file:
            raise ConfigError(
                f"{PREFIX}AUTH_JWT_SECRET and {PREFIX}AUTH_JWT_PUBLIC_KEY_FILE are both set; "
                "choose one"
            )
        if algorithms and not self.auth_enabled:
            raise ConfigError(
                f"{PREFIX}AUTH_JWT_ALGORITHMS needs {PREFIX}AUTH_JWT_SECRET or "
                f"{PREFIX}AUTH_JWT_PUBLIC_KEY_FILE"
            )
        wrong = [a for a in algorithms if (a in JWT_SYMMETRIC) != bool(secret)]
        if wrong:
            kind = (
                "a shared secret takes HS256/384/512"
                if secret
                else "a public key takes RS, PS or ES"
            )
            raise ConfigError(f"{PREFIX}AUTH_JWT_ALGORITHMS has {wrong[0]}, but {kind}")
        if self.auth_enabled and not self.auth_user_claim:
            raise ConfigError(f"{PREFIX}AUTH_USER_CLAIM must name a claim")


@attrs.frozen
class MetricsSettings:
    """The Prometheus endpoint of `relay` and `consume`."""

    host: str = setting("127.0.0.1", parsers.text, "Address of the metrics endpoint")
    port: int = setting(
        0, parsers.port(0), "Port of the metrics endpoint (0: off)", least=0, most=65_535
    )
    refresh_seconds: float = setting(
        15.0,
        parsers.positive_float,
        "How often the relay refreshes the outbox gauges",
        least=0,
        most=YEAR,
    )
