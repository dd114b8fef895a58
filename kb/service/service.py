"""What one ``kb serve`` process holds and does: a KnowledgeBase (models loaded once), the keys, the
rate limiter, the cache, the access log and the metrics; the HTTP layer (:mod:`kb.service.app`) only
translates requests to these calls and their outcomes to responses.

Access control lives here, in one place: every engine a request reaches is built with the key's
collections ANDed onto the client's filters (:func:`kb.collections.restrict`), without the database
unless the key has that grant, and with chat sessions named inside the key's own namespace. A
client's filters can narrow what it sees, never widen it; another key's sessions do not exist for it.

The local LLM answers one prompt at a time (llama.cpp's context is not thread-safe), so questions
that generate take turns in :class:`~kb.service.model_queue.ModelQueue`, a line of bounded length
with a share per key, whose waits end with the request's deadline; retrieval, routing without the
LLM and health checks never wait for it.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from queue import Empty, Queue
from typing import Any, Optional

from llama_index.core.llms import ChatMessage as LlamaChatMessage
from llama_index.core.llms import MessageRole
from llama_index.core.vector_stores.types import MetadataFilters

from kb.business_database.examples import ExampleRefused
from kb.collections import restrict
from kb.engines.answer import Answer, Source
from kb.errors import KBError
from kb.knowledge_base import KnowledgeBase
from kb.models.token_counts import TokenCounter
from kb.operations.query_log import asked_by
from kb.service.access_log import AccessLog
from kb.service.cache import ServiceCache, cache_key
from kb.service.experiments import Experiments
from kb.service.gate import ApiError, RequestBudget, current_budget, current_caller
from kb.service.health import HealthProbe
from kb.service.jobs import IndexJobs
from kb.service.keys import ApiKey, KeyStore
from kb.service.metrics import ServiceMetrics
from kb.service.model_queue import ModelQueue
from kb.service.openai_chat import ChatCompletionRequest
from kb.service.ratelimit import RateLimiter, address_tag
from kb.service.schemas import ExampleImport, ExampleRequest, QueryRequest, RetrieveRequest
from kb.service.shared_state import build_shared_state
from kb.stores.connection import MariaDBConnection
from kb.stores.filters import FilterLimits, check_filter_size

log = logging.getLogger("kb.service")
_END = object()  # the end of a streamed turn's pieces


def source_dict(source: Source) -> dict[str, Any]:
    return {
        "node_id": source.node_id,
        "path": source.path,
        "title": source.title,
        "score": source.score,
        "text": source.text,
        "collection": source.metadata.get("collection"),
        "in_prompt": source.in_prompt,
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
        # The gate's own work (keys, rate limits, the access log) has a pool of its own, so requests
        # holding every connection of kb's pool (indexing jobs, slow questions) cannot starve it.
        self.gate_connection = MariaDBConnection(
            kb.connection.url, pool_size=2, connect_timeout=settings.database.connect_timeout
        )
        shared = build_shared_state(settings, lambda: self.gate_connection)  # the cache's and the rate limits'
        self.cache: Optional[ServiceCache] = None
        if settings.cache.enabled:
            self.cache = ServiceCache(
                shared,
                answer_ttl_s=settings.cache.answer_ttl_s,
                embedding_ttl_s=settings.cache.embedding_ttl_s,
                on_lookup=self.metrics.cache_lookup,
                partition=self._caller_collections,
            )
            kb.wrap_embedding_models(self.cache.wrap_embedding)
        self.keys = KeyStore(self.gate_connection, settings.serve.keys_table)
        self.limiter = RateLimiter(shared)
        self.access_log = AccessLog(self.gate_connection, settings.serve.access_log_table)
        self.jobs = IndexJobs(kb, settings.serve.index_roots, settings.serve.max_jobs_per_key)
        self.model_queue = ModelQueue(settings.serve.model_queue, self.metrics, settings.serve.model_queue_per_key)
        self.health = HealthProbe(kb.connection.url, kb.connection.replica_status)
        self.health.start()
        self.filter_limits = FilterLimits(
            values=settings.serve.max_filter_values,
            leaves=settings.serve.max_filter_leaves,
            depth=settings.serve.max_filter_depth,
            parameters=settings.serve.max_filter_parameters,
        )
        self.experiments = Experiments(settings.serve.experiments)
        self._closing = threading.Event()
        self._blocked: dict[str, float] = {}  # address tag -> time.monotonic() until which its wrong keys get 429

    @staticmethod
    def _caller_collections() -> list[str]:
        """The collections of the key the current request came with (the question-embedding cache's
        partition): keys that see other collections never share a cached embedding."""
        key: Optional[ApiKey] = current_caller()
        return sorted(key.collections) if key is not None else []

    def warm_up(self) -> None:
        """Load the models and open the stores before the first request, not during it; start the
        business database's SQL prompts' warming (:meth:`KnowledgeBase.warm_sql_prompts`: a request
        that needs the model meanwhile waits for it, as for any generation) and the access log's
        pruning (rows older than ``serve.access_log_days``, now and every hour)."""
        self.kb.warm_up()
        threading.Thread(target=self._warm_sql_prompts, name="kb-sql-prompt-warming", daemon=True).start()
        threading.Thread(target=self._prune_access_log, name="kb-access-log-prune", daemon=True).start()

    def _warm_sql_prompts(self) -> None:
        try:
            self.kb.warm_sql_prompts()
        except Exception:  # a warming that fails costs the first question time, never the service
            log.warning("the SQL prompts could not be warmed", exc_info=True)

    def _prune_access_log(self) -> None:
        days = self.kb.settings.serve.access_log_days
        while True:
            try:
                removed = self.access_log.prune(days)
                if removed:
                    log.info("access log: %d rows older than %d days deleted", removed, days)
            except Exception as exc:  # the database may be down for a while: next hour
                log.warning("access log not pruned: %s", exc)
            if self._closing.wait(3600):
                return

    # -- who is asking -----------------------------------------------------------------------------
    def identify(self, authorization: Optional[str], address: str = "") -> ApiKey:
        """The active key of an ``Authorization: Bearer kb-...`` header, or 401. Once a client address
        has sent ``serve.wrong_keys_per_minute`` requests with a missing or wrong key, its next ones get
        429 until the minute's end, without an access-log row (``/metrics`` counts them); a valid key
        from that address is still served."""
        key = None
        if authorization and authorization.lower().startswith("bearer "):
            key = self.keys.authenticate(authorization[7:].strip())
        if key is not None:
            return key
        tag = address_tag(address)  # the socket's address, or a trusted proxy's X-Forwarded-For: any text
        blocked_until = self._blocked.get(tag, 0.0)
        if time.monotonic() < blocked_until:
            retry = max(1, int(blocked_until - time.monotonic() + 0.999))
            raise ApiError(
                429,
                f"too many requests with a wrong API key from this address; retry in {retry} s",
                {"Retry-After": str(retry)},
                logged=False,
            )
        if self.limiter.count_wrong_key(tag) >= self.kb.settings.serve.wrong_keys_per_minute:
            now = time.monotonic()
            for expired in [a for a, until in self._blocked.items() if until <= now]:  # bounded by the minute's flood
                self._blocked.pop(expired, None)
            self._blocked[tag] = now + self.limiter.seconds_left()
        if not authorization or not authorization.lower().startswith("bearer "):
            raise ApiError(401, "missing API key: send the header 'Authorization: Bearer kb-...' (kb keys create)")
        raise ApiError(401, "unknown, revoked or expired API key")

    def admit(self, key: ApiKey) -> None:
        """Count one request of ``key``; 429 with ``Retry-After`` when it is over a limit."""
        s = self.kb.settings.serve
        retry = self.limiter.check_request(
            key.id, key.requests_per_minute or s.requests_per_minute, self._token_limit(key)
        )
        if retry is not None:
            raise ApiError(
                429, f"rate limit of key {key.name!r} reached; retry in {retry} s", {"Retry-After": str(retry)}
            )

    def _token_limit(self, key: ApiKey) -> int:
        return key.tokens_per_minute or self.kb.settings.serve.tokens_per_minute

    @staticmethod
    def require(key: ApiKey, scope: str) -> None:
        if not key.allows(scope):
            raise ApiError(403, f"key {key.name!r} has scope {key.scope!r}; this needs {scope!r}")

    def options(self, key: ApiKey, filters: Optional[MetadataFilters]) -> dict[str, Any]:
        """What every engine a key reaches is built with: its collections, and the database only if
        granted. A client's filters over ``serve.max_filter_*`` are refused here (422), before any
        connection is taken."""
        check_filter_size(filters, self.filter_limits, names="serve.")
        return {"filters": restrict(key.collections, filters), "database": key.sql}

    def check_route(self, key: ApiKey, route: Optional[str]) -> None:
        if route in ("database", "both") and not key.sql:
            raise ApiError(403, f"key {key.name!r} may not query the business database (kb keys create --sql)")

    def generating(self, key: ApiKey, budget: Optional[RequestBudget] = None) -> AbstractContextManager[None]:
        """Hold the model for ``key``'s request (after waiting for it within its share of the line and
        the request's budget)."""
        return self.model_queue.turn(key.name, budget)

    def count(self, key: ApiKey, answer: Answer) -> int:
        tokens_in, tokens_out = int(answer.tokens.get("in", 0)), int(answer.tokens.get("out", 0))
        self.limiter.add_tokens(key.id, tokens_in + tokens_out)
        self.metrics.count_tokens(tokens_in, tokens_out)
        return tokens_in + tokens_out

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
        variant, tried = self.experiments.assign(key.id)
        asked = {k: v for k, v in (("top_k", req.top_k), ("mode", req.mode)) if v is not None}
        extra = {**tried, **asked}  # what the request sets itself wins over its variant's settings
        tokens = 0

        def compute() -> dict[str, Any]:
            nonlocal tokens
            with self.generating(key), asked_by(key.name, variant):
                answer = self.kb.query(req.question, route=req.route, **options, **extra)
            tokens = self.count(key, answer)
            return answer_dict(answer)

        body = {**req.model_dump(), "variant": variant}  # a variant's answers are cached apart
        result, state = self.cached("query", key, body, compute)
        if state == "hit" and result.get("answer_id"):  # logged again, for this key to rate
            with asked_by(key.name, variant):
                result = {**result, "answer_id": self.kb.query_log.served_again(result["answer_id"])}
        return {**result, "variant": variant}, state, tokens

    def chat_options(self, key: ApiKey, session: Optional[str]) -> tuple[Optional[str], dict[str, Any]]:
        """A chat turn's A/B variant (by key or session) and the engine options it is answered with."""
        variant, tried = self.experiments.assign(key.id, session)
        return variant, {**self.options(key, None), **tried}

    def rate(
        self, key: ApiKey, answer_id: str, rating: str, comment: Optional[str], sql: Optional[str] = None
    ) -> Optional[str]:
        """Rate an answer this key was given; 404 for any other (whether it exists is not said). What
        the rating teaches (:meth:`KnowledgeBase.learn_from_rating`): only an admin key's rating adds a
        pair to the approved examples, and only an admin key may give a corrected statement."""
        if sql is not None:
            self.require(key, "admin")
        if not self.kb.query_log.rate(answer_id, rating, comment, asker=key.name):
            raise ApiError(404, f"no answer {answer_id!r} was given to key {key.name!r}")
        return self.kb.learn_from_rating(answer_id, rating, sql=sql, asker=key.name, may_add=key.allows("admin"))

    # -- approved question/SQL pairs: admin keys with the database grant --------------------------------
    def _teacher(self, key: ApiKey) -> None:
        self.require(key, "admin")
        self.check_route(key, "database")

    def examples(self, key: ApiKey) -> list[dict[str, Any]]:
        self._teacher(key)
        return [example.to_dict() for example in self.kb.list_sql_examples()]

    def add_example(self, key: ApiKey, request: ExampleRequest) -> tuple[dict[str, Any], bool]:
        """Approve a pair (given, or a logged answer's that this key was given); 422 with the reason
        when it does not pass the guard or run."""
        self._teacher(key)
        try:
            if request.answer_id:
                if request.question:
                    raise ApiError(422, "give an answer_id or a question, not both")
                example, new = self.kb.sql_example_from_answer(
                    request.answer_id, sql=request.sql, source="api", added_by=key.name, asker=key.name
                )
            elif request.question and request.sql:
                example, new = self.kb.add_sql_example(request.question, request.sql, source="api", added_by=key.name)
            else:
                raise ApiError(422, "give a question and its sql, or the answer_id of an answer to approve")
        except ExampleRefused as refused:
            raise ApiError(422, str(refused)) from None
        return example.to_dict(), new

    def import_examples(self, key: ApiKey, request: ExampleImport) -> dict[str, Any]:
        self._teacher(key)
        pairs = []
        for number, item in enumerate(request.pairs, 1):
            if not item.get("q") or not item.get("sql"):
                raise ApiError(422, f"pair {number} needs a q and an sql")
            pairs.append((item["q"], item["sql"]))
        added, known, refused = self.kb.import_sql_examples(pairs, source="api", added_by=key.name)
        return {"added": added, "already": known, "refused": [{"q": q, "reason": why} for q, why in refused]}

    def remove_example(self, key: ApiKey, example_id: str) -> None:
        self._teacher(key)
        if not self.kb.remove_sql_example(example_id):
            raise ApiError(404, f"no approved example {example_id!r}")

    def check_examples(self, key: ApiKey) -> dict[str, Any]:
        self._teacher(key)
        failing = self.kb.check_sql_examples()
        return {"failing": [{**example.to_dict(), "reason": why} for example, why in failing]}

    def sql(self, key: ApiKey, question: str) -> dict[str, Any]:
        self.check_route(key, "database")
        with self.generating(key), asked_by(key.name):  # the key may rate it (and teach kb with it)
            answer = self.kb.sql(question)
        self.count(key, answer)
        return answer_dict(answer)

    def route(self, key: ApiKey, question: str) -> dict[str, Any]:
        """Where the question would go for this key: judged within its collections; the model is
        waited for only when the selector asks it."""
        options = self.options(key, None)
        if self.kb.routes_with_llm:
            with self.generating(key):
                decision = self.kb.route(question, **options)
        else:
            decision = self.kb.route(question, **options)
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
        newest = request.history()[-self.kb.settings.serve.max_history_messages :]  # before anything counts them
        history = [
            LlamaChatMessage(role=MessageRole.USER if m.role == "user" else MessageRole.ASSISTANT, content=m.text())
            for m in newest
        ]
        if history:
            self.kb.chat_store.set_messages(stored, history)
        return stored, True

    def chat(self, key: ApiKey, request: ChatCompletionRequest, session: Optional[str]) -> tuple[Answer, Optional[str]]:
        question = self._question(request)
        stored, throwaway = self.chat_session(key, request, session)
        try:
            variant, options = self.chat_options(key, session)
            with self.generating(key), asked_by(key.name, variant):
                answer = self.kb.chat(stored, question, **options)
        finally:
            if throwaway:
                self.kb.delete_session(stored, keep_log=True)
        self.count(key, answer)
        return answer, None if throwaway else session

    def stream_chat(self, key: ApiKey, request: ChatCompletionRequest, session: Optional[str]) -> ChatStream:
        """A streamed turn, generated by a thread of its own (see :class:`ChatStream`). Returns once
        that thread holds the model: a full queue (503), the deadline (504) or a client gone (499)
        is refused before the response's status line is sent."""
        question = self._question(request)
        if session:
            self.session_name(key, session)  # a bad name is refused before the stream (and its 200) starts
        stream = ChatStream(self, key, request, question, session, current_budget())
        stream.start()
        return stream

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
        self._closing.set()
        self.kb.close()
        self.gate_connection.dispose()
        self.health.close()


