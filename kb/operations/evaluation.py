"""``kb eval``: an operator's own questions, scored against the settings they want to compare.

An evaluation file (YAML list or JSON lines) holds questions, each with the file(s) that answer it
(paths as indexed, relative to the indexed folder) and, optionally, a fact the answer must contain
and the route that should answer it::

    - q: How many days do customers have to return a product?
      files: [policies/return-policy.md]      # or file: one path
      fact: [30 days, thirty days]           # optional: any of these, case-insensitive
      route: documents                       # optional: documents | database | both

A question with ``route: database`` may name no file: it scores the route only.

For each retrieval setting (a grid of modes, fusions, alphas, RRF k and top_k), every question is
retrieved once and scored at the level of documents: the retrieved chunks, in rank order, are
collapsed into the files they come from (first appearance), and a file the question names counts as
relevant (binary relevance):

* hit@1, hit@5: a relevant file first, or among the first five;
* MRR@10: 1 / the rank of the first relevant file within ten (0 when none);
* nDCG@10: DCG over the first ten files (1 / log2(rank + 1) per relevant one) divided by the DCG of
  the ideal order (every relevant file first).

Route accuracy needs no LLM with the offline selector. With ``answers``, each question is also
answered with the best setting: fact present, first source right, seconds per question. The best
setting is the one with the highest nDCG@10 (MRR@10 breaks ties), printed with the configuration
lines that select it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import yaml

from kb.engines.timing import Stopwatch
from kb.errors import KBError

if TYPE_CHECKING:  # kb eval's command line loads the engines only when it scores
    from llama_index.core.schema import NodeWithScore

    from kb.engines.answer import Answer
    from kb.engines.selectors import RouteDecision

ROUTES = ("documents", "database", "both")


@dataclass(frozen=True)
class EvalQuestion:
    question: str
    files: tuple[str, ...]
    fact: tuple[str, ...] = ()
    route: Optional[str] = None


def load_questions(path: str | PathLike[str]) -> list[EvalQuestion]:
    """The questions of an evaluation file (YAML list, or JSON lines when it ends in .jsonl), checked."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise KBError(f"cannot read the evaluation file {path}: {exc.strerror or exc}") from None
    try:
        if path.suffix.lower() == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise KBError(f"{path} is not valid {'JSON lines' if path.suffix == '.jsonl' else 'YAML'}: {exc}") from None
    if not isinstance(items, list) or not items:
        raise KBError(f"{path}: expected a list of questions ({{q: ..., files: [...]}}), found {type(items).__name__}")
    questions = []
    for number, item in enumerate(items, start=1):
        where = f"{path}, question {number}"
        if not isinstance(item, dict) or not str(item.get("q") or "").strip():
            raise KBError(f"{where}: each entry needs a question under 'q'")
        files = item.get("files", item.get("file", item.get("source")))
        files = [files] if isinstance(files, str) else files or []
        route = item.get("route")
        if route is not None and route not in ROUTES:
            raise KBError(f"{where}: route must be one of {', '.join(ROUTES)}, not {route!r}")
        if not all(isinstance(f, str) and f for f in files) or (not files and route != "database"):
            raise KBError(
                f"{where}: give the file(s) that answer it under 'files' (paths as indexed); "
                "only a question with route: database may have none"
            )
        fact = item.get("fact") or ()
        fact = (fact,) if isinstance(fact, str) else tuple(str(f) for f in fact)
        questions.append(EvalQuestion(str(item["q"]).strip(), tuple(files), fact, route))
    return questions


# -- metrics --------------------------------------------------------------------------------------------
def ranked_files(paths: Iterable[Optional[str]]) -> list[str]:
    """Chunk paths in rank order -> the files, each at its first appearance."""
    seen: dict[str, None] = {}
    for path in paths:
        if path and path not in seen:
            seen[path] = None
    return list(seen)


def hit_at(files: Sequence[str], relevant: set[str], k: int) -> float:
    return 1.0 if any(f in relevant for f in files[:k]) else 0.0


