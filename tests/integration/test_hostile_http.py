"""Issue 7, the HTTP door: hostile requests to the real server (uvicorn on loopback, on
SQLite and PostgreSQL) each get a specific 4xx JSON error and record nothing, the server
stays up, and every valid request between them is recorded verbatim."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable
from typing import NamedTuple
from urllib.parse import quote

import attrs
import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory
from chat_outbox.adapters.sql.tables import outbox_messages
from chat_outbox.domain import PublishFailure
from tests.integration.http_helpers import ADMIN, ADMIN_TOKEN, serving
from tests.integration.kafka_helpers import count_by_status, on_sqlite_and_postgresql
from tests.integration.test_http_server import container_on, deliver

pytestmark = [pytest.mark.integration, on_sqlite_and_postgresql]

MAX_MESSAGE_BYTES = 1024
MAX_BODY_BYTES = 2 * 1024 * 1024  # the default CHAT_OUTBOX_HTTP_MAX_BODY_BYTES
TEN_MB = 10 * 1024 * 1024
JSON = {"content-type": "application/json"}
VALID_TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SQL_INJECTION = "'; DROP TABLE agent_outbox_messages; --"


def path_of(conversation_id: str) -> str:
    return f"/v1/conversations/{quote(conversation_id, safe='')}/messages"


def body(**fields: object) -> bytes:
    return json.dumps({"user_id": 7, "role": "user", "message": "hostile", **fields}).encode()


@attrs.define
class Traffic:
    """The server under test, and the valid messages sent to it so far, in order."""

    client: httpx.AsyncClient
    uow: SqlUnitOfWorkFactory
    sent: list[dict[str, object]] = attrs.Factory(list)

    async def valid(self, conversation_id: str = "calm", message: str | None = None) -> None:
        """POST a valid message, which must be accepted, and remember it."""
        text = f"valid {len(self.sent)}" if message is None else message
        payload = {"user_id": 7, "conversation_id": conversation_id, "role": "user"}
        response = await self.client.post(
            path_of(conversation_id), json={"user_id": 7, "role": "user", "message": text}
        )
        assert response.status_code == 202, response.text
        self.sent.append({**payload, "message": text})


@pytest.fixture(scope="module")
async def server(migrated_engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    """One server per backend for the module: every test checks it is still serving."""
    container = container_on(
        migrated_engine, max_message_bytes=MAX_MESSAGE_BYTES, http_max_body_bytes=MAX_BODY_BYTES
    )
    async with serving(container) as client:
        yield client


@pytest.fixture
def traffic(server: httpx.AsyncClient, engine: AsyncEngine) -> Traffic:
    """The module's server over this test's emptied tables."""
    return Traffic(server, SqlUnitOfWorkFactory(engine))


async def outbox_payloads(engine: AsyncEngine) -> list[dict[str, object]]:
    async with engine.connect() as connection:
        query = select(outbox_messages.c.payload).order_by(outbox_messages.c.id)
        return [json.loads(payload) for (payload,) in await connection.execute(query)]


def assert_refused(response: httpx.Response, status: int, field: str, reason: str) -> None:
    """`status` as JSON; a 422 names `field` first, with `reason` in its message."""
    assert response.status_code == status, response.text
    error = response.json()
    if status == 422:
        assert error["error"] == "invalid request"
        first = error["fields"][0]
        assert (first["field"], reason in first["message"]) == (field, True), error
    else:
        assert reason in error["error"], error


class Hostile(NamedTuple):
    content: bytes
    status: int
    field: str
    reason: str
    path: str = path_of("calm")
    headers: dict[str, str] = JSON


def case(id: str, content: bytes, status: int, field: str, reason: str, **kw: object) -> object:
    return pytest.param(Hostile(content, status, field, reason, **kw), id=id)  # type: ignore[arg-type]


MESSAGE_CASES = [
    case("malformed-json", b'{"user_id": 7,', 422, "body", "not valid JSON: Expecting property"),
    case("user_id-string", body(user_id="7"), 422, "user_id", "valid integer"),
    case("user_id-float", body(user_id=7.0), 422, "user_id", "valid integer"),
    case("user_id-bool", body(user_id=True), 422, "user_id", "valid integer"),
    case("message-number", body(message=5), 422, "message", "valid string"),
    case("message-list", body(message=["hi"]), 422, "message", "valid string"),
    case("role-int", body(role=1), 422, "role", "valid string"),
    case("missing-message", b'{"user_id": 7, "role": "user"}', 422, "message", "Field required"),
    case("extra-field", body(admin=True), 422, "admin", "Extra inputs are not permitted"),
    case("null-message", body(message=None), 422, "message", "valid string"),
    case("null-user_id", body(user_id=None), 422, "user_id", "valid integer"),
    case("unknown-role", body(role="root"), 422, "role", "role must be one of user, assistant"),
    case("user_id-zero", body(user_id=0), 422, "user_id", "user_id must be positive, got 0"),
    case("user_id-negative", body(user_id=-5), 422, "user_id", "must be positive, got -5"),
    case("user_id-2**63", body(user_id=2**63), 422, "user_id", "user_id must fit in 64 bits"),
    case("user_id-5000-digits", b'{"user_id": ' + b"9" * 5000 + b"}", 422, "body",
         "a number has over 4300 digits"),
    case("user_id-NaN", b'{"user_id": NaN, "role": "user", "message": "x"}', 422, "body",
         "NaN is not a JSON value"),
    case("message-over-limit", body(message="é" * 513), 422, "message",
         "message is 1026 bytes, over the limit of 1024 bytes"),
    case("invalid-utf8", b'{"user_id": 7, "role": "user", "message": "\xff\xfe"}', 422, "body",
         "invalid UTF-8 byte 0xff at byte 43"),
    case("utf8-encoded-surrogate", b'{"user_id": 7, "role": "user", "message": "\xed\xa0\x80"}',
         422, "body", "invalid UTF-8 byte 0xed"),
    case("utf16-body", body().decode().encode("utf-16"), 422, "body", "invalid UTF-8 byte 0xff"),
    case("lone-surrogate-escape", b'{"user_id": 7, "role": "user", "message": "a\\ud800"}', 422,
         "message", "lone surrogate at index 1"),
    case("lone-surrogate-role", b'{"user_id": 7, "role": "\\udfff", "message": "x"}', 422,
         "role", "role must be one of"),
    case("lone-surrogate-key", b'{"user_id": 7, "role": "user", "message": "x", "\\ud800": 1}',
         422, "body", "unicode string"),
    case("nul-in-message", b'{"user_id": 7, "role": "user", "message": "a\\u0000b"}', 422,
         "message", "NUL character at index 1"),
    case("escape-in-message", b'{"user_id": 7, "role": "user", "message": "a\\u001b[31m"}', 422,
         "message", "control character U+001B at index 1"),
    case("bell-in-message", body(message="ding\x07"), 422, "message",
         "control character U+0007 at index 4"),
    case("nul-in-conversation_id", body(), 422, "conversation_id", "'\\x00' at index 1",
         path=path_of("a\x00b")),
    case("newline-in-conversation_id", body(), 422, "conversation_id", "'\\n' at index 4",
         path=path_of("conv\nInjected: header")),
    case("escape-in-conversation_id", body(), 422, "conversation_id", "'\\x1b' at index 0",
         path=path_of("\x1b[31mred")),
    case("invalid-utf8-in-conversation_id", body(), 422, "conversation_id",
         "not valid UTF-8: byte 0xff at byte 1", path="/v1/conversations/a%FFb/messages"),
    case("surrogate-bytes-in-conversation_id", body(), 422, "conversation_id",
         "not valid UTF-8: byte 0xed", path="/v1/conversations/a%ED%A0%80/messages"),
    case("conversation_id-129-chars", body(), 422, "conversation_id", "at most 128 characters",
         path=path_of("c" * 129)),
    # The server decodes %2F before routing, so a conversation id with a slash has no route.
    case("slash-in-conversation_id", body(), 404, "error", "no route /v1/conversations/a/b/",
         path="/v1/conversations/a%2Fb/messages"),
    case("text-plain", body(), 415, "error", "content-type must be application/json, got",
         headers={"content-type": "text/plain"}),
    case("form-urlencoded", body(), 415, "error", "got 'application/x-www-form-urlencoded'",
         headers={"content-type": "application/x-www-form-urlencoded"}),
    case("no-content-type", body(), 415, "error", "must be application/json, got none",
         headers={}),
    case("empty-body", b"", 422, "body", "Field required"),
    case("json-array", b"[1, 2]", 422, "body", "valid dictionary or object"),
    case("json-string", b'"hi"', 422, "body", "valid dictionary or object"),
    case("duplicate-key", b'{"user_id": 7, "role": "user", "message": "a", "message": "b"}',
         422, "body", "duplicate key 'message'"),
    case("nested-too-deeply", b"[" * 100_000 + b"]" * 100_000, 422, "body", "nested too deeply"),
    case("byte-order-mark", b"\xef\xbb\xbf" + body(), 422, "body", "Unexpected UTF-8 BOM"),
]  # fmt: skip


@pytest.mark.parametrize("hostile", MESSAGE_CASES)
async def test_a_hostile_message_is_a_specific_4xx_between_two_recorded_valid_ones(
    traffic: Traffic, engine: AsyncEngine, hostile: Hostile
) -> None:
    """A hostile POST gets its own 4xx JSON error naming the field, records nothing, and
    the valid POSTs just before and after it are both recorded."""
    await traffic.valid()
    response = await traffic.client.post(
        hostile.path, content=hostile.content, headers=hostile.headers
    )
    assert_refused(response, hostile.status, hostile.field, hostile.reason)
    await traffic.valid()
    assert await outbox_payloads(engine) == traffic.sent


async def test_every_hostile_message_fired_at_once_leaves_exactly_the_valid_ones(
    traffic: Traffic, engine: AsyncEngine
) -> None:
    """The whole table sent concurrently, interleaved with valid POSTs, gets the same
    errors, and the outbox then holds exactly the valid messages."""
    hostiles: list[Hostile] = [param.values[0] for param in MESSAGE_CASES]  # type: ignore[attr-defined]

    async def one(hostile: Hostile) -> None:
        response = await traffic.client.post(
            hostile.path, content=hostile.content, headers=hostile.headers
        )
        assert_refused(response, hostile.status, hostile.field, hostile.reason)

    valid = [traffic.valid(f"calm-{n}", f"valid {n}") for n in range(len(hostiles))]
    await asyncio.gather(*valid, *(one(hostile) for hostile in hostiles))
    key = json.dumps
    assert sorted(map(key, await outbox_payloads(engine))) == sorted(map(key, traffic.sent))
    assert len(traffic.sent) == len(hostiles)


LEGAL_BUT_STRANGE = [
    pytest.param(SQL_INJECTION, SQL_INJECTION, id="sql-injection"),
    pytest.param("%", "100% of _all_ rows", id="like-wildcard-percent"),
    pytest.param("_", "_", id="like-wildcard-underscore"),
    pytest.param("a_c", "only a_c, never abc", id="underscore-not-a-wildcard"),
    pytest.param("back\\slash", "C:\\path\\ and \\x00 literally", id="backslashes"),
    pytest.param('quote"s?#&=', "Robert'); DROP TABLE chat_history_messages;--", id="quotes"),
    pytest.param("c" * 128, "exactly 128 characters", id="conversation_id-128-chars"),
    pytest.param("😀" * 128, "128 astral characters", id="conversation_id-128-emoji"),
    pytest.param("rés\ufffd", "literal U+FFFD is valid", id="replacement-character"),
    pytest.param("layout", "tab\t newline\n carriage return\r", id="text-layout-in-message"),
    pytest.param("big", "é" * 512, id="message-exactly-at-limit"),
]


@pytest.mark.parametrize(("conversation_id", "message"), LEGAL_BUT_STRANGE)
async def test_legal_but_strange_values_are_stored_and_read_back_verbatim(
    traffic: Traffic,
    engine: AsyncEngine,
    conversation_id: str,
    message: str,
) -> None:
    """SQL metacharacters, LIKE wildcards, backslashes, 128-character ids and control
    characters in a message are data: recorded, persisted and read back exactly, and only
    under their own conversation."""
    await traffic.valid("abc", "the neighbour")
    await traffic.valid(conversation_id, message)
    await deliver(traffic.uow, InMemoryBus())

    history = await traffic.client.get(path_of(conversation_id))
    assert history.status_code == 200, history.text
    assert history.json()["conversation_id"] == conversation_id
    assert [m["message"] for m in history.json()["messages"]] == [message]
    assert await outbox_payloads(engine) == traffic.sent
    assert await count_by_status(engine) == {"consumed": 2}


async def raw_response(port: int, head: bytes, body_parts: Iterable[bytes]) -> bytes:
    """Send `head` and `body_parts` over a plain socket, then the first response's bytes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.read(65536), 5)
    finally:
        writer.close()


