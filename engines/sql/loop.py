"""A question's statements, from the first to the one that answers: the attempts, the rescue and the vote.

**Attempts** (:meth:`StatementLoop.attempts`). The greedy statement passes the read-only guard and
runs (:mod:`kb.engines.sql.runner`). When the server rejects it (unknown column, bad join, syntax) or
the guard cannot parse it, the model gets the error, the schema again and a hint
(:meth:`kb.engines.sql.repairs.StatementRepairs.hint_for`) and writes a correction, up to
``max_attempts`` statements of its own in all, as LangChain's SQL agent and Vanna do; where the
server's error and the schema alone decide the repair, kb writes it (:mod:`kb.engines.sql.repairs`)
and it costs none of the model's attempts. A statement that runs clean answers as the model wrote
it; one that runs with a defect (:mod:`kb.engines.sql.checks`, the server's conversion warning
included) is given back to the model like a failed one. A statement the guard refuses for what it
would do (a write, a lock, a file) is not retried, nor one stopped by the time limit; a correction
that repeats a statement already tried ends the attempts.

**Rescue** (:meth:`StatementLoop.rescue`). When no attempt ran clean and the last failure is one a
rewrite may mend, the model writes up to ``rescue_samples`` statements at ``rescue_temperature``
(the 1.5B model writes its greedy mistake again at low temperature, and again when shown it in a
correction prompt): for the question's own prompt; when none of those runs clean and a statement
ran with a defect, as many more for the correction prompt that shows it with its defect (whose
message may end with the statement to write). The first rows two of them agree on answer, else the
first that ran clean. The statements kb's defect messages wrote (:attr:`kb.engines.sql.checks.Defect.rewrite`),
which the model's corrections did not take up, are run and checked first and are one voice among
the samples: the first sample that gives their rows answers with them (``rewrite_answered``). A
rewrite no sample agrees with answers only with ``rewrites_answer``.

**The vote** (:meth:`StatementLoop.vote`, :mod:`kb.engines.sql.vote`). With ``candidates`` above 1,
more statements for the same question vote by their rows: with ``candidate_source="prompts"`` the
greedy statements of two other prompts (:meth:`kb.engines.sql.writers.StatementWriters.other_prompt_writers`),
then samples of kb's prompt at ``sample_temperature``. Each passes the guard, runs (kb's repair of an
unknown column once) and is checked; one refused, rejected or with a defect is not counted.

Which of these stages a question goes through is :meth:`kb.engines.sql.engine.SQLEngine.compute`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Optional

from kb.engines.answer import Attempt
from kb.engines.sql.checks import Defect, defects
from kb.engines.sql.guard import CheckedSQL, ReadOnlyGuard, SQLRefused, clean, normalized
from kb.engines.sql.options import SQLOptions
from kb.engines.sql.repairs import StatementRepairs
from kb.engines.sql.runner import ReadOnlyRunner, Statement
from kb.engines.sql.schema import SchemaDescriber
from kb.engines.sql.ties import Tie, tie_probe, ties_throughout, with_ties
from kb.engines.sql.vote import Votes, elect, grouped, result_key
from kb.engines.sql.writers import Asked, StatementWriters
from kb.engines.timing import Stopwatch

NOT_RETRIED = ("max_statement_time", "Query execution was interrupted")  # a slow query stays slow
Verdict = Literal["clean", "mendable", "final"]  # how a question's attempts ended (StatementLoop.attempts)
RAN_WITH_DEFECT = "it ran, but "  # how an attempt that ran with a defect (kb.engines.sql.checks) is marked


@dataclass
class SQLOutcome:
    """What the database side found for a question, before any answer is written from it."""

    question: str
    sql: Optional[str] = None
    rows: Optional[list[dict[str, Any]]] = None  # None: nothing ran (refused); []: ran, no rows
    truncated: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    refused: bool = False
    refusal_reason: Optional[str] = None
    failure: Optional[str] = None  # why there are no rows to answer from (refusal or server error)
    tie: Optional[Tie] = None  # rows the statement's LIMIT cut although they tie with its last row
    first_statement: Optional[Statement] = None  # the model's greedy statement as written, and its rows
    votes: Optional[Votes] = None  # with several candidates: how they agreed
    question_hint: str = ""  # the line the prompt shows right above the question: value linking, shared names
    examples: list[dict[str, Any]] = field(default_factory=list)  # the approved pairs the prompts showed
    example_statements: list[tuple[str, str]] = field(default_factory=list)  # their (question, SQL as shown)
    rewrites: list[str] = field(default_factory=list)  # statements kb's defect messages wrote (Defect.rewrite)
    timings: dict[str, float] = field(default_factory=dict)

    def answer_with(self, chosen: Optional[Statement], tie: Optional[Tie]) -> None:
        """Record the statement that answers (its rows, with ``tie``'s rows a ``LIMIT`` cut), or, with
        none, why there are no rows: the guard's refusal or the server's last error."""
        self.sql = chosen.sql if chosen is not None else self.attempts[-1].sql
        if chosen is not None:
            self.rows, self.truncated, self.tie = chosen.rows, chosen.truncated, tie
            self.rows = tie.rows if tie else self.rows
            return
        self.rows = None if self.refused else []
        tries = f" after {len(self.attempts)} attempts" if len(self.attempts) > 1 else ""
        self.failure = (
            f"I did not run the SQL that was written for this question{tries}: {self.refusal_reason}."
            if self.refused
            else f"The query failed on the server{tries}: {self.attempts[-1].error}"
        )

    def text_without_llm(self) -> Optional[str]:
        """The answer kb writes itself, without the LLM: why there are no rows, or the tied rows."""
        return self.failure or (self.tie.sentence() if self.tie else None)

    def metadata(self) -> dict[str, Any]:
        return {
            "route": "database",
            "sql_query": self.sql,
            "rows": self.rows,
            "truncated": self.truncated,
            "attempts": [asdict(a) for a in self.attempts],
            "refused": self.refused,
            "refusal_reason": self.refusal_reason,
            "ties": len(self.tie.tied) if self.tie else 0,
            "candidates": self.votes.as_dict() if self.votes else None,
            "sql_examples": list(self.examples),
            "timings": dict(self.timings),
        }


def copies_a_pair(chosen: Statement, outcome: SQLOutcome) -> bool:
    """Whether ``chosen`` is, as the guard renders it, the statement of an approved pair the prompt
    showed (``outcome.example_statements``) for another question than ``outcome``'s: the model copied
    the pair instead of writing for its question (:meth:`StatementLoop.vote_on_a_copy`)."""
    asked = " ".join(outcome.question.split()).casefold()
    return any(
        sql == chosen.sql and " ".join(pair.split()).casefold() != asked for pair, sql in outcome.example_statements
    )


def beyond_doubt(outcome: SQLOutcome, chosen: Optional[Statement], verdict: Verdict) -> bool:
    """Whether the greedy statement answers without candidates under ``candidates_when="doubt"``: it
    ran clean as written (no correction, no defect, no conversion warning) and gave rows."""
    return verdict == "clean" and len(outcome.attempts) == 1 and chosen is not None and bool(chosen.rows)


@dataclass
class StatementLoop:
    """The attempts, the rescue and the vote for the questions of one engine, over its parts (the
    writers, the runner, the guard, the repairs, the schema the checks read) with its settings
    (:class:`kb.engines.sql.engine.SQLEngine`'s fields of the same names)."""

    writers: StatementWriters
    runner: ReadOnlyRunner
    guard: ReadOnlyGuard
    repairs: StatementRepairs
    schema: SchemaDescriber
    options: SQLOptions  # the engine's settings as they are now
    # the tie probe's rows by statement, for this question (StatementLoop._probed)
    _probes: dict[str, Optional[tuple[list[dict[str, Any]], int, list[str]]]] = field(
        default_factory=dict, init=False, repr=False
    )

    def write(
        self, asked: Asked, seed: Optional[int] = None, temperature: Optional[float] = None, writer: Any = None
    ) -> str:
        """The statement the LLM proposes for ``asked`` (:meth:`StatementWriters.write`), sampled at
        ``sample_temperature`` unless ``temperature`` is given."""
        return self.writers.write(
            asked, seed, self.options.sample_temperature if temperature is None else temperature, writer
        )

    def correction_prompt(self, asked: Asked, failed: Attempt, tables: Sequence[str]) -> str:
        """The correction prompt for ``failed``, with the repairs' hint for its error over ``tables``."""
        return self.writers.correction_prompt(
            asked, failed, self.repairs.hint_for(failed.error or "", tables, failed.sql)
        )

    def correction(self, asked: Asked, failed: Attempt, tables: Sequence[str], tried: Sequence[str]) -> str:
        """The model's correction of ``failed`` (:meth:`StatementWriters.correction`), with the repairs' hint."""
        advice = self.repairs.hint_for(failed.error or "", tables, failed.sql)
        return self.writers.correction(asked, failed, advice, tried)

    def kb_repair(self, failed: Attempt, tried: Sequence[str]) -> Optional[str]:
        """kb's own rewrite of a statement the server refused (:meth:`StatementRepairs.add_missing_join`),
        when there is one that has not been tried; no LLM call."""
        joined = self.repairs.add_missing_join(failed.sql, failed.error or "")
        if joined and normalized(joined) not in {normalized(sql) for sql in tried}:
            return joined
        return None

    def problems(self, ran: Statement, question: str) -> list[Defect]:
        """Why a statement that ran answers another question than it seems to: its defects
        (:mod:`kb.engines.sql.checks`: of the statement, of its rows, of the server's conversion warning,
        ids where ``question`` asks which rows); empty: none found. ``checks`` says which run: with
        ``statement`` the question is not given to them (no check reads its words), with ``none``
        nothing is checked; ``skip_checks`` are never run."""
        if self.options.checks == "none":
            return []
        return defects(
            ran.sql,
            self.schema,
            rows=ran.rows or [],
            question=question if self.options.checks == "all" else "",
            skip=self.options.skip_checks,
            warning=ran.warning or "",
            cut_ties=self._cut_ties(ran) if "cut ties" not in self.options.skip_checks else None,
        )

    def _probed(self, sql: str, rows: list[dict[str, Any]]) -> Optional[tuple[list[dict[str, Any]], int, list[str]]]:
        """The rows past a statement's ``LIMIT`` with its ORDER BY values (:func:`tie_probe`), its limit
        and ORDER BY expressions; None without ORDER BY and LIMIT, with fewer rows than the limit, or
        when kb's own second look fails (the statement's rows then stand as they are)."""
        probe = tie_probe(sql)
        if probe is None or len(rows) < probe[1]:
            return None
        if sql not in self._probes:  # the check and the answer's tie look at the same rows: one query
            try:
                self._probes[sql] = (self.runner.run(self.guard.check(probe[0])).rows or [], probe[1], probe[2])
            except Exception:
                logging.getLogger(__name__).debug("tie probe failed: %s", probe[0], exc_info=True)
                self._probes[sql] = None
        return self._probes[sql]

    def _cut_ties(self, ran: Statement) -> Optional[tuple[int, list[str]]]:
        """The limit and ORDER BY of ``ran`` when its ``LIMIT`` cuts through more ties than the probe
        reads past it (:func:`ties_throughout`); None otherwise."""
        probed = self._probed(ran.sql, ran.rows or [])
        return (probed[1], probed[2]) if probed is not None and ties_throughout(probed[0], probed[1]) else None

    def tie(self, checked: CheckedSQL, rows: list[dict[str, Any]]) -> Optional[Tie]:
        """Rows a ``LIMIT`` cut although they tie with its last row (:mod:`kb.engines.sql.ties`)."""
        probed = self._probed(checked.sql, rows)
        return with_ties(rows, *probed) if probed is not None else None

    def attempts(self, asked: Asked, outcome: SQLOutcome, clock: Stopwatch) -> tuple[Optional[Statement], Verdict]:
        """The greedy statement and its corrections, until one runs without a defect (at most
        ``max_attempts`` written by the model, kb's own repairs besides, and no further once a
        correction repeats a statement already tried), and how
        they ended. The statement is the one that ran clean ("clean"), else the first that ran with a
        defect (:mod:`kb.engines.sql.checks`: corrected like a failed one), else None; "final" when
        the last failure is one no rewrite mends (a refusal of what the statement would do, a time
        limit), else "mendable". Writing is the clock's step "generation", running "query"."""
        used_tables: tuple[str, ...] = ()
        ran_with_defect: Optional[Statement] = None
        written_by_model = 0
        # kb's repairs cost no LLM call and are never repeated, so they do not use up the model's attempts;
        # the bound on all statements only guards against a repair that keeps producing new statements.
        for number in range(2 * self.options.max_attempts):
            if written_by_model == self.options.max_attempts:
                break
            tried = [a.sql for a in outcome.attempts]
            repaired = self.kb_repair(outcome.attempts[-1], tried) if number else None
            with clock.step("generation"):
                if repaired is not None:
                    proposed = repaired
                else:
                    written_by_model += 1
                    proposed = (
                        self.write(
                            asked if self.options.examples_when == "always" else replace(asked, examples_text="")
                        )
                        if number == 0
                        else self.correction(asked, outcome.attempts[-1], used_tables, tried)
                    )
            if number and normalized(proposed) in {normalized(sql) for sql in tried}:
                break  # the model wrote a statement already tried (even sampling): running it again changes nothing
            attempt = Attempt(sql=clean(proposed) or proposed, written_by="kb" if repaired is not None else "model")
            outcome.attempts.append(attempt)
            try:
                checked = self.guard.check(proposed)
            except SQLRefused as refusal:
                attempt.error = f"refused by the guard: {refusal}"
                outcome.refused, outcome.refusal_reason = True, str(refusal)
                if number == 0:
                    outcome.first_statement = Statement(attempt.sql, error=attempt.error)
                if not refusal.retryable:
                    return None, "final"
                continue
            attempt.sql, used_tables = checked.sql, checked.tables
            outcome.refused, outcome.refusal_reason = False, None
            with clock.step("query"):
                ran = self.runner.run_checked(checked)
            if number == 0:
                outcome.first_statement = ran
            if ran.rows is not None:
                found = self.problems(ran, asked.question)
                if not found:
                    return ran, "clean"
                attempt.error = RAN_WITH_DEFECT + found[0]
                rewrite = found[0].rewrite
                if rewrite and rewrite not in outcome.rewrites:
                    outcome.rewrites.append(rewrite)
                ran_with_defect = ran_with_defect or ran
                continue
            attempt.error = ran.error
            if any(marker in (ran.error or "") for marker in NOT_RETRIED):
                return ran_with_defect, "final"
        return ran_with_defect, "mendable"

    def rescue(
        self, asked: Asked, mending: Optional[Attempt] = None, rewrites: Sequence[str] = ()
    ) -> tuple[Optional[Statement], Votes]:
        """For a question none of whose attempts ran clean: up to ``rescue_samples`` statements sampled
        at ``rescue_temperature`` (a small model repeats its greedy mistake at low temperature) for
        the question's own prompt, each checked, run and checked for defects like a candidate. When
        none of them runs clean and there is a statement to mend (``mending``, the attempt that ran
        with a defect and would otherwise answer; when no attempt ran, the first of these samples
        that ran with a defect), up to ``rescue_samples`` more for the correction prompt that shows
        it with its defect (whose message may carry the statement to write). The first rows two of
        them agree on answer; when none agree, the first that ran clean; None when none did.

        ``rewrites`` (the statements kb's defect messages wrote, which the model's corrections did not
        take up) are run and checked first, and the first that runs clean is a voice among the samples:
        the first sample that gives its rows answers with it. When no sample agrees with it, it answers
        only with ``rewrites_answer`` (before a lone sample: one sample at this temperature is a guess,
        the rewrite mends the defect found); otherwise it is left out, as if kb had written nothing."""
        groups: list[list[Statement]] = []
        suggested: list[Statement] = []
        for rewrite in rewrites:
            try:
                ran = self.runner.run_checked(self.guard.check(rewrite))
            except SQLRefused:
                continue
            if ran.rows is not None and not self.problems(ran, asked.question):
                suggested.append(ran)
                grouped(groups, ran)

        def is_rewrite(statement: Statement) -> bool:
            return any(statement is rewritten for rewritten in suggested)

        written = sampled = 0
        agreed: Optional[list[Statement]] = None
        for shown_mending in (False, True):
            if shown_mending and (sampled or mending is None):
                break  # a sample for the question's own prompt ran clean, or none ran to be mended
            shown = self.correction_prompt(asked, mending, ()) if shown_mending and mending else None
            for seed in range(1, self.options.rescue_samples + 1):
                sample = self.sample_run(asked, seed, self.options.rescue_temperature, shown)
                written += 1
                found = self.problems(sample, asked.question) if sample is not None else []
                if sample is None or found:
                    if sample is not None and mending is None:  # no attempt ran: this one is shown mended
                        mending = Attempt(sql=sample.sql, error=RAN_WITH_DEFECT + found[0])
                    continue
                sampled += 1
                group = grouped(groups, sample)
                if is_rewrite(group[0]) or sum(1 for member in group if not is_rewrite(member)) == 2:
                    agreed = group
                    break
            if agreed is not None:
                break
        answered = [g for g in groups if not all(is_rewrite(member) for member in g)]
        rewritten = next(([s] for s in suggested), None) if self.options.rewrites_answer else None
        chosen = agreed or rewritten or max(answered, key=len, default=None)  # max keeps the first of equals
        votes = Votes(
            written,
            sampled,
            sum(1 for member in chosen or () if not is_rewrite(member)),
            False,
            rescue=True,
            rewrite_answered=chosen is not None and is_rewrite(chosen[0]),
        )
        return (chosen[0] if chosen else None), votes

    def sample_run(
        self,
        asked: Asked,
        seed: int,
        temperature: Optional[float] = None,
        correction: Optional[str] = None,
    ) -> Optional[Statement]:
        """One sampled statement (for the question's own prompt, or the ``correction`` prompt when
        given), checked and run by :meth:`candidate_run`."""
        if correction is None:
            proposed = self.write(asked, seed=seed, temperature=temperature)
        else:
            sampler = self.writers.sampled_llm(
                seed, self.options.sample_temperature if temperature is None else temperature
            )
            proposed = str(sampler.complete(correction).text)
        return self.candidate_run(proposed)

    def candidate_run(self, proposed: str) -> Optional[Statement]:
        """A candidate statement checked and run (kb's join added once if the server names an unknown
        column), not yet checked for defects; None when the guard refuses it or it does not run."""
        try:
            checked = self.guard.check(proposed)
        except SQLRefused:
            return None
        ran = self.runner.run_checked(checked)
        if ran.rows is None:
            joined = self.repairs.add_missing_join(checked.sql, ran.error or "")
            if joined is None:
                return None
            try:
                ran = self.runner.run_checked(self.guard.check(joined))
            except SQLRefused:
                return None
            ran.repaired_by_kb = True
        return ran if ran.rows is not None else None

    def vote(
        self, asked: Asked, greedy: Optional[Statement], heard: Sequence[Statement] = ()
    ) -> tuple[Optional[Statement], Votes]:
        """Execution-guided selection (:func:`kb.engines.sql.vote.elect`): the statement whose rows the
        most candidates gave, and how they voted. ``heard``: statements already written that vote as
        candidates do, after ``greedy`` (a copied pair's statement)."""

        def candidate(seed: int) -> Optional[Statement]:
            others = (
                self.writers.other_prompt_writers(asked.examples_text)
                if self.options.candidate_source == "prompts"
                else []
            )
            ran = (
                self.candidate_run(self.write(asked, writer=others[seed - 1]))
                if seed <= len(others)
                else self.sample_run(asked, seed)
            )
            return ran if ran is not None and not self.problems(ran, asked.question) else None

        thunks = (lambda seed=seed: candidate(seed) for seed in range(1, self.options.candidates))
        return elect(greedy, heard, thunks, self.options.candidates)

    def in_doubt(self, outcome: SQLOutcome, chosen: Optional[Statement], verdict: Verdict) -> bool:
        """Whether the vote is taken after the attempts: with ``candidates`` above 1, unless the guard
        refused the last statement for what it would do; under ``candidates_when="doubt"`` only when
        the greedy statement did not answer clean with rows as written (:func:`beyond_doubt`), or
        copies an approved pair (:func:`copies_a_pair`)."""
        if self.options.candidates < 2 or (outcome.refused and chosen is None and not outcome.attempts[-1].error):
            return False
        copied = chosen is not None and copies_a_pair(chosen, outcome)
        return self.options.candidates_when == "always" or copied or not beyond_doubt(outcome, chosen, verdict)

    def vote_on_a_copy(self, asked: Asked, copy: Statement) -> tuple[Optional[Statement], Votes]:
        """The vote on a statement that copies an approved pair shown for another question
        (:func:`copies_a_pair`): the greedy statement written without the pairs first, then the
        candidates written without them, the copy one voice among them; on a tie the statement written
        without pairs answers, and when the rows chosen are the copy's, the copy stands as written."""
        unshown = replace(asked, examples_text="")
        first = self.candidate_run(self.write(unshown))
        if first is not None and self.problems(first, asked.question):
            first = None
        voted, votes = self.vote(unshown, first, heard=[copy])
        if voted is not None and result_key(voted.rows or []) == result_key(copy.rows or []):
            voted = copy
        return voted, votes

    def rescue_stage(
        self, asked: Asked, outcome: SQLOutcome, chosen: Optional[Statement], clock: Stopwatch
    ) -> tuple[Optional[Statement], Verdict]:
        """The rescue (:meth:`rescue`) after attempts none of which ran clean, ``chosen`` the first that
        ran with a defect (None: none ran): the statement that answers now and how the question stands.
        The rescue's votes are ``outcome``'s, and a rescued statement is its last attempt."""
        with clock.step("generation"):  # the rescue samples: written and run
            mending = next(
                (a for a in outcome.attempts if chosen is not None and a.sql == chosen.sql and a.error), None
            )
            rescued, outcome.votes = self.rescue(asked, mending, outcome.rewrites)
        if rescued is None:
            return chosen, "mendable"
        outcome.refused, outcome.refusal_reason = False, None
        by_kb = outcome.votes.rewrite_answered or rescued.repaired_by_kb
        outcome.attempts.append(Attempt(sql=rescued.sql, written_by="kb" if by_kb else "model"))
        return rescued, "clean"

    def vote_stage(
        self, asked: Asked, outcome: SQLOutcome, chosen: Optional[Statement], clock: Stopwatch
    ) -> Optional[Statement]:
        """The vote after the attempts (:meth:`vote`, or :meth:`vote_on_a_copy` for a copied pair's
        statement): the statement that answers now. When another statement's rows win, ``chosen``'s
        attempt says it was outvoted and the winner is the last attempt; the votes are ``outcome``'s."""
        with clock.step("generation"):  # the extra candidates: written and run
            if chosen is not None and copies_a_pair(chosen, outcome):
                voted, outcome.votes = self.vote_on_a_copy(asked, chosen)
            else:
                voted, outcome.votes = self.vote(asked, chosen)
        if voted is None or voted is chosen:
            return chosen
        if chosen is not None:  # it ran, but the other candidates' rows won the vote
            outcome.attempts[-1].error = f"outvoted: {outcome.votes.sentence()}"
        outcome.attempts.append(Attempt(sql=voted.sql, written_by="kb" if voted.repaired_by_kb else "model"))
        outcome.refused, outcome.refusal_reason = False, None
        return voted
