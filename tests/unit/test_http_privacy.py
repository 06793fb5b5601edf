"""Issue 17, item 5: nothing private in public answers. Readiness says `ok` or
`unavailable`, a trailing slash never echoes the Host header, and an error answer quotes
no more than a few characters of what the client sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.http import create_app, health
from tests.unit.test_http_api import TOKEN, FakeProbe
from tests.unit.test_http_limits import container_on_fakes, run_app

pytestmark = pytest.mark.unit

PLAIN = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
MESSAGES = "/v1/conversations/conv-1/messages"

addresses = st.one_of(
    st.ip_addresses().map(str),
    st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z][a-z0-9-]{0,20}){0,3}", fullmatch=True),
)
failures = st.builds(
    lambda address, port, extra: f"connect to {address}:{port} failed: {extra}",
    addresses,
    st.integers(1, 65535),
    st.text(max_size=40),
)


def readyz_with(
    failure: str | None, hang: bool = False
) -> tuple[httpx.Response, list[MutableMapping[str, Any]]]:
    """/readyz with the database probe failing with `failure` (or hanging), and the logs."""

    async def hung() -> None:
        await asyncio.sleep(60)

    async def main() -> httpx.Response:
        container = container_on_fakes(Settings())
        container.database_probe.override(providers.Object(hung if hang else FakeProbe(failure)))
        app = create_app(container)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            return await client.get("/readyz")

    with capture_logs() as logs:
        response = asyncio.run(main())
    return response, logs


@PLAIN
@given(failure=failures)
def test_readyz_says_unavailable_and_logs_the_reason(failure: str) -> None:
    """A failing database probe is `unavailable` in the answer, whatever its text (hosts,
    ports), and that text goes to a warning log line instead."""
    response, logs = readyz_with(failure)
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "bus": "ok"},
    }
    [line] = [line for line in logs if line["event"] == "readiness_check_failed"]
    assert (line["log_level"], line["check"]) == ("warning", "database")
    assert failure.split(" failed")[0] in line["reason"]  # "connect to host:port"


def test_a_probe_that_does_not_answer_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    """A probe past the timeout is `unavailable` too, and the timeout is logged."""
    monkeypatch.setattr(health, "PROBE_TIMEOUT_S", 0.05)
    response, logs = readyz_with(None, hang=True)
    assert response.json()["checks"] == {"database": "unavailable", "bus": "ok"}
    [line] = [line for line in logs if line["event"] == "readiness_check_failed"]
    assert "no answer" in line["reason"]


route_paths = st.sampled_from(
    ["/v1/conversations/c1/messages/", "/v1/outbox/stats/", "/healthz/", "/readyz/", "/metrics/"]
)
hosts = st.builds(
    lambda name, port: name if port is None else f"{name}:{port}",
    st.from_regex(r"evil-[a-z0-9-]{1,30}(\.[a-z0-9-]{1,20}){0,3}", fullmatch=True),
    st.none() | st.integers(1, 65535),
)


@PLAIN
@given(path=route_paths, host=hosts, method=st.sampled_from(["GET", "POST"]))
def test_a_trailing_slash_never_echoes_the_host_header(path: str, host: str, method: str) -> None:
    """A route with a trailing slash added, under a forged Host, is no redirect, and no
    response header names that host."""

    async def scenario(app: object, client: httpx.AsyncClient) -> None:
        response = await client.request(method, path, headers={"Host": host, **ADMIN})
        assert not 300 <= response.status_code < 400
        assert "location" not in response.headers
        assert all(host not in value for value in response.headers.values())

    run_app(scenario, Settings.of(admin_token=TOKEN))


def strings_in(document: object) -> Iterator[str]:
    """Every key and string value of a JSON document."""
    if isinstance(document, str):
        yield document
    elif isinstance(document, dict):
        for key, value in document.items():
            yield key
            yield from strings_in(value)
    elif isinstance(document, list):
        for item in document:
            yield from strings_in(item)


Request = tuple[str, str, dict[str, str], bytes]
JSON = {"content-type": "application/json"}


def as_body(secret: str, **fields: object) -> bytes:
    return json.dumps({"user_id": 7, "role": "user", "message": "x", **fields}).encode()


# Each puts the secret where a careless error answer would quote it back.
PLACEMENTS: dict[str, Callable[[str], Request]] = {
    "message beside a bad user_id": lambda s: (
        "POST", MESSAGES, JSON, as_body(s, user_id="seven", message=s)),
    "message with a NUL": lambda s: ("POST", MESSAGES, JSON, as_body(s, message=s + "\x00")),
    "message with a bell": lambda s: ("POST", MESSAGES, JSON, as_body(s, message="\x07" + s)),
    "role": lambda s: ("POST", MESSAGES, JSON, as_body(s, role=s)),
    "user_id": lambda s: ("POST", MESSAGES, JSON, as_body(s, user_id=s)),
    "unexpected field": lambda s: ("POST", MESSAGES, JSON, as_body(s, **{s: s})),
    "duplicate key": lambda s: (
        "POST", MESSAGES, JSON, b'{"%s": 1, "%s": 2}' % ((json.dumps(s)[1:-1].encode(),) * 2)),
    "not JSON": lambda s: ("POST", MESSAGES, JSON, s.encode("utf-8", "replace")),
    "content type": lambda s: (
        "POST", MESSAGES, {"content-type": ascii(s)}, as_body(s)),
    "conversation id": lambda s: (
        "POST", f"/v1/conversations/{quote(chr(7) + s, safe='')}/messages", JSON, as_body(s)),
    "unknown route": lambda s: ("GET", f"/v2/{quote(s, safe='')}", {}, b""),
    "history query": lambda s: ("GET", f"{MESSAGES}?limit={quote(s, safe='')}", {}, b""),
    "idempotency key": lambda s: (
        "POST", MESSAGES, {**JSON, "Idempotency-Key": ascii(s) * 3}, as_body(s)),
    "requeue conversation": lambda s: (
        "POST", "/v1/outbox/dead/requeue", {**JSON, **ADMIN},
        json.dumps({"conversation_id": s + "\x07"}).encode()),
    "requeue field": lambda s: (
        "POST", "/v1/outbox/dead/requeue", {**JSON, **ADMIN}, json.dumps({s: True}).encode()),
    "dead query": lambda s: (
        "GET", f"/v1/outbox/dead?conversation_id={quote(s + chr(7), safe='')}", ADMIN, b""),
}  # fmt: skip
secrets = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=80, max_size=600
).map(lambda text: "SECRET<" + text + ">")


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secrets, placement=st.sampled_from(sorted(PLACEMENTS)))
def test_an_error_answer_never_quotes_what_the_client_sent(secret: str, placement: str) -> None:
    """Hostile values in the body, path, query or headers get a 4xx whose JSON and headers
    hold at most a short prefix of them, never the whole value."""
    method, path, headers, content = PLACEMENTS[placement](secret)
    # The forms a quote could take: as sent, as ascii() wrote it, as JSON escapes it.
    forms = {secret, ascii(secret), json.dumps(secret)[1:-1]}
    echo_limit = 70  # a little over the 64 characters of a field name an answer may quote

    async def scenario(app: object, client: httpx.AsyncClient) -> None:
        response = await client.request(method, path, headers=headers, content=content)
        assert 400 <= response.status_code < 500, response.text
        answered = "\n".join(strings_in(response.json()))
        for text in (answered, response.text, *response.headers.values()):
            for form in forms:
                assert form[:echo_limit] not in text

    run_app(scenario, Settings.of(admin_token=TOKEN, http_max_body_bytes=64 * 1024))
