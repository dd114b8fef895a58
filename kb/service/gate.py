"""Every HTTP request of ``kb serve`` passes :class:`RequestGate` first: a plain ASGI middleware, so that
it sees a request before FastAPI reads a byte of its body, and sees every response, errors included.

For each request, in this order:

1. **Who asks.** ``/v1/...`` and ``/metrics`` need a key. It is checked, and the request counted
   against the key's rate limit, from the headers alone: a request without a valid key gets 401 (or
   429) before its body is read.
2. **How much it sends.** The body is read here, whatever its transfer encoding (``Content-Length``
   or chunked), and refused with 413 as soon as it passes ``serve.max_request_kb``; the endpoint then
   reads it from memory. Nothing larger is ever buffered.
3. **How long it may take.** A request has ``serve.request_timeout_s`` to answer; then it gets 504
   in OpenAI's error shape. Each statement it runs on kb's database is stopped by the server after
   ``serve.statement_timeout_s`` (:func:`~kb.stores.connection.statement_time_limit`), so no request
   holds a pooled connection for long. Work still running for it, and work whose client disconnected, learns
   that it is no longer wanted through :class:`RequestBudget` (:func:`current_budget`): the model
   queue stops waiting for it and the local model stops generating for it.
4. **What happened.** Every request, 500s included, gets one access-log row once it has ended, and
   its status and latency in ``/metrics``. A stream's row carries the tokens it used, also when its
   client left early.

Handlers are plain ``def`` functions run in worker threads; the :class:`RequestBudget` and the key
reach them (and the threads they start, which copy their context) through context variables
(:func:`current_budget`, :func:`current_caller`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Optional

import anyio
from anyio.to_thread import run_sync
from starlette.requests import ClientDisconnect

from kb.engines.answer import GENERATION_STOP
from kb.engines.timing import Stopwatch
from kb.service.access_log import AccessRecord
from kb.stores.connection import statement_time_limit
from kb.stores.errors import DatabaseBusy, is_statement_timeout

log = logging.getLogger("kb.service")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "timeout",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    499: "client_closed_request",
    503: "service_unavailable",
    504: "timeout",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    """OpenAI's error shape: ``{"error": {"message", "type", "code"}}``."""
    kind = ERROR_TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
    return {"error": {"message": message, "type": kind, "code": status}}


