"""The dashboard over HTTP (ASGI) on SQLite: login, sessions, CSRF, escaping of hostile
chat text, and hostile query parameters answered with 4xx pages, never 500."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from dependency_injector import providers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncEngine
from structlog.testing import capture_logs

from chat_outbox.adapters.memory import InMemoryBus
from chat_outbox.adapters.sql import SqlUnitOfWorkFactory, create_engine
from chat_outbox.entrypoints.http import create_app
from chat_outbox.entrypoints.http.dashboard import session
from tests.integration.dashboard_helpers import (
    ADMIN_TOKEN,
    HOSTILE,
    NONCE,
    TRACEPARENT,
    asgi_client,
    consume_all,
    csrf_of,
    dashboard_container,
    fail_once,
    kill,
    log_in,
    post_message,
    relay_all,
)
from tests.integration.kafka_helpers import count_by_status

pytestmark = [
    pytest.mark.integration,
    pytest.mark.parametrize("migrated_engine", ["sqlite"], indirect=True),
]
PAGES = ("/admin", "/admin/dead", "/admin/journey", "/admin/conversation")
STEP = re.compile(r'<span class="step">([^<]*)</span>')
ERROR = re.compile(r'<div class="error">([^<]*)</div>')


@pytest.fixture
async def client(engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(dashboard_container(engine)) as client:
        yield client


@pytest.fixture
async def admin(client: httpx.AsyncClient) -> httpx.AsyncClient:
    assert (await log_in(client)).status_code == 303
    return client


@pytest.mark.parametrize(
    "path", [*PAGES, "/admin/login", "/admin/rows", "/admin/static/dashboard.js"]
)
async def test_pages_answer_403_saying_so_when_no_admin_token_is_configured(
    engine: AsyncEngine, path: str
) -> None:
    async with asgi_client(dashboard_container(engine, admin_token="")) as client:
        response = await client.get(path)
    assert response.status_code == 403
    assert "set CHAT_OUTBOX_ADMIN_TOKEN" in response.text


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_without_a_session_sends_the_browser_to_the_login_form(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path, params={"q": "1"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/admin/login?next=%2Fadmin")


async def test_an_action_without_a_session_gets_a_401_page(client: httpx.AsyncClient) -> None:
    response = await client.post("/admin/dead/requeue", data={"all": "1", "csrf": "0" * 64})
    assert response.status_code == 401
    assert "log in first" in response.text


async def test_logging_out_needs_the_csrf_token_and_then_ends_the_session(
    admin: httpx.AsyncClient,
) -> None:
    refused = await admin.post("/admin/logout", data={})
    logged_out = await admin.post("/admin/logout", data={"csrf": await csrf_of(admin)})
    assert refused.status_code == 403
    assert logged_out.status_code == 303
    assert (await admin.get("/admin")).status_code == 303


async def test_a_session_cookie_copied_before_logging_out_no_longer_works(
    admin: httpx.AsyncClient,
) -> None:
    copied = admin.cookies[session.SESSION_COOKIE]
    logout = await admin.post("/admin/logout", data={"csrf": await csrf_of(admin)})
    assert logout.status_code == 303
    admin.cookies.set(session.SESSION_COOKIE, copied, path="/admin")
    assert (await admin.get("/admin")).status_code == 303
    assert (await admin.get("/admin/rows", params={"ids": "1"})).status_code == 401


async def test_a_failed_login_keeps_where_it_was_going(client: httpx.AsyncClient) -> None:
    form = await client.get("/admin/login", params={"next": "/admin/dead?limit=5"})
    nonce = NONCE.search(form.text)
    assert nonce
    failed = await client.post(
        "/admin/login", data={"nonce": nonce[1], "token": "wrong", "next": "/admin/dead?limit=5"}
    )
    assert failed.status_code == 401
    assert 'name="next" value="/admin/dead?limit=5"' in failed.text


async def test_a_wrong_token_gets_a_401_page_that_quotes_nothing(
    client: httpx.AsyncClient,
) -> None:
    response = await log_in(client, "guess-" + ADMIN_TOKEN[:5])
    assert response.status_code == 401
    assert "was not accepted" in response.text
    assert "guess-" not in response.text
    assert session.SESSION_COOKIE not in response.headers.get("set-cookie", "")


async def test_login_sets_an_httponly_samesite_strict_cookie_without_the_token(
    client: httpx.AsyncClient,
) -> None:
    response = await log_in(client)
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith(session.SESSION_COOKIE)
    )
    assert response.status_code == 303
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain HTTP on loopback
    assert ADMIN_TOKEN not in cookie
    assert (await client.get("/admin")).status_code == 200


async def test_cookies_are_secure_over_https_and_beyond_loopback(engine: AsyncEngine) -> None:
    async with asgi_client(dashboard_container(engine)) as client:
        client.base_url = httpx.URL("http://admin.internal.example")
        plain = await client.get("/admin/login")
        client.base_url = httpx.URL("https://admin.internal.example")
        response = await log_in(client)
    assert "Secure" in plain.headers["set-cookie"]
    assert response.status_code == 303
    assert "Secure" in response.headers["set-cookie"]


async def test_cookies_are_secure_for_a_remote_peer_even_with_a_loopback_host(
    engine: AsyncEngine,
) -> None:
    """What a local reverse proxy forwarding for a remote browser looks like to the app."""
    app = create_app(dashboard_container(engine))
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/admin/login")
    assert "Secure" in response.headers["set-cookie"]


async def test_rotating_the_admin_token_ends_every_session(engine: AsyncEngine) -> None:
    async with asgi_client(dashboard_container(engine)) as client:
        await log_in(client)
        cookies = client.cookies
    async with asgi_client(dashboard_container(engine, admin_token="rotated-token")) as client:
        client.cookies = cookies
        response = await client.get("/admin")
    assert response.status_code == 303


async def test_logins_are_refused_for_a_while_after_ten_failures(
    client: httpx.AsyncClient,
) -> None:
    for _ in range(10):
        assert (await log_in(client, "wrong")).status_code == 401
    assert (await log_in(client)).status_code == 429


async def dead_row(client: httpx.AsyncClient, uow: SqlUnitOfWorkFactory, text: str) -> int:
    outbox_id = await post_message(client, "conv-dead", text, TRACEPARENT)
    await kill(uow)
    await post_message(client, "conv-dead", "held behind it")
    return outbox_id


@pytest.mark.parametrize("csrf", [None, "0" * 64])
async def test_a_requeue_without_the_sessions_csrf_token_is_refused(
    admin: httpx.AsyncClient, uow: SqlUnitOfWorkFactory, engine: AsyncEngine, csrf: str | None
) -> None:
    outbox_id = await dead_row(admin, uow, "hi")
    form = {"id": str(outbox_id), **({"csrf": csrf} if csrf else {})}
    response = await admin.post("/admin/dead/requeue", data=form)
    assert response.status_code == 403
    assert await count_by_status(engine) == {"dead": 1, "pending": 1}


async def test_a_confirmed_requeue_moves_the_row_is_audited_and_is_watched(
    admin: httpx.AsyncClient, uow: SqlUnitOfWorkFactory, engine: AsyncEngine
) -> None:
    outbox_id = await dead_row(admin, uow, "hi")
    confirm = await admin.get("/admin/dead/requeue", params={"conversation": "conv-dead"})
    assert f"<td>{outbox_id}</td>" in confirm.text
    with capture_logs() as logs:
        response = await admin.post(
            "/admin/dead/requeue",
            data={"conversation": "conv-dead", "csrf": await csrf_of(admin)},
        )
    assert response.status_code == 303
    assert await count_by_status(engine) == {"pending": 2}
    [audit] = [line for line in logs if line["event"] == "audit"]
    assert (audit["action"], audit["user"], audit["count"]) == ("dead_requeue", "dashboard", 1)
    assert audit["selector"] == {"conversation_id": "conv-dead"}
    page = await admin.get(response.headers["location"])
    assert "Requeued 1 row" in page.text
    assert f'id="watched-{outbox_id}">pending<' in page.text


@pytest.mark.parametrize("text", HOSTILE)
async def test_hostile_chat_text_is_escaped_on_every_page(
    admin: httpx.AsyncClient, uow: SqlUnitOfWorkFactory, text: str
) -> None:
    dead = await dead_row(admin, uow, text)
    delivered = await post_message(admin, "conv-ok", text)
    bus = InMemoryBus()
    await relay_all(uow, bus)
    await consume_all(uow, bus)
    pages = [
        await admin.get("/admin/dead"),
        await admin.get("/admin/journey", params={"id": dead}),
        await admin.get("/admin/journey", params={"id": delivered}),
        await admin.get("/admin/conversation", params={"id": "conv-ok"}),
        await admin.get("/admin/conversation", params={"id": "conv-dead"}),
    ]
    for page in pages:
        assert page.status_code == 200
        assert text not in page.text
        assert "&lt;" in page.text or "&#34;" in page.text or "&#39;" in page.text


async def test_the_journey_shows_the_failures_and_links_the_trace(
    admin: httpx.AsyncClient, uow: SqlUnitOfWorkFactory
) -> None:
    outbox_id = await dead_row(admin, uow, "hi")
    page = (await admin.get("/admin/journey", params={"id": outbox_id})).text
    assert "MessageSizeTooLarge: 2 MiB" in page
    assert 'id="journey-status">dead<' in page
    assert 'href="https://traces.example/trace/4bf92f3577b34da6a3ce929d0e0e4736"' in page


async def test_the_journey_lists_each_failed_attempts_own_error_escaped(
    admin: httpx.AsyncClient, uow: SqlUnitOfWorkFactory
) -> None:
    """Two failed attempts, the first with a hostile error text, then a publish: the
    timeline shows both attempts in order, each with its error as text."""
    outbox_id = await post_message(admin, "conv-retried", "hi")
    for reason in (HOSTILE[0], "NotLeaderForPartitionError"):
        await fail_once(uow, reason)
    await relay_all(uow, InMemoryBus())
    page = (await admin.get("/admin/journey", params={"id": outbox_id})).text
    assert STEP.findall(page) == ["recorded", "failed", "failed", "published"]
    assert ERROR.findall(page) == [str(escape(HOSTILE[0])), "NotLeaderForPartitionError"]
    assert HOSTILE[0] not in page
    assert "attempt 1 of 20" in page
    assert "attempt 2 of 20" in page


async def test_the_overview_counts_match_the_stats_route(
    admin: httpx.AsyncClient, uow: SqlUnitOfWorkFactory
) -> None:
    await dead_row(admin, uow, "hi")
    await post_message(admin, "conv-ok", "fine")
    page = (await admin.get("/admin")).text
    stats = (
        await admin.get("/v1/outbox/stats", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    ).json()
    for status in ("pending", "published", "consumed", "dead"):
        assert f'id="count-{status}">{stats[status]}<' in page
    assert f'id="held-behind-dead">{stats["held_behind_dead"]}<' in page
    assert page.count('<svg class="chart"') == 3


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/admin/journey", {"id": "99999999999999999999"}),
        ("/admin/journey", {"id": "-1"}),
        ("/admin/journey", {"id": "1e3"}),
        ("/admin/journey", {"event_id": "x" * 5000}),
        ("/admin/journey", {"by": "sql", "q": "1"}),
        ("/admin/conversation", {"id": "a\x00b"}),
        ("/admin/conversation", {"id": "c" * 129}),
        ("/admin/dead", {"older_than": "yesterday"}),
        ("/admin/dead", {"newer_than": "99999999999999w"}),
        ("/admin/dead", {"error": "e" * 201}),
        ("/admin/dead", {"limit": "0"}),
        ("/admin/dead", {"watch": "1,x"}),
        ("/admin/dead/requeue", {"id": "1", "all": "1"}),
        ("/admin/dead/requeue", {}),
        ("/admin/rows", {"ids": ",".join(["1"] * 51)}),
        ("/admin/dead", {"limit": "9" * 5000}),
    ],
)
async def test_hostile_query_parameters_get_a_400_page_with_a_reason(
    admin: httpx.AsyncClient, path: str, params: dict[str, str]
) -> None:
    response = await admin.get(path, params=params)
    assert response.status_code == 400
    assert 'id="reason"' in response.text
    assert response.headers["content-type"].startswith("text/html")


async def test_a_missing_outbox_id_gets_a_404_page(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/admin/journey", params={"id": "424242"})
    assert response.status_code == 404
    assert 'id="not-found"' in response.text


async def test_any_search_text_gets_200_or_400_and_is_never_reflected_unescaped(
    admin: httpx.AsyncClient,
) -> None:
    loop = asyncio.get_running_loop()
    probe = '<x-probe a="'

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        field=st.sampled_from(
            ["conversation", "error", "older_than", "newer_than", "limit", "watch", "requeued"]
        ),
        text=st.text(max_size=220),
    )
    def check(field: str, text: str) -> None:
        request = admin.get("/admin/dead", params={field: probe + text})
        response = asyncio.run_coroutine_threadsafe(request, loop).result(30)
        assert response.status_code in (200, 400), response.text
        assert probe not in response.text

    # hypothesis drives its examples from a thread; each request runs on this loop.
    await asyncio.to_thread(check)


async def test_every_page_forbids_inline_script_and_framing(admin: httpx.AsyncClient) -> None:
    for path in PAGES:
        policy = (await admin.get(path)).headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy


async def test_a_requeued_count_too_long_to_be_one_is_ignored(admin: httpx.AsyncClient) -> None:
    response = await admin.get("/admin/dead", params={"requeued": "9" * 5000})
    assert response.status_code == 200
    assert 'id="requeued"' not in response.text


async def test_a_database_that_is_down_gets_a_503_page(engine: AsyncEngine) -> None:
    container = dashboard_container(engine)
    down = create_engine("postgresql+asyncpg://chat@127.0.0.1:1/chat")
    container.core.engine.override(providers.Object(down))
    async with asgi_client(container) as client:
        await log_in(client)
        response = await client.get("/admin/dead")
    await down.dispose()
    assert response.status_code == 503
    assert "database is unavailable" in response.text
