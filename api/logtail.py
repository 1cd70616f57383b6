"""``GET /v1/logs/subscribe``: Render's live tail, a WebSocket that sends each new log line as
it is stored, one JSON text message per line in Render's ``Log`` shape (``id``, ``message``,
``timestamp``, ``labels``), the same as a line of ``GET /v1/logs``.

An ASGI application (``config.asgi`` routes WebSocket connections here): the handshake carries
the API key (``Authorization: Bearer …``) and the same query as ``GET /v1/logs`` (``ownerId``,
``resource``, ``text``, ``level``, ``type``, ``instance``, ``startTime``, ``endTime``,
``direction``, ``limit``), checked the same way: a bad key is a 401, a resource of another
workspace a 404, a bad or unhonoured filter a 400, answered as HTTP responses before the upgrade
(``{"id", "message"}``), so the client sees the status Render's document gives.

Lines are found by polling the database every ``LOGS_TAIL_INTERVAL`` seconds (the web process
is not the one storing them): each poll reads the lines of the last ``LOGS_TAIL_LAG`` seconds
with ``query_logs`` and sends those not sent yet, so a line stored up to that long after its
timestamp is still sent, once. Without ``startTime`` the tail starts at the connection; with it,
the lines since then come first. With ``endTime`` the socket closes (1000) once it has passed.

A workspace holds at most ``LOGS_TAIL_MAX_PER_WORKSPACE`` tails open in one web process (one
more is a 429 at the handshake), and each tail checks every ``LOGS_TAIL_RECHECK`` seconds that
its key is still live and its user still a member: a revoked key or a removed member stops
receiving lines within that time (close code 1008).
"""

import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from pydantic import ValidationError

from api.auth import ApiKeyAuth, ApiRequest
from api.errors import ApiError
from api.fields import aware
from api.known_params import unknown_parameter
from api.query import is_list
from jobs.logs.read import LogQuery, check, query_logs
from jobs.logs.search import SearchTooSlow
from services.errors import DomainError, Invalid, NotFound
from services.models import ApiKey

PATH = "/v1/logs/subscribe"
PAGE = 100
MAX_PAGES = 20  # lines sent per poll at most PAGE * MAX_PAGES; the rest follow on the next

# Tails open in this process, by workspace id (changed only on the event loop's thread).
_open: Counter[str] = Counter()

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict]]
Send = Callable[[dict], Awaitable[None]]


def _request(scope: Scope) -> HttpRequest:
    request = HttpRequest()
    request.method = "GET"
    request.path = request.path_info = scope["path"]
    for name, value in scope.get("headers", []):
        key = name.decode("latin-1").upper().replace("-", "_")
        request.META[f"HTTP_{key}"] = value.decode("latin-1")
    request.GET = QueryDict(scope.get("query_string", b"").decode("latin-1"))
    client = scope.get("client")
    if client:
        request.META["REMOTE_ADDR"] = client[0]
    return request


def _filters(request: HttpRequest) -> Any:
    """The query as ``LogsQuery``, read as the HTTP side reads it: a parameter the operation does
    not take is a 400 naming it (``api.known_params``, as the middleware answers), list fields
    take repeated keys and comma lists (``api.query``), and a bad value is an ``Invalid``
    naming it."""
    from api.routers.logs import LogsQuery

    unknown = unknown_parameter(request)
    if unknown is not None:
        raise Invalid(
            unknown,
            "not a query parameter of this operation, so Oneoff cannot honour it "
            "(GET /v1/openapi.json lists each operation's parameters)",
        )
    data: dict[str, Any] = {
        name: request.GET.getlist(name) if is_list(field.annotation) else request.GET[name]
        for name, field in LogsQuery.model_fields.items()
        if name in request.GET
    }
    try:
        return LogsQuery.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        name = str(error["loc"][0]) if error["loc"] else "query"
        raise Invalid(name, error["msg"]) from None


