"""Request bodies of kb's own endpoints (``/v1/query`` and friends), validated by pydantic.

Filters are LlamaIndex's own ``MetadataFilters`` JSON, or a plain ``{"key": value}`` mapping for
equality; either way the service ANDs the key's collections onto them (:func:`kb.collections.restrict`).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from llama_index.core.vector_stores.types import MetadataFilters
from pydantic import BaseModel, ConfigDict, Field, field_validator

from kb.collections import check_collection
from kb.config import RetrievalMode
from kb.errors import KBError
from kb.operations.query_log import Rating
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


class FeedbackRequest(_Body):
    answer_id: str = Field(..., pattern=r"^[0-9a-f]{32}$", description="the answer_id of an answer this key was given")
    rating: Rating
    comment: Optional[str] = Field(None, max_length=2000)
    sql: Optional[str] = Field(
        None,
        min_length=1,
        max_length=20000,
        description="with a negative rating of a database answer: the right statement (admin keys only)",
    )


class ExampleRequest(_Body):
    """An approved question/SQL pair: both given, or an answer's (``answer_id``, its SQL or ``sql``)."""

    question: Optional[str] = Field(None, min_length=1, max_length=2000)
    sql: Optional[str] = Field(None, min_length=1, max_length=20000)
    answer_id: Optional[str] = Field(None, pattern=r"^[0-9a-f]{32}$")


class ExampleImport(_Body):
    pairs: list[dict[str, str]] = Field(..., min_length=1, max_length=1000, description="[{q: ..., sql: ...}]")


class IndexRequest(_Body):
    path: str = Field(
        ...,
        min_length=1,
        max_length=1024,
        description="a folder under one of serve.index_roots (relative to the first)",
    )
    collection: str = Field("default", description="1 to 64 letters, digits, '_', '.' or '-'")
    include: Optional[list[str]] = Field(None, max_length=100)
    exclude: Optional[list[str]] = Field(None, max_length=100)

    @field_validator("collection")
    @classmethod
    def _valid_collection(cls, name: str) -> str:
        try:
            return check_collection(name)
        except KBError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("path")
    @classmethod
    def _valid_path(cls, path: str) -> str:
        if "\x00" in path:
            raise ValueError("a path cannot contain a NUL character")
        return path


def parse_filters(raw: Optional[dict[str, Any]]) -> Optional[MetadataFilters]:
    """LlamaIndex ``MetadataFilters`` JSON (``{"filters": [...], "condition": "and"}``) or ``{key: value}``."""
    if not raw:
        return None
    return MetadataFilters.model_validate(raw) if "filters" in raw else filters_from(raw)
