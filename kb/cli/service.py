"""The ``kb serve`` and ``kb keys`` commands (the HTTP service and its API keys)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from kb.config import Settings

if TYPE_CHECKING:
    from kb.service.keys import KeyStore


def _keys(settings: Settings) -> KeyStore:
    from kb.server.database import connect
    from kb.service.keys import KeyStore

    return KeyStore(connect(settings), settings.serve.keys_table)


def _duration(text: str) -> float:
    """``90d``, ``12h``, ``30m`` or ``45s`` -> seconds (argparse reports a bad one in a line)."""
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    number, unit = text[:-1], text[-1:].lower()
    if unit not in units or not number.replace(".", "", 1).isdigit() or float(number) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a lifetime: a number and d, h, m or s (90d, 12h)")
    return float(number) * units[unit]


def _cmd_keys_create(args: argparse.Namespace, settings: Settings) -> int:
    from kb.collections import parse_collections

    key, secret = _keys(settings).create(
        args.name,
        collections=parse_collections(args.collections),
        scope=args.scope,
        sql=args.sql,
        requests_per_minute=args.requests_per_minute,
        tokens_per_minute=args.tokens_per_minute,
        expires_in_s=args.expires,
    )
    print(secret)
    print(
        f"key {key.name!r} created: scope {key.scope}, collections {', '.join(key.collections)}, "
        f"database {'yes' if key.sql else 'no'}"
        + (f", expires {key.expires_at:%Y-%m-%d %H:%M} (database time)" if key.expires_at else "")
        + ". The key above is shown only now: store it safely.",
        file=sys.stderr,
    )
    return 0


def _cmd_keys_list(args: argparse.Namespace, settings: Settings) -> int:
    keys = _keys(settings).list()
    if not keys:
        print("no keys yet: kb keys create NAME --collections a,b")
    for key in keys:
        if key.revoked_at:
            state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}"
        elif key.expired:
            state = f"expired {key.expires_at:%Y-%m-%d %H:%M}"
        else:
            state = "active" + (f", expires {key.expires_at:%Y-%m-%d %H:%M}" if key.expires_at else "")
        limits = f"{key.requests_per_minute or '-'} req/min, {key.tokens_per_minute or '-'} tokens/min"
        print(
            f"{key.name:<20} {key.scope:<6} {','.join(key.collections):<24} "
            f"sql={'yes' if key.sql else 'no':<4} {limits:<32} {state}"
        )
    return 0


def _cmd_keys_revoke(args: argparse.Namespace, settings: Settings) -> int:
    if not _keys(settings).revoke(args.name):
        print(f"kb: error: no active key named {args.name!r} (kb keys list)", file=sys.stderr)
        return 1
    print(f"key {args.name!r} revoked: its next request is refused")
    return 0


def _cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from kb.service import serve

    serve(settings, host=args.host, port=args.port)
    return 0


def add_service_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = commands.add_parser(
        "serve",
        help="serve the knowledge base over HTTP (OpenAI-compatible API, keys, web page)",
        description="Serve kb over HTTP: /v1/chat/completions (OpenAI-compatible), /v1/query, /v1/retrieve, "
        "/v1/sql, /v1/route, sessions, indexing jobs, /metrics, and a web page at /. Every request needs a key "
        "(kb keys create).",
    )
    serve.add_argument("--host", default=None, help="address to listen on (default: serve.host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: serve.port, 8420)")
    serve.set_defaults(handler=_cmd_serve)

    keys = commands.add_parser(
        "keys", help="create, list and revoke API keys of kb serve", description="API keys of kb serve."
    )
    actions = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("name")
    create.add_argument(
        "--collections", required=True, metavar="A,B", help="collections the key sees; * for all of them"
    )
    create.add_argument("--scope", choices=["read", "write", "admin"], default="read")
    create.add_argument("--sql", action="store_true", help="may query the business database")
    create.add_argument("--requests-per-minute", type=int, default=None, metavar="N")
    create.add_argument("--tokens-per-minute", type=int, default=None, metavar="N")
    create.add_argument(
        "--expires",
        type=_duration,
        default=None,
        metavar="AFTER",
        help="refuse the key after this long: 90d, 12h, 30m (default: never)",
    )
    create.set_defaults(handler=_cmd_keys_create)
    actions.add_parser("list", help="every key (never the secrets)").set_defaults(handler=_cmd_keys_list)
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("name")
    revoke.set_defaults(handler=_cmd_keys_revoke)