def assert_413(response: bytes) -> None:
    status_line, _, rest = response.partition(b"\r\n")
    assert status_line.startswith(b"HTTP/1.1 413"), response
    error = json.loads(rest.partition(b"\r\n\r\n")[2])
    assert error == {"error": f"request body is over the limit of {MAX_BODY_BYTES} bytes"}


def request_head(*headers: bytes) -> bytes:
    lines = [b"POST " + path_of("calm").encode() + b" HTTP/1.1", b"Host: test", *JSON_LINE]
    return b"\r\n".join([*lines, *headers, b"", b""])


JSON_LINE = [b"Content-Type: application/json"]


async def test_a_declared_10_mb_body_is_413_before_any_of_it_is_sent(
    traffic: Traffic, engine: AsyncEngine
) -> None:
    """A Content-Length of 10 MB is refused from the header alone: the 413 arrives while
    the client has sent no byte of the body."""
    await traffic.valid()
    head = request_head(b"Content-Length: %d" % TEN_MB)
    assert_413(await raw_response(traffic.client.base_url.port or 0, head, []))
    await traffic.valid()
    assert await outbox_payloads(engine) == traffic.sent


async def test_a_chunked_10_mb_body_is_413_once_it_passes_the_limit(
    traffic: Traffic, engine: AsyncEngine
) -> None:
    """A chunked body with no Content-Length gets its 413 as soon as it passes the limit:
    the client stops a chunk past it, far short of 10 MB and with no final chunk."""
    await traffic.valid()
    chunk = b"x" * 65536
    chunks = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY_BYTES // 65536 + 1))
    head = request_head(b"Transfer-Encoding: chunked")
    assert_413(await raw_response(traffic.client.base_url.port or 0, head, chunks))
    await traffic.valid()
    assert await outbox_payloads(engine) == traffic.sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_client_sending_a_whole_10_mb_body_gets_413(
    traffic: Traffic, engine: AsyncEngine, chunked: bool
) -> None:
    """An ordinary client that pushes all 10 MB, with or without Content-Length, reads a
    413 JSON error, and the server goes on."""

    async def in_chunks() -> AsyncIterator[bytes]:
        for _ in range(TEN_MB // 65536):
            yield b"x" * 65536

    await traffic.valid()
    content = in_chunks() if chunked else b"x" * TEN_MB
    response = await traffic.client.post(path_of("calm"), content=content, headers=JSON)
    assert_refused(response, 413, "error", f"over the limit of {MAX_BODY_BYTES} bytes")
    await traffic.valid()
    assert await outbox_payloads(engine) == traffic.sent


@pytest.mark.parametrize(
    "traceparent",
    ["junk", "00-" + "0" * 32 + "-00f067aa0ba902b7-01", "ff-" + VALID_TRACEPARENT[3:],
     VALID_TRACEPARENT + "\x7f", "x" * 4000],
    ids=["junk", "zero-trace-id", "version-ff", "trailing-del", "4000-chars"],
)  # fmt: skip
async def test_an_invalid_traceparent_is_ignored_with_a_log_line(
    traffic: Traffic, engine: AsyncEngine, traceparent: str
) -> None:
    """W3C says an invalid traceparent is ignored: the message is recorded without one,
    and an info line says it was ignored, quoting at most 64 characters of it."""
    with capture_logs() as logs:
        response = await traffic.client.post(
            path_of("calm"), content=body(), headers={**JSON, "traceparent": traceparent}
        )
    assert response.status_code == 202, response.text
    ignored = [line for line in logs if line["event"] == "traceparent_ignored"]
    assert [line["traceparent"] for line in ignored] == [repr(traceparent[:64])]
    async with engine.connect() as connection:
        stored = await connection.scalar(select(outbox_messages.c.traceparent))
    assert stored is None


HISTORY_CASES = [
    pytest.param("/v1/conversations/a%00b/messages", "conversation_id", "'\\x00' at index 1",
                 id="nul-in-conversation_id"),
    pytest.param("/v1/conversations/a%FFb/messages", "conversation_id", "not valid UTF-8",
                 id="invalid-utf8-in-conversation_id"),
    pytest.param(path_of("c" * 129), "conversation_id", "at most 128 characters",
                 id="conversation_id-129-chars"),
    pytest.param(path_of("calm") + f"?after={2**63}", "after", "less than or equal to",
                 id="after-2**63"),
    pytest.param(path_of("calm") + "?after=-1", "after", "greater than or equal to 0",
                 id="after-negative"),
    pytest.param(path_of("calm") + "?limit=1e3", "limit", "valid integer", id="limit-float"),
    pytest.param(path_of("calm") + "?limit=0", "limit", "greater than or equal to 1",
                 id="limit-zero"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "field", "reason"), HISTORY_CASES)
async def test_a_hostile_history_read_is_a_422_naming_the_field(
    traffic: Traffic, path: str, field: str, reason: str
) -> None:
    """Reading history with a bad conversation id, `after` or `limit` is a 422 naming it
    (on PostgreSQL a NUL or a 64-bit overflow used to reach the driver: a 500)."""
    assert_refused(await traffic.client.get(path), 422, field, reason)
    assert (await traffic.client.get(path_of("calm"))).status_code == 200


TOKEN = ADMIN_TOKEN.encode()
BAD_TOKENS = [
    pytest.param(None, id="absent"),
    pytest.param(b"", id="empty"),
    pytest.param(b"Bearer", id="scheme-only"),
    pytest.param(b"Basic " + TOKEN, id="basic-scheme"),
    pytest.param(TOKEN, id="no-scheme"),
    pytest.param(b"Bearer " + TOKEN + b"x", id="token-plus-one"),
    pytest.param(b"Bearer " + TOKEN[:-1], id="token-minus-one"),
    pytest.param(b"Bearer " + TOKEN.upper(), id="token-upper-case"),
    pytest.param(b"Bearer t\xf6ken", id="latin-1-token"),
    pytest.param(b"Bearer " + b"x" * 8000, id="8000-char-token"),
    pytest.param(b"Bearer " + TOKEN + b", Bearer x", id="two-tokens"),
]


@pytest.mark.parametrize("authorization", BAD_TOKENS)
async def test_a_requeue_with_an_absent_malformed_or_wrong_token_is_401_and_moves_nothing(
    traffic: Traffic, engine: AsyncEngine, authorization: bytes | None
) -> None:
    """A requeue whose token is not exactly the configured one answers 401 with a Bearer
    challenge, and the dead message stays dead (the unit tests cover the GET routes)."""
    await dead_message(traffic)
    headers = [(b"content-type", b"application/json")]
    if authorization is not None:
        headers.append((b"authorization", authorization))
    response = await traffic.client.post(
        "/v1/outbox/dead/requeue", content=b'{"all": true}', headers=headers
    )
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "a valid bearer token is required"}
    assert await count_by_status(engine) == {"dead": 1}


