"""The HTTP routes on fakes: an in-memory store and probes, called through ASGI."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator

import attrs
import httpx
import pytest
import structlog
from dependency_injector import providers

from chat_outbox.application.ports import UnitOfWorkFactory
from chat_outbox.domain import OutboxStatus, PublishFailure
from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.containers import ApiContainer
from chat_outbox.entrypoints.http import create_app
from chat_outbox.entrypoints.log_setup import configure_logging
from tests.unit.conftest import FlakyCommits, Harness, failing

pytestmark = pytest.mark.unit

TOKEN = "s3cret-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
MESSAGES = "/v1/conversations/conv-1/messages"


@attrs.define
class FakeProbe:
    """A dependency that answers, or refuses with `failure`."""

    failure: str | None = None

    async def __call__(self) -> None:
        if self.failure is not None:
            raise ConnectionRefusedError(self.failure)


@attrs.define
class Api:
    client: httpx.AsyncClient
    harness: Harness
    database: FakeProbe
    bus: FakeProbe

    async def send(self, conversation: str = "conv-1", text: str = "hello") -> int:
        response = await self.client.post(
            f"/v1/conversations/{conversation}/messages",
            json={"user_id": 7, "role": "user", "message": text},
        )
        assert response.status_code == 202, response.text
        outbox_id: int = response.json()["outbox_id"]
        return outbox_id

    async def deliver(self) -> None:
        """Relay (one message per conversation per round) and consume everything."""
        while (await self.harness.relay().relay_due()).claimed:
            pass
        await self.harness.consumer().consume_batch(timeout=0)


async def api_for(
    harness: Harness, settings: Settings, uow: UnitOfWorkFactory | None = None
) -> AsyncIterator[Api]:
    container = ApiContainer(settings=settings)
    database, bus = FakeProbe(), FakeProbe()
    container.core.uow.override(providers.Object(uow or harness.uow))
    container.core.clock.override(providers.Object(harness.clock))
    container.core.event_ids.override(providers.Object(harness.event_ids))
    container.database_probe.override(providers.Object(database))
    container.bus_probe.override(providers.Object(bus))
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Api(client, harness, database, bus)


@pytest.fixture
async def api(harness: Harness) -> AsyncIterator[Api]:
    async for api in api_for(harness, Settings.of(admin_token=TOKEN, http_max_body_bytes=4096)):
        yield api


@pytest.fixture
def warning_logs() -> Iterator[io.StringIO]:
    """The process's logging as set up for CHAT_OUTBOX_LOG_LEVEL=warning, into a buffer;
    put back afterwards (loggers uncached, so none keeps this set-up past the test)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("json", "warning", stream)
    structlog.configure(cache_logger_on_first_use=False)
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def audit_lines(stream: io.StringIO) -> list[dict[str, object]]:
    lines = [json.loads(text) for text in stream.getvalue().splitlines()]
    return [line for line in lines if line["event"] == "audit"]


@pytest.fixture
async def api_without_admin(harness: Harness) -> AsyncIterator[Api]:
    async for api in api_for(harness, Settings()):
        yield api


async def test_posting_a_message_records_it_pending(api: Api) -> None:
    """POST answers 202 with the outbox id of a new pending row holding the message."""
    response = await api.client.post(
        MESSAGES, json={"user_id": 7, "role": "assistant", "message": "héllo"}
    )
    assert response.status_code == 202
    row = api.harness.row(response.json()["outbox_id"])
    assert row.status is OutboxStatus.PENDING
    assert row.message_key == "conv-1"
    assert '"message":"héllo"' in row.payload
    assert response.json()["event_id"] == row.event_id


async def test_a_traceparent_header_is_recorded_with_the_message(api: Api) -> None:
    """The request's W3C traceparent is stored with the row; a malformed one is ignored."""
    body = {"user_id": 7, "role": "user", "message": "hi"}
    traced = await api.client.post(MESSAGES, json=body, headers={"traceparent": TRACEPARENT})
    junk = await api.client.post(MESSAGES, json=body, headers={"traceparent": "junk"})
    assert api.harness.row(traced.json()["outbox_id"]).traceparent == TRACEPARENT
    assert api.harness.row(junk.json()["outbox_id"]).traceparent is None


