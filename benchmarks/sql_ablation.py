"""What each of kb's SQL mechanisms earns, measured by switching it off (``sql_accuracy.py --ablate``).

For each set: kb in full (timed; every check that fires on a statement is recorded per question) and
plain LlamaIndex once (timed), then kb again with one thing off at a time:

* each check that fired in the full run, alone, and families of checks (every check of kind
  ``statement``, every check of kind ``question`` = ``sql.checks: statement``, all = ``sql.checks:
  none``);
* kb's repairs of statements the server rejected (the added join, the hint for an error), all of them
  and each of :data:`kb.engines.sql.repairs.REPAIRS` alone (``sql.skip_repairs``);
* candidates (``sql.candidates: 1``), rescue samples (``sql.rescue_samples: 0``) and, with
  ``--ablate-values``, value linking (``sql.value_linking: false``);
* and two switched on instead: kb's rewrites answering alone (``sql.rewrites_answer: true``), and
  candidates for every question, not only on doubt (``sql.candidates_when: always``).

The model's replies are memoised by prompt and sampling options from the full run on (decoding is
greedy and the samples are seeded, so a prompt's reply does not change): a configuration pays only for
the prompts the full run did not write. A check that fired on none of a question's statements cannot
change that question's path, so a configuration that switches off checks is run only on the
questions where one of them fired; the others keep the full run's result. The full run's and plain's
seconds are real (nothing is served from the memo while they run); a configuration's are not reported.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from pydantic import PrivateAttr

from kb.engines.sql.checks import CHECKS, Defect
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.loop import StatementLoop
from kb.engines.sql.repairs import REPAIRS, StatementRepairs
from kb.engines.sql.runner import Statement
from kb.models.local_llm import LocalLlamaCPP

STATEMENT_CHECKS = tuple(c.name for c in CHECKS if c.kind == "statement")
QUESTION_CHECKS = tuple(c.name for c in CHECKS if c.kind == "question")


@dataclass
class ReplyMemo:
    """The model's replies by (prompt, options); served only once ``serving`` is set."""

    replies: dict[tuple[Any, ...], str] = field(default_factory=dict)
    serving: bool = False
    served: int = 0
    written: int = 0
    # Each reply the model wrote while not serving: what prompt it answered (prompt_kind), its
    # seconds and its tokens; where a question's time goes.
    calls: list[tuple[str, float, int]] = field(default_factory=list)


def prompt_kind(text: str, temperature: float) -> str:
    """Which of the SQL engine's prompts ``text`` is (by the engine's and LlamaIndex's own wording)."""
    if "Write a corrected statement" in text:
        kind = "correction"
    elif "Given an input question" in text:
        kind = "LlamaIndex's prompt"
    elif re.search(r"SQL:\s*(<\|im_end\|>\s*<\|im_start\|>assistant\s*)?$", text):  # as a chat or not
        kind = "statement"
    else:
        return "answer and other"
    return f"{kind}, sampled" if temperature > 0 else kind


class MemoisedLlamaCPP(LocalLlamaCPP):
    """The offline model, its replies memoised in a :class:`ReplyMemo` its sampling copies share."""

    _memo: ReplyMemo = PrivateAttr(default_factory=ReplyMemo)

    @classmethod
    def of(cls, llm: LocalLlamaCPP) -> MemoisedLlamaCPP:
        memoised = cls.model_construct(**dict(llm))
        memoised._model, memoised._lock = llm._model, llm._lock
        return memoised

    @property
    def memo(self) -> ReplyMemo:
        return self._memo

    def _generate(self, text: str, kwargs: dict[str, Any]) -> str:
        options = self._options(kwargs)
        key = (text, options["max_tokens"], options["temperature"], options["seed"], tuple(options["stop"]))
        if self._memo.serving and key in self._memo.replies:
            self._memo.served += 1
            return self._memo.replies[key]
        started = time.perf_counter()
        reply = super()._generate(text, kwargs)
        if not self._memo.serving:
            kind = prompt_kind(text, options["temperature"])
            self._memo.calls.append((kind, time.perf_counter() - started, len(self.tokenize(reply))))
        self._memo.replies[key] = reply
        self._memo.written += 1
        return reply


@dataclass
class RecordingLoop(StatementLoop):
    """The engine's statement loop, unchanged, that also records the name of every check that finds
    a defect (the loop is where every statement's checks run)."""

    fired: set[str] = field(default_factory=set)

    def problems(self, ran: Statement, question: str) -> list[Defect]:
        found = super().problems(ran, question)
        self.fired.update(defect.check for defect in found)
        return found


