"""The ``kb`` command: parses arguments, calls the Python API, prints. No logic of its own.

A user mistake (bad config, unreachable server, bad input) is printed as one ``kb: error: ...``
line with a non-zero exit status; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence, get_args

from kb.config import FusionName, RetrievalMode, Settings, load_settings
from kb.errors import KBError
from stores.connection import StoreError

Handler = Callable[[argparse.Namespace, Settings], int]


def _cmd_db_start(args: argparse.Namespace, settings: Settings) -> int:
    from kb.database import connect, private_server, uses_private_server

    if not uses_private_server(settings):
        conn = connect(settings)
        print(f"database.url is set: kb uses the MariaDB {conn.server_version()} at {conn.where}; "
              "nothing to start")
        return 0
    print(private_server(settings).start().describe())
    return 0


def _cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from kb.database import private_server, uses_private_server

    if not uses_private_server(settings):
        print("database.url is set: kb does not manage that server; nothing to stop")
        return 0
    was_running = private_server(settings).stop()
    print("kb's MariaDB stopped" if was_running else "kb's MariaDB was not running")
    return 0


def _cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    from kb.database import connect, private_server, uses_private_server

    if not uses_private_server(settings):
        conn = connect(settings)
        print(f"external MariaDB {conn.server_version()} at {conn.where} (database.url)")
        return 0
    status = private_server(settings).status()
    print(status.describe())
    return 0 if status.running else 3


def _cmd_config_show(args: argparse.Namespace, settings: Settings) -> int:
    data = settings.model_dump(mode="json")
    for profile in data["profiles"].values():
        for part in ("llm", "embedding"):
            if profile[part].get("api_key"):
                profile[part]["api_key"] = "***"
    if data["database"].get("url"):
        from stores.connection import build_url

        data["database"]["url"] = build_url(data["database"]["url"]).render_as_string(hide_password=True)
    print(f"# from {settings.source}; profile {settings.profile}")
    print(json.dumps(data, indent=2))
    return 0


def _cmd_config_check(args: argparse.Namespace, settings: Settings) -> int:
    from kb.database import connect

    settings.require_api_keys()
    conn = connect(settings)
    print(f"configuration OK ({settings.source}); profile {settings.profile}; "
          f"MariaDB {conn.server_version()} at {conn.where}")
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from kb.demo import run

    run(settings)
    return 0


def _parse_filters(items: list[str] | None) -> dict | None:
    """``key=value`` pairs (values read as YAML scalars: 2024 is a number) -> equality filters."""
    import yaml

    if not items:
        return None
    filters = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise KBError(f"--filter {item!r}: use key=value, e.g. --filter file_type=pdf")
        parsed = yaml.safe_load(value) if value.strip() else ""
        filters[key.strip()] = parsed if isinstance(parsed, (str, int, float)) else value
    return filters


def _knowledge_base(settings: Settings):
    from kb.knowledge_base import KnowledgeBase

    return KnowledgeBase(settings)


def _cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    status = 0
    for path in args.paths:
        report = kb.index_directory(path, include=args.include or None, exclude=args.exclude or None,
                                    recursive=False if args.no_recursive else None, dry_run=args.dry_run,
                                    echo=lambda line: print(line, file=sys.stderr, flush=True))
        print(report.summary(), flush=True)
        status = status or (0 if report.ok else 1)
    kb.close()
    return status


def _cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    hits = kb.retrieve(args.question, top_k=args.top_k, mode=args.mode, filters=_parse_filters(args.filter),
                       fusion=args.fusion)
    if not hits:
        print("no matching chunks")
    for rank, hit in enumerate(hits, start=1):
        md = hit.node.metadata
        where = md.get("file_path") or hit.node.ref_doc_id or hit.node.node_id
        text = " ".join(hit.node.get_content().split())
        print(f"{rank}. [{hit.score:.3f}] {where} - {md.get('title', '')}\n   {text[:240]}")
    kb.close()
    return 0


def _print_answer_tail(answer, out=print, *, route: bool = True, sql: bool = True) -> None:
    """Route (when not plain documents), SQL, sources: what the answer stands on."""
    if route and (answer.route != "documents" or answer.route_reason):
        out(f"[route: {answer.route}{' - ' + answer.route_reason if answer.route_reason else ''}]")
    if answer.refused:
        out(f"[refused: {answer.refusal_reason}]")
    if answer.sql and (sql or answer.refused):
        out(f"SQL{' (refused, not run)' if answer.refused else ''}: {answer.sql}")
    if answer.rows:
        from engines.sql import format_rows

        out(f"Rows ({len(answer.rows)}):")
        for line in format_rows(answer.rows, limit=10).splitlines():
            out(f"  {line}")
    if answer.sources:
        out("Sources:")
        for i, source in enumerate(answer.sources, start=1):
            score = f" (score {source.score:.3f})" if source.score is not None else ""
            title = f" - {source.title}" if source.title and source.title != source.label() else ""
            out(f"  {i}. {source.label()}{title}{score}")


def _emit(streaming, stream: bool) -> object:
    """Print a StreamingAnswer: token by token on a terminal, at once otherwise."""
    if stream:
        for chunk in streaming:
            print(chunk, end="", flush=True)
        print()
    else:
        for _ in streaming:
            pass
        print(streaming.answer.text)
    return streaming.answer


def _cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    options = {"top_k": args.top_k, "mode": args.mode, "filters": _parse_filters(args.filter), "route": args.route}
    answer = _emit(kb.stream_query(args.question, **{k: v for k, v in options.items() if v is not None}),
                   sys.stdout.isatty())
    _print_answer_tail(answer)
    kb.close()
    return 0


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    answer = kb.sql(args.question)
    print(answer.text)
    _print_answer_tail(answer, route=False, sql=args.show_sql)
    kb.close()
    return 0


def _cmd_route(args: argparse.Namespace, settings: Settings) -> int:
    decision = _knowledge_base(settings).route(args.question)
    print(f"{decision.route}: {decision.reason}")
    return 0


def _cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    interactive = sys.stdin.isatty()
    earlier = kb.session_messages(args.session)
    if earlier:
        print(f"Resuming session {args.session!r} ({len(earlier) // 2} earlier turns):")
        for message in earlier:
            role = getattr(message.role, "value", message.role)
            print(f"  {role}: {message.content}")
    elif interactive:
        print(f"New session {args.session!r}. Type your question; 'exit' or Ctrl-D ends.")
    while True:
        try:
            line = input("you> " if interactive else "")
        except EOFError:
            break
        message = line.strip()
        if not message:
            continue
        if message.lower() in ("exit", "quit", "/exit", "/quit"):
            break
        if not interactive:
            print(f"you> {message}")
        print("kb> ", end="", flush=True)
        answer = _emit(kb.stream_chat(args.session, message), sys.stdout.isatty())
        _print_answer_tail(answer)
    kb.close()
    return 0


def _cmd_sessions(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    action = args.action or "list"
    if action == "list":
        sessions = kb.sessions()
        if not sessions:
            print("no chat sessions")
        for s in sessions:
            print(f"{s['session']}\t{s['messages'] // 2} turns\tlast {s['last']:%Y-%m-%d %H:%M:%S}")
        return 0
    if not args.name:
        raise KBError(f"kb sessions {action} needs a session name")
    if action == "show":
        messages = kb.session_messages(args.name)
        if not messages:
            raise KBError(f"no session named {args.name!r}; `kb sessions list` shows them")
        turns = kb.session_turns(args.name)
        for i, turn in enumerate(turns, start=1):
            print(f"turn {i} [{turn['route']}] {turn['time']:%Y-%m-%d %H:%M:%S}")
            print(f"  you: {turn['question']}")
            if turn["condensed_question"] and turn["condensed_question"] != turn["question"]:
                print(f"  (as: {turn['condensed_question']})")
            if turn["sql"]:
                print(f"  SQL: {turn['sql']}")
            print(f"  kb: {turn['answer']}")
            if turn["sources"]:
                print("  sources: " + ", ".join(dict.fromkeys(src['path'] or src['node_id'] for src in turn["sources"])))
        if not turns:  # messages written by another tool, without kb's log
            for message in messages:
                print(f"  {getattr(message.role, 'value', message.role)}: {message.content}")
        return 0
    if not kb.delete_session(args.name):
        raise KBError(f"no session named {args.name!r}")
    print(f"deleted session {args.name!r}")
    return 0


def _cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    stats = _knowledge_base(settings).stats()
    print(f"{stats['total']} questions ({stats['sessions']} chat sessions, {stats['refused']} refused)")
    for row in stats["by_kind_route"]:
        print(f"  {row['kind']:<6} {row['route']:<10} {row['count']}")
    print("latency (ms)      p50      p95      p99")
    for name, values in stats["latency_ms"].items():
        cells = " ".join(f"{v:8.1f}" if v is not None else "       -" for v in (values["p50"], values["p95"], values["p99"]))
        print(f"  {name.replace('_ms', ''):<14} {cells}")
    print("tokens by model")
    for row in stats["tokens_by_model"]:
        print(f"  {row['model']}: {row['calls']} calls, {row['in']} in, {row['out']} out")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb",
        description="A knowledge base over your documents and your business database, on MariaDB.",
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: $KB_CONFIG, else ./config.yaml)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    db = commands.add_parser("db", help="start, stop or inspect kb's private MariaDB 11.8",
                             description="Manage kb's private MariaDB 11.8 (unused when database.url is set).")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("start", help="provision (first time) and start the server; idempotent").set_defaults(handler=_cmd_db_start)
    db_commands.add_parser("stop", help="stop the server").set_defaults(handler=_cmd_db_stop)
    db_commands.add_parser("status", help="print the server version and where it listens").set_defaults(handler=_cmd_db_status)

    config = commands.add_parser("config", help="show or check the configuration",
                                 description="Show the effective configuration or check it end to end.")
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_commands.add_parser("show", help="print the effective configuration (secrets hidden)").set_defaults(handler=_cmd_config_show)
    config_commands.add_parser("check", help="check the profile's API keys and the database").set_defaults(handler=_cmd_config_check)
    index = commands.add_parser("index", help="index folders of documents (incremental)",
                                description="Index folders: new and changed files are embedded, unchanged ones "
                                            "skipped, deleted ones removed (only under the folder given).")
    index.add_argument("paths", nargs="+", metavar="PATH", help="folder(s) to index")
    index.add_argument("--include", action="append", metavar="GLOB", help="only paths matching (repeatable)")
    index.add_argument("--exclude", action="append", metavar="GLOB", help="skip paths matching (repeatable)")
    index.add_argument("--no-recursive", action="store_true", help="only the folder itself, not sub-folders")
    index.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    index.set_defaults(handler=_cmd_index)

    search = commands.add_parser("search", help="find the chunks that match a question (no LLM)",
                                 description="Retrieve the best-matching chunks, without generating an answer.")
    search.add_argument("question")
    search.add_argument("--top-k", type=int, default=None, help="how many chunks (default: retrieval.top_k)")
    search.add_argument("--mode", choices=get_args(RetrievalMode), default=None)
    search.add_argument("--fusion", choices=get_args(FusionName), default=None)
    search.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata equality (repeatable)")
    search.set_defaults(handler=_cmd_search)

    ask = commands.add_parser("ask", help="answer a question from the knowledge base, with sources",
                              description="Answer a question from the indexed documents and cite the sources.")
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None, help="chunks to retrieve (default: retrieval.top_k)")
    ask.add_argument("--mode", choices=get_args(RetrievalMode), default=None)
    ask.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata equality (repeatable)")
    ask.add_argument("--route", choices=["documents", "database", "both"], default=None,
                     help="answer from this side instead of letting the router choose")
    ask.set_defaults(handler=_cmd_ask)

    sql = commands.add_parser("sql", help="ask the business database directly (NL -> guarded SQL)",
                              description="Answer from the business database; the SQL runs only if the read-only "
                                          "guard accepts it.")
    sql.add_argument("question")
    sql.add_argument("--show-sql", action="store_true", help="print the SQL and the rows too")
    sql.set_defaults(handler=_cmd_sql)

    route = commands.add_parser("route", help="show where a question would go (documents, database, both) and why",
                                description="Route a question without answering it.")
    route.add_argument("question")
    route.set_defaults(handler=_cmd_route)

    chat = commands.add_parser("chat", help="chat in a session that is kept in MariaDB",
                               description="Chat interactively (or with piped input); the session resumes later.")
    chat.add_argument("--session", required=True, metavar="NAME", help="session name (created on first use)")
    chat.set_defaults(handler=_cmd_chat)

    sessions = commands.add_parser("sessions", help="list, show or delete chat sessions",
                                   description="List chat sessions, show one turn by turn, or delete one.")
    sessions.add_argument("action", nargs="?", choices=["list", "show", "delete"], default="list")
    sessions.add_argument("name", nargs="?", help="session name (for show and delete)")
    sessions.set_defaults(handler=_cmd_sessions)

    commands.add_parser("stats", help="query log summary: counts, latency percentiles, tokens",
                        description="Summarise the query log.").set_defaults(handler=_cmd_stats)

    commands.add_parser("demo", help="run the demo on the offline default models",
                        description="Start kb's server and show that kb works end to end.").set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings(args.config)
        return args.handler(args, settings)
    except (KBError, StoreError, ValueError) as exc:
        print(f"kb: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("kb: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
