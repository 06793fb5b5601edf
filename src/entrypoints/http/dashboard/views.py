"""The dashboard's pages: overview, dead letters, a message's journey, a conversation."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from chat_outbox.application.operate import insights, journeys
from chat_outbox.application.operate.insights import ACTIVITY_WINDOW, DeadQuery
from chat_outbox.domain import OutboxStatus
from chat_outbox.entrypoints.http.dashboard import inputs
from chat_outbox.entrypoints.http.dashboard.charts import bar_chart
from chat_outbox.entrypoints.http.dashboard.deps import Config, Insights, SignedIn, html_errors
from chat_outbox.entrypoints.http.dashboard.inputs import PageError
from chat_outbox.entrypoints.http.dashboard.render import SECURITY_HEADERS, page, trace_link
from chat_outbox.entrypoints.http.deps import Now, Uow

router = APIRouter(prefix="/admin", include_in_schema=False, dependencies=[Depends(html_errors)])
STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
DEAD_PAGE_ROWS = 200
CONVERSATION_ROWS = 500


@router.get("")
async def overview(
    request: Request, _: SignedIn, uow: Uow, clock: Now, reads: Insights
) -> HTMLResponse:
    figures = await insights.overview(uow, reads, clock)
    minutes = int(ACTIVITY_WINDOW.total_seconds() // 60)
    activity = figures.activity
    charts = [
        bar_chart("Recorded per minute", activity.recorded, minutes),
        bar_chart("Published per minute", activity.published, minutes),
        bar_chart("Consumed per minute", activity.consumed, minutes),
    ]
    return page(
        request,
        "overview.html",
        o=figures,
        statuses=list(OutboxStatus),
        charts=charts,
        oldest_pending=_age(figures.now, figures.stats.oldest_pending_at),
        oldest_published=_age(figures.now, figures.stats.oldest_published_at),
    )


def _age(now: datetime, moment: datetime | None) -> timedelta | None:
    return None if moment is None else now - moment


@router.get("/dead")
async def dead(
    request: Request, _: SignedIn, uow: Uow, clock: Now, reads: Insights
) -> HTMLResponse:
    params = request.query_params
    conversation = params.get("conversation", "")
    older = inputs.age(params.get("older_than", ""), "older than")
    newer = inputs.age(params.get("newer_than", ""), "newer than")
    now = clock.now()
    query = DeadQuery(
        conversation_id=inputs.conversation_id(conversation) if conversation else None,
        error_contains=inputs.search_text(params.get("error", ""), "error text"),
        died_before=None if older is None else now - older,
        died_since=None if newer is None else now - newer,
    )
    shown = inputs.limit(params.get("limit"), DEAD_PAGE_ROWS, 1000)
    letters = await insights.dead_letters(uow, reads, query, shown)
    watched = inputs.id_list(params.get("watch", ""))
    requeued = params.get("requeued", "")
    return page(
        request,
        "dead.html",
        letters=letters,
        shown=shown,
        now=now,
        filters={
            "conversation": conversation,
            "error": params.get("error", ""),
            "older_than": params.get("older_than", ""),
            "newer_than": params.get("newer_than", ""),
        },
        requeued=int(requeued)
        if requeued.isascii() and requeued.isdigit() and len(requeued) <= 19
        else None,
        watched=await reads.messages(watched),
        watch_ids=",".join(str(i) for i in watched),
    )


@router.get("/rows")
async def rows(request: Request, _: SignedIn, reads: Insights) -> HTMLResponse:
    """The watched rows' statuses, which the dead page reloads while they move."""
    messages = await reads.messages(inputs.id_list(request.query_params.get("ids", "")))
    return page(request, "rows.html", watched=messages)


@router.get("/journey")
async def journey(
    request: Request, _: SignedIn, uow: Uow, clock: Now, reads: Insights, settings: Config
) -> Response:
    params = request.query_params
    by, text = params.get("by", ""), params.get("q", "").strip()
    if by and text:  # the search form: one box, and what it holds
        if by == "conversation":
            inputs.conversation_id(text)
            target = "/admin/conversation?" + urlencode({"id": text})
            return RedirectResponse(target, 303, headers=SECURITY_HEADERS)
        if by not in ("id", "event_id"):
            raise PageError(400, "search by id, event_id or conversation")
        params = {by: text}  # type: ignore[assignment]
    if params.get("id"):
        found = await journeys.journey(uow, reads, outbox_id=inputs.outbox_id(params["id"]))
    elif params.get("event_id"):
        found = await journeys.journey(uow, reads, event_id=inputs.event_id(params["event_id"]))
    else:
        return page(request, "journey.html", journey=None, searched=False, trace=None)
    if found is None:
        return page(request, "journey.html", status=404, journey=None, searched=True, trace=None)
    return page(
        request,
        "journey.html",
        journey=found,
        searched=True,
        now=clock.now(),
        trace=trace_link(settings.trace_url, found.message.traceparent),
    )


@router.get("/conversation")
async def conversation(request: Request, _: SignedIn, uow: Uow, reads: Insights) -> HTMLResponse:
    raw = request.query_params.get("id", "")
    if not raw:
        return page(request, "conversation.html", view=None, conversation=None)
    conversation_id = inputs.conversation_id(raw)
    view = await insights.conversation(uow, reads, conversation_id, CONVERSATION_ROWS)
    return page(
        request,
        "conversation.html",
        view=view,
        conversation=conversation_id,
        limit=CONVERSATION_ROWS,
    )


@router.get("/static/{name}")
async def static(name: str, _: Config) -> Response:
    """The script and style sheet; like every dashboard path, 403 while it is disabled."""
    if name not in STATIC_TYPES:
        raise PageError(404, "no such file")
    headers = {**SECURITY_HEADERS, "Cache-Control": "max-age=300"}
    return Response((STATIC / name).read_bytes(), media_type=STATIC_TYPES[name], headers=headers)