@pytest.mark.parametrize(
    ("path", "body", "field", "where"),
    [
        (MESSAGES, {"user_id": "7", "role": "user", "message": "x"}, "user_id", "body"),
        (MESSAGES, {"user_id": 0, "role": "user", "message": "x"}, "user_id", "body"),
        (MESSAGES, {"user_id": 7, "role": "robot", "message": "x"}, "role", "body"),
        (MESSAGES, {"user_id": 7, "role": "user"}, "message", "body"),
        (MESSAGES, {"user_id": 7, "role": "user", "message": "a\x00b"}, "message", "body"),
        (MESSAGES, {"user_id": 7, "role": "user", "message": "x", "extra": 1}, "extra", "body"),
        (f"/v1/conversations/{'c' * 129}/messages", {}, "conversation_id", "path"),
        ("/v1/conversations/a%07b/messages", {"user_id": 7, "role": "user", "message": "x"},
         "conversation_id", "path"),
    ],
)  # fmt: skip
async def test_an_invalid_message_is_422_naming_the_field(
    api: Api, path: str, body: dict[str, object], field: str, where: str
) -> None:
    """Shape and domain rule violations alike answer 422 with the field at fault, and
    record nothing."""
    response = await api.client.post(path, json=body)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request"
    assert {"field": field, "in": where} == {
        key: response.json()["fields"][0][key] for key in ("field", "in")
    }
    assert api.harness.store.outbox == {}


async def test_malformed_json_is_422(api: Api) -> None:
    """A body that is not JSON is a validation error, as JSON."""
    response = await api.client.post(
        MESSAGES, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "invalid request"


async def test_an_oversized_body_is_413_before_it_is_read(api: Api) -> None:
    """A declared length over the limit answers 413 as JSON, and nothing is recorded."""
    body = {"user_id": 7, "role": "user", "message": "x" * 5000}
    response = await api.client.post(MESSAGES, json=body)
    assert response.status_code == 413
    assert "over the limit of 4096 bytes" in response.json()["error"]
    assert api.harness.store.outbox == {}


async def test_an_oversized_chunked_body_is_413(api: Api) -> None:
    """A body with no declared length is cut off once it passes the limit."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"user_id": 7, "role": "user", "message": "'
        for _ in range(10):
            yield b"x" * 1000
        yield b'"}'

    response = await api.client.post(
        MESSAGES, content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert api.harness.store.outbox == {}


async def test_an_unknown_route_is_a_json_404(api: Api) -> None:
    """Unknown paths answer 404 with a JSON reason."""
    response = await api.client.get("/v2/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "no route /v2/nothing"}


async def test_history_is_read_back_in_recording_order_a_page_at_a_time(api: Api) -> None:
    """Three consumed messages come back two, then one, following next_after."""
    ids = [await api.send(text=f"m{n}") for n in range(3)]
    await api.send(conversation="other")
    await api.deliver()
    first = (await api.client.get(MESSAGES, params={"limit": 2})).json()
    assert [m["message"] for m in first["messages"]] == ["m0", "m1"]
    assert first["next_after"] == ids[1]
    second = (await api.client.get(MESSAGES, params={"after": ids[1], "limit": 2})).json()
    assert [m["message"] for m in second["messages"]] == ["m2"]
    assert second["next_after"] is None


async def test_history_is_empty_until_consumed(api: Api) -> None:
    """A recorded message is not history before the consumer persists it."""
    await api.send()
    page = (await api.client.get(MESSAGES)).json()
    assert page == {"conversation_id": "conv-1", "messages": [], "next_after": None}


@pytest.mark.parametrize("path", ["/v1/outbox/stats", "/v1/outbox/dead"])
async def test_admin_routes_refuse_a_missing_or_wrong_token(api: Api, path: str) -> None:
    """No token or a wrong one answers 401 with a Bearer challenge."""
    missing = await api.client.get(path)
    wrong = await api.client.get(path, headers={"Authorization": "Bearer guess"})
    basic = await api.client.get(path, headers={"Authorization": f"Basic {TOKEN}"})
    for response in (missing, wrong, basic):
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"error": "a valid bearer token is required"}


async def test_admin_routes_are_disabled_without_a_configured_token(
    api_without_admin: Api,
) -> None:
    """With no CHAT_OUTBOX_ADMIN_TOKEN the admin routes answer 403 and say how to enable."""
    response = await api_without_admin.client.post(
        "/v1/outbox/dead/requeue", json={"all": True}, headers={"Authorization": "Bearer "}
    )
    assert response.status_code == 403
    assert "CHAT_OUTBOX_ADMIN_TOKEN" in response.json()["error"]


async def test_stats_count_rows_by_status(api: Api) -> None:
    """The stats document counts the outbox rows with a valid token."""
    await api.send()
    await api.send(conversation="c2")
    await api.harness.relay(batch_size=1).relay_due()
    stats = (await api.client.get("/v1/outbox/stats", headers=ADMIN)).json()
    assert (stats["pending"], stats["published"], stats["dead"]) == (1, 1, 0)


async def make_dead(api: Api, conversations: list[str]) -> None:
    for conversation in conversations:
        await api.send(conversation=conversation)
    api.harness.bus.fail_with = failing(PublishFailure.fatal("too large"))
    await api.harness.relay().relay_due()
    api.harness.bus.fail_with = None


async def test_dead_list_shows_the_error_and_what_is_held(api: Api) -> None:
    """A dead message is listed with its last error and the messages held behind it."""
    await make_dead(api, ["c1"])
    await api.send(conversation="c1")
    dead = (await api.client.get("/v1/outbox/dead", headers=ADMIN)).json()["dead"]
    assert [(d["conversation_id"], d["last_error"], d["held_behind"]) for d in dead] == [
        ("c1", "too large", 1)
    ]


@pytest.mark.parametrize(
    ("selector", "requeued"),
    [({"id": 1}, {1}), ({"conversation_id": "c2"}, {2}), ({"all": True}, {1, 2, 3})],
)
async def test_requeue_moves_the_selected_dead_messages_back_to_pending(
    api: Api, selector: dict[str, object], requeued: set[int]
) -> None:
    """Requeue by id, by conversation or all returns exactly those rows to pending."""
    await make_dead(api, ["c1", "c2", "c3"])
    response = await api.client.post("/v1/outbox/dead/requeue", json=selector, headers=ADMIN)
    assert response.json() == {"requeued": len(requeued)}
    pending = {i for i in (1, 2, 3) if api.harness.status(i) is OutboxStatus.PENDING}
    assert pending == requeued


async def test_a_requeue_over_http_is_audited_at_log_level_warning(
    api: Api, warning_logs: io.StringIO
) -> None:
    """An HTTP requeue logs the same audit line as the CLI's, user "http", kept at warning."""
    await make_dead(api, ["c1", "c2"])
    body = {"conversation_id": "c2"}
    response = await api.client.post("/v1/outbox/dead/requeue", json=body, headers=ADMIN)
    assert response.json() == {"requeued": 1}
    [audit] = audit_lines(warning_logs)
    assert {key: audit[key] for key in ("action", "selector", "user", "count", "outcome")} == {
        "action": "dead_requeue",
        "selector": {"conversation_id": "c2"},
        "user": "http",
        "count": 1,
        "outcome": "ok",
    }


async def test_a_failed_requeue_over_http_is_audited_as_failed(
    harness: Harness, warning_logs: io.StringIO
) -> None:
    """A requeue whose transaction is lost answers 503 and is audited with outcome failed."""
    flaky = FlakyCommits(harness.store, failures=0)
    async for api in api_for(harness, Settings.of(admin_token=TOKEN), flaky):
        await make_dead(api, ["c1"])
        flaky.failures = 1
        body = {"all": True}
        response = await api.client.post("/v1/outbox/dead/requeue", json=body, headers=ADMIN)
        assert response.status_code == 503
    [audit] = audit_lines(warning_logs)
    assert (audit["action"], audit["outcome"], audit["count"]) == ("dead_requeue", "failed", 0)


@pytest.mark.parametrize("body", [{}, {"id": 1, "all": True}, {"all": False}, {"id": "1"}])
async def test_requeue_needs_exactly_one_selector(api: Api, body: dict[str, object]) -> None:
    """No selector, two, or a mistyped one is a 422, and nothing moves."""
    await make_dead(api, ["c1"])
    response = await api.client.post("/v1/outbox/dead/requeue", json=body, headers=ADMIN)
    assert response.status_code == 422
    assert api.harness.status(1) is OutboxStatus.DEAD


async def test_healthz_answers_while_dependencies_are_down(api: Api) -> None:
    """Liveness does not depend on the database or the bus."""
    api.database.failure = api.bus.failure = "down"
    assert (await api.client.get("/healthz")).json() == {"status": "ok"}


async def test_readyz_is_200_when_the_database_and_the_bus_answer(api: Api) -> None:
    """Both probes pass: ready."""
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "bus": "ok"}}