async def dead_message(traffic: Traffic) -> None:
    """One message in conversation `calm`, dead after a fatal publish failure."""
    await traffic.valid()
    failing = InMemoryBus(fail_with=lambda record: PublishFailure.fatal("too large"))
    await deliver(traffic.uow, failing)


REQUEUE_CASES = [
    case("id-string", b'{"id": "1"}', 422, "id", "valid integer"),
    case("id-float", b'{"id": 1.0}', 422, "id", "valid integer"),
    case("id-zero", b'{"id": 0}', 422, "id", "greater than or equal to 1"),
    case("id-negative", b'{"id": -1}', 422, "id", "greater than or equal to 1"),
    case("id-2**63", b'{"id": %d}' % 2**63, 422, "id", "less than or equal to 9223372036854775807"),
    case("all-string", b'{"all": "true"}', 422, "all", "valid boolean"),
    case("all-false", b'{"all": false}', 422, "body", "give exactly one of id, conversation_id"),
    case("two-selectors", b'{"id": 1, "all": true}', 422, "body", "exactly one of"),
    case("empty-object", b"{}", 422, "body", "exactly one of"),
    case("extra-field", b'{"all": true, "force": true}', 422, "force", "Extra inputs"),
    case("null-id", b'{"id": null}', 422, "body", "exactly one of"),
    case("nul-in-conversation_id", b'{"conversation_id": "a\\u0000b"}', 422, "conversation_id",
         "'\\x00' at index 1"),
    case("surrogate-in-conversation_id", b'{"conversation_id": "a\\ud800"}', 422,
         "conversation_id", "surrogate character"),
    case("conversation_id-129-chars", b'{"conversation_id": "%s"}' % (b"c" * 129), 422,
         "conversation_id", "1-128 characters, got 129"),
    case("duplicate-key", b'{"all": false, "all": true}', 422, "body", "duplicate key 'all'"),
    case("json-array", b'[{"all": true}]', 422, "body", "valid dictionary or object"),
    case("malformed-json", b'{"all": tru', 422, "body", "not valid JSON: Expecting value"),
    case("invalid-utf8", b'{"conversation_id": "\xc3"}', 422, "body", "invalid UTF-8 byte 0xc3"),
    case("text-plain", b'{"all": true}', 415, "error", "must be application/json",
         headers={"content-type": "text/plain"}),
]  # fmt: skip


