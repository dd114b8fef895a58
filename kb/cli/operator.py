"""The operator's commands: ``kb eval`` (an operator's own questions, scored against the retrieval
settings they want to compare (:mod:`kb.operations.evaluation`), as a table, the best setting's config lines
and JSON), ``kb feedback`` (rated answers: list them, rate one), ``kb cost`` and ``kb reembed``
(move the index to another embedding model without downtime, :mod:`kb.ingest.reembedding`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Optional, get_args

from kb.config import FusionName, RetrievalMode, Settings
from kb.display import printable
from kb.errors import KBError
from kb.operations.evaluation import EvalReport, feedback_questions, grid, load_questions

DEFAULT_MODES = "dense,text,hybrid"
DEFAULT_FUSIONS = "rrf,weighted"
DEFAULT_ALPHAS = "0.3,0.5,0.7"


def _floats(text: str, option: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise KBError(f"{option} {text!r}: give numbers separated by commas, e.g. 0.3,0.5,0.7") from None


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Optional[Callable[[int, int], None]]]:
    """A rich progress bar on a terminal; nothing otherwise (the table is the output)."""
    if not enabled:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    ) as progress:
        task = progress.add_task("eval", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def print_report(report: EvalReport, answer_top_k: int) -> None:
    """The settings as a rich table (best first), then route and answer scores and the config lines."""
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    table = Table(title=f"retrieval on {report.questions} questions (document level)")
    for name in ("setting", "hit@1", "hit@5", "MRR@10", "nDCG@10", "s / question"):
        table.add_column(name, justify="left" if name == "setting" else "right", no_wrap=True)
    best = report.best
    for score in sorted(report.settings, key=lambda s: (s.ndcg_10, s.mrr_10, s.hit_1), reverse=True):
        marker = " (best)" if score is best else ""
        table.add_row(
            score.setting.label + marker,
            f"{score.hit_1:.3f}",
            f"{score.hit_5:.3f}",
            f"{score.mrr_10:.3f}",
            f"{score.ndcg_10:.3f}",
            f"{score.seconds:.3f}",
        )
    console.print(table)
    if report.route_accuracy is not None:
        console.print(f"routes: {report.route_accuracy:.1%} right ({report.routes_scored} questions name a route)")
    if report.answers:
        a = report.answers
        fact = f"{a['fact_present']:.1%} of {a['facts_scored']}" if a["fact_present"] is not None else "no facts given"
        console.print(
            f"answers with the best setting: fact present {fact}, first source right "
            f"{a['first_source_right']:.1%}, {a['seconds_per_question']:.1f} s / question"
        )
    for miss in report.misses:
        console.print(f"not in the first 5: {miss['q']!r} (wanted {', '.join(miss['files'])})")
    console.print("\nto use the best setting, put these lines in config.yaml:")
    console.print(best.setting.config_lines(answer_top_k), markup=False)


def _cmd_eval_from_feedback(settings: Settings, target: str) -> int:
    """Rated answers -> an evaluation file to extend by hand (never overwrites one)."""
    import yaml

    from kb.knowledge_base import KnowledgeBase

    path = Path(target)
    if path.exists():
        raise KBError(f"{path} exists; name a new file for the questions from feedback")
    with KnowledgeBase(settings) as kb:
        entries = feedback_questions(kb.feedback(limit=1000))
    if not entries:
        raise KBError("no rated answers yet: rate answers (kb feedback rate, POST /v1/feedback) first")
    header = (
        "# Questions from rated answers (kb eval --from-feedback). Check each before using the file:\n"
        "# a positive rating says its files answered it; for a negative one, put the right files.\n"
    )
    path.write_text(header + yaml.safe_dump(entries, sort_keys=False, allow_unicode=True))
    print(f"{len(entries)} rated answers written to {path}; edit the files and facts, then: kb eval {path}")
    return 0


def _cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    if args.from_feedback:
        return _cmd_eval_from_feedback(settings, args.file)
    modes = _names(args.modes)
    unknown = [m for m in modes if m not in get_args(RetrievalMode)]
    if unknown:
        raise KBError(
            f"--modes: unknown mode(s) {', '.join(unknown)}; choose from {', '.join(get_args(RetrievalMode))}"
        )
    fusions = _names(args.fusions)
    known = get_args(FusionName)
    bad = [f for f in fusions if f not in known]
    if bad:
        raise KBError(f"--fusions: unknown fusion(s) {', '.join(bad)}; choose from {', '.join(known)}")
    settings_grid = grid(modes, fusions, _floats(args.alphas, "--alphas"), _floats(args.rrf_k, "--rrf-k"))
    if args.top_k < 1 or args.top_k > 1000:
        raise KBError(f"--top-k {args.top_k}: give a number from 1 to 1000")
    settings_grid = [replace(s, top_k=args.top_k) for s in settings_grid]
    questions = load_questions(args.file)  # a bad file is refused before anything is opened
    with KnowledgeBase(settings) as kb, _progress_bar(sys.stderr.isatty()) as progress:
        report = kb.evaluate(questions, settings_grid, answers=args.answers, progress=progress)
    print_report(report, settings.retrieval.top_k)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(settings.retrieval.top_k), indent=2) + "\n")
        print(f"\nfigures written to {args.json}")
    return 0


def _cmd_feedback_list(args: argparse.Namespace, settings: Settings) -> int:
    from kb.cli.output import print_feedback
    from kb.knowledge_base import KnowledgeBase

    if args.limit < 1:
        raise KBError(f"--limit {args.limit}: give a number of 1 or more")
    with KnowledgeBase(settings) as kb:
        print_feedback(kb.feedback(rating="negative" if args.negative else None, limit=args.limit))
    return 0


def _cmd_feedback_rate(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    if args.sql and args.rating != "negative":
        raise KBError("--sql gives the corrected statement of a negative rating: rate the answer negative")
    with KnowledgeBase(settings) as kb:
        kb.rate(args.answer_id, args.rating, args.comment)
        print(f"answer {printable(args.answer_id)} rated {args.rating}")
        taught = kb.learn_from_rating(args.answer_id, args.rating, sql=args.sql)
    if taught:
        print(taught)
    return 0


def _cmd_cost_estimate(args: argparse.Namespace, settings: Settings) -> int:
    """A month of indexing and questions, for every profile, from the documents' tokens and the
    tokens an answer took in the query log (or typical figures when it is empty)."""
    from llama_index.core.utils import get_tokenizer

    from kb.cli.output import dollars
    from kb.operations.cost import document_tokens, estimate_month

    if args.questions_per_day < 0:
        raise KBError(f"--questions-per-day {args.questions_per_day}: give 0 or more")
    tokenizer = get_tokenizer()
    tokens, files = document_tokens(Path(args.docs), lambda text: len(tokenizer(text)))
    per_question, source = (1500.0, 150.0), "typical figures: the query log is empty"
    try:
        from kb.operations.query_log import QueryLog
        from kb.server.database import connect

        observed = QueryLog(connect(settings)).mean_tokens()
        if observed is not None:
            per_question, source = observed, "the query log's mean"
    except Exception as exc:  # no database reachable: the estimate still stands on typical figures
        source += f"; query log not read: {str(exc).splitlines()[0][:120]}"
    print(
        f"{files} files, {tokens:,} tokens to embed; {args.questions_per_day:g} questions a day of "
        f"{per_question[0]:,.0f} tokens in and {per_question[1]:,.0f} out ({source})"
    )
    print(f"{'profile':<14} {'indexing once':>14} {'per question':>14} {'questions / 30 days':>20} {'month':>12}")
    for e in estimate_month(settings, tokens, args.questions_per_day, per_question):
        print(
            f"{e.profile:<14} {dollars(e.indexing):>14} {dollars(e.per_question):>14} "
            f"{dollars(e.questions):>20} {dollars(e.total):>12}"
        )
    return 0


def _cmd_reembed(args: argparse.Namespace, settings: Settings) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kb.knowledge_base import KnowledgeBase

    if not args.profile and not args.drop_old:
        raise KBError("give --profile NAME (the profile whose embedding model to move to), --drop-old, or both")
    with KnowledgeBase(settings) as kb:
        if args.profile:
            with Progress(
                TextColumn("re-embedding"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=True,
                disable=not sys.stderr.isatty(),
            ) as bar:
                task = bar.add_task("reembed", total=None)
                report = kb.reembed(
                    args.profile, progress=lambda done, total: bar.update(task, completed=done, total=total)
                )
            live = report.live
            if not report.switched:
                print(
                    f"the knowledge base already answers from {live.model} vectors (table {live.table}); nothing to do"
                )
            else:
                print(
                    f"switched from {report.previous.model} (table {report.previous.table}) to {live.model} "
                    f"(table {live.table}, version {live.version}): {report.chunks:,} chunks, {report.copied:,} "
                    f"copied, {report.embedded:,} embedded{' (resumed)' if report.resumed else ''} in "
                    f"{report.seconds:.1f} s"
                )
                if settings.profile != args.profile:
                    print(
                        f"questions are embedded with profile {args.profile}'s model now; its LLM is used only "
                        f"if you also select it (profile: {args.profile} in the config, or KB_PROFILE={args.profile})"
                    )
        if args.drop_old:
            dropped = kb.drop_old_generations()
            print(f"dropped {', '.join(dropped)}" if dropped else "no old tables to drop")
        elif args.profile and report.switched:
            print(f"the old table {report.previous.table} is kept: kb reembed --drop-old removes it")
    return 0


def add_operator_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    evaluate = commands.add_parser(
        "eval",
        help="score retrieval settings on your own questions (hit@k, MRR, nDCG)",
        description="Score retrieval settings on an evaluation file: a YAML list (or JSON lines) of "
        "{q: question, files: [paths as indexed], fact: optional text, route: optional route}. "
        "Prints a table, the best setting and the config lines that select it.",
    )
    evaluate.add_argument("file", help="the evaluation file (.yaml or .jsonl); with --from-feedback, the file to write")
    evaluate.add_argument(
        "--from-feedback", action="store_true", help="write rated answers as an evaluation file to extend by hand"
    )
    evaluate.add_argument("--modes", default=DEFAULT_MODES, help=f"modes to compare (default {DEFAULT_MODES})")
    evaluate.add_argument("--fusions", default=DEFAULT_FUSIONS, help=f"hybrid fusions (default {DEFAULT_FUSIONS})")
    evaluate.add_argument("--alphas", default=DEFAULT_ALPHAS, help=f"weighted fusion alphas (default {DEFAULT_ALPHAS})")
    evaluate.add_argument("--rrf-k", default="60", help="RRF constants (default 60)")
    evaluate.add_argument("--top-k", type=int, default=10, help="chunks retrieved per question (default 10)")
    evaluate.add_argument("--answers", action="store_true", help="also answer each question with the best setting")
    evaluate.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    evaluate.set_defaults(handler=_cmd_eval)

    feedback = commands.add_parser(
        "feedback",
        help="list rated answers, or rate one",
        description="Feedback on answers: `kb feedback list [--negative]`, `kb feedback rate ANSWER_ID RATING`.",
    )
    actions = feedback.add_subparsers(dest="feedback_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="rated answers, newest first")
    listing.add_argument("--negative", action="store_true", help="only negative ratings")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listing.set_defaults(handler=_cmd_feedback_list)
    rate = actions.add_parser("rate", help="rate an answer by its id (printed under every answer)")
    rate.add_argument("answer_id")
    rate.add_argument("rating", help="positive, negative or neutral")
    rate.add_argument("--comment", help="what was right or wrong")
    rate.add_argument(
        "--sql", help="with a negative rating of a database answer: the right statement, approved as an example"
    )
    rate.set_defaults(handler=_cmd_feedback_rate)

    reembed = commands.add_parser(
        "reembed",
        help="move the index to another embedding model without downtime",
        description="Build the vectors of another profile's embedding model into a table beside the live one "
        "(resumable; reuses the chunks' text, reads no file), then switch every process to it at once. "
        "Questions are answered from the old table until the switch; the old table is kept until --drop-old.",
    )
    reembed.add_argument("--profile", help="the profile whose embedding model to move to")
    reembed.add_argument("--drop-old", action="store_true", help="drop the tables of vectors no longer live")
    reembed.set_defaults(handler=_cmd_reembed)

    cost = commands.add_parser(
        "cost", help="estimate a month's cost for each profile", description="What indexing and questions cost."
    )
    cost_actions = cost.add_subparsers(dest="cost_command", metavar="ACTION", required=True)
    estimate = cost_actions.add_parser(
        "estimate", help="a month of indexing DIR and N questions a day, for every profile"
    )
    estimate.add_argument("--docs", required=True, metavar="DIR", help="the folder of documents you would index")
    estimate.add_argument("--questions-per-day", type=float, required=True, metavar="N")
    estimate.set_defaults(handler=_cmd_cost_estimate)
