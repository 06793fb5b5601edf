"""Who calls the message routes: a bearer JWT, verified with the operator's pinned algorithms.

A user token (its user id in CHAT_OUTBOX_AUTH_USER_CLAIM, `sub` by default) reads and
writes only the conversations it owns, as itself, in the `user` and `assistant` roles. A
service token (CHAT_OUTBOX_AUTH_SERVICE_SCOPE in its `scope` or `scp` claim) reads and
writes any conversation, as any user, in any role. A conversation belongs to the user who
claimed it with the first checked write, or else to the user of its first message.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import attrs
import jwt
import structlog
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from fastapi import HTTPException
from jwt.exceptions import InvalidSubjectError

from chat_outbox.domain import Role
from chat_outbox.entrypoints.config import (
    JWT_ASYMMETRIC,
    JWT_SYMMETRIC,
    PREFIX,
    ConfigError,
    Settings,
)

log = structlog.get_logger(__name__)
MAX_USER_ID = 2**63 - 1
MAX_TOKEN_BYTES = 8192
"""Longer bearer values are refused before any parsing: no JWT of ours is near this."""
SERVICE_ONLY_ROLES = frozenset({Role.SYSTEM.value, Role.TOOL.value})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@attrs.frozen
class Caller:
    """The verified caller: a user, or a service (which may also name a user)."""

    user_id: int | None
    service: bool = False

    def may_see(self, owner: int | None) -> bool:
        """Reading needs ownership; an unknown conversation is hidden like another's,
        so a 404 never tells a user that someone else's conversation exists."""
        return self.service or (owner is not None and owner == self.user_id)


def unauthorized(reason: str) -> HTTPException:
    # RFC 6750 3.1: the challenge names the error; the reason never echoes the token.
    challenge = f'Bearer error="invalid_token", error_description="{reason}"'
    return HTTPException(401, f"a valid bearer token is required: {reason}", {
        "WWW-Authenticate": challenge
    })  # fmt: skip


def forbidden(reason: str) -> HTTPException:
    return HTTPException(403, reason)


@attrs.frozen
class Authenticator:
    """Verifies bearer JWTs: signature with the one configured key, algorithm from the
    configured list only, `exp` required, and `aud` and `iss` when configured."""

    key: Any
    algorithms: tuple[str, ...]
    user_claim: str
    audience: str | None
    issuer: str | None
    service_scope: str

    def caller(self, authorization: str | None) -> Caller:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        if len(token) > MAX_TOKEN_BYTES:
            raise unauthorized("token too long")
        claims = self._verified(token)
        service = self._is_service(claims)
        user_id = _user_id(claims.get(self.user_claim))
        if user_id is None and not service:
            raise unauthorized(f"the {self.user_claim} claim must be a positive integer user id")
        return Caller(user_id=user_id, service=service)

    def _verified(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": ["exp"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("bad signature") from None
        except jwt.InvalidAudienceError:
            raise unauthorized("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise unauthorized("wrong issuer") from None
        except jwt.InvalidAlgorithmError:
            raise unauthorized("algorithm not allowed") from None
        except InvalidSubjectError:
            raise unauthorized("invalid sub claim") from None
        except jwt.MissingRequiredClaimError as error:
            raise unauthorized(f"missing claim {error.claim}") from None
        except Exception as error:  # noqa: BLE001 - any token that does not verify is a 401
            # PyJWT lets a few malformed claims through as TypeError or ValueError.
            log.debug("jwt_refused", error=type(error).__name__)
            raise unauthorized("malformed token") from None
        if not isinstance(claims, dict):
            raise unauthorized("malformed token")
        return claims

    def _is_service(self, claims: dict[str, Any]) -> bool:
        scopes: list[str] = []
        for name in ("scope", "scp"):
            value = claims.get(name)
            if isinstance(value, str):
                scopes.extend(value.split())
            elif isinstance(value, list):
                scopes.extend(item for item in value if isinstance(item, str))
        return self.service_scope in scopes


def _user_id(value: object) -> int | None:
    """The claim as a user id: a JSON integer, or a string of digits (`sub` is a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and 1 <= value <= MAX_USER_ID:
        return value
    return None


def authenticator_of(settings: Settings) -> Authenticator | None:
    """The settings' authenticator, None when authentication is off; a ConfigError names
    an unreadable key file or algorithms that do not fit the key."""
    if not settings.http.auth_enabled:
        return None
    return _cached(settings)


@functools.lru_cache(maxsize=8)
def _cached(settings: Settings) -> Authenticator:
    # Cached per settings, so the key file is read once, not on every request.
    chosen = tuple(a for a in settings.http.auth_jwt_algorithms.split(",") if a)
    if settings.http.auth_jwt_secret and settings.http.auth_jwt_public_key_file:
        raise ConfigError(f"{PREFIX}AUTH_JWT_SECRET and AUTH_JWT_PUBLIC_KEY_FILE are both set")
    if settings.http.auth_jwt_secret:
        key: Any = settings.http.auth_jwt_secret.encode()
        algorithms = chosen or ("HS256",)
        allowed: tuple[str, ...] = JWT_SYMMETRIC
    else:
        key = _public_key(settings.http.auth_jwt_public_key_file)
        algorithms = chosen or (_algorithm_of(key),)
        allowed = _algorithms_for(key)
    misfit = [a for a in algorithms if a not in allowed]
    if misfit:
        raise ConfigError(
            f"{PREFIX}AUTH_JWT_ALGORITHMS has {misfit[0]}, which this key cannot verify"
        )
    return Authenticator(
        key=key,
        algorithms=algorithms,
        user_claim=settings.http.auth_user_claim,
        audience=settings.http.auth_audience or None,
        issuer=settings.http.auth_issuer or None,
        service_scope=settings.http.auth_service_scope,
    )


def _public_key(path: str) -> Any:
    name = f"{PREFIX}AUTH_JWT_PUBLIC_KEY_FILE"
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(f"{name}: cannot read {path}: {error.strerror}") from None
    try:
        key = load_pem_public_key(data)
    except (ValueError, TypeError):
        raise ConfigError(f"{name}: {path} is not a PEM public key") from None
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ConfigError(f"{name}: {path} must hold an RSA or EC public key")
    return key


def _algorithms_for(key: Any) -> tuple[str, ...]:
    if isinstance(key, rsa.RSAPublicKey):
        return tuple(a for a in JWT_ASYMMETRIC if a[:2] in ("RS", "PS"))
    return (_algorithm_of(key),)


def _algorithm_of(key: Any) -> str:
    if isinstance(key, rsa.RSAPublicKey):
        return "RS256"
    curve = key.curve.name
    if curve not in EC_ALGORITHMS:
        raise ConfigError(
            f"{PREFIX}AUTH_JWT_PUBLIC_KEY_FILE: EC curve {curve} has no JWT algorithm"
        )
    return EC_ALGORITHMS[curve]
