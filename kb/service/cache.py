"""The service's cache: whole answers and question embeddings, in the shared state (:mod:`kb.service.shared_state`).

An answer is keyed by everything it depends on: the kind of request, the question and its options,
the key's collections and those collections' current versions (see :mod:`kb.collections`), and the
models. Any indexing run that changes a collection gives it a new version, so the next lookup misses
exactly for the answers that could have drawn on it; the stale entries age out with their TTL.
A question embedding is keyed by the model, the text and the caller's partition (the service gives
the key's collections): it does not depend on the index, but a hit, seen in its speed or in
``/metrics``, would tell one key which questions another asked, so keys that see different
collections never share an entry.

Values are JSON (answers) or float32 bytes (vectors), shared by every ``kb serve`` process on the same
database or Redis.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from typing import Any, Optional

from llama_index.core.base.embeddings.base import BaseEmbedding
from pydantic import PrivateAttr

from kb.service.shared_state import SharedState
from kb.stores.sql_utils import from_bytes, to_bytes

log = logging.getLogger("kb.service")


def cache_key(*parts: Any) -> str:
    """A fixed-length key for any JSON-able parts (the order of dict keys does not matter)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8")).hexdigest()


class ServiceCache:
    """Answers and question embeddings; counts hits and misses for ``/metrics``."""

    def __init__(
        self,
        backend: SharedState,
        *,
        answer_ttl_s: int,
        embedding_ttl_s: int,
        on_lookup: Optional[Callable[[str, bool], None]] = None,
        partition: Callable[[], Any] = lambda: None,
    ) -> None:
        self.backend = backend
        self.answer_ttl_s = answer_ttl_s
        self.embedding_ttl_s = embedding_ttl_s
        self.on_lookup = on_lookup or (lambda kind, hit: None)
        self.partition = partition  # who may share a question embedding: called at each lookup

    # A cache that fails (Redis restarting, say) costs speed, never an answer: errors are logged and
    # the lookup counts as a miss.
    def _get(self, key: str) -> Optional[bytes]:
        try:
            return self.backend.get(key)
        except Exception as exc:
            log.warning("cache read failed: %s", exc)
            return None

    def _set(self, key: str, value: bytes, ttl_s: int) -> None:
        try:
            self.backend.put(key, value, ttl_s)
        except Exception as exc:
            log.warning("cache write failed: %s", exc)

    def get_answer(self, key: str) -> Optional[dict[str, Any]]:
        raw = self._get("a:" + key)
        self.on_lookup("answer", raw is not None)
        return json.loads(raw) if raw is not None else None

    def put_answer(self, key: str, answer: dict[str, Any]) -> None:
        self._set("a:" + key, json.dumps(answer, default=str).encode("utf-8"), self.answer_ttl_s)

    def query_embedding(self, model: str, text: str, compute: Callable[[], Sequence[float]]) -> list[float]:
        key = "e:" + cache_key(model, text, self.partition())
        raw = self._get(key)
        self.on_lookup("embedding", raw is not None)
        if raw is not None:
            return from_bytes(raw).tolist()
        vector = list(compute())
        self._set(key, to_bytes(vector), self.embedding_ttl_s)
        return vector

    def wrap_embedding(self, inner: BaseEmbedding, model_name: str) -> BaseEmbedding:
        """What :meth:`KnowledgeBase.wrap_embedding_models` takes: the model, its question side cached
        under its own name (a switch of models with ``kb reembed`` never mixes their vectors)."""
        return CachedQueryEmbedding(inner=inner, cache=self, cache_name=model_name)


class CachedQueryEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model whose *question* embeddings go through the service's cache.

    Chunk (text) embeddings pass straight through: indexing has its own cache by chunk text.
    """

    inner: BaseEmbedding
    cache_name: str
    _cache: ServiceCache = PrivateAttr()

    def __init__(self, *, inner: BaseEmbedding, cache: ServiceCache, cache_name: str) -> None:
        super().__init__(
            inner=inner, cache_name=cache_name, model_name=inner.model_name, embed_batch_size=inner.embed_batch_size
        )
        self._cache = cache

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._cache.query_embedding(self.cache_name, query, lambda: self.inner.get_query_embedding(query))

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.inner.get_text_embedding(text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.inner.get_text_embedding_batch(texts)
