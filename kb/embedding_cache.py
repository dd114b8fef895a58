"""Vectors by (embedding model, exact text embedded), in the KV store: identical chunks embed once,
and re-indexing a file whose chunks did not change costs no embedding at all."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from kb.stores import MariaDBKVStore
from kb.stores.sql_utils import from_bytes, to_bytes


class EmbeddingCache:
    """Vectors by (model, exact text embedded), in the KV store: identical chunks embed once."""

    def __init__(self, kv: MariaDBKVStore, model_name: str) -> None:
        self.kv = kv
        self.collection = f"embeddings/{model_name}"[:255]

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def get_many(self, texts: Sequence[str]) -> dict[str, list[float]]:
        stored = self.kv.get_many([self.key(t) for t in texts], self.collection)
        return {k: from_bytes(base64.b64decode(v["v"])).tolist() for k, v in stored.items()}

    def put_many(self, items: Sequence[tuple[str, Sequence[float]]]) -> None:
        self.kv.put_all(
            [(self.key(text), {"v": base64.b64encode(to_bytes(vec)).decode()}) for text, vec in items], self.collection
        )
