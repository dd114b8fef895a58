"""What one ``kb serve`` process holds and does: a KnowledgeBase (models loaded once), the keys, the
rate limiter, the cache, the access log and the metrics; the HTTP layer (:mod:`kb.service.app`) only
translates requests to these calls and their outcomes to responses.

Access control lives here, in one place: every engine a request reaches is built with the key's
collections ANDed onto the client's filters (:func:`kb.collections.restrict`), without the database
unless the key has that grant, and with chat sessions named inside the key's own namespace. A
client's filters can narrow what it sees, never widen it; another key's sessions do not exist for it.

The local LLM answers one prompt at a time (llama.cpp's context is not thread-safe), so questions
that generate take a process-wide lock; retrieval and everything else run concurrently.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from queue import Queue
from typing import Any, Optional

from llama_index.core.llms import ChatMessage as LlamaChatMessage
from llama_index.core.llms import MessageRole
from llama_index.core.vector_stores.types import MetadataFilters

from kb.collections import restrict
from kb.engines.answer import Answer, Source
from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase
from kb.service.access_log import AccessLog, AccessRecord
from kb.service.cache import ServiceCache, build_backend, cache_key
from kb.service.jobs import IndexJobs
from kb.service.keys import ApiKey, KeyStore
from kb.service.metrics import ServiceMetrics
from kb.service.openai_chat import ChatCompletionRequest
from kb.service.ratelimit import RateLimiter, build_counter
from kb.service.schemas import QueryRequest, RetrieveRequest

log = logging.getLogger("kb.service")
_END = object()  # the end of a streamed turn's pieces


class ApiError(Exception):
    """A request refused with an HTTP status and a message saying what to do."""

    def __init__(self, status: int, message: str, headers: Optional[dict[str, str]] = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def source_dict(source: Source) -> dict[str, Any]:
    return {
        "node_id": source.node_id,
        "path": source.path,
        "title": source.title,
        "score": source.score,
        "text": source.text,
        "collection": source.metadata.get("collection"),
    }


def answer_dict(answer: Answer) -> dict[str, Any]:
    data = answer.to_dict()
    data["sources"] = [source_dict(s) for s in answer.sources]
    return data


class Service:
    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        settings = kb.settings
        self.metrics = ServiceMetrics()
        self.cache: Optional[ServiceCache] = None
        if settings.cache.enabled:
            self.cache = ServiceCache(
                build_backend(settings, lambda: kb.connection),
                answer_ttl_s=settings.cache.answer_ttl_s,
                embedding_ttl_s=settings.cache.embedding_ttl_s,
                on_lookup=self.metrics.cache_lookup,
            )
            if kb.wrap_embed_model is None:
                kb.wrap_embed_model = self.cache.wrap_embedding(kb.embed_model_name)
        self.keys = KeyStore(kb.connection, settings.serve.keys_table)
        self.limiter = RateLimiter(build_counter(settings, kb.connection))
        self.access_log = AccessLog(kb.connection, settings.serve.access_log_table)
        self.jobs = IndexJobs(kb, settings.serve.index_roots)
        self._model_lock = threading.Lock()

    def warm_up(self) -> None:
        """Load the models and open the stores before the first request, not during it."""
        kb = self.kb
        kb.vector_store, kb.embed_model, kb.llm, kb.chat_store, kb.query_log, kb.sql_engine, kb.selector

    # -- who is asking -----------------------------------------------------------------------------
    def authenticate(self, authorization: Optional[str]) -> ApiKey:
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer kb-...' (kb keys create)")
        key = self.keys.authenticate(authorization[7:].strip())
        if key is None:
            raise ApiError(401, "unknown or revoked API key")
        s = self.kb.settings.serve
        retry = self.limiter.check_request(
            key.id, key.requests_per_minute or s.requests_per_minute, key.tokens_per_minute or s.tokens_per_minute
        )
        if retry is not None:
            raise ApiError(
                429, f"rate limit of key {key.name!r} reached; retry in {retry} s", {"Retry-After": str(retry)}
            )
        return key

    @staticmethod
    def require(key: ApiKey, scope: str) -> None:
        if not key.allows(scope):
            raise ApiError(403, f"key {key.name!r} has scope {key.scope!r}; this needs {scope!r}")

    def options(self, key: ApiKey, filters: Optional[MetadataFilters]) -> dict[str, Any]:
        """What every engine a key reaches is built with: its collections, and the database only if granted."""
        return {"filters": restrict(key.collections, filters), "database": key.sql}

    def check_route(self, key: ApiKey, route: Optional[str]) -> None:
        if route in ("database", "both") and not key.sql:
            raise ApiError(403, f"key {key.name!r} may not query the business database (kb keys create --sql)")

    @contextmanager
    def generating(self) -> Iterator[None]:
        with self._model_lock:
            yield

    def count(self, key: ApiKey, answer: Answer) -> int:
        tokens_in, tokens_out = int(answer.tokens.get("in", 0)), int(answer.tokens.get("out", 0))
        self.limiter.add_tokens(key.id, tokens_in + tokens_out)
        self.metrics.count_tokens(tokens_in, tokens_out)
        return tokens_in + tokens_out

    def log_access(self, record: AccessRecord) -> None:
        """One access-log row; a failure is logged, never the request's (the database may be down)."""
        try:
            self.access_log.record(record)
        except Exception as exc:
            log.warning("access log not written: %s", exc)

    # -- answers -----------------------------------------------------------------------------------
    def _answer_key(self, kind: str, key: ApiKey, body: dict[str, Any]) -> str:
        versions = self.kb.collection_versions.current(key.collections)
        return cache_key(kind, body, sorted(key.collections), key.sql, versions, self.kb.llm_model_name)

    def cached(self, kind: str, key: ApiKey, body: dict[str, Any], compute: Any) -> tuple[dict[str, Any], str]:
        """``compute()``'s answer, or the cached one; and "hit", "miss" or "off"."""
        if self.cache is None:
            return compute(), "off"
        ck = self._answer_key(kind, key, body)
        found = self.cache.get_answer(ck)
        if found is not None:
            return found, "hit"
        result = compute()
        if not result.get("refused"):
            self.cache.put_answer(ck, result)
        return result, "miss"

    def retrieve(self, key: ApiKey, req: RetrieveRequest) -> list[dict[str, Any]]:
        options = self.options(key, req.metadata_filters())
        options.pop("database")
        hits = self.kb.retrieve(req.question, top_k=req.top_k, mode=req.mode, **options)
        return [source_dict(Source.from_node(h)) for h in hits]

    def query(self, key: ApiKey, req: QueryRequest) -> tuple[dict[str, Any], str, int]:
        self.check_route(key, req.route)
        options = self.options(key, req.metadata_filters())
        extra = {k: v for k, v in (("top_k", req.top_k), ("mode", req.mode)) if v is not None}
        tokens = 0

        def compute() -> dict[str, Any]:
            nonlocal tokens
            with self.generating():
                answer = self.kb.query(req.question, route=req.route, **options, **extra)
            tokens = self.count(key, answer)
            return answer_dict(answer)

        result, state = self.cached("query", key, req.model_dump(), compute)
        return result, state, tokens

    def sql(self, key: ApiKey, question: str) -> dict[str, Any]:
        self.check_route(key, "database")
        with self.generating():
            answer = self.kb.sql(question)
        self.count(key, answer)
        return answer_dict(answer)

    def route(self, key: ApiKey, question: str) -> dict[str, Any]:
        with self.generating():
            decision = self.kb.route(question, database=key.sql)
        return {"route": decision.route, "reason": decision.reason, "selector": decision.selector}

    # -- chat --------------------------------------------------------------------------------------
    @staticmethod
    def session_name(key: ApiKey, session: str) -> str:
        """Sessions live in the key's own namespace: another key cannot name, list or read them."""
        if not session or len(session) > 200:
            raise ApiError(422, "a session name must be 1 to 200 characters")
        return f"k{key.id}:{session}"

    def chat_session(self, key: ApiKey, request: ChatCompletionRequest, session: Optional[str]) -> tuple[str, bool]:
        """The stored session this turn belongs to, and whether it is a throw-away one (no session named:
        the request carries the whole history, loaded into a fresh session for this turn only)."""
        if session:
            return self.session_name(key, session), False
        stored = self.session_name(key, f"~{uuid.uuid4().hex}")
        history = [
            LlamaChatMessage(role=MessageRole.USER if m.role == "user" else MessageRole.ASSISTANT, content=m.text())
            for m in request.history()
        ]
        if history:
            self.kb.chat_store.set_messages(stored, history)
        return stored, True

    def chat(self, key: ApiKey, request: ChatCompletionRequest, session: Optional[str]) -> tuple[Answer, Optional[str]]:
        question = self._question(request)
        stored, throwaway = self.chat_session(key, request, session)
        try:
            with self.generating():
                answer = self.kb.chat(stored, question, **self.options(key, None))
        finally:
            if throwaway:
                self.kb.delete_session(stored)
        self.count(key, answer)
        return answer, None if throwaway else session

    def stream_chat(self, key: ApiKey, request: ChatCompletionRequest, session: Optional[str]) -> tuple[Any, Any]:
        """The text pieces, and a ``finish()`` returning (Answer, session) once they are consumed.

        The turn is generated by a thread of its own, started when the first piece is asked for, which
        holds the model lock from the condensing call to the last token and then releases it, whether
        or not anyone still reads: a client that leaves mid-stream cannot leave the lock held (a
        generator abandoned by the server would release it only when garbage-collected), and llama.cpp
        is never asked for a second answer while the first one is still being generated."""
        question = self._question(request)
        if session:
            self.session_name(key, session)  # a bad name is refused before the stream (and its 200) starts
        turn: dict[str, Any] = {"session": session}
        queue: Queue[Any] = Queue()

        def produce() -> None:
            try:
                stored, throwaway = self.chat_session(key, request, session)
                try:
                    with self._model_lock:
                        turn["streamed"] = self.kb.stream_chat(stored, question, **self.options(key, None))
                        for piece in turn["streamed"]:
                            queue.put(piece)
                finally:
                    if throwaway:
                        turn["session"] = None
                        self.kb.delete_session(stored)
            except BaseException as exc:  # handed to the reader, which raises it in the response
                queue.put(exc)
            queue.put(_END)

        def pieces() -> Iterator[str]:
            threading.Thread(target=produce, name="kb-stream", daemon=True).start()
            while (item := queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item

        def finish() -> tuple[Answer, Optional[str]]:
            answer = turn["streamed"].answer
            self.count(key, answer)
            return answer, turn["session"]

        return pieces(), finish

    @staticmethod
    def _question(request: ChatCompletionRequest) -> str:
        try:
            return request.question()
        except ValueError as exc:
            raise ApiError(422, str(exc)) from None

    def sessions(self, key: ApiKey) -> list[dict[str, Any]]:
        prefix = f"k{key.id}:"
        return [
            {**s, "session": s["session"][len(prefix) :]}
            for s in self.kb.sessions()
            if s["session"].startswith(prefix) and not s["session"].startswith(prefix + "~")
        ]

    def session_turns(self, key: ApiKey, session: str) -> list[dict[str, Any]]:
        stored = self.session_name(key, session)
        turns = self.kb.session_turns(stored)
        if not turns and not self.kb.session_messages(stored):
            raise ApiError(404, f"no session {session!r}")
        return turns

    def delete_session(self, key: ApiKey, session: str) -> None:
        if not self.kb.delete_session(self.session_name(key, session)):
            raise ApiError(404, f"no session {session!r}")

    def check_collection(self, key: ApiKey, collection: str) -> None:
        if not key.sees(collection):
            raise ApiError(403, f"key {key.name!r} has no access to collection {collection!r}")

    def close(self) -> None:
        self.kb.close()


__all__ = ["ApiError", "KBError", "Service", "answer_dict"]
