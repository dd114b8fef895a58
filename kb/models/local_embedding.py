"""LlamaIndex's ``HuggingFaceEmbedding`` with concurrent question embeddings computed in batches.

A server embeds one question per request, from many threads at once; on a CPU a batch costs far less
per question (see :mod:`kb.models.coalescer`). Chunk embeddings (indexing) are batched by LlamaIndex already.
"""

from __future__ import annotations

from typing import Any

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.embeddings.huggingface import HuggingFaceEmbedding

from kb.models.coalescer import Coalescer


class LocalHuggingFaceEmbedding(HuggingFaceEmbedding):
    _questions: Coalescer[str, list[float]] = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # HuggingFaceEmbedding embeds a list of questions (with its query prompt) only through _embed.
        self._questions = Coalescer(lambda queries: self._embed(list[Any](queries), prompt_name="query"))

    @classmethod
    def class_name(cls) -> str:
        return "LocalHuggingFaceEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._questions(query)
