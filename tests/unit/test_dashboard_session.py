"""The dashboard's session cookie, CSRF tokens and login throttle."""

from __future__ import annotations

import pytest

from chat_outbox.entrypoints.http.dashboard import session
from chat_outbox.entrypoints.http.dashboard.actions import safe_next

pytestmark = pytest.mark.unit

TOKEN = "unit-admin-token"
NOW = 1_800_000_000.0


def test_a_fresh_session_cookie_verifies_and_does_not_hold_the_token() -> None:
    cookie, issued = session.issue(TOKEN, NOW)
    assert session.verify(TOKEN, cookie, NOW + 1) == issued
    assert TOKEN not in cookie


def test_a_session_expires() -> None:
    cookie, _ = session.issue(TOKEN, NOW)
    assert session.verify(TOKEN, cookie, NOW + session.SESSION_SECONDS) is None


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-1] + ("0" if c[-1] != "0" else "1"),  # signature
        lambda c: "x" + c,  # session id
        lambda c: c.replace(".", ".9", 1),  # expiry pushed out
        lambda c: c + ".extra",
        lambda c: "",
        lambda c: "a" * 500,
    ],
)
def test_a_tampered_cookie_is_refused(tamper: object) -> None:
    cookie, _ = session.issue(TOKEN, NOW)
    assert session.verify(TOKEN, tamper(cookie), NOW + 1) is None  # type: ignore[operator]


def test_rotating_the_token_invalidates_existing_sessions() -> None:
    cookie, _ = session.issue(TOKEN, NOW)
    assert session.verify("rotated-token", cookie, NOW + 1) is None


def test_a_csrf_token_is_bound_to_its_session() -> None:
    _, mine = session.issue(TOKEN, NOW)
    _, other = session.issue(TOKEN, NOW)
    token = session.csrf_token(TOKEN, mine)
    assert session.csrf_ok(TOKEN, mine, token)
    assert not session.csrf_ok(TOKEN, other, token)
    assert not session.csrf_ok(TOKEN, mine, None)


def test_a_csrf_token_never_passes_as_a_session_signature() -> None:
    _, mine = session.issue(TOKEN, NOW)
    forged = f"{mine.id}.{mine.expires}.{session.csrf_token(TOKEN, mine)}"
    assert session.verify(TOKEN, forged, NOW + 1) is None


@pytest.mark.parametrize(
    ("scheme", "host", "secure"),
    [
        ("http", "127.0.0.1", False),
        ("http", "localhost", False),
        ("http", "[::1]", False),
        ("https", "127.0.0.1", True),
        ("http", "10.0.0.5", True),
        ("http", "admin.example", True),
        ("http", None, True),
    ],
)
def test_cookies_are_secure_except_over_plain_http_on_loopback(
    scheme: str, host: str | None, secure: bool
) -> None:
    assert session.secure_cookie(scheme, host) is secure


def test_the_throttle_blocks_a_client_after_its_failures_until_the_window_passes() -> None:
    throttle = session.LoginThrottle(failures=3, window=60)
    for second in range(3):
        throttle.failed("10.0.0.1", NOW + second)
    assert throttle.blocked("10.0.0.1", NOW + 3)
    assert not throttle.blocked("10.0.0.2", NOW + 3)
    assert not throttle.blocked("10.0.0.1", NOW + 63)


def test_the_throttle_keeps_a_bounded_number_of_clients() -> None:
    throttle = session.LoginThrottle(max_clients=2)
    for client in ("a", "b", "c"):
        throttle.failed(client, NOW)
    assert len(throttle._seen) == 2


@pytest.mark.parametrize(
    ("given", "goes_to"),
    [
        ("/admin/dead?conversation=c1", "/admin/dead?conversation=c1"),
        ("https://evil.example/admin", "/admin"),
        ("//evil.example/admin", "/admin"),
        ("/admin\\@evil.example", "/admin"),
        ("/other", "/admin"),
        ("/admin\r\nSet-Cookie: x=1", "/admin"),
        (None, "/admin"),
    ],
)
def test_after_login_only_a_dashboard_path_on_this_site_is_followed(
    given: str | None, goes_to: str
) -> None:
    assert safe_next(given) == goes_to


def test_the_throttle_counts_an_ipv6_clients_whole_slash_64_together() -> None:
    """One host commonly holds a whole /64: a new address per guess must not reset its count."""
    throttle = session.LoginThrottle(failures=3, window=60)
    for host in range(3):
        throttle.failed(f"2001:db8:1:2::{host + 1:x}", NOW)
    assert throttle.blocked("2001:db8:1:2:ffff::9", NOW + 1)
    assert not throttle.blocked("2001:db8:1:3::1", NOW + 1)


def test_the_throttle_counts_an_ipv4_mapped_address_as_its_ipv4_address() -> None:
    throttle = session.LoginThrottle(failures=2, window=60)
    throttle.failed("::ffff:192.0.2.7", NOW)
    throttle.failed("192.0.2.7", NOW)
    assert throttle.blocked("192.0.2.7", NOW + 1)
    assert not throttle.blocked("::ffff:192.0.2.8", NOW + 1)  # not one bucket for all IPv4


def test_clients_that_never_failed_do_not_push_a_failing_one_out() -> None:
    throttle = session.LoginThrottle(failures=2, window=60, max_clients=2)
    throttle.failed("10.0.0.1", NOW)
    throttle.failed("10.0.0.1", NOW)
    for host in range(10):
        assert not throttle.blocked(f"10.0.1.{host}", NOW)
    assert throttle.blocked("10.0.0.1", NOW + 1)


def test_a_revoked_session_is_remembered_until_it_would_have_expired() -> None:
    _, ended = session.issue(TOKEN, NOW)
    _, other = session.issue(TOKEN, NOW)
    revoked = session.RevokedSessions()
    revoked.revoke(ended, NOW)
    assert ended in revoked
    assert other not in revoked
    revoked.revoke(other, ended.expires + 1)  # the first has expired: no longer kept
    assert ended not in revoked
    assert other in revoked


def test_revoked_sessions_are_bounded() -> None:
    revoked = session.RevokedSessions(max_sessions=2)
    sessions = [session.issue(TOKEN, NOW)[1] for _ in range(3)]
    for each in sessions:
        revoked.revoke(each, NOW)
    assert [s in revoked for s in sessions] == [False, True, True]


@pytest.mark.parametrize(
    ("client", "secure"),
    [("127.0.0.1", False), ("::1", False), ("203.0.113.9", True), ("unknown", True)],
)
def test_a_loopback_host_over_plain_http_from_a_peer_elsewhere_still_gets_a_secure_cookie(
    client: str, secure: bool
) -> None:
    """A proxy that passes its upstream's name (Host: 127.0.0.1) on for a remote browser."""
    assert session.secure_cookie("http", "127.0.0.1", client) is secure
