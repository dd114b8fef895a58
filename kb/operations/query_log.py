"""One row per query or chat turn: what was asked, which route answered, what it cost; its rating;
and `kb stats`.

Every answer logged gets an id (``Answer.answer_id``) that the client sees. Feedback is the rating
of one answer (positive, negative or neutral, with an optional comment), stored on its row. When
``kb serve`` answers, the row also names the key that asked (:func:`asked_by`), and only that key
may rate it; an answer served from the cache is logged again under a new id for the key it was
served to.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, Optional

from kb.engines.answer import Answer
from kb.errors import KBError
from kb.stores.connection import MariaDBConnection, create_table, replica_read

Rating = Literal["positive", "negative", "neutral"]
RATINGS: tuple[str, ...] = ("positive", "negative", "neutral")

# The API key on whose behalf answers are being logged, and the A/B variant it was served (kb serve
# sets them around each request; a context variable, so that concurrent requests, and the threads
# they start, each keep their own).
_ASKER: ContextVar[tuple[Optional[str], Optional[str]]] = ContextVar("kb_asker", default=(None, None))


@contextmanager
def asked_by(key_name: Optional[str], variant: Optional[str] = None) -> Iterator[None]:
    """Log the answers given inside this block as asked by ``key_name``, served ``variant``."""
    token = _ASKER.set((key_name, variant))
    try:
        yield
    finally:
        _ASKER.reset(token)


def new_answer_id() -> str:
    return uuid.uuid4().hex


@dataclass
class LatencyStats:
    p50: Optional[float]
    p95: Optional[float]
    p99: Optional[float]


def _number(value: Any) -> Optional[float]:
    return None if value is None else round(float(value), 1)


_RATING_COUNTS = "SUM(rating = 'positive'), SUM(rating = 'negative'), SUM(rating = 'neutral')"  # -> _ratings


def _ratings(positive: Any, negative: Any, neutral: Any) -> dict[str, Any]:
    """Counts of each rating and satisfaction: positive / (positive + negative), None without either."""
    p, n, u = int(positive or 0), int(negative or 0), int(neutral or 0)
    return {"positive": p, "negative": n, "neutral": u, "satisfaction": round(p / (p + n), 3) if p + n else None}


def _of_answer(answer_id: str, asker: Optional[str]) -> tuple[str, list[Any]]:
    """The WHERE clause of one logged answer (only one ``asker`` asked for, when given)."""
    if asker is None:
        return "answer_id = ?", [answer_id]
    return "answer_id = ? AND asked_by = ?", [answer_id, asker]


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
            added_columns=[
                ("context_chunks", "SMALLINT UNSIGNED NULL"),
                ("context_tokens", "INT UNSIGNED NULL"),
                ("answer_id", "CHAR(32) CHARACTER SET ascii NULL"),
                ("asked_by", "VARCHAR(100) NULL"),
                ("rating", "VARCHAR(8) CHARACTER SET ascii NULL"),
                ("rating_comment", "TEXT NULL"),
                ("rated_at", "TIMESTAMP(6) NULL"),
                ("cost_usd", "DOUBLE NULL"),
                ("variant", "VARCHAR(40) NULL"),
            ],
            added_indexes=[("by_answer", "answer_id")],
        )

    def record(self, answer: Answer, *, kind: str, llm_model: str, embed_model: str) -> None:
        """Log ``answer`` (giving it an id if it has none yet)."""
        answer.answer_id = answer.answer_id or new_answer_id()
        asker, variant = _ASKER.get()
        sources = [
            {"path": s.path, "title": s.title, "score": s.score, "node_id": s.node_id, "in_prompt": s.in_prompt}
            for s in answer.sources
        ]
        t = answer.timings
        context = answer.context or {}
        self._conn.execute(
            f"INSERT INTO {self._table} (kind, session_id, question, condensed_question, route, route_reason, answer, "
            "sources, `sql`, refused, retrieval_ms, generation_ms, total_ms, best_score, tokens_in, tokens_out, "
            "llm_model, embed_model, context_chunks, context_tokens, answer_id, asked_by, cost_usd, variant) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                answer.answer_id,
                asker,
                answer.cost_usd,
                variant,
            ),
        )

    def served_again(self, answer_id: str) -> Optional[str]:
        """Log a cached answer served once more (to the current asker): a copy of its row under a new
        id, with no latency of its own; the new id, or None when ``answer_id`` is not logged."""
        new_id = new_answer_id()
        copied = self._conn.execute(
            f"INSERT INTO {self._table} (kind, session_id, question, condensed_question, route, route_reason, answer, "
            "sources, `sql`, refused, best_score, llm_model, embed_model, context_chunks, context_tokens, "
            "answer_id, asked_by, variant, cost_usd) "
            "SELECT 'cached', session_id, question, condensed_question, route, route_reason, answer, sources, `sql`, "
            "refused, best_score, llm_model, embed_model, context_chunks, context_tokens, ?, ?, ?, 0 "
            f"FROM {self._table} WHERE answer_id = ? ORDER BY id LIMIT 1",
            (new_id, *_ASKER.get(), answer_id),
        )
        return new_id if copied else None

    def rate(self, answer_id: str, rating: str, comment: Optional[str] = None, *, asker: Optional[str] = None) -> bool:
        """Store the rating of an answer (a later rating replaces it). With ``asker`` (a key's name),
        only an answer that key asked for is rated. False when there is no such answer."""
        if rating not in RATINGS:
            raise KBError(f"rating must be one of {', '.join(RATINGS)}, not {rating!r}")
        where, params = _of_answer(answer_id, asker)
        found = self._conn.fetchall(f"SELECT id FROM {self._table} WHERE {where} LIMIT 1", params)
        if not found:
            return False
        self._conn.execute(
            f"UPDATE {self._table} SET rating = ?, rating_comment = ?, rated_at = CURRENT_TIMESTAMP(6) WHERE id = ?",
            (rating, comment, found[0][0]),
        )
        return True

    def answer(self, answer_id: str, *, asker: Optional[str] = None) -> Optional[dict[str, Any]]:
        """The logged answer's question (the standalone one, for a chat turn), route, SQL and whether it
        was refused; with ``asker`` only an answer that key asked for. None when there is none."""
        where, params = _of_answer(answer_id, asker)
        rows = self._conn.fetchall(
            f"SELECT COALESCE(condensed_question, question), route, `sql`, refused, rating FROM {self._table} "
            f"WHERE {where} ORDER BY id LIMIT 1",
            params,
        )
        if not rows:
            return None
        question, route, sql, refused, rating = rows[0]
        return {"question": question, "route": route, "sql": sql, "refused": bool(refused), "rating": rating}

    @replica_read
    def feedback(self, *, rating: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rated answers, newest rating first (only those rated ``rating`` when given)."""
        where, params = "rating IS NOT NULL", []
        if rating is not None:
            where += " AND rating = ?"
            params.append(rating)
        rows = self._conn.fetchall(
            f"SELECT answer_id, rated_at, rating, rating_comment, route, question, answer, sources, asked_by "
            f"FROM {self._table} WHERE {where} ORDER BY rated_at DESC, id DESC LIMIT {int(limit)}",
            params,
        )
        keys = ["answer_id", "rated_at", "rating", "comment", "route", "question", "answer", "sources", "asked_by"]
        entries = [dict(zip(keys, row)) for row in rows]
        for entry in entries:
            entry["sources"] = json.loads(entry["sources"]) if entry["sources"] else []
        return entries

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
    def by_variant(self) -> list[dict[str, Any]]:
        """Per A/B variant (``serve.experiments``): answers, latency, tokens, cost and satisfaction."""
        rows = self._conn.fetchall(
            f"SELECT variant, COUNT(*), AVG(total_ms), AVG(tokens_in), AVG(tokens_out), SUM(cost_usd), "
            f"{_RATING_COUNTS} "
            f"FROM {self._table} WHERE variant IS NOT NULL GROUP BY variant ORDER BY variant"
        )
        return [
            {
                "variant": variant,
                "answers": int(n),
                "mean_total_ms": _number(total_ms),
                "mean_tokens_in": _number(tokens_in),
                "mean_tokens_out": _number(tokens_out),
                "cost_usd": None if cost is None else float(cost),
                **_ratings(p, neg, neu),
            }
            for variant, n, total_ms, tokens_in, tokens_out, cost, p, neg, neu in rows
        ]

    @replica_read
    def mean_tokens(self) -> Optional[tuple[float, float]]:
        """The mean LLM tokens (in, out) of the answers that used the LLM; None before any."""
        row = self._conn.fetchall(
            f"SELECT AVG(tokens_in), AVG(tokens_out), COUNT(*) FROM {self._table} WHERE tokens_in > 0 AND kind <> 'cached'"
        )[0]
        return None if not row[2] else (float(row[0]), float(row[1]))

    @replica_read
    def stats(self) -> dict[str, Any]:
        """Counts by kind and route, latency percentiles, tokens by model."""
        counts = self._conn.fetchall(
            f"SELECT kind, route, COUNT(*) FROM {self._table} GROUP BY kind, route ORDER BY kind, route"
        )
        tokens = self._conn.fetchall(
            f"SELECT llm_model, COUNT(*), SUM(tokens_in), SUM(tokens_out), SUM(cost_usd), COUNT(cost_usd) "
            f"FROM {self._table} GROUP BY llm_model ORDER BY llm_model"
        )
        cost_daily = self._conn.fetchall(
            f"SELECT DATE(created_at), COUNT(*), SUM(cost_usd) FROM {self._table} "
            f"GROUP BY DATE(created_at) ORDER BY DATE(created_at) DESC LIMIT 30"
        )
        routes = self._conn.fetchall(
            f"SELECT route, COUNT(*), AVG(total_ms), MAX(total_ms), AVG(tokens_in), AVG(context_chunks), "
            f"AVG(context_tokens) FROM {self._table} GROUP BY route ORDER BY route"
        )
        satisfaction = self._conn.fetchall(
            f"SELECT route, {_RATING_COUNTS} FROM {self._table} WHERE rating IS NOT NULL GROUP BY route ORDER BY route"
        )
        daily = self._conn.fetchall(
            f"SELECT DATE(rated_at), {_RATING_COUNTS} "
            f"FROM {self._table} WHERE rating IS NOT NULL GROUP BY DATE(rated_at) ORDER BY DATE(rated_at) DESC LIMIT 30"
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
            "satisfaction_by_route": [{"route": r, **_ratings(p, n, u)} for r, p, n, u in satisfaction],
            "satisfaction_by_day": [{"day": str(d), **_ratings(p, n, u)} for d, p, n, u in daily],
            "tokens_by_model": [
                {
                    "model": m,
                    "calls": int(c),
                    "in": int(i or 0),
                    "out": int(o or 0),
                    "cost_usd": float(cost) if priced else None,  # None: no answer of it had a known price
                }
                for m, c, i, o, cost, priced in tokens
            ],
            "cost_by_day": [
                {"day": str(d), "answers": int(n), "cost_usd": None if c is None else float(c)}
                for d, n, c in cost_daily
            ],
        }