@pytest.mark.parametrize("hostile", REQUEUE_CASES)
async def test_a_hostile_requeue_body_is_a_specific_4xx_and_moves_nothing(
    traffic: Traffic, engine: AsyncEngine, hostile: Hostile
) -> None:
    """An authorised requeue with a hostile body gets its own 4xx naming the field, and
    the dead message stays dead."""
    await dead_message(traffic)
    response = await traffic.client.post(
        "/v1/outbox/dead/requeue", content=hostile.content, headers={**hostile.headers, **ADMIN}
    )
    assert_refused(response, hostile.status, hostile.field, hostile.reason)
    assert await count_by_status(engine) == {"dead": 1}


async def test_a_requeue_naming_an_sql_injection_conversation_matches_nothing(
    traffic: Traffic, engine: AsyncEngine
) -> None:
    """A conversation id full of SQL is compared as data: nothing is requeued, the table
    is still there, and a real requeue afterwards works."""
    await dead_message(traffic)
    injected = await traffic.client.post(
        "/v1/outbox/dead/requeue", json={"conversation_id": SQL_INJECTION}, headers=ADMIN
    )
    assert injected.json() == {"requeued": 0}
    assert await count_by_status(engine) == {"dead": 1}
    real = await traffic.client.post(
        "/v1/outbox/dead/requeue", json={"conversation_id": "calm"}, headers=ADMIN
    )
    assert real.json() == {"requeued": 1}


@pytest.mark.parametrize(
    ("query", "reason"),
    [("a%00b", "'\\x00' at index 1"), ("c" * 129, "1-128 characters, got 129"), ("", "got 0")],
    ids=["nul", "129-chars", "empty"],
)
async def test_a_hostile_dead_list_filter_is_a_422_naming_the_conversation_id(
    traffic: Traffic, query: str, reason: str
) -> None:
    """Listing dead messages of a conversation id the domain forbids is a 422 naming it
    (a NUL used to reach PostgreSQL: a 500)."""
    response = await traffic.client.get(f"/v1/outbox/dead?conversation_id={query}", headers=ADMIN)
    assert_refused(response, 422, "conversation_id", reason)