@pytest.mark.parametrize("down", ["database", "bus"])
async def test_readyz_is_503_naming_what_is_down(api: Api, down: str) -> None:
    """A failing probe makes readiness 503, that dependency's check `unavailable`."""
    getattr(api, down).failure = f"{down} refused the connection"
    response = await api.client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks[down] == "unavailable"
    assert [name for name, verdict in checks.items() if verdict == "ok"] == [
        name for name in ("database", "bus") if name != down
    ]


async def test_metrics_count_requests_by_route_and_refresh_the_outbox_gauges(api: Api) -> None:
    """/metrics shows two accepted POSTs under the route template and two pending rows."""
    await api.send(conversation="a")
    await api.send(conversation="b")
    text = (await api.client.get("/metrics")).text
    route = "/v1/conversations/{conversation_id}/messages"
    assert (
        f'chat_outbox_http_requests_total{{method="POST",route="{route}",status="202"}} 2.0' in text
    )
    assert 'chat_outbox_rows{status="pending"} 2.0' in text


async def test_the_openapi_document_lists_every_route(api: Api) -> None:
    """OpenAPI is served and names the message, admin and health routes."""
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert {
        "/v1/conversations/{conversation_id}/messages",
        "/v1/outbox/stats",
        "/v1/outbox/dead",
        "/v1/outbox/dead/requeue",
        "/healthz",
        "/readyz",
        "/metrics",
    } <= set(paths)
