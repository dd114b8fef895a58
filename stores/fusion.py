"""Fusion of a vector ranking and a full-text ranking into one (the HYBRID query mode).

Each input is a ranking: node ids, best first, with the list's own scores. The strategies:

* ``rrf``: reciprocal rank fusion, ``sum_i w_i / (k + rank_i)`` (k = 60, ranks from 1); robust
  because it ignores the two lists' incomparable score scales.
* ``weighted``: min-max normalise each list's scores to [0, 1] and take
  ``alpha * vector + (1 - alpha) * text`` (a list that missed a node contributes 0).
* ``text_then_vector``: the full-text candidates, re-ranked by vector similarity.
* ``vector_then_text``: the vector candidates, re-ranked by BM25.

``both_boost`` multiplies the fused score of a node found by both lists by ``1 + both_boost``.
The cascades need the other side's score for every candidate; the store computes it and passes it
in ``rescore``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

FusionStrategy = Literal["rrf", "weighted", "text_then_vector", "vector_then_text"]
STRATEGIES: tuple[str, ...] = ("rrf", "weighted", "text_then_vector", "vector_then_text")


@dataclass
class Ranked:
    """One list's ranking: ids best first, and their scores in that list."""

    ids: list[str]
    scores: list[float]

    def ranks(self) -> dict[str, int]:
        return {node_id: rank for rank, node_id in enumerate(self.ids, start=1)}


@dataclass
class Fused:
    node_id: str
    score: float
    lists: list[str] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def _normalise(scores: Sequence[float]) -> list[float]:
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high - low < 1e-12:
        return [1.0 for _ in scores]
    return [(s - low) / (high - low) for s in scores]


def fuse(
    vector: Ranked,
    text: Ranked,
    *,
    strategy: str = "rrf",
    rrf_k: float = 60.0,
    weights: tuple[float, float] = (1.0, 1.0),
    alpha: float = 0.5,
    both_boost: float = 0.0,
    rescore: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Fused]:
    """Fuse the two rankings; returns every candidate, best first.

    ``weights`` are (vector, text) for ``rrf``; ``alpha`` is the vector side's weight for
    ``weighted``; ``rescore`` maps ``"vector"``/``"text"`` to scores for the cascades.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown fusion strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError("alpha (the vector side's weight) must be between 0 and 1")
    lists = {"vector": vector, "text": text}
    found: dict[str, Fused] = {}
    for name, ranking in lists.items():
        for rank, (node_id, score) in enumerate(zip(ranking.ids, ranking.scores), start=1):
            entry = found.setdefault(node_id, Fused(node_id, 0.0))
            entry.lists.append(name)
            entry.ranks[name] = rank
            entry.scores[name] = float(score)

    if strategy == "rrf":
        w = {"vector": weights[0], "text": weights[1]}
        for entry in found.values():
            entry.score = sum(w[name] / (rrf_k + rank) for name, rank in entry.ranks.items())
    elif strategy == "weighted":
        norm = {name: dict(zip(r.ids, _normalise(r.scores))) for name, r in lists.items()}
        for entry in found.values():
            entry.score = alpha * norm["vector"].get(entry.node_id, 0.0) + (1 - alpha) * norm["text"].get(
                entry.node_id, 0.0
            )
    else:
        first, second = ("text", "vector") if strategy == "text_then_vector" else ("vector", "text")
        other = (rescore or {}).get(second)
        if other is None:
            raise ValueError(f"the {strategy} cascade needs the {second} score of each {first} candidate")
        candidates = set(lists[first].ids)
        found = {node_id: entry for node_id, entry in found.items() if node_id in candidates}
        for entry in found.values():
            entry.score = float(other.get(entry.node_id, float("-inf")))
            entry.scores.setdefault(second, entry.score)

    if both_boost:
        for entry in found.values():
            if len(entry.lists) == 2:
                entry.score *= 1.0 + both_boost
    return sorted(found.values(), key=lambda e: (-e.score, min(e.ranks.values())))
