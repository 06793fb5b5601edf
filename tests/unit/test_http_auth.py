"""The message routes' bearer JWTs, ownership and history byte budget, on in-memory fakes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_outbox.entrypoints.config import ConfigError, Settings
from chat_outbox.entrypoints.http.auth import authenticator_of
from chat_outbox.entrypoints.http.server import HeaderTimeout, check_exposure, server_for
from tests.unit.conftest import Harness
from tests.unit.test_http_api import Api, api_for

pytestmark = pytest.mark.unit

SECRET = "a-shared-secret-of-at-least-32-bytes!"
SERVICE = "chat-outbox:service"
ALICE, BOB = 7, 8


def token(
    user: object = ALICE, key: Any = SECRET, algorithm: str = "HS256", **claims: object
) -> str:
    body: dict[str, object] = {"sub": user, "exp": int(time.time()) + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def as_user(user: int, **claims: object) -> dict[str, str]:
    return bearer(token(str(user), SECRET, "HS256", **claims))


def as_service(**claims: object) -> dict[str, str]:
    return bearer(token(None, SECRET, "HS256", scope=f"openid {SERVICE}", **claims))


def message(user: int = ALICE, role: str = "user", text: str = "hello") -> dict[str, object]:
    return {"user_id": user, "role": role, "message": text}


def path(conversation: str = "conv-a") -> str:
    return f"/v1/conversations/{conversation}/messages"


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    async for api in api_for(harness, Settings.of(auth_jwt_secret=SECRET)):
        yield api


async def started_by(api: Api, user: int, conversation: str = "conv-a") -> None:
    response = await api.client.post(path(conversation), json=message(user), headers=as_user(user))
    assert response.status_code == 202, response.text


async def test_another_users_conversation_is_a_404_on_read_and_write(api: Api) -> None:
    """Bob can neither read nor write Alice's conversation, and learns nothing of it."""
    await started_by(api, ALICE)
    read = await api.client.get(path(), headers=as_user(BOB))
    write = await api.client.post(path(), json=message(BOB), headers=as_user(BOB))
    unknown = await api.client.get(path("conv-nobody"), headers=as_user(BOB))
    assert (read.status_code, write.status_code) == (404, 404)
    assert read.json() == unknown.json() == {"error": "no such conversation"}
    assert len(api.harness.store.outbox) == 1


async def test_the_owner_reads_and_writes_its_conversation_before_and_after_delivery(
    api: Api,
) -> None:
    """Ownership holds from the first recorded row, through history, and after a purge."""
    await started_by(api, ALICE)
    assert (await api.client.get(path(), headers=as_user(ALICE))).status_code == 200
    await api.deliver()
    api.harness.store.outbox.clear()  # as a retention purge leaves it: history only
    await started_by(api, ALICE)
    page = await api.client.get(path(), headers=as_user(ALICE))
    assert page.status_code == 200
    assert [m["user_id"] for m in page.json()["messages"]] == [ALICE]
    assert (await api.client.get(path(), headers=as_user(BOB))).status_code == 404
    response = await api.client.post(path(), json=message(BOB), headers=as_user(BOB))
    assert response.status_code == 404


async def test_a_forged_user_id_is_refused(api: Api) -> None:
    """A user token cannot record a message as another user, even in a new conversation."""
    response = await api.client.post(path(), json=message(BOB), headers=as_user(ALICE))
    assert response.status_code == 403
    assert "user_id" in response.json()["error"]
    assert api.harness.store.outbox == {}


@pytest.mark.parametrize("role", ["system", "tool"])
async def test_a_privileged_role_needs_a_service_token(api: Api, role: str) -> None:
    """system and tool messages are 403 for a user token and 202 for a service token."""
    refused = await api.client.post(path(), json=message(role=role), headers=as_user(ALICE))
    assert refused.status_code == 403
    assert role in refused.json()["error"]
    allowed = await api.client.post(path(), json=message(role=role), headers=as_service())
    assert allowed.status_code == 202, allowed.text


async def test_a_service_writes_for_a_user_who_then_owns_the_conversation(api: Api) -> None:
    """A service token records as any user; the conversation is that user's afterwards."""
    response = await api.client.post(path(), json=message(BOB), headers=as_service())
    assert response.status_code == 202, response.text
    assert (await api.client.get(path(), headers=as_user(BOB))).status_code == 200
    assert (await api.client.get(path(), headers=as_user(ALICE))).status_code == 404
    assert (await api.client.get(path(), headers=as_service())).status_code == 200


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda: {}, "a valid bearer token is required"),
        (lambda: {"Authorization": "Basic YWxpY2U6cHc="}, "a valid bearer token is required"),
        (lambda: bearer(token(exp=int(time.time()) - 10)), "token expired"),
        (lambda: bearer(token(key="another-secret-that-is-32-bytes-long")), "bad signature"),
        (lambda: bearer(token(exp=None)), "missing claim exp"),
        (lambda: bearer(token(user="alice")), "sub claim"),
        (lambda: bearer(token(user=True)), "sub claim"),
        (
            lambda: bearer(jwt.encode({"sub": "7", "exp": 2**40}, "", algorithm="none")),
            "not allowed",
        ),
        (lambda: bearer(token(key=SECRET * 2, algorithm="HS512")), "not allowed"),
    ],
    ids=["none", "basic", "expired", "wrong-key", "no-exp", "name", "bool", "alg-none", "hs512"],
)
async def test_a_missing_or_bad_token_is_a_401(
    api: Api, headers: Callable[[], dict[str, str]], reason: str
) -> None:
    """Without a token that verifies, both routes answer 401 with a Bearer challenge."""
    # Tokens are made when the test runs: made at collection, a valid one could expire first.
    for response in (
        await api.client.get(path(), headers=headers()),
        await api.client.post(path(), json=message(), headers=headers()),
    ):
        assert response.status_code == 401, response.text
        assert reason in response.json()["error"]
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert api.harness.store.outbox == {}


