"""Request bodies of kb's own endpoints (``/v1/query`` and friends), validated by pydantic.

Filters are LlamaIndex's own ``MetadataFilters`` JSON, or a plain ``{"key": value}`` mapping for
equality; either way the service ANDs the key's collections onto them (:func:`kb.collections.restrict`).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from llama_index.core.vector_stores.types import MetadataFilters
from pydantic import BaseModel, ConfigDict, Field

from kb.config import RetrievalMode
from kb.retrieval import filters_from

Route = Literal["documents", "database", "both"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Question(_Body):
    question: str = Field(..., min_length=1, max_length=20000)


class RetrieveRequest(Question):
    top_k: Optional[int] = Field(None, ge=1, le=100)
    mode: Optional[RetrievalMode] = None
    filters: Optional[dict[str, Any]] = None

    def metadata_filters(self) -> Optional[MetadataFilters]:
        return parse_filters(self.filters)


class QueryRequest(RetrieveRequest):
    route: Optional[Route] = None


class IndexRequest(_Body):
    path: str = Field(..., min_length=1, max_length=4096, description="a folder under one of serve.index_roots")
    collection: str = "default"
    include: Optional[list[str]] = None
    exclude: Optional[list[str]] = None


def parse_filters(raw: Optional[dict[str, Any]]) -> Optional[MetadataFilters]:
    """LlamaIndex ``MetadataFilters`` JSON (``{"filters": [...], "condition": "and"}``) or ``{key: value}``."""
    if not raw:
        return None
    return MetadataFilters.model_validate(raw) if "filters" in raw else filters_from(raw)
