"""Collections: named groups of indexed documents, the unit of access control and of cache invalidation.

Every chunk carries its collection in its metadata (``collection``), set by ``kb index --collection``
(``default`` when none is given). An API key sees a list of collections; :func:`restrict` turns that
list into a metadata filter ANDed with whatever the client asked for, so a client's own filter can
narrow what it sees but never widen it, whichever search mode runs.

Each collection has a *version*, a fresh random token written whenever an indexing run changes
something in it. Cached answers are keyed by the versions of the collections they were drawn from, so
re-indexing a collection invalidates exactly the answers that could have used it. A random token
rather than a counter: two runs changing the same collection at once cannot write the same value.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Optional

from kb.errors import KBError

if TYPE_CHECKING:
    from llama_index.core.vector_stores.types import MetadataFilters

    from kb.stores.kv_store import MariaDBKVStore

DEFAULT_COLLECTION = "default"
ALL_COLLECTIONS = "*"
METADATA_KEY = "collection"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_VERSIONS = "collection_versions"


def check_collection(name: str) -> str:
    """A collection name as given by a user: letters, digits, ``_ . -``, at most 64 characters."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise KBError(
            f"invalid collection name {name!r}: use 1 to 64 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    return name


def parse_collections(text: str) -> list[str]:
    """``a,b`` -> ``["a", "b"]``; ``*`` means every collection."""
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise KBError("give at least one collection (a,b) or * for all of them")
    if ALL_COLLECTIONS in names:
        return [ALL_COLLECTIONS]
    return sorted({check_collection(n) for n in names})


def restrict(collections: Sequence[str], filters: Optional[MetadataFilters]) -> Optional[MetadataFilters]:
    """``filters`` limited to ``collections`` (``["*"]``: not limited)."""
    # Imported here: the `kb` command's start-up does not pay for LlamaIndex unless it searches.
    from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

    if ALL_COLLECTIONS in collections:
        return filters
    allowed = MetadataFilter(key=METADATA_KEY, value=list(collections), operator=FilterOperator.IN)
    if filters is None or not filters.filters:
        return MetadataFilters(filters=[allowed])
    return MetadataFilters(filters=[allowed, filters], condition=FilterCondition.AND)


class CollectionVersions:
    """The current version of each collection, in the KV store beside the file registry."""

    def __init__(self, kv: MariaDBKVStore, table_name: str) -> None:
        self.kv = kv
        self.name = f"{_VERSIONS}/{table_name}"

    def bump(self, collections: Iterable[str]) -> None:
        for collection in sorted(set(collections)):
            self.kv.put(collection, {"version": uuid.uuid4().hex}, self.name)

    def current(self, collections: Sequence[str]) -> dict[str, str]:
        """The versions of ``collections`` (``["*"]``: of all of them); unseen ones are ``"0"``."""
        known = {k: v.get("version", "0") for k, v in self.kv.get_all(self.name).items()}
        if ALL_COLLECTIONS in collections:
            return dict(sorted(known.items()))
        return {c: known.get(c, "0") for c in sorted(collections)}
