"""One row per query or chat turn: what was asked, which route answered, what it cost; and `kb stats`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

from kb.engines.answer import Answer
from kb.stores.connection import MariaDBConnection, create_table, replica_read


@dataclass
class LatencyStats:
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]


def _number(value: Any) -> Optional[float]:
    return None if value is None else round(float(value), 1)


class QueryLog:
    def __init__(self, connection: MariaDBConnection, table_name: str = "kb_query_log") -> None:
        self._conn = connection
        self._table = create_table(
            self._conn,
            table_name,
            """
                id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
                created_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
                kind VARCHAR(16) NOT NULL,
                session_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
                question MEDIUMTEXT NOT NULL,
                condensed_question MEDIUMTEXT NULL,
                route VARCHAR(16) NOT NULL,
                route_reason TEXT NULL,
                answer MEDIUMTEXT NULL,
                sources JSON NULL,
                `sql` MEDIUMTEXT NULL,
                refused BOOLEAN NOT NULL DEFAULT FALSE,
                retrieval_ms DOUBLE NULL,
                generation_ms DOUBLE NULL,
                total_ms DOUBLE NULL,
                best_score DOUBLE NULL,
                tokens_in INT UNSIGNED NOT NULL DEFAULT 0,
                tokens_out INT UNSIGNED NOT NULL DEFAULT 0,
                llm_model VARCHAR(255) NULL,
                embed_model VARCHAR(255) NULL,
                KEY by_time (created_at),
                KEY by_session (session_id, id)
            """,
            added_columns=[("context_chunks", "SMALLINT UNSIGNED NULL"), ("context_tokens", "INT UNSIGNED NULL")],
        )

    def record(self, answer: Answer, *, kind: str, llm_model: str, embed_model: str) -> None:
        sources = [
            {"path": s.path, "title": s.title, "score": s.score, "node_id": s.node_id, "in_prompt": s.in_prompt}
            for s in answer.sources
        ]
        t = answer.timings
        context = answer.context or {}
        self._conn.execute(
            f"INSERT INTO {self._table} (kind, session_id, question, condensed_question, route, route_reason, answer, "
            "sources, `sql`, refused, retrieval_ms, generation_ms, total_ms, best_score, tokens_in, tokens_out, "
            "llm_model, embed_model, context_chunks, context_tokens) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                kind,
                answer.session_id,
                answer.question,
                answer.condensed_question,
                answer.route,
                answer.route_reason,
                answer.text,
                json.dumps(sources, ensure_ascii=False),
                answer.sql,
                answer.refused,
                t.get("retrieval_ms"),
                t.get("generation_ms"),
                t.get("total_ms"),
                answer.best_score,
                int(answer.tokens.get("in", 0)),
                int(answer.tokens.get("out", 0)),
                llm_model,
                embed_model,
                len(context["in_prompt"]) if "in_prompt" in context else None,
                context.get("tokens"),
            ),
        )

    @replica_read
    def turns(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._conn.fetchall(
            f"SELECT created_at, question, condensed_question, route, route_reason, answer, sources, `sql`, refused "
            f"FROM {self._table} WHERE session_id = ? ORDER BY id",
            (session_id,),
        )
        keys = [
            "time",
            "question",
            "condensed_question",
            "route",
            "route_reason",
            "answer",
            "sources",
            "sql",
            "refused",
        ]
        turns = [dict(zip(keys, row)) for row in rows]
        for turn in turns:
            turn["sources"] = json.loads(turn["sources"]) if turn["sources"] else []
        return turns

    def delete_session(self, session_id: str) -> int:
        return self._conn.execute(f"DELETE FROM {self._table} WHERE session_id = ?", (session_id,))

    def _percentiles(self, column: str) -> LatencyStats:
        rows = self._conn.fetchall(
            f"SELECT DISTINCT PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY {column}) OVER (), "
            f"PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY {column}) OVER (), "
            f"PERCENTILE_CONT(0.99) WITHIN GROUP (ORDER BY {column}) OVER () "
            f"FROM {self._table} WHERE {column} IS NOT NULL"
        )
        if not rows:
            return LatencyStats(None, None, None)
        return LatencyStats(*(None if v is None else float(v) for v in rows[0]))

    @replica_read
    def stats(self) -> dict[str, Any]:
        """Counts by kind and route, latency percentiles, tokens by model."""
        counts = self._conn.fetchall(
            f"SELECT kind, route, COUNT(*) FROM {self._table} GROUP BY kind, route ORDER BY kind, route"
        )
        tokens = self._conn.fetchall(
            f"SELECT llm_model, COUNT(*), SUM(tokens_in), SUM(tokens_out) FROM {self._table} GROUP BY llm_model ORDER BY llm_model"
        )
        routes = self._conn.fetchall(
            f"SELECT route, COUNT(*), AVG(total_ms), MAX(total_ms), AVG(tokens_in), AVG(context_chunks), "
            f"AVG(context_tokens) FROM {self._table} GROUP BY route ORDER BY route"
        )
        total, sessions, refused = self._conn.fetchall(
            f"SELECT COUNT(*), COUNT(DISTINCT session_id), COALESCE(SUM(refused), 0) FROM {self._table}"
        )[0]
        return {
            "total": int(total),
            "sessions": int(sessions),
            "refused": int(refused),
            "by_kind_route": [{"kind": k, "route": r, "count": int(n)} for k, r, n in counts],
            "latency_ms": {
                col: self._percentiles(col).__dict__ for col in ("total_ms", "retrieval_ms", "generation_ms")
            },
            "by_route": [
                {
                    "route": route,
                    "count": int(n),
                    "mean_total_ms": _number(mean_ms),
                    "max_total_ms": _number(max_ms),
                    "mean_tokens_in": _number(tokens_in),
                    "mean_context_chunks": _number(chunks),
                    "mean_context_tokens": _number(context_tokens),
                }
                for route, n, mean_ms, max_ms, tokens_in, chunks, context_tokens in routes
            ],
            "tokens_by_model": [
                {"model": m, "calls": int(c), "in": int(i or 0), "out": int(o or 0)} for m, c, i, o in tokens
            ],
        }