class ApiError(Exception):
    """A request refused with an HTTP status and a message saying what to do."""

    def __init__(
        self, status: int, message: str, headers: Optional[dict[str, str]] = None, *, logged: bool = True
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.logged = logged  # False: counted in /metrics only (a flood must not grow the access log)


@dataclass
class RequestBudget:
    """How long one request may still run, and whether its client still wants the answer."""

    deadline: float  # time.monotonic()
    cancelled: threading.Event = field(default_factory=threading.Event)

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0

    @property
    def over(self) -> bool:
        """Past its deadline or abandoned by its client: work for it should stop."""
        return self.expired or self.cancelled.is_set()

    def check(self) -> None:
        """Raise the refusal that says why the request is over, if it is."""
        if self.cancelled.is_set():
            raise ApiError(499, "the client closed the request")
        if self.expired:
            raise ApiError(504, "the request ran out of time (serve.request_timeout_s)")


_BUDGET: ContextVar[Optional[RequestBudget]] = ContextVar("kb_request_budget", default=None)
_CALLER: ContextVar[Any] = ContextVar("kb_request_caller", default=None)


def current_budget() -> Optional[RequestBudget]:
    """The budget of the request this code runs for (None outside a request)."""
    return _BUDGET.get()


def current_caller() -> Any:
    """The key the request this code runs for was identified by (None outside a request, or for a
    request that needs none)."""
    return _CALLER.get()


@dataclass
class _Exchange:
    """What the gate knows about one request while it runs."""

    status: Optional[int] = None  # the status sent, once the response has started
    answered_by_gate: bool = False
    logged: bool = False


def needs_key(path: str) -> bool:
    return path.startswith("/v1/") or path == "/metrics"


class RequestGate:
    """The ASGI middleware described in the module docstring."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        identify: Callable[[Optional[str], str], Any],
        admit: Callable[[Any], None],
        record: Callable[[AccessRecord], None],
        observe: Callable[[str, int, float, Optional[str]], None],
        is_unavailable: Callable[[BaseException], bool],
        max_body_bytes: int,
        timeout_s: float,
        read_timeout_s: float = 10.0,
        statement_timeout_s: Optional[float] = None,
    ) -> None:
        self.app = app
        self.identify = identify  # (Authorization header, client address) -> key, or ApiError(401 or 429)
        self.admit = admit  # key -> None, or ApiError(429)
        self.record = record
        self.observe = observe
        self.is_unavailable = is_unavailable
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.read_timeout_s = read_timeout_s  # the body's (the headers' is the protocol's: read_deadline.py)
        self.statement_timeout_s = statement_timeout_s
        # The gate's own database work (keys, limits, the access log) has threads of its own, so it
        # never waits behind handlers that fill the shared worker pool.
        self._threads = anyio.CapacityLimiter(8)
        self._lingering: set[asyncio.Task[None]] = set()  # handlers still running after a 504

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        clock = Stopwatch()
        budget = RequestBudget(deadline=time.monotonic() + self.timeout_s)
        state = scope.setdefault("state", {})
        state["budget"] = budget
        exchange = _Exchange()

        async def gated_send(message: Message) -> None:
            if exchange.answered_by_gate:
                return  # the gate answered already (504): late output is dropped
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
            await send(message)

        try:
            if needs_key(scope["path"]):
                client = scope.get("client") or ("", 0)
                state["key"] = await self._in_thread(self.identify, _header(scope, b"authorization"), client[0])
                await self._in_thread(self.admit, state["key"])
            body = await self._read_body(scope, receive)
            await self._run(scope, body, receive, gated_send, budget, exchange)
        except ApiError as refusal:
            await self._answer(send, exchange, refusal.status, refusal.message, refusal.headers)
            if not refusal.logged:
                exchange.logged = True
                self.observe("unmatched", refusal.status, clock.elapsed(), None)
        except Exception as error:  # the gate's own steps (the key lookup) or a handler's failure
            mapped = self._refusal_for(scope, error)
            await self._answer(send, exchange, mapped.status, mapped.message, mapped.headers)
        finally:
            if not exchange.logged:
                exchange.logged = True
                await self._log(scope, exchange.status or 500, clock)

    # -- the steps ---------------------------------------------------------------------------------
    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_sync(fn, *args, limiter=self._threads)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        # Starlette's RequestBodyLimitMiddleware would cap it too, but it answers outside this gate in
        # its own error shape: the refusal would miss the access log and OpenAI's error shape.
        limit = self.max_body_bytes
        too_large = ApiError(413, f"request body over {limit // 1024} KB (serve.max_request_kb)")
        length = _header(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise too_large if length.isdigit() else ApiError(400, "invalid Content-Length header")
        chunks, size = [], 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.read_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(receive(), timeout=max(deadline - loop.time(), 0.0))
            except asyncio.TimeoutError:
                raise ApiError(
                    408,
                    f"the request body did not arrive within {self.read_timeout_s:g} s (serve.read_timeout_s)",
                    {"Connection": "close"},  # the rest of the body is not waited for
                ) from None
            if message["type"] == "http.disconnect":
                raise ApiError(499, "the client closed the request")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _run(
        self, scope: Scope, body: bytes, receive: Receive, send: Send, budget: RequestBudget, exchange: _Exchange
    ) -> None:
        """Run the app on the buffered body, watching for the client leaving and for the deadline."""
        later: asyncio.Queue[Message] = asyncio.Queue()
        delivered = False

        async def app_receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await later.get()

        async def listen() -> None:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    budget.cancelled.set()
                    await later.put(message)
                    return

        listener = asyncio.ensure_future(listen())
        token = _BUDGET.set(budget)
        caller_token = _CALLER.set(scope.get("state", {}).get("key"))
        stop_token = GENERATION_STOP.set(lambda: budget.over)
        try:
            with statement_time_limit(self.statement_timeout_s):  # the task copies the context here
                task = asyncio.ensure_future(self.app(scope, app_receive, send))
        finally:
            GENERATION_STOP.reset(stop_token)
            _CALLER.reset(caller_token)
            _BUDGET.reset(token)
        try:
            done, _ = await asyncio.wait({task}, timeout=max(budget.remaining(), 0.0))
            if task not in done and exchange.status is None:
                # Nothing sent yet: the gate answers; the handler learns through its budget and ends later.
                budget.cancelled.set()
                self._linger(task)
                raise ApiError(504, f"no answer within {self.timeout_s:g} s (serve.request_timeout_s); retry later")
            if task not in done:
                await task  # a stream under way: it keeps its own deadline (see the service)
            error = task.exception()
            if error is not None:
                if isinstance(error, ApiError):
                    raise error
                if budget.over and exchange.status is None:
                    budget.check()  # the work stopped because its time ran out or its client left: 504 or 499
                if isinstance(error, OSError | ClientDisconnect):
                    exchange.status = 499  # the client left while the answer streamed
                    return
                if exchange.status is not None:  # the response had started: nothing more can be said
                    log.error("%s %s failed after its response began", scope["method"], scope["path"], exc_info=error)
                    return
                raise self._refusal_for(scope, error)
        finally:
            listener.cancel()

    def _refusal_for(self, scope: Scope, error: BaseException) -> ApiError:
        """503 for a database that cannot be reached or whose connections are all in use, 504 for a
        statement stopped at its time limit, else 500; the details go to the server log only."""
        if isinstance(error, DatabaseBusy):
            log.warning("no database connection free on %s %s: %s", scope["method"], scope["path"], error)
            return ApiError(503, "the server is busy; retry shortly", {"Retry-After": "5"})
        if is_statement_timeout(error):
            log.warning("statement stopped on %s %s: %s", scope["method"], scope["path"], error)
            return ApiError(504, "the database took too long for this request (serve.statement_timeout_s)")
        if self.is_unavailable(error):
            log.warning("database unavailable on %s %s: %s", scope["method"], scope["path"], error)
            return ApiError(503, "the database is unavailable; retry shortly", {"Retry-After": "5"})
        log.error("unexpected error on %s %s", scope["method"], scope["path"], exc_info=error)
        return ApiError(500, f"internal error ({type(error).__name__}); the server log has the details")

    def _linger(self, task: asyncio.Task[None]) -> None:
        self._lingering.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._lingering.discard(done)
            if not done.cancelled() and done.exception() is not None:
                log.info("a request that had timed out ended with %r", done.exception())

        task.add_done_callback(finished)

    async def _answer(
        self, send: Send, exchange: _Exchange, status: int, message: str, headers: dict[str, str]
    ) -> None:
        """Send an error response, unless the response has started (then only the log knows)."""
        if exchange.status is not None or exchange.answered_by_gate:
            return
        exchange.answered_by_gate = True
        exchange.status = status
        payload = json.dumps(error_body(status, message)).encode("utf-8")
        raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
        raw_headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        try:
            await send({"type": "http.response.start", "status": status, "headers": raw_headers})
            await send({"type": "http.response.body", "body": payload})
        except OSError:  # the client is gone
            pass

    async def _log(self, scope: Scope, status: int, clock: Stopwatch) -> None:
        state = scope.get("state", {})
        settle = state.pop("settle", None)
        if settle is not None:  # a stream: its tokens and outcome are known once its generation ended
            try:
                state.update(await self._in_thread(settle))
            except Exception as exc:
                log.warning("stream outcome unknown: %s", exc)
        elapsed = clock.elapsed()
        route = scope.get("route")
        endpoint = getattr(route, "path", None) or "unmatched"
        status = int(state.get("status_override") or status)
        self.observe(endpoint, status, elapsed, state.get("route"))
        if not scope["path"].startswith("/v1"):
            return
        key = state.get("key")
        record = AccessRecord(
            getattr(key, "name", None) or state.get("key_name"),
            scope["method"],
            scope["path"],
            status,
            round(elapsed * 1000, 2),
            state.get("route"),
            int(state.get("tokens") or 0),
            state.get("cache"),
            state.get("cost"),
        )
        try:
            await self._in_thread(self.record, record)
        except Exception as exc:  # the database may be the thing that is down
            log.warning("access log not written: %s", exc)


def _header(scope: Scope, name: bytes) -> Optional[str]:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None
