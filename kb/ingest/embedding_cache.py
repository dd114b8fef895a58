"""Vectors by (embedding model, exact text embedded), in the KV store: identical chunks embed once,
and re-indexing a file whose chunks did not change costs no embedding at all."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence
from typing import Optional

from llama_index.core.schema import BaseNode, MetadataMode

from kb.engines.timing import Stopwatch
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

    def fill(
        self,
        nodes: Sequence[BaseNode],
        embed: Callable[[list[str]], list[list[float]]],
        clock: Optional[Stopwatch] = None,
    ) -> int:
        """Give every node the vector of the text it is embedded by (``MetadataMode.EMBED``): from
        the cache, else from ``embed`` (called once, each missing text once), which is then cached.
        Returns how many texts ``embed`` embedded; the time spent goes to the steps "database" and
        "embed" of ``clock`` when given."""
        clock = Stopwatch() if clock is None else clock
        with clock.step("database"):
            texts = [node.get_content(metadata_mode=MetadataMode.EMBED) for node in nodes]
            cached = self.get_many(texts)
        missing = sorted({text for text in texts if self.key(text) not in cached})
        if missing:
            with clock.step("embed"):
                vectors = embed(missing)
            with clock.step("database"):
                self.put_many(list(zip(missing, vectors)))
            cached.update((self.key(text), list(vector)) for text, vector in zip(missing, vectors))
        for node, text in zip(nodes, texts):
            node.embedding = cached[self.key(text)]
        return len(missing)

    def put_many(self, items: Sequence[tuple[str, Sequence[float]]]) -> None:
        self.kv.put_all(
            [(self.key(text), {"v": base64.b64encode(to_bytes(vec)).decode()}) for text, vec in items], self.collection
        )
