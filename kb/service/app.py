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

import base64
import hashlib
import logging
import re
from collections.abc import Mapping
from importlib import resources
from typing import Any, Optional

import anyio
from anyio.to_thread import run_sync
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb.errors import KBError
from kb.service.gate import ApiError, RequestGate, error_body
from kb.service.keys import ApiKey
from kb.service.openai_chat import MODEL_NAME, ChatCompletionRequest, CompletionStream, completion, error_event
from kb.service.schemas import (
    ExampleImport,
    ExampleRequest,
    FeedbackRequest,
    IndexRequest,
    QueryRequest,
    Question,
    RetrieveRequest,
)
from kb.service.service import Service
from kb.stores.errors import DatabaseBusy, DatabaseUnavailable, is_database_down
from kb.stores.filters import FilterTooLarge, UnsupportedFilterError

log = logging.getLogger("kb.service")


def error_response(status: int, message: str, headers: Optional[dict[str, str]] = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def page_security_headers(html: str, *, own_files: bool = False) -> dict[str, str]:
    """A page's Content-Security-Policy (its own inline scripts and styles only, by hash, and with
    ``own_files`` scripts and style sheets served by this server; requests to this server only; no
    frames, forms, plugins or base URL) and the headers that keep it out of other sites' frames and
    stop content sniffing."""
    own = ["'self'"] if own_files else []
    digests = {
        kind: " ".join(
            own
            + [
                f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'"
                for body in re.findall(rf"<{kind}>(.*?)</{kind}>", html, re.S)
            ]
        )
        for kind in ("script", "style")
    }
    policy = (
        f"default-src 'none'; script-src {digests['script']}; style-src {digests['style']}; connect-src 'self'; "
        "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def add_api_docs(app: FastAPI) -> None:
    """Swagger UI at ``/docs``, its scripts and styles from the ``swagger-ui-bundle-v2`` package served
    by kb itself (nothing loaded from another site: it works offline, and a key pasted into it reaches
    no one else), under the same kind of CSP as kb's page."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount("/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="api-docs-static")
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title="kb API",
        swagger_js_url="/docs/static/swagger-ui-bundle.js",
        swagger_css_url="/docs/static/swagger-ui.css",
        swagger_favicon_url="data:,",
    )
    html = bytes(page.body).decode("utf-8")
    headers = page_security_headers(html, own_files=True)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    def api_docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)


def create_app(service: Service) -> FastAPI:
    app = FastAPI(
        title="kb",
        description="A LlamaIndex knowledge base on MariaDB: documents, business database, both.",
        version="0.1.0",
        docs_url=None,  # FastAPI's pages load their scripts from a CDN: kb serves its own (below)
        redoc_url=None,
    )
    app.state.service = service
    serve = service.kb.settings.serve
    app.add_middleware(
        RequestGate,
        identify=service.identify,
        admit=service.admit,
        record=service.access_log.record,
        observe=service.metrics.observe,
        is_unavailable=is_database_down,
        max_body_bytes=serve.max_request_kb * 1024,
        timeout_s=serve.request_timeout_s,
        read_timeout_s=serve.read_timeout_s,
        statement_timeout_s=min(serve.statement_timeout_s, serve.request_timeout_s),
    )
    health_threads = anyio.CapacityLimiter(2)  # /healthz never waits behind other requests' threads

    # -- errors ------------------------------------------------------------------------------------
    @app.exception_handler(ApiError)
    def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first: Mapping[str, Any] = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error_response(422, f"{where or 'body'}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(ValidationError)
    def _invalid_model(request: Request, exc: ValidationError) -> JSONResponse:
        first: Mapping[str, Any] = exc.errors()[0] if exc.errors() else {}
        return error_response(422, f"{'.'.join(map(str, first.get('loc', ())))}: {first.get('msg', 'invalid')}")

    @app.exception_handler(KBError)
    def _kb_error(request: Request, exc: KBError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(UnsupportedFilterError)
    def _bad_filter(request: Request, exc: UnsupportedFilterError) -> JSONResponse:
        return error_response(400, str(exc))

    @app.exception_handler(FilterTooLarge)
    def _filter_too_large(request: Request, exc: FilterTooLarge) -> JSONResponse:
        return error_response(422, str(exc))

    @app.exception_handler(DatabaseUnavailable)
    def _database_down(request: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", exc)  # where and who, for the operator; not for the client
        return error_response(503, "the database is unavailable; retry shortly", {"Retry-After": "5"})

    @app.exception_handler(DatabaseBusy)
    def _database_busy(request: Request, exc: DatabaseBusy) -> JSONResponse:
        log.warning("database busy: %s", exc)
        return error_response(503, "the server is busy; retry shortly", {"Retry-After": "5"})

    def current_key(request: Request) -> ApiKey:
        """The key the gate identified (every /v1 request passes it first)."""
        key: Optional[ApiKey] = request.scope.get("state", {}).get("key")
        if key is None:
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer kb-...' (kb keys create)")
        return key

    # -- kb's endpoints ------------------------------------------------------------------------------
    page_html = resources.files("kb.service").joinpath("static/index.html").read_text(encoding="utf-8")
    page_headers = page_security_headers(page_html)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(page_html, headers=page_headers)

    if serve.api_docs:
        add_api_docs(app)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        """Liveness and the database: 200 when kb's primary MariaDB answered a probe of kb's own
        (:class:`~kb.service.health.HealthProbe`: a connection nothing else uses, one probe at a time)
        that ended after this request came, or, while that probe is late on a busy server, answered
        one at most five seconds ago; 503 when the probe failed or none answered in time (no key
        needed; no detail of where the database is). Each read replica's state is listed; one down costs speed,
        not answers (its reads go to the primary), so it does not make the service unhealthy. It never
        waits behind other requests' threads or connections."""
        health = await run_sync(service.health.check, limiter=health_threads)
        if not health.database_ok:
            return JSONResponse({"status": "degraded", "database": "unreachable"}, status_code=503)
        body: dict[str, Any] = {"status": "ok", "database": "ok"}
        if health.replicas:
            body["replicas"] = [
                {k: v for k, v in r.items() if k not in ("url", "host", "port")} for r in health.replicas
            ]
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
        request.state.cost = 0.0 if cache == "hit" else result.get("cost_usd")
        return {**result, "cache": cache}

    @app.post("/v1/sql")
    def sql(body: Question, request: Request, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        request.state.route = "database"
        result = service.sql(key, body.question)
        request.state.cost = result.get("cost_usd")
        return result

    @app.post("/v1/feedback", response_model=None)
    def feedback(body: FeedbackRequest, key: ApiKey = Depends(current_key)) -> Response | dict[str, Any]:
        """Rate an answer this key was given (its ``answer_id``): positive, negative or neutral. 204, or
        200 with ``taught``: what the rating added to the approved examples, or offered."""
        taught = service.rate(key, body.answer_id, body.rating, body.comment, body.sql)
        return {"taught": taught} if taught else Response(status_code=204)

    @app.get("/v1/sql/examples")
    def sql_examples(key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return {"examples": service.examples(key)}

    @app.post("/v1/sql/examples")
    def add_sql_example(body: ExampleRequest, response: Response, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        example, new = service.add_example(key, body)
        response.status_code = 201 if new else 200
        return {"example": example, "added": new}

    @app.post("/v1/sql/examples/import")
    def import_sql_examples(body: ExampleImport, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return service.import_examples(key, body)

    @app.post("/v1/sql/examples/check")
    def check_sql_examples(key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        return service.check_examples(key)

    @app.delete("/v1/sql/examples/{example_id}", status_code=204)
    def remove_sql_example(example_id: str, key: ApiKey = Depends(current_key)) -> Response:
        service.remove_example(key, example_id)
        return Response(status_code=204)

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
        return service.jobs.public(
            service.jobs.start(folder, body.collection, key.name, include=body.include, exclude=body.exclude)
        )

    @app.get("/v1/jobs/{job_id}")
    def job(job_id: str, key: ApiKey = Depends(current_key)) -> dict[str, Any]:
        found = service.jobs.get(job_id)
        mine = found is not None and found.get("key") == key.name
        overseen = found is not None and key.allows("admin") and key.sees(str(found.get("collection")))
        if found is None or not (mine or overseen):
            raise ApiError(404, f"no job {job_id!r}")
        return service.jobs.public(found)

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
            request.state.cost = answer.cost_usd
            return completion(answer, named)
        stream = service.stream_chat(key, body, session)
        request.scope["state"]["settle"] = stream.settle  # the gate logs the stream once it has ended

        def events() -> Any:
            try:
                yield from CompletionStream().events(stream, stream.outcome)
            except KBError as exc:  # the status line is sent: the error goes in the stream
                stream.status = 400
                yield error_event(str(exc), 400)
            except ApiError as exc:
                stream.status = exc.status
                yield error_event(exc.message, exc.status)
            except Exception as exc:
                stream.status = 503 if is_database_down(exc) else 500
                log.exception("stream failed")
                yield error_event(f"the answer failed ({type(exc).__name__})", stream.status)

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app