class RecordingSQLEngine(SQLEngine):
    """kb's SQL engine, unchanged, that also records the name of every check that finds a defect."""

    _fired: set[str] = PrivateAttr(default_factory=set)

    def _loop(self) -> StatementLoop:
        loop = super()._loop()
        shared = {f.name: getattr(loop, f.name) for f in fields(loop) if f.init}
        return RecordingLoop(**shared, fired=self._fired)

    def fired_since_last_call(self) -> set[str]:
        fired, self._fired = self._fired, set()
        return fired


class NoRepairs(StatementRepairs):
    """kb's repairs switched off: no join is added and no hint is given for a server's error."""

    def hint_for(self, error: str, used_tables: Sequence[str], sql: str = "") -> str:
        return ""

    def add_missing_join(self, sql: str, error: str) -> Optional[str]:
        return None


@dataclass(frozen=True)
class Configuration:
    """kb with something off: the engine's settings it changes, and the checks it skips (None: all
    questions are run; a set: only the questions where one of them fired)."""

    label: str
    settings: dict[str, Any] = field(default_factory=dict)
    skipped: Optional[frozenset[str]] = None
    no_repairs: bool = False


def configurations(fired_anywhere: set[str], values: bool, checks_only: bool = False) -> list[Configuration]:
    """What is switched off, in turn: the families, each check that fired anywhere, then (unless
    ``checks_only``) the rest."""
    found = [
        Configuration("all checks (sql.checks: none)", {"checks": "none"}, frozenset(fired_anywhere)),
        Configuration("statement checks", {"skip_checks": frozenset(STATEMENT_CHECKS)}, frozenset(STATEMENT_CHECKS)),
        Configuration("question checks (sql.checks: statement)", {"checks": "statement"}, frozenset(QUESTION_CHECKS)),
    ]
    for check in CHECKS:
        if check.name in fired_anywhere:
            names = frozenset({check.name})
            found.append(Configuration(f"check: {check.name}", {"skip_checks": names}, names))
    if checks_only:
        return found
    found += [
        Configuration("kb's repairs", no_repairs=True),
        *(Configuration(f"repair: {r.name}", {"skip_repairs": frozenset({r.name})}) for r in REPAIRS),
        Configuration("candidates (sql.candidates: 1)", {"candidates": 1}),
        Configuration("rescue samples (sql.rescue_samples: 0)", {"rescue_samples": 0}),
        Configuration(
            "(on instead) kb's rewrites answering alone (sql.rewrites_answer: true)", {"rewrites_answer": True}
        ),
        Configuration(
            "(on instead) candidates for every question (sql.candidates_when: always)", {"candidates_when": "always"}
        ),
    ]
    if values:
        found.append(Configuration("value linking", {"value_linking": False}))
    return found


