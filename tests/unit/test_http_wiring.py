"""The HTTP routes receive their dependencies from the app's container, through wiring."""

from __future__ import annotations

import httpx
import pytest
from dependency_injector import providers

from chat_outbox.entrypoints.config import Settings
from chat_outbox.entrypoints.http import create_app
from tests.unit.test_http_api import FakeProbe
from tests.unit.test_http_limits import container_on_fakes

pytestmark = pytest.mark.unit


async def test_a_provider_overridden_after_the_app_is_made_serves_the_next_request() -> None:
    """Each request asks the container, so nothing is resolved once and kept by a route."""
    container = container_on_fakes(Settings())
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        ready = await client.get("/readyz")
        container.bus_probe.override(providers.Object(FakeProbe("broker down")))
        unready = await client.get("/readyz")
    assert ready.status_code == 200
    assert (unready.status_code, unready.json()["checks"]["bus"]) == (503, "unavailable")


async def test_the_admin_guard_reads_the_token_of_the_apps_settings() -> None:
    """The admin route class checks the token before any dependency runs: it too asks the
    container the app was made with, not the environment."""
    container = container_on_fakes(Settings.of(admin_token="wired-token"))
    transport = httpx.ASGITransport(app=create_app(container))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        refused = await client.get("/v1/outbox/stats", headers={"Authorization": "Bearer x"})
        allowed = await client.get(
            "/v1/outbox/stats", headers={"Authorization": "Bearer wired-token"}
        )
    assert (refused.status_code, allowed.status_code) == (401, 200)
