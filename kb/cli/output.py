"""What the ``kb`` command prints: answers with what they stand on, search hits, sessions, stats.

Everything that comes from users, files, the model or the business database (paths, titles, session
names, questions, answers, chunks, statements, rows) is printed with its control characters escaped
(:mod:`kb.display`), so that stored text cannot forge lines of the output or drive the terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Optional

from kb.display import one_line, printable

if TYPE_CHECKING:  # the command line imports the engines only when it answers
    from llama_index.core.schema import NodeWithScore

    from kb.engines.answer import Answer, StreamingAnswer

Out = Callable[[str], Any]


def print_answer_tail(answer: Answer, out: Out = print, *, route: bool = True, sql: bool = True) -> None:
    """Route (when not plain documents), SQL attempts, rows, sources: what the answer stands on."""
    if route and (answer.route != "documents" or answer.route_reason):
        out(f"[route: {answer.route}{' - ' + one_line(answer.route_reason) if answer.route_reason else ''}]")
    if answer.refused:
        out(f"[refused: {one_line(answer.refusal_reason)}]")
    if answer.sql_examples and sql:
        for example in answer.sql_examples:
            score = f", similarity {example['score']:.2f}" if example.get("score") is not None else ""
            out(f"[approved example {one_line(str(example.get('id', '')))}{score}: {one_line(example['question'])}]")
    if len(answer.attempts) > 1 and (sql or answer.refused):
        for number, attempt in enumerate(answer.attempts[:-1], start=1):
            verdict = attempt.error if (attempt.error or "").startswith("outvoted") else f"failed: {attempt.error}"
            by_kb = ", written by kb" if attempt.written_by == "kb" else ""
            out(f"SQL attempt {number} ({one_line(verdict)}{by_kb}): {one_line(attempt.sql)}")
    if answer.sql and (sql or answer.refused):
        out(f"SQL{' (refused, not run)' if answer.refused else ''}: {one_line(answer.sql)}")
        if answer.attempts and answer.attempts[-1].written_by == "kb":
            out("[this statement was written by kb (a repair or a rewrite), not by the model]")
    if answer.candidates and (answer.candidates.get("rescue") or answer.candidates.get("ran", 0) > 1):
        from kb.engines.sql.vote import Votes

        out(f"[{Votes(**answer.candidates).sentence()}]")
    if answer.rows:
        from kb.engines.sql.answering import format_rows

        out(f"Rows ({len(answer.rows)}):")
        for line in format_rows(answer.rows, limit=10).splitlines():
            out(f"  {one_line(line)}")
    if answer.sources:
        out("Sources:")
        excerpted = {lender for lenders in (answer.context or {}).get("excerpts", {}).values() for lender in lenders}
        for i, source in enumerate(answer.sources, start=1):
            score = f" (score {source.score:.3f})" if source.score is not None else ""
            title = f" - {one_line(source.title)}" if source.title and source.title != source.label() else ""
            unread = " (retrieved, not given to the model)" if source.in_prompt is False else ""
            unread = " (sentences of it given to the model)" if source.node_id in excerpted else unread
            out(f"  {i}. {one_line(source.label())}{title}{score}{unread}")
    if answer.answer_id:
        out(f"[answer id {answer.answer_id}: kb feedback rate {answer.answer_id} positive|negative|neutral]")


def emit(streaming: StreamingAnswer, stream: bool) -> Answer:
    """Print a StreamingAnswer: token by token on a terminal, at once otherwise; returns its answer."""
    if stream:
        for chunk in streaming:
            print(printable(chunk), end="", flush=True)
        print()
    else:
        for _ in streaming:
            pass
        print(printable(streaming.answer.text))
    return streaming.answer


def print_hits(hits: list[NodeWithScore]) -> None:
    if not hits:
        print("no matching chunks")
    for rank, hit in enumerate(hits, start=1):
        md = hit.node.metadata
        where = md.get("file_path") or hit.node.ref_doc_id or hit.node.node_id
        text = " ".join(hit.node.get_content().split())
        print(
            f"{rank}. [{hit.score:.3f}] {one_line(where)} - {one_line(md.get('title', ''))}\n   {one_line(text[:240])}"
        )


def print_sessions(sessions: list[dict[str, Any]]) -> None:
    if not sessions:
        print("no chat sessions")
    for s in sessions:
        print(f"{one_line(s['session'])}\t{s['messages'] // 2} turns\tlast {s['last']:%Y-%m-%d %H:%M:%S}")


def print_turns(turns: list[dict[str, Any]], messages: list[Any]) -> None:
    for i, turn in enumerate(turns, start=1):
        print(f"turn {i} [{one_line(turn['route'])}] {turn['time']:%Y-%m-%d %H:%M:%S}")
        print(f"  you: {printable(turn['question'])}")
        if turn["condensed_question"] and turn["condensed_question"] != turn["question"]:
            print(f"  (as: {printable(turn['condensed_question'])})")
        if turn["sql"]:
            print(f"  SQL: {one_line(turn['sql'])}")
        print(f"  kb: {printable(turn['answer'])}")
        if turn["sources"]:
            names = dict.fromkeys(one_line(src["path"] or src["node_id"]) for src in turn["sources"])
            print("  sources: " + ", ".join(names))
    if not turns:  # messages written by another tool, without kb's log
        for message in messages:
            print(f"  {getattr(message.role, 'value', message.role)}: {printable(message.content)}")


def dollars(amount: Optional[float]) -> str:
    """US dollars with the precision small amounts need; "unknown" where a price is unknown."""
    if amount is None:
        return "unknown"
    if amount == 0:
        return "$0"
    return f"${amount:,.2f}" if amount >= 1 else f"${amount:.6f}"


def print_stats(stats: dict[str, Any]) -> None:
    print(f"{stats['total']} questions ({stats['sessions']} chat sessions, {stats['refused']} refused)")
    for row in stats["by_kind_route"]:
        print(f"  {row['kind']:<6} {row['route']:<10} {row['count']}")
    print("latency (ms)      p50      p95      p99")
    for name, values in stats["latency_ms"].items():
        cells = " ".join(
            f"{v:8.1f}" if v is not None else "       -" for v in (values["p50"], values["p95"], values["p99"])
        )
        print(f"  {name.replace('_ms', ''):<14} {cells}")
    print("by route        answers  mean s   max s  mean tokens in  chunks read  chunk tokens")
    for row in stats["by_route"]:
        columns = [
            f"{row['mean_total_ms'] / 1000:7.1f}" if row["mean_total_ms"] is not None else "      -",
            f"{row['max_total_ms'] / 1000:7.1f}" if row["max_total_ms"] is not None else "      -",
            f"{row['mean_tokens_in']:14.0f}" if row["mean_tokens_in"] is not None else "             -",
            f"{row['mean_context_chunks']:11.1f}" if row["mean_context_chunks"] is not None else "          -",
            f"{row['mean_context_tokens']:13.0f}" if row["mean_context_tokens"] is not None else "            -",
        ]
        print(f"  {row['route']:<13} {row['count']:>7} " + " ".join(columns))
    if stats["satisfaction_by_route"]:
        print("feedback        positive  negative  neutral  satisfaction")
        for label, rows in (("route", stats["satisfaction_by_route"]), ("day", stats["satisfaction_by_day"])):
            for row in rows:
                name = row[label]
                share = f"{row['satisfaction']:.0%}" if row["satisfaction"] is not None else "-"
                print(f"  {name:<13} {row['positive']:>8} {row['negative']:>9} {row['neutral']:>8}  {share:>12}")
    print("tokens by model")
    for row in stats["tokens_by_model"]:
        print(
            f"  {row['model']}: {row['calls']} calls, {row['in']} in, {row['out']} out, cost {dollars(row['cost_usd'])}"
        )
    if stats["cost_by_day"]:
        print("cost by day")
        for row in stats["cost_by_day"]:
            print(f"  {row['day']}  {row['answers']:>6} answers  {dollars(row['cost_usd'])}")


def print_access(rows: list[dict[str, Any]]) -> None:
    """``kb stats``: the service's requests per API key (nothing when ``kb serve`` never ran)."""
    if not rows:
        return
    print("kb serve requests by key   requests  refused  errors   tokens  cache hits        cost")
    for r in rows:
        hits = f"{r['cache_hits']}/{r['cacheable']}" if r["cacheable"] else "-"
        print(
            f"  {r['key']:<24} {r['requests']:>8} {r['refused']:>8} {r['errors']:>7} {r['tokens']:>8}  {hits:<10} "
            f"{dollars(r['cost_usd']):>10}"
        )