async def test_audience_and_issuer_are_checked_when_configured(harness: Harness) -> None:
    """With an audience and issuer set, a token lacking or mismatching either is a 401."""
    configured = Settings.of(auth_jwt_secret=SECRET, auth_audience="chat", auth_issuer="idp")
    async for api in api_for(harness, configured):
        cases = {
            "wrong audience": as_user(ALICE, aud="other", iss="idp"),
            "wrong issuer": as_user(ALICE, aud="chat", iss="evil"),
            "missing claim aud": as_user(ALICE, iss="idp"),
            "missing claim iss": as_user(ALICE, aud="chat"),
        }
        for reason, headers in cases.items():
            response = await api.client.get(path(), headers=headers)
            assert response.status_code == 401, reason
            assert reason in response.json()["error"]
        good = as_user(ALICE, aud=["chat", "x"], iss="idp")
        response = await api.client.post(path(), json=message(), headers=good)
        assert response.status_code == 202, response.text


def hmac_token(claims: dict[str, object], secret: bytes) -> str:
    """An HS256 token by hand: PyJWT itself refuses to sign with a PEM key as the secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{b64(mac)}"


def key_file(tmp_path: Path, private: Any) -> tuple[str, bytes]:
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    target = tmp_path / "jwt.pub"
    target.write_bytes(pem)
    return str(target), pem


@pytest.mark.parametrize(
    ("algorithm", "private"),
    [
        ("RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        ("ES256", ec.generate_private_key(ec.SECP256R1())),
    ],
)
async def test_a_public_key_file_verifies_its_tokens_only(
    harness: Harness, tmp_path: Path, algorithm: str, private: Any
) -> None:
    """RS256/ES256 tokens signed with the key pair pass; HS256 signed with the public key
    text (algorithm confusion) and tokens from another key pair are 401."""
    public, pem = key_file(tmp_path, private)
    async for api in api_for(harness, Settings.of(auth_jwt_public_key_file=public)):
        good = bearer(token(str(ALICE), key=private, algorithm=algorithm))
        response = await api.client.post(path(), json=message(), headers=good)
        assert response.status_code == 202, response.text
        other = (
            rsa.generate_private_key(public_exponent=65537, key_size=2048)
            if algorithm == "RS256"
            else ec.generate_private_key(ec.SECP256R1())
        )
        forged = bearer(token(str(ALICE), key=other, algorithm=algorithm))
        hs = hmac_token({"sub": "7", "exp": 2**40}, pem)
        for headers in (forged, bearer(hs)):
            response = await api.client.get(path(), headers=headers)
            assert response.status_code == 401, response.text


@pytest.mark.parametrize(
    ("values", "fragment"),
    [
        ({"auth_jwt_secret": "short"}, "at least 32 bytes"),
        ({"auth_jwt_secret": SECRET, "auth_jwt_public_key_file": "k.pem"}, "choose one"),
        ({"auth_jwt_secret": SECRET, "auth_jwt_algorithms": "none"}, "got 'NONE'"),
        ({"auth_jwt_secret": SECRET, "auth_jwt_algorithms": "RS256"}, "has RS256"),
        ({"auth_jwt_public_key_file": "k.pem", "auth_jwt_algorithms": "HS256"}, "has HS256"),
        ({"auth_jwt_algorithms": "HS256"}, "needs CHAT_OUTBOX_AUTH_JWT_SECRET"),
        ({"http_max_response_bytes": 10}, "HTTP_MAX_RESPONSE_BYTES"),
        ({"http_header_timeout_seconds": "1e308"}, "at most 3600"),
    ],
)
def test_auth_and_http_settings_are_checked_into_one_line(
    values: dict[str, object], fragment: str
) -> None:
    """Impossible auth or HTTP settings are a one-line ConfigError naming the variable."""
    with pytest.raises(ConfigError) as raised:
        Settings.of(**values)
    assert fragment in str(raised.value)
    assert "\n" not in str(raised.value)


def test_an_unreadable_key_file_is_a_config_error(tmp_path: Path) -> None:
    """A missing or non-PEM key file fails when the authenticator is built, in one line."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    for file, fragment in ((tmp_path / "absent.pem", "cannot read"), (garbage, "not a PEM")):
        with pytest.raises(ConfigError, match=fragment):
            authenticator_of(Settings.of(auth_jwt_public_key_file=str(file)))


