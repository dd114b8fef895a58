"""The ``kb`` command: parses arguments, calls the Python API, prints. No logic of its own.

A user mistake (bad config, unreachable server, bad input) is printed as one ``kb: error: ...``
line with a non-zero exit status; only bugs show a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from kb.config import Settings, load_settings
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
    search.add_argument("--mode", choices=["dense", "text", "hybrid", "mmr"], default=None)
    search.add_argument("--fusion", choices=["rrf", "weighted", "text_then_vector", "vector_then_text"], default=None)
    search.add_argument("--filter", action="append", metavar="KEY=VALUE", help="metadata equality (repeatable)")
    search.set_defaults(handler=_cmd_search)

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
