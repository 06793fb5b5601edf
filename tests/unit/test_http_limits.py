"""Issue 17, item 4: bounded work per request. Metrics labels take only known values, and
the admin routes refuse a caller without the token before they read a byte of its body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from dependency_injector import providers
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import Message

from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import create_app
from tests.unit.conftest import Harness
from tests.unit.test_http_api import TOKEN, Api, FakeProbe, api_for

pytestmark = pytest.mark.unit

# The contract, spelled out here rather than imported: the label values a scrape may hold.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
UNMATCHED_ROUTE = "unmatched"

# RFC 9110 token characters: everything a client may put in the method.
TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
methods = st.one_of(
    st.sampled_from(sorted(HTTP_METHODS)),
    st.text(alphabet=TOKEN_CHARS, min_size=1, max_size=40),
)
# Percent-encoded and never empty: "//x" would be read as a host, not a path.
segments = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=30
).map(lambda text: quote(text, safe=""))
paths = st.one_of(
    st.just("/v1/conversations/c1/messages"),
    st.just("/v1/outbox/stats"),
    st.lists(segments, min_size=1, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    segments.map(lambda conversation: f"/v1/conversations/{conversation}/messages"),
    segments.map(lambda conversation: f"/v1/conversations/{conversation}/messages/"),
)
PLAIN = settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])


def container_on_fakes(app_settings: Settings) -> ApiContainer:
    """The API's container over an in-memory store, with probes that answer."""
    harness = Harness()
    container = ApiContainer(settings=app_settings)
    container.core.uow.override(providers.Object(harness.uow))
    container.core.clock.override(providers.Object(harness.clock))
    container.database_probe.override(providers.Object(FakeProbe()))
    container.bus_probe.override(providers.Object(FakeProbe()))
    return container


def app_on_fakes(app_settings: Settings) -> FastAPI:
    return create_app(container_on_fakes(app_settings))


def run_app(
    scenario: Callable[[FastAPI, httpx.AsyncClient], Awaitable[None]], app_settings: Settings
) -> None:
    """`scenario` against a fresh app on fakes, in an event loop of its own (hypothesis
    runs each example as a plain function)."""

    async def main() -> None:
        app = app_on_fakes(app_settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            await scenario(app, client)

    asyncio.run(main())


def http_label_values(exposition: str) -> tuple[set[str], set[str]]:
    """The method and route label values of every HTTP request series in a scrape."""
    found_methods, found_routes = set(), set()
    for family in text_string_to_metric_families(exposition):
        if family.name.startswith("chat_outbox_http_"):
            for sample in family.samples:
                found_methods.add(sample.labels["method"])
                found_routes.add(sample.labels["route"])
    return found_methods, found_routes


@PLAIN
@given(requests=st.lists(st.tuples(methods, paths), min_size=1, max_size=25))
def test_metrics_labels_take_only_known_methods_and_route_templates(
    requests: list[tuple[str, str]],
) -> None:
    """Whatever methods and paths clients send, the HTTP series are labelled only with a
    known method or OTHER, and with a route template of the app or `unmatched`."""

    async def scenario(app: FastAPI, client: httpx.AsyncClient) -> None:
        for method, path in requests:
            await client.request(method, path)
        # The included routers are not listed in app.routes; their templates are in OpenAPI.
        templates = set(app.openapi()["paths"]) | {getattr(r, "path", "") for r in app.routes}
        scrape = await client.get("/metrics")
        found_methods, found_routes = http_label_values(scrape.text)
        assert found_methods <= HTTP_METHODS | {OTHER_METHOD}
        assert found_routes <= templates | {UNMATCHED_ROUTE}

    run_app(scenario, Settings.of(admin_token=TOKEN, http_max_body_bytes=4096))


def test_two_thousand_random_methods_add_one_series() -> None:
    """2,000 requests with distinct unknown methods grow /metrics by one OTHER series, not
    2,000 (the issue's 131 MB scrape)."""

    async def scenario(app: FastAPI, client: httpx.AsyncClient) -> None:
        await client.get("/healthz")
        before = len((await client.get("/metrics")).content)
        for n in range(2000):
            await client.request(f"M{n:04d}", "/healthz")
        text = (await client.get("/metrics")).text
        assert 'chat_outbox_http_requests_total{method="OTHER",route="/healthz"' in text
        assert "M0001" not in text
        assert len(text) - before < 5000  # one counter and one histogram of 10 buckets

    run_app(scenario, Settings())


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    async for api in api_for(harness, Settings.of(admin_token=TOKEN, http_max_body_bytes=4096)):
        yield api


REQUEUE_SCOPE: dict[str, Any] = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "POST",
    "scheme": "http",
    "path": "/v1/outbox/dead/requeue",
    "raw_path": b"/v1/outbox/dead/requeue",
    "query_string": b"",
    "root_path": "",
    "server": ("api", 80),
    "client": ("127.0.0.1", 1234),
}
authorizations = st.one_of(
    st.none(),
    st.just("Bearer guess"),
    st.just(f"Basic {TOKEN}"),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60),
)
content_types = st.sampled_from(
    [None, "application/json", "text/plain", "application/x-www-form-urlencoded"]
)
bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(lambda value: json.dumps(value).encode(), st.dictionaries(st.text(), st.text())),
    st.just(b'{"all": true}'),
)


@PLAIN
@given(
    authorization=authorizations,
    content_type=content_types,
    body=bodies,
    token_set=st.booleans(),
)
def test_admin_routes_refuse_before_reading_the_body(
    authorization: str | None, content_type: str | None, body: bytes, token_set: bool
) -> None:
    """A requeue without the right token is 401 (403 when admin is disabled) whatever its
    body and content type, and the app never asks the server for that body."""
    if token_set and authorization is not None and authorization.strip() == f"Bearer {TOKEN}":
        return  # the one right answer: not this test's case

    async def scenario(app: FastAPI, client: httpx.AsyncClient) -> None:
        headers = [(b"content-length", b"%d" % len(body))]
        if authorization is not None:
            headers.append((b"authorization", authorization.encode("latin-1")))
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        reads: list[Message] = []
        sent: list[Message] = []

        async def receive() -> Message:
            message: Message = {"type": "http.request", "body": body, "more_body": False}
            reads.append(message)
            return message

        async def send(message: Message) -> None:
            sent.append(message)

        await app({**REQUEUE_SCOPE, "headers": headers}, receive, send)
        status = sent[0]["status"]
        assert status == (401 if token_set else 403)
        assert reads == []

    run_app(scenario, Settings.of(admin_token=TOKEN if token_set else ""))


async def test_a_malformed_admin_body_without_a_token_is_401_not_422(api: Api) -> None:
    """Bad JSON, or the wrong content type, from a caller without the token is told only
    that the token is missing."""
    for content_type in ("application/json", "text/plain"):
        response = await api.client.post(
            "/v1/outbox/dead/requeue", content=b"{not json", headers={"content-type": content_type}
        )
        assert response.status_code == 401
        assert response.json() == {"error": "a valid bearer token is required"}


async def test_an_admin_request_with_the_token_still_parses_its_body(api: Api) -> None:
    """With the token, a requeue body is parsed as before: bad JSON is a 422."""
    response = await api.client.post(
        "/v1/outbox/dead/requeue",
        content=b"{not json",
        headers={"content-type": "application/json", "Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 422
