"""The dashboard's settings, read in this one place: the admin token and the trace URL."""

from __future__ import annotations

import attrs

from chat_outbox.entrypoints.config import Settings


@attrs.frozen
class DashboardConfig:
    admin_token: str = attrs.field(repr=False)
    """Empty: the dashboard is disabled (403), like the admin routes."""
    trace_url: str
    """A URL with one {trace_id}; empty: trace ids are shown without a link."""


def dashboard_config(settings: Settings) -> DashboardConfig:
    return DashboardConfig(
        admin_token=settings.http.admin_token, trace_url=settings.http.admin_trace_url
    )
