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