def print_feedback(entries: list[dict[str, Any]]) -> None:
    """``kb feedback list``: rated answers, newest first."""
    if not entries:
        print("no rated answers")
        return
    for e in entries:
        comment = f" - {one_line(e['comment'])}" if e["comment"] else ""
        who = f" by {e['asked_by']}" if e["asked_by"] else ""
        print(f"{e['rated_at']:%Y-%m-%d %H:%M} {e['rating']:<8} [{e['route']}] {one_line(e['question'])}{comment}{who}")
        print(f"  answer {e['answer_id']}: {one_line((e['answer'] or '')[:200])}")


def print_variants(rows: list[dict[str, Any]]) -> None:
    """``kb stats --by variant``: the A/B variants side by side."""
    if not rows:
        print("no answers with a variant yet (serve.experiments is empty, or kb serve has not answered)")
        return
    print("variant          answers   mean s  tokens in  tokens out        cost  positive  negative  satisfaction")
    for r in rows:
        seconds = f"{r['mean_total_ms'] / 1000:8.1f}" if r["mean_total_ms"] is not None else "       -"
        share = f"{r['satisfaction']:.0%}" if r["satisfaction"] is not None else "-"
        print(
            f"  {r['variant']:<14} {r['answers']:>7} {seconds} {r['mean_tokens_in'] or 0:>10.0f} "
            f"{r['mean_tokens_out'] or 0:>11.0f} {dollars(r['cost_usd']):>11} {r['positive']:>9} {r['negative']:>9}"
            f"  {share:>12}"
        )