@dataclass
class SetAblation:
    """One set's results: right answers of the full run, plain's, and each configuration's."""

    n: int = 0
    kb: int = 0
    plain: int = 0
    fired: Counter = field(default_factory=Counter)  # questions on which each check fired (full run)
    off: dict[str, int] = field(default_factory=dict)  # configuration -> right answers
    rerun: dict[str, int] = field(default_factory=dict)  # configuration -> questions run again
    # Question by question (by position in the set), for policies judged afterwards: the full run's
    # verdict, whether its first statement ran clean as written, whether the vote replaced kb's
    # statement, and each configuration's verdict on the questions it ran again.
    right_full: list[bool] = field(default_factory=list)
    first_clean: list[bool] = field(default_factory=list)
    outvoted: list[bool] = field(default_factory=list)
    right_off: dict[str, dict[int, bool]] = field(default_factory=dict)
    seconds_each_kb: list[float] = field(default_factory=list)  # the first after the warm-up only
    seconds_warm_up: Optional[float] = None  # SQLEngine.warm_prompt_cache before the first question
    seconds_each_plain: list[float] = field(default_factory=list)
    calls_each_kb: list[list[tuple[str, float, int]]] = field(default_factory=list)  # ReplyMemo.calls

    def row(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "kb": self.kb,
            "plain": self.plain,
            "seconds_per_question_kb": round(self.seconds_kb / max(self.n, 1), 2),
            "seconds_per_question_plain": round(self.seconds_plain / max(self.n, 1), 2),
            "fired": dict(self.fired),
            "off": self.off,
            "rerun": self.rerun,
            "right_full": self.right_full,
            "first_clean": self.first_clean,
            "outvoted": self.outvoted,
            "right_off": self.right_off,
            "seconds_each_kb": [round(s, 2) for s in self.seconds_each_kb],
            "seconds_each_plain": [round(s, 2) for s in self.seconds_each_plain],
            "seconds_warm_up": None if self.seconds_warm_up is None else round(self.seconds_warm_up, 2),
            "calls_each_kb": [[(kind, round(s, 2), n) for kind, s, n in calls] for calls in self.calls_each_kb],
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> SetAblation:
        """A set's results as :meth:`row` wrote them (``sql_accuracy.py --ablation-table`` joins the
        files of separate runs)."""
        return cls(
            n=row["n"],
            kb=row["kb"],
            plain=row["plain"],
            fired=Counter(row["fired"]),
            off=row["off"],
            rerun=row["rerun"],
            right_full=row["right_full"],
            first_clean=row["first_clean"],
            outvoted=row["outvoted"],
            right_off={label: {int(i): v for i, v in verdicts.items()} for label, verdicts in row["right_off"].items()},
            seconds_each_kb=row["seconds_each_kb"],
            seconds_each_plain=row["seconds_each_plain"],
            seconds_warm_up=row.get("seconds_warm_up"),
            calls_each_kb=[[tuple(call) for call in calls] for calls in row.get("calls_each_kb", [])],
        )

    @property
    def seconds_kb(self) -> float:
        return sum(self.seconds_each_kb)

    @property
    def seconds_plain(self) -> float:
        return sum(self.seconds_each_plain)

    @staticmethod
    def warm_seconds(each: Sequence[float]) -> float:
        """Seconds per question after the first (whose prompts were cached by none before it)."""
        return sum(each[1:]) / max(len(each) - 1, 1)


def ablate(
    questions: Sequence[dict],
    make_engine: Callable[..., SQLEngine],
    plain: Optional[Any],
    memo: ReplyMemo,
    is_right: Callable[[Any, dict], bool],
    plain_is_right: Callable[[str, dict], bool],
    values: bool,
    progress: Callable[[str], None],
    switched: bool = True,
    checks_only: bool = False,
) -> SetAblation:
    """The full run, plain once (unless ``plain`` is None), then, if ``switched``, each configuration
    (see the module's docstring); without them, the run measures kb against plain, warm and cold."""
    result = SetAblation()
    full = make_engine(RecordingSQLEngine)
    assert isinstance(full, RecordingSQLEngine)
    right: list[bool] = []
    fired: list[set[str]] = []
    memo.serving = False
    t = time.perf_counter()
    full.warm_prompt_cache()  # as kb serve does at start-up
    result.seconds_warm_up = time.perf_counter() - t
    for number, item in enumerate(questions, start=1):
        t, calls_before = time.perf_counter(), len(memo.calls)
        outcome = full.compute(item["q"])
        result.seconds_each_kb.append(time.perf_counter() - t)
        result.calls_each_kb.append(memo.calls[calls_before:])
        right.append(is_right(outcome, item))
        result.first_clean.append(bool(outcome.attempts) and outcome.attempts[0].error is None)
        result.outvoted.append(any((a.error or "").startswith("outvoted") for a in outcome.attempts))
        fired.append(full.fired_since_last_call())
        result.fired.update(fired[-1])
        said = f"full {number}/{len(questions)}: kb {'ok' if right[-1] else 'NO'}"
        if plain is not None:
            t = time.perf_counter()
            plain_ok = plain_is_right(str(plain.query(item["q"]).metadata.get("sql_query", "")), item)
            result.seconds_each_plain.append(time.perf_counter() - t)
            result.plain += plain_ok
            said += f", plain {'ok' if plain_ok else 'NO'}"
        progress(said)
    full.close()
    result.n, result.kb, result.right_full = len(questions), sum(right), right
    memo.serving = True
    switched_off = configurations(set(result.fired), values, checks_only) if switched else []
    for configuration in switched_off:
        engine = make_engine(SQLEngine, **configuration.settings)
        if configuration.no_repairs:
            engine.repairs = NoRepairs(engine.sql_database.describer)
        rerun = [i for i in range(len(questions)) if configuration.skipped is None or fired[i] & configuration.skipped]
        verdicts = {i: is_right(engine.compute(questions[i]["q"]), questions[i]) for i in rerun}
        changed = sum(verdicts[i] - right[i] for i in rerun)
        engine.close()
        result.right_off[configuration.label] = verdicts
        result.off[configuration.label] = result.kb + changed
        result.rerun[configuration.label] = len(rerun)
        progress(f"{configuration.label} off: {result.kb + changed} right ({changed:+d}, {len(rerun)} run again)")
    return result


def table(results: dict[str, SetAblation], titles: dict[str, str]) -> str:
    """kb in full and plain per set, then one row per configuration: the right answers lost (-) or
    won (+) with it off, per set and over all sets."""
    keys = list(results)
    head = "| kb with this off | " + " | ".join(titles[k] for k in keys) + " | all |"
    lines = [head, "|---|" + "---|" * (len(keys) + 1)]
    total_n = sum(r.n for r in results.values())
    lines.append(
        "| nothing (kb in full) | "
        + " | ".join(f"{r.kb}/{r.n}" for r in results.values())
        + f" | {sum(r.kb for r in results.values())}/{total_n} |"
    )
    lines.append(
        "| plain LlamaIndex | "
        + " | ".join(f"{r.plain}/{r.n}" for r in results.values())
        + f" | {sum(r.plain for r in results.values())}/{total_n} |"
    )
    lines.append(
        "| s / question, kb vs plain | "
        + " | ".join(
            f"{r.seconds_kb / max(r.n, 1):.1f} vs {r.seconds_plain / max(r.n, 1):.1f}" for r in results.values()
        )
        + f" | {sum(r.seconds_kb for r in results.values()) / max(total_n, 1):.1f} vs "
        f"{sum(r.seconds_plain for r in results.values()) / max(total_n, 1):.1f} |"
    )
    lines.append(
        "| kb's SQL prompt warmed (at start-up), s | "
        + " | ".join("-" if r.seconds_warm_up is None else f"{r.seconds_warm_up:.1f}" for r in results.values())
        + " | |"
    )
    lines.append(
        "| first answer (kb: after the warm-up where there is one), s, kb vs plain | "
        + " | ".join(
            f"{r.seconds_each_kb[0]:.1f} vs {r.seconds_each_plain[0]:.1f}" if r.seconds_each_plain else "-"
            for r in results.values()
        )
        + " | |"
    )
    lines.append(
        "| s / question after the first (warm), kb vs plain | "
        + " | ".join(
            f"{r.warm_seconds(r.seconds_each_kb):.1f} vs {r.warm_seconds(r.seconds_each_plain):.1f}"
            if r.seconds_each_plain
            else "-"
            for r in results.values()
        )
        + " | |"
    )
    labels = list(dict.fromkeys(label for r in results.values() for label in r.off))
    for label in labels:
        # a check that fired on none of a set's questions changes nothing there (0); any other
        # configuration a set's run did not include (value linking without --ablate-values) is "-"
        cells = [
            f"{r.off[label] - r.kb:+d}" if label in r.off else "0" if label.startswith("check: ") else "-"
            for r in results.values()
        ]
        total = sum(r.off.get(label, r.kb) - r.kb for r in results.values())
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {total:+d} |")
    return "\n".join(lines)


def time_table(results: dict[str, SetAblation]) -> str:
    """Where kb's time went in the full runs of all sets: per prompt kind, the model's replies on
    questions whose first statement ran clean and on the others (in doubt), with their seconds and
    tokens; and each group's seconds per question against plain's on the same questions."""
    lines = [
        "| questions | prompt | replies | s per reply | tokens per reply | s per question |",
        "|---|---|---|---|---|---|",
    ]
    for clean in (True, False):
        chosen = [(r, i) for r in results.values() for i in range(len(r.calls_each_kb)) if r.first_clean[i] == clean]
        group = "first statement clean" if clean else "in doubt"
        kinds: dict[str, list[tuple[float, int]]] = {}
        for r, i in chosen:
            for kind, seconds, tokens in r.calls_each_kb[i]:
                kinds.setdefault(kind, []).append((seconds, tokens))
        n = max(len(chosen), 1)
        for kind, calls in sorted(kinds.items()):
            lines.append(
                f"| {group} ({len(chosen)}) | {kind} | {len(calls) / n:.2f} per question | "
                f"{sum(s for s, _ in calls) / len(calls):.1f} | {sum(t for _, t in calls) / len(calls):.0f} | |"
            )
        kb_s = sum(r.seconds_each_kb[i] for r, i in chosen) / n
        plain_s = sum(r.seconds_each_plain[i] for r, i in chosen if r.seconds_each_plain) / n
        lines.append(f"| {group} ({len(chosen)}) | all, kb vs plain | | | | {kb_s:.1f} vs {plain_s:.1f} |")
    return "\n".join(lines)