class ChatStream:
    """One streamed chat turn of ``kb serve``.

    A thread of its own, started in the request's context, waits for the model, then holds it from
    the condensing call to the last token and always releases it. The reader (the HTTP response)
    takes the pieces from a queue. Generation stops, the model is released and the turn is not
    remembered, when the request's budget is over (deadline passed, client gone) or the key's
    tokens-per-minute runs out; the tokens are counted against the key's limit as they are produced
    (every ``_COUNT_EVERY`` pieces), so a stream cannot escape the limit by being abandoned.
    """

    _COUNT_EVERY = 16

    def __init__(
        self,
        service: Service,
        key: ApiKey,
        request: ChatCompletionRequest,
        question: str,
        session: Optional[str],
        budget: Optional[RequestBudget],
    ) -> None:
        self.service, self.key, self.request = service, key, request
        self.question, self.session, self.budget = question, session, budget
        self.pieces: Queue[Any] = Queue()
        self.answer: Optional[Answer] = None
        self.stopped_by: Optional[str] = None  # "deadline", "client", "token limit"
        self.tokens = 0  # counted against the key so far
        self.status: Optional[int] = None  # an error status the response reported mid-stream
        self._admitted = threading.Event()
        self._done = threading.Event()
        self._refusal: Optional[BaseException] = None

    def start(self) -> None:
        context = contextvars.copy_context()  # the budget, and the turn's token count, follow the thread
        threading.Thread(target=context.run, args=(self._produce,), name="kb-stream", daemon=True).start()
        self._admitted.wait()
        if self._refusal is not None:
            raise self._refusal

    def _why_stop(self) -> Optional[str]:
        if self.budget is not None and self.budget.cancelled.is_set():
            return "client"
        if self.budget is not None and self.budget.expired:
            return "deadline"
        limiter = self.service.limiter
        if limiter.tokens_used(self.key.id) >= self.service._token_limit(self.key):
            return "token limit"
        return None

    def _count(self, total: int) -> None:
        """Bring the tokens counted against the key up to ``total``."""
        if total > self.tokens:
            self.service.limiter.add_tokens(self.key.id, total - self.tokens)
            self.tokens = total

    def _produce(self) -> None:
        service, kb = self.service, self.service.kb
        try:
            variant, options = service.chat_options(self.key, self.session)
            with service.generating(self.key, self.budget), asked_by(self.key.name, variant):
                self._admitted.set()
                stored, throwaway = service.chat_session(self.key, self.request, self.session)
                try:
                    streamed = kb.stream_chat(stored, self.question, **options)
                    counts = TokenCounter.current()  # the turn's, started by stream_chat in this context
                    tokenize = kb.token_counter.tokenizer
                    produced = 0
                    for i, piece in enumerate(streamed, 1):
                        if self.stopped_by:
                            continue  # the generating thread stops at its next piece; these are dropped
                        self.pieces.put(piece)
                        produced += len(tokenize(piece)) if piece else 0
                        if i % self._COUNT_EVERY == 0:
                            self._count(counts.total + produced if counts else produced)
                            self.stopped_by = self._why_stop()
                        elif self.budget is not None and self.budget.over:
                            self.stopped_by = self._why_stop()
                        if self.stopped_by:
                            streamed.stop()
                    if streamed.response.metadata.get("stopped") and not self.stopped_by:
                        self.stopped_by = self._why_stop() or "client"  # the model itself was told to stop
                    self.answer = streamed.answer
                    if counts is not None:
                        self.answer.tokens = counts.as_dict()
                        self._count(counts.total)
                    service.metrics.count_tokens(int(self.answer.tokens["in"]), int(self.answer.tokens["out"]))
                finally:
                    if throwaway:
                        self.session = None
                        kb.delete_session(stored, keep_log=True)
        except BaseException as exc:  # handed to the reader, which raises it in the response
            if self._admitted.is_set():
                self.pieces.put(exc)
            else:
                self._refusal = exc
        finally:
            self._admitted.set()
            self._done.set()
            self.pieces.put(_END)

    def outcome(self) -> tuple[Answer, Optional[str], str]:
        """After the last piece: the answer, the session it belongs to and OpenAI's finish reason;
        raises the refusal that ended the stream early (deadline 504, client gone 499)."""
        if self.stopped_by == "deadline":
            raise ApiError(504, "the answer ran out of time (serve.request_timeout_s); it stops here")
        if self.stopped_by == "client":
            raise ApiError(499, "the client closed the request")
        assert self.answer is not None
        return self.answer, self.session, "length" if self.stopped_by == "token limit" else "stop"

    def settle(self, wait_s: float = 10.0) -> dict[str, Any]:
        """Once generation has ended (at most ``wait_s`` later): what the access log records."""
        self._done.wait(wait_s)
        status = self.status or {"client": 499, "deadline": 504}.get(self.stopped_by or "")
        return {
            "route": self.answer.route if self.answer else None,
            "tokens": self.tokens,
            "cost": self.answer.cost_usd if self.answer else None,
            **({"status_override": status} if status else {}),
        }

    def __iter__(self) -> Iterator[str]:
        """The pieces as they come; raises what stopped the turn, if it failed."""
        while True:
            try:
                item = self.pieces.get(timeout=0.5)
            except Empty:
                continue  # the producer always ends (its budget), and always puts _END
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


__all__ = ["ApiError", "KBError", "Service", "answer_dict"]
