"""`/api/v1/stream`: alert changes as Server-Sent Events, as they are committed.

Each event is one change of one alert in the user's area: `id` is the change's
`history_id`, `event: alert`, and `data` the change as carewatch.alerts.v1 carries it plus
`resident_name` and `area`. A client that reconnects with `Last-Event-ID` (browsers send
it by themselves) first gets every change after that id from the database, then the live
ones: it misses nothing. Because ids are taken at insert and not at commit, a change
that committed late can come after a higher id, and after a reconnect a change may come
twice: clients deduplicate by `history_id`, as consumers of carewatch.alerts.v1 do.
A comment line every 15 s keeps proxies from closing an idle stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse

from alerts.views import changes_after
from api.areas import covers
from api.deps import StreamingUser
from api.feed import OVERLAP, RECENT_S, AlertFeed, Change, Subscription
from api.models import Error
from api.routes import API_PREFIX
from api.users import User

__all__ = ["router"]

router = APIRouter(prefix=API_PREFIX, tags=["stream"], responses={401: {"model": Error}})

_KEEPALIVE_S = 15.0
_BACKLOG_PAGE = 500


@router.get(
    "/stream",
    summary="alert changes in your area, live (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}, 422: {"model": Error}},
)
async def stream(
    request: Request,
    user: StreamingUser,
    last_event_id: Annotated[str | None, Header(max_length=20)] = None,
) -> StreamingResponse:
    resume = _resume_from(last_event_id)
    feed: AlertFeed | None = request.app.state.feed
    if feed is None:
        raise HTTPException(503, "the live stream is not running in this process")
    return StreamingResponse(
        _events(request, feed, user, resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _resume_from(header: str | None) -> int | None:
    if header is None or header == "":
        return None
    if not header.isascii() or not header.isdigit():
        raise HTTPException(422, "Last-Event-ID: the history_id of the last event received")
    return int(header)


async def _events(
    request: Request, feed: AlertFeed, user: User, resume: int | None
) -> AsyncIterator[bytes]:
    # Subscribed before the backlog is read: a change committed meanwhile is in one or both.
    async with feed.subscribe() as live:
        yield b"retry: 2000\n\n"
        sent: set[int] = set()
        if resume is not None:
            async for change in _backlog(request, resume):
                sent.add(change.history_id)
                if covers(user.area, change.area):
                    yield change.event
        async for chunk in _live(live, user, sent):
            yield chunk


async def _backlog(request: Request, after: int) -> AsyncIterator[Change]:
    """Every change after `after` (and the late commits just before it), page by page."""
    overlap = OVERLAP
    while True:
        async with request.app.state.pool.acquire() as conn:
            page = await changes_after(
                conn, after, limit=_BACKLOG_PAGE, overlap=overlap, recent_s=RECENT_S
            )
        for change in page:
            yield Change.of(change)
        if len(page) < _BACKLOG_PAGE:
            return
        after, overlap = page[-1]["history_id"], 0


async def _live(live: Subscription, user: User, sent: set[int]) -> AsyncIterator[bytes]:
    while True:
        try:
            first = await asyncio.wait_for(live.queue.get(), _KEEPALIVE_S)
        except TimeoutError:
            yield b": keep-alive\n\n"
            continue
        # What queued up meanwhile goes in the same write: one send per burst, not per change.
        changes = [first]
        while changes[-1] is not None and not live.queue.empty():
            changes.append(live.queue.get_nowait())
        events = [
            c.event
            for c in changes
            if c is not None and c.history_id not in sent and covers(user.area, c.area)
        ]
        if events:
            yield b"".join(events)
        if changes[-1] is None:
            return  # fell behind, or the API is stopping: the client reconnects