async def test_without_auth_settings_the_routes_stay_open(harness: Harness) -> None:
    """Authentication is off unless configured: no token needed (loopback development)."""
    async for api in api_for(harness, Settings()):
        assert (await api.client.post(path(), json=message(BOB))).status_code == 202


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
CLAIMS = st.dictionaries(
    st.sampled_from(["sub", "exp", "nbf", "iat", "aud", "iss", "scope", "scp", "jti"]), JSON
)
FUTURE = st.integers(int(time.time()) + 60, 2**40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=300)
    | st.builds(".".join, st.lists(st.text("AZaz09-_=", max_size=40), min_size=2, max_size=4))
)
async def test_arbitrary_bearer_strings_are_always_a_401(raw: str) -> None:
    """Any string that is not a signed token is a 401 on both routes, never a 500."""
    async for api in api_for(Harness(), Settings.of(auth_jwt_secret=SECRET)):
        for response in (
            await api.client.get(path(), headers=bearer(raw)),
            await api.client.post(path(), json=message(), headers=bearer(raw)),
        ):
            assert response.status_code == 401, (raw, response.text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(claims=CLAIMS, exp=st.none() | FUTURE, sub=st.none() | st.integers(-5, 2**64))
async def test_arbitrary_signed_claims_never_crash_the_routes(
    claims: dict[str, Any], exp: int | None, sub: int | None
) -> None:
    """Correctly signed tokens with arbitrary claims get 401, 403 or 404, or pass, never
    a 500; a token with no valid future exp or usable user id is always a 401."""
    if exp is not None:
        claims["exp"] = exp
    if sub is not None:
        claims["sub"] = str(sub)
    signed = hmac_token(claims, SECRET.encode())  # PyJWT would refuse to sign some claims
    async for api in api_for(Harness(), Settings.of(auth_jwt_secret=SECRET)):
        for response in (
            await api.client.get(path(), headers=bearer(signed)),
            await api.client.post(path(), json=message(), headers=bearer(signed)),
        ):
            assert response.status_code in (200, 202, 401, 403, 404), response.text
            exp_claim = claims.get("exp")
            past = isinstance(exp_claim, int | float) and exp_claim < time.time()
            if exp_claim is None or isinstance(exp_claim, list | dict) or past:
                assert response.status_code == 401, (claims, response.text)


async def test_a_history_page_stops_at_the_byte_budget_with_a_next_link(
    harness: Harness,
) -> None:
    """Messages larger together than HTTP_MAX_RESPONSE_BYTES come a budget at a time; the
    cursor and Link lead through all of them, and a page holds at least one message."""
    budget = 4096
    async for api in api_for(harness, Settings.of(http_max_response_bytes=budget)):
        texts = [f"{i:02d}" + "x" * 1500 for i in range(7)] + ["y" * 5000]
        for text in texts:
            await api.send("big", text)
        await api.deliver()
        seen: list[str] = []
        url = "/v1/conversations/big/messages?limit=1000"
        pages = 0
        while url:
            response = await api.client.get(url)
            assert response.status_code == 200
            assert len(response.content) <= budget + 1024 or len(response.json()["messages"]) == 1
            page = response.json()
            seen += [m["message"] for m in page["messages"]]
            pages += 1
            link = response.headers.get("Link")
            if page["next_after"] is None:
                assert link is None
                url = ""
            else:
                assert link == (
                    f"</v1/conversations/big/messages?after={page['next_after']}"
                    '&limit=1000>; rel="next"'
                )
                url = link[1 : link.index(">")]
        assert seen == texts
        assert pages >= 4


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.8.8", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("api.example.com", False),
    ],
)
def test_only_loopback_serves_without_auth_unless_told(host: str, loopback: bool) -> None:
    """check_exposure refuses a reachable address without auth, in one line, and accepts
    it with auth configured or with --insecure-no-auth."""
    if loopback:
        check_exposure(host, Settings(), insecure_no_auth=False)
    else:
        with pytest.raises(ConfigError, match="--insecure-no-auth") as raised:
            check_exposure(host, Settings(), insecure_no_auth=False)
        assert "\n" not in str(raised.value)
    check_exposure(host, Settings(), insecure_no_auth=True)
    check_exposure(host, Settings.of(auth_jwt_secret=SECRET), insecure_no_auth=False)


def test_the_http_limits_reach_uvicorn() -> None:
    """Keep-alive, connection ceiling and header deadline come from the settings."""
    limits = Settings.of(
        http_keep_alive_seconds=3.5, http_max_connections=17, http_header_timeout_seconds=2.5
    )
    config = server_for(object(), "127.0.0.1", 1, limits).config
    assert config.timeout_keep_alive == 3.5
    assert config.limit_concurrency == 17
    assert isinstance(config.http, type)
    assert issubclass(config.http, HeaderTimeout)
    assert config.http.header_timeout == 2.5
