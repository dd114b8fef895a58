"""``kb serve``: the knowledge base as an HTTP service (see :mod:`kb.service.app` for the endpoints).

One process holds one :class:`~kb.knowledge_base.KnowledgeBase` (its models loaded once) behind a
FastAPI app under uvicorn; run several processes on one database (and Redis) for more throughput:
keys, rate limits, the cache, sessions and indexing jobs are shared through them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Optional

from kb.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from kb.knowledge_base import KnowledgeBase


def build_app(kb: KnowledgeBase) -> FastAPI:
    """The FastAPI app over a :class:`KnowledgeBase` (its models may be given: tests, benchmarks)."""
    from kb.service.app import create_app
    from kb.service.service import Service

    service = Service(kb)
    service.warm_up()
    return create_app(service)


def serve(
    settings: Settings, *, host: Optional[str] = None, port: Optional[int] = None, kb: Optional[KnowledgeBase] = None
) -> None:
    """Run the service until interrupted (``kb serve``)."""
    import uvicorn

    from kb.knowledge_base import KnowledgeBase
    from kb.service.read_deadline import protocol_with_read_deadline

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    knowledge_base = kb if kb is not None else KnowledgeBase(settings)
    app = build_app(knowledge_base)
    host, port = host or settings.serve.host, port or settings.serve.port
    docs = "API docs at /docs" if settings.serve.api_docs else "API docs: serve.api_docs: true, or /openapi.json"
    print(f"kb serve: http://{host}:{port}/ ({docs}); Ctrl-C stops", flush=True)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            http=protocol_with_read_deadline(settings.serve.read_timeout_s),
            # X-Forwarded-For only from the proxies the operator named (uvicorn's default trusts
            # 127.0.0.1, so any local client could pick the address its wrong keys are counted by).
            proxy_headers=bool(settings.serve.trusted_proxies),
            forwarded_allow_ips=settings.serve.trusted_proxies or None,
        )
    finally:
        knowledge_base.close()
