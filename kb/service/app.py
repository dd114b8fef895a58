"""The HTTP layer of ``kb serve``: FastAPI routes over :class:`~kb.service.service.Service`.

Every response to a refused or failed request is JSON in OpenAI's error shape
(``{"error": {"message", "type", "code"}}``) with the right status, never a traceback: 400 for a
request kb cannot answer as asked, 401 without a valid key, 403 outside the key's rights, 404, 413
for a body over ``serve.max_request_kb``, 422 for a body that is not what the endpoint takes, 429
over a rate limit (with ``Retry-After``), 503 while the database is unreachable (the server keeps
running and recovers by itself when it is back).

Handlers are plain ``def``: FastAPI runs them in its thread pool, which suits the blocking MariaDB
driver and the models.
"""

from __future__ import annotations

import logging
import time
from importlib import resources
from typing import Any, Optional

from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.errors import KBError
from kb.service.access_log import AccessRecord
from kb.service.keys import ApiKey
from kb.service.openai_chat import MODEL_NAME, ChatCompletionRequest, CompletionStream, completion, error_event
from kb.service.schemas import IndexRequest, QueryRequest, Question, RetrieveRequest
from kb.service.service import ApiError, Service
from kb.stores.errors import DatabaseUnavailable

log = logging.getLogger("kb.service")
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def error_response(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    body = {"error": {"message": message, "type": _TYPES.get(status, "server_error"), "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="kb",
        description="A LlamaIndex knowledge base on MariaDB: documents, business database, both.",
        version="0.1.0",
    )
    app.state.service = service
    max_bytes = service.kb.settings.serve.max_request_kb * 1024

    # -- errors ------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(422, f"{where or 'body'}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(ValidationError)
    def _invalid_model(request: Request, exc: ValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        return error_response(422, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid')}")

    @app.exception_handler(KBError)
    def _kb_error(request: Request, exc: KBError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(DatabaseUnavailable)
    def _database_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", exc)
        return error_response(503, f"the database is unavailable, retry shortly ({exc})", {"Retry-After": "5"})

    @app.exception_handler(Exception)
    def _bug(request: Request, exc: Exception) -> JSONResponse:
        if _is_database_down(exc):
            return error_response(503, "the database is unavailable, retry shortly", {"Retry-After": "5"})
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")

    # -- every request: size limit, access log, metrics ---------------------------------------------
    @app.middleware("http")
    async def _around(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_bytes:
            response: Response = error_response(413, f"request body over {max_bytes // 1024} KB (serve.max_request_kb)")
        else:
            response = await call_next(request)
        elapsed = time.perf_counter() - started
        endpoint = request.scope.get("route").path if request.scope.get("route") else "unmatched"  # type: ignore[union-attr]
        state = request.state
        service.metrics.observe(endpoint, response.status_code, elapsed, getattr(state, "route", None))
        if endpoint.startswith("/v1") and not getattr(state, "streaming", False):
            key: Optional[ApiKey] = getattr(state, "key", None)
            record = AccessRecord(
                key.name if key else None,
                request.method,
                request.url.path,
                response.status_code,
                round(elapsed * 1000, 2),
                getattr(state, "route", None),
                getattr(state, "tokens", 0),
                getattr(state, "cache", None),
            )
            service.log_access(record)
        return response

    def current_key(request: Request, authorization: Optional[str] = Header(None)) -> ApiKey:
        key = service.authenticate(authorization)
        request.state.key = key
        return key

    # -- kb's endpoints ------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("kb.service").joinpath("static/index.html").read_text(encoding="utf-8"))

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness and the database: 200 when kb can reach the primary MariaDB, 503 when it cannot
        (no key needed). Each read replica's state and lag are listed; one down costs speed, not
        answers (its reads go to the primary), so it does not make the service unhealthy."""
        try:
            service.kb.connection.fetchall("SELECT 1")
        except Exception as exc:
            return JSONResponse({"status": "degraded", "database": str(exc)[:200]}, status_code=503)
        body: dict[str, Any] = {"status": "ok", "database": "ok"}
        replicas = service.kb.connection.replica_status()
        if replicas:
            body["replicas"] = replicas
        return JSONResponse(body)

    @app.get("/metrics", response_class=Response)
    def metrics(key: ApiKey = Depends(current_key)) -> Response:
        service.require(key, "admin")
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    def models(key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "created": 0, "owned_by": "kb"}]}

    @app.post("/v1/retrieve")
    def retrieve(body: RetrieveRequest, request: Request, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return {"chunks": service.retrieve(key, body)}

    @app.post("/v1/query")
    def query(body: QueryRequest, request: Request, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        result, cache, tokens = service.query(key, body)
        request.state.route, request.state.cache, request.state.tokens = result.get("route"), cache, tokens
        return {**result, "cache": cache}

    @app.post("/v1/sql")
    def sql(body: Question, request: Request, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        request.state.route = "database"
        return service.sql(key, body.question)

    @app.post("/v1/route")
    def route(body: Question, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return service.route(key, body.question)

    @app.get("/v1/sessions")
    def sessions(key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return {"sessions": service.sessions(key)}

    @app.get("/v1/sessions/{session}")
    def session(session: str, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return {"session": session, "turns": service.session_turns(key, session)}

    @app.delete("/v1/sessions/{session}", status_code=204)
    def delete_session(session: str, key: ApiKey = Depends(current_key)) -> Response:
        service.delete_session(key, session)
        return Response(status_code=204)

    @app.post("/v1/index", status_code=202)
    def index(body: IndexRequest, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        service.require(key, "write")
        service.check_collection(key, body.collection)
        try:
            folder = service.jobs.check_path(body.path)
        except PermissionError as exc:
            raise ApiError(403, str(exc)) from None
        return service.jobs.start(folder, body.collection, key.name, include=body.include, exclude=body.exclude)

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        found = service.jobs.get(job_id)
        if found is None or (found.get("key") != key.name and not key.allows("admin")):
            raise ApiError(404, f"no job {job_id!r}")
        return found

    # -- OpenAI's endpoint -----------------------------------------------------------------------------
    @app.post("/v1/chat/completions", response_model=None)
    def chat_completions(
        body: ChatCompletionRequest,
        request: Request,
        key: ApiKey = Depends(current_key),
        x_session_id: Optional[str] = Header(None),
    ) -> Any:
        session = x_session_id or body.user
        if not body.stream:
            answer, named = service.chat(key, body, session)
            request.state.route, request.state.tokens = answer.route, int(sum(answer.tokens.values()))
            return completion(answer, named)
        pieces, finish = service.stream_chat(key, body, session)
        request.state.streaming = True
        started = time.perf_counter()

        def events() -> Any:
            status, route, tokens = 200, None, 0
            try:

                def done() -> Any:
                    nonlocal route, tokens
                    answer, named = finish()
                    route, tokens = answer.route, int(sum(answer.tokens.values()))
                    return answer, named

                yield from CompletionStream().events(pieces, done)
            except KBError as exc:  # the status line is sent: the error goes in the stream
                status = 400
                yield error_event(str(exc), status)
            except Exception as exc:
                status = 503 if _is_database_down(exc) else 500
                log.exception("stream failed")
                yield error_event(f"the answer failed ({type(exc).__name__})", status)
            finally:
                record = AccessRecord(
                    key.name,
                    "POST",
                    "/v1/chat/completions",
                    status,
                    round((time.perf_counter() - started) * 1000, 2),
                    route,
                    tokens,
                )
                service.log_access(record)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


def _is_database_down(exc: BaseException) -> bool:
    """A MariaDB connection lost mid-request (the pool's connection died with the server)."""
    import mariadb
    import sqlalchemy.exc

    if isinstance(exc, DatabaseUnavailable | sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
        return True
    return isinstance(exc, mariadb.OperationalError | mariadb.InterfaceError)