class Tail:
    """One subscription: its query, and the lines already sent (by id, with their time)."""

    def __init__(self, scope: Scope):
        request = _request(scope)
        key = ApiKeyAuth()(request)
        self.key_id, self.workspace_id = key.pk, key.workspace_id
        self.checked = time.monotonic()
        from api.routers.logs import log_query

        filters = _filters(request)
        self.query: LogQuery = log_query(cast(ApiRequest, request), filters, PAGE)
        self.query.direction = "forward"
        check(self.query)
        self.since: datetime = aware(filters.startTime) or timezone.now()
        self.until: datetime | None = aware(filters.endTime)
        self.sent: dict[str, datetime] = {}
        self.polled = False
        # Where the next poll goes on when this one stopped at MAX_PAGES (a long backlog).
        self.backlog: datetime | None = None

    def allowed(self) -> bool:
        """Whether the key is still live and its user still an active member (asked at most
        every LOGS_TAIL_RECHECK seconds)."""
        if time.monotonic() - self.checked < settings.LOGS_TAIL_RECHECK:
            return True
        self.checked = time.monotonic()
        return (
            ApiKey.objects.active()
            .filter(
                pk=self.key_id,
                user__is_active=True,
                user__memberships__workspace_id=self.workspace_id,
            )
            .exists()
        )

    def poll(self) -> tuple[list[dict], bool]:
        """The lines stored since the last poll, and whether the tail is over (past
        ``endTime``). ``Revoked`` once the key or its user's membership is gone."""
        if not self.allowed():
            raise Revoked
        now = timezone.now()
        lag = timedelta(seconds=settings.LOGS_TAIL_LAG)
        q = self.query
        if self.backlog is not None:
            q.start = self.backlog
        else:
            q.start = max(self.since, now - lag) if self.polled else self.since
        self.polled = True
        self.backlog = None
        q.end = min(now, self.until) if self.until else now
        fresh: list[dict] = []
        for _ in range(MAX_PAGES):
            if q.start > q.end:
                break
            page = query_logs(q)
            for entry in page["logs"]:
                if entry["id"] not in self.sent:
                    self.sent[entry["id"]] = datetime.fromisoformat(entry["timestamp"])
                    fresh.append(entry)
            if not page["hasMore"]:
                break
            q.start = datetime.fromisoformat(page["nextStartTime"])
        else:
            self.backlog = q.start
        # Forget what can no longer come back (older than the next poll's window).
        horizon = now - lag
        self.sent = {key: at for key, at in self.sent.items() if at >= horizon}
        over = self.until is not None and now > self.until + lag and self.backlog is None
        return fresh, over


class Revoked(Exception):
    """The tail's API key was revoked, or its user left the workspace."""


def _fresh(call: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``call`` on a worker thread, with that thread's database connection checked first (as
    Django does around a request: one past its age or broken is replaced)."""

    def run(*args: Any) -> Any:
        close_old_connections()
        return call(*args)

    return sync_to_async(run, thread_sensitive=False)


async def _deny(scope: Scope, send: Send, status: int, id: str, message: str) -> None:
    """An HTTP answer to the handshake (ASGI's WebSocket denial response) where the server
    offers it, else a close before accepting (a 403 to the client)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"id": id, "message": message}).encode()
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json; charset=utf-8")],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})


async def subscribe(scope: Scope, receive: Receive, send: Send) -> None:
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    try:
        tail = await _fresh(Tail)(scope)
    except ApiError as exc:
        return await _deny(scope, send, exc.status, exc.id, exc.message)
    except NotFound as exc:
        return await _deny(scope, send, 404, "not_found", exc.message)
    except DomainError as exc:
        return await _deny(scope, send, 400, "bad_request", str(exc))
    most = settings.LOGS_TAIL_MAX_PER_WORKSPACE
    if _open[tail.workspace_id] >= most:
        return await _deny(
            scope,
            send,
            429,
            "rate_limited",
            f"this workspace has {most} live log tails open here already; close one first",
        )
    _open[tail.workspace_id] += 1
    try:
        await _serve(tail, receive, send)
    finally:
        _open[tail.workspace_id] -= 1
        if _open[tail.workspace_id] <= 0:
            del _open[tail.workspace_id]


async def _serve(tail: Tail, receive: Receive, send: Send) -> None:
    await send({"type": "websocket.accept"})
    closed = asyncio.Event()

    async def watch() -> None:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                closed.set()
                return

    watcher = asyncio.create_task(watch())
    try:
        await _tail(tail, send, closed)
    except OSError:
        pass  # the client went away while a line was being sent
    finally:
        watcher.cancel()


async def _tail(tail: Tail, send: Send, closed: asyncio.Event) -> None:
    while not closed.is_set():
        try:
            lines, over = await _fresh(tail.poll)()
        except SearchTooSlow:
            await send({"type": "websocket.close", "code": 1011, "reason": "search too slow"})
            return
        except Revoked:
            reason = "API key revoked or its user left the workspace"
            await send({"type": "websocket.close", "code": 1008, "reason": reason})
            return
        for entry in lines:
            await send({"type": "websocket.send", "text": json.dumps(entry)})
        if over:
            await send({"type": "websocket.close", "code": 1000})
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closed.wait(), settings.LOGS_TAIL_INTERVAL)


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()
    await _deny(scope, send, 404, "not_found", "no WebSocket here; see GET /v1/logs/subscribe")