def mrr_at(files: Sequence[str], relevant: set[str], k: int = 10) -> float:
    return next((1.0 / rank for rank, f in enumerate(files[:k], start=1) if f in relevant), 0.0)


def ndcg_at(files: Sequence[str], relevant: set[str], k: int = 10) -> float:
    dcg = sum(1.0 / math.log2(rank + 1) for rank, f in enumerate(files[:k], start=1) if f in relevant)
    ideal = sum(1.0 / math.log2(rank + 1) for rank in range(1, min(len(relevant), k) + 1))
    return dcg / ideal if ideal else 0.0


# -- settings ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Setting:
    """One retrieval setting: the options of ``KnowledgeBase.retrieve``."""

    mode: str
    top_k: int = 10
    fusion: Optional[str] = None
    alpha: Optional[float] = None
    rrf_k: Optional[float] = None

    @property
    def label(self) -> str:
        parts = [self.mode]
        if self.fusion:
            parts.append(self.fusion)
        if self.alpha is not None:
            parts.append(f"alpha {self.alpha:g}")
        if self.rrf_k is not None:
            parts.append(f"rrf_k {self.rrf_k:g}")
        return ", ".join(parts)

    def options(self) -> dict[str, Any]:
        return {
            k: v for k, v in (("fusion", self.fusion), ("alpha", self.alpha), ("rrf_k", self.rrf_k)) if v is not None
        }

    def config_lines(self, answer_top_k: int) -> str:
        """The ``config.yaml`` lines that select this setting (``top_k``: chunks per answer)."""
        lines = ["retrieval:", f"  mode: {self.mode}", f"  top_k: {answer_top_k}"]
        lines += [f"  {k}: {v:g}" if isinstance(v, float) else f"  {k}: {v}" for k, v in self.options().items()]
        return "\n".join(lines)


def grid(
    modes: Sequence[str],
    fusions: Sequence[str] = ("weighted",),
    alphas: Sequence[float] = (0.5,),
    rrf_ks: Sequence[float] = (60.0,),
) -> list[Setting]:
    """Every combination that means something: fusion, alpha and RRF k only for hybrid (alpha for the
    weighted fusion, RRF k for rrf); dense, text and MMR once each."""
    settings: list[Setting] = []
    for mode in dict.fromkeys(modes):
        if mode != "hybrid":
            settings.append(Setting(mode))
            continue
        for fusion in dict.fromkeys(fusions):
            if fusion == "weighted":
                settings += [Setting(mode, fusion=fusion, alpha=a) for a in dict.fromkeys(alphas)]
            elif fusion == "rrf":
                settings += [Setting(mode, fusion=fusion, rrf_k=k) for k in dict.fromkeys(rrf_ks)]
            else:
                settings.append(Setting(mode, fusion=fusion))
    return settings


# -- the report -------------------------------------------------------------------------------------------
@dataclass
class SettingScore:
    setting: Setting
    hit_1: float = 0.0
    hit_5: float = 0.0
    mrr_10: float = 0.0
    ndcg_10: float = 0.0
    seconds: float = 0.0  # per question

    def row(self) -> dict[str, Any]:
        return {"setting": self.setting.label, **{k: round(v, 4) for k, v in asdict(self).items() if k != "setting"}}


@dataclass
class EvalReport:
    questions: int
    settings: list[SettingScore]
    route_accuracy: Optional[float] = None
    routes_scored: int = 0
    answers: Optional[dict[str, Any]] = None  # fact present, first source right, seconds (best setting)
    misses: list[dict[str, Any]] = field(default_factory=list)  # questions the best setting did not hit@5

    @property
    def best(self) -> SettingScore:
        return max(self.settings, key=lambda s: (s.ndcg_10, s.mrr_10, s.hit_1))

    def to_dict(self, answer_top_k: int) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "settings": [s.row() for s in self.settings],
            "best": self.best.setting.label,
            "best_config": self.best.setting.config_lines(answer_top_k),
            "route_accuracy": self.route_accuracy,
            "routes_scored": self.routes_scored,
            "answers": self.answers,
            "misses": self.misses,
        }


