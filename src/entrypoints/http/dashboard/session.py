"""The dashboard's login session and CSRF tokens: HMAC-signed, expiring values keyed from
the admin token, so the cookie never holds the token and rotating it logs everyone out."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from collections import OrderedDict, deque

import attrs

from chat_outbox.entrypoints.http.loopback import is_loopback

SESSION_COOKIE = "chat_outbox_admin"
LOGIN_COOKIE = "chat_outbox_login"
COOKIE_PATH = "/admin"
SESSION_SECONDS = 8 * 3600
LOGIN_FORM_SECONDS = 1800
MAX_COOKIE_CHARS = 200
"""A longer cookie is not one of ours: refused before any HMAC is computed."""


@attrs.frozen
class Session:
    id: str
    expires: int


def _key(admin_token: str, purpose: str) -> bytes:
    # One derived key per purpose: a CSRF token can never pass as a session signature.
    return hmac.new(
        admin_token.encode(), f"chat-outbox dashboard {purpose}".encode(), "sha256"
    ).digest()


def _sign(admin_token: str, purpose: str, value: str) -> str:
    return hmac.new(_key(admin_token, purpose), value.encode(), hashlib.sha256).hexdigest()


def issue(admin_token: str, now: float | None = None) -> tuple[str, Session]:
    """A new session and its cookie value, `id.expires.signature`."""
    expires = int(now if now is not None else time.time()) + SESSION_SECONDS
    session = Session(secrets.token_urlsafe(18), expires)
    body = f"{session.id}.{session.expires}"
    return f"{body}.{_sign(admin_token, 'session', body)}", session


def verify(admin_token: str, cookie: str | None, now: float | None = None) -> Session | None:
    """The session the cookie names, if its signature holds and it has not expired."""
    if not admin_token or not cookie or len(cookie) > MAX_COOKIE_CHARS:
        return None
    parts = cookie.split(".")
    if len(parts) != 3 or not parts[1].isascii() or not parts[1].isdigit():
        return None
    session_id, expires, signature = parts
    expected = _sign(admin_token, "session", f"{session_id}.{expires}")
    # compare_digest: the time taken does not reveal how much of a forgery was right.
    if not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    if int(expires) <= (now if now is not None else time.time()):
        return None
    return Session(session_id, int(expires))


def csrf_token(admin_token: str, session: Session) -> str:
    """The token every state-changing form of this session carries."""
    return _sign(admin_token, "csrf", session.id)


def csrf_ok(admin_token: str, session: Session, given: str | None) -> bool:
    if not given or len(given) > MAX_COOKIE_CHARS:
        return False
    return hmac.compare_digest(given.encode(), csrf_token(admin_token, session).encode())


def login_nonce() -> str:
    """A random value set as a cookie and repeated in the login form (double submit)."""
    return secrets.token_urlsafe(18)


def nonce_ok(cookie: str | None, given: str | None) -> bool:
    if not cookie or not given or max(len(cookie), len(given)) > MAX_COOKIE_CHARS:
        return False
    return hmac.compare_digest(cookie.encode(), given.encode())


def token_ok(admin_token: str, given: str | None) -> bool:
    if not admin_token or given is None or len(given) > 4096:
        return False
    return hmac.compare_digest(given.encode(), admin_token.encode())


def secure_cookie(scheme: str, host: str | None, client: str | None = None) -> bool:
    """Secure unless the request came over plain HTTP to a loopback address: a session
    must not cross a network in clear, while http://127.0.0.1 still works locally.
    `client` is the peer's address when known (a trusted proxy's X-Forwarded-For client):
    a Host header of localhost from a peer elsewhere (a proxy passing its upstream's name
    on) is no proof that the browser is on this machine."""
    if scheme == "https" or not is_loopback(host or ""):
        return True
    return client is not None and not is_loopback(client)


def throttle_key(client: str) -> str:
    """Who a failed login is counted against: an IPv4 address, or an IPv6 address's /64
    (one host is commonly handed a whole /64, so counting single IPv6 addresses would let
    it guess without limit); an IPv4-mapped IPv6 address counts as its IPv4 address."""
    try:
        address = ipaddress.ip_address(client)
    except ValueError:
        return client
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@attrs.define
class LoginThrottle:
    """At most `failures` failed logins per client address (an IPv6 client's /64) in
    `window` seconds; beyond, logins from it are refused until the window passes. Only
    clients with recent failures are kept, at most `max_clients` of them."""

    failures: int = 10
    window: float = 60.0
    max_clients: int = 1000
    _seen: OrderedDict[str, deque[float]] = attrs.field(factory=OrderedDict)

    def blocked(self, client: str, now: float | None = None) -> bool:
        moment = time.monotonic() if now is None else now
        recent = self._seen.get(throttle_key(client))
        if recent is None:
            return False  # not recorded: a client that never failed takes up no room
        self._expire(recent, moment)
        return len(recent) >= self.failures

    def failed(self, client: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        key = throttle_key(client)
        recent = self._seen.pop(key, None) or deque()
        self._expire(recent, moment)
        recent.append(moment)
        self._seen[key] = recent
        while len(self._seen) > self.max_clients:
            self._seen.popitem(last=False)

    def _expire(self, recent: deque[float], now: float) -> None:
        while recent and recent[0] <= now - self.window:
            recent.popleft()


@attrs.define
class RevokedSessions:
    """Sessions ended by a logout, until they would have expired anyway: a signed cookie
    copied before the logout must not keep working for the rest of its hours. Kept in this
    process, at most `max_sessions` (only a signed-in, CSRF-checked logout adds one)."""

    max_sessions: int = 10_000
    _until: dict[str, int] = attrs.field(factory=dict)

    def revoke(self, session: Session, now: float | None = None) -> None:
        moment = time.time() if now is None else now
        for session_id in [i for i, until in self._until.items() if until <= moment]:
            del self._until[session_id]
        self._until[session.id] = session.expires
        while len(self._until) > self.max_sessions:
            del self._until[next(iter(self._until))]

    def __contains__(self, session: Session) -> bool:
        return session.id in self._until
