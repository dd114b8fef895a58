"""Dense search on MariaDB's HNSW index, and when to scan exactly instead.

The index is used only in its own shape, ``ORDER BY VEC_DISTANCE_<metric>(embedding, ?) LIMIT k``,
and MariaDB applies WHERE to what the graph search yields: a selective restriction (metadata
filter, doc_ids, node_ids) can return worse neighbours than the true nearest among the rows that
pass. :func:`plan` decides, per query:

1. count the rows that pass, stopping at ``25 * exact_scan_max`` (a LIMIT-ed subquery, so an
   unselective filter is counted cheaply; ``doc_ids``/``node_ids`` use their indexes);
2. at most ``exact_scan_max`` rows (default 4000): scan them exactly, without the index (distances
   for a few thousand rows cost a few milliseconds and the answer is exact);
3. more: use the index with ``ef_search`` widened by the inverse of the share of rows that pass
   (capped at 25x and at 10,000), so that the graph search looks at about as many qualifying rows
   as an unfiltered search would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kb.stores.connection import MariaDBConnection

MAX_EF = 10_000


def distance_function(distance: str) -> str:
    return "VEC_DISTANCE_COSINE" if distance == "cosine" else "VEC_DISTANCE_EUCLIDEAN"


def similarity(distance: str, value: float) -> float:
    """The store's score for a distance: 1 - d for cosine, 1 / (1 + d) for euclidean."""
    return 1.0 - float(value) if distance == "cosine" else 1.0 / (1.0 + float(value))


@dataclass(frozen=True)
class DensePlan:
    exact: bool
    ef_search: int


def plan(
    conn: MariaDBConnection,
    table_sql: str,
    table_name: str,
    where: str,
    params: list[Any],
    k: int,
    ef_search: int,
    exact_scan_max: int,
) -> DensePlan:
    """Index or exact scan for a search restricted by ``where`` (see the module docstring)."""
    if not 1 <= ef_search <= MAX_EF:
        raise ValueError(f"ef_search must be between 1 and {MAX_EF}")
    ef = max(ef_search, k)
    if where == "TRUE":
        return DensePlan(False, min(ef, MAX_EF))
    cap = 25 * max(exact_scan_max, 1)
    matching = int(
        conn.fetchall(f"SELECT COUNT(*) FROM (SELECT 1 FROM {table_sql} WHERE {where} LIMIT {cap}) AS passing", params)[
            0
        ][0]
    )
    if matching <= exact_scan_max:
        return DensePlan(True, ef)
    rows = conn.fetchall(
        "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
        (table_name,),
    )
    total = max(int(rows[0][0] or 0) if rows else 0, matching)
    return DensePlan(False, int(min(MAX_EF, ef * min(25.0, total / matching))))


def statement(table_sql: str, distance: str, columns: str, where: str, k: int, dense_plan: DensePlan) -> str:
    """The SELECT for a planned dense search; its parameters are the query vector, then ``where``'s."""
    hint = " IGNORE INDEX (embedding)" if dense_plan.exact else ""
    return (
        f"SET STATEMENT mhnsw_ef_search = {int(dense_plan.ef_search)} FOR "
        f"SELECT {columns}, {distance_function(distance)}(embedding, ?) AS distance "
        f"FROM {table_sql}{hint} WHERE {where} ORDER BY distance LIMIT {int(k)}"
    )