def evaluate(
    questions: Sequence[EvalQuestion],
    settings: Sequence[Setting],
    *,
    retrieve: Callable[..., list[NodeWithScore]],
    route: Optional[Callable[[str], RouteDecision]] = None,
    answer: Optional[Callable[[str, Setting], Answer]] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> EvalReport:
    """Score ``settings`` on ``questions``. ``retrieve(question, mode=..., top_k=..., **options)`` returns
    LlamaIndex hits (``NodeWithScore``); ``route(question)`` a decision with ``.route``;
    ``answer(question, setting)`` an ``Answer`` (kb's)."""
    if not settings:
        raise KBError("no retrieval setting to evaluate")
    documented = [q for q in questions if q.files]  # a database question names no file: route only
    if not documented:
        raise KBError("no question names a file that answers it: nothing to score retrieval on")
    total = len(settings) * len(documented) + (len(documented) if answer else 0)
    done = 0
    scores = []
    for setting in settings:
        score = SettingScore(setting)
        clock = Stopwatch()
        for item in documented:
            hits = retrieve(item.question, mode=setting.mode, top_k=setting.top_k, **setting.options())
            files = ranked_files(h.node.metadata.get("file_path") for h in hits)
            relevant = set(item.files)
            score.hit_1 += hit_at(files, relevant, 1)
            score.hit_5 += hit_at(files, relevant, 5)
            score.mrr_10 += mrr_at(files, relevant)
            score.ndcg_10 += ndcg_at(files, relevant)
            done += 1
            if progress:
                progress(done, total)
        n = len(documented)
        score.seconds = clock.elapsed() / n
        for name in ("hit_1", "hit_5", "mrr_10", "ndcg_10"):
            setattr(score, name, getattr(score, name) / n)
        scores.append(score)
    report = EvalReport(len(documented), scores)
    best = report.best.setting
    for item in documented:
        hits = retrieve(item.question, mode=best.mode, top_k=best.top_k, **best.options())
        files = ranked_files(h.node.metadata.get("file_path") for h in hits)
        if not hit_at(files, set(item.files), 5):
            report.misses.append({"q": item.question, "files": list(item.files), "retrieved": files[:5]})
    routed = [q for q in questions if q.route]
    if route is not None and routed:
        right = sum(route(q.question).route == q.route for q in routed)
        report.route_accuracy, report.routes_scored = right / len(routed), len(routed)
    if answer is not None:
        facts = sources = 0
        scored_facts = sum(1 for q in documented if q.fact)
        clock = Stopwatch()
        for item in documented:
            reply = answer(item.question, best)
            text = reply.text.lower()
            facts += bool(item.fact) and any(f.lower() in text for f in item.fact)
            sources += bool(reply.sources) and reply.sources[0].path in item.files
            done += 1
            if progress:
                progress(done, total)
        n = len(documented)
        report.answers = {
            "fact_present": facts / scored_facts if scored_facts else None,
            "facts_scored": scored_facts,
            "first_source_right": sources / n,
            "seconds_per_question": clock.elapsed() / n,
        }
    return report


def feedback_questions(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rated answers -> evaluation entries to extend by hand: the question, the files of the answer's
    sources (a positive rating says they were right; a negative one lists them to be corrected), and
    the route it took."""
    entries = []
    for row in rows:
        sources = [s.get("path") for s in row.get("sources") or [] if s.get("path")]
        entry: dict[str, Any] = {"q": row["question"]}
        if row.get("route") != "database":  # a database answer has no file to name
            entry["files"] = list(dict.fromkeys(sources))[:3] or ["?"]
        entry["route"] = row.get("route")
        entry["rating"] = row.get("rating")
        if row.get("comment"):
            entry["comment"] = row["comment"]
        entries.append(entry)
    return entries


__all__ = [
    "EvalQuestion",
    "EvalReport",
    "Setting",
    "evaluate",
    "feedback_questions",
    "grid",
    "hit_at",
    "load_questions",
    "mrr_at",
    "ndcg_at",
    "ranked_files",
]
