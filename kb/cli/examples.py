"""Examples under every ``kb`` command's ``--help``, as sqlite-utils shows them.

Each command path (``"db start"``, ``"ask"``, ``""`` for ``kb`` itself) has at least one example; every
example is a whole command line that the parser accepts (tests/test_server_cli.py parses each one).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

EXAMPLES: dict[str, tuple[str, ...]] = {
    "": ("kb demo", "kb index docs/", "kb ask 'What is the return window?'", "kb --config other.yaml config show"),
    "db": ("kb db start", "kb db status"),
    "db start": ("kb db start", "kb db start --replicas 1"),
    "db stop": ("kb db stop",),
    "db status": ("kb db status",),
    "config": ("kb config show", "kb config check"),
    "config show": ("kb config show",),
    "config check": ("kb config check",),
    "model": ("kb model fetch",),
    "model fetch": ("kb model fetch", "kb model fetch --source huggingface"),
    "index": (
        "kb index docs/",
        "kb index docs/ --include '*.md' --collection handbook",
        "kb index docs/ --dry-run",
        "kb index old-docs/ --forget",
    ),
    "search": ("kb search 'return policy' --top-k 3", "kb search 'refund' --mode text --filter lang=en"),
    "ask": (
        "kb ask 'How long do I have to return an item?'",
        "kb ask 'How many orders were placed in 2025?' --route database",
    ),
    "sql": ("kb sql 'Which city has the most customers?' --show-sql",),
    "sql examples": ("kb sql examples list", "kb sql examples add --from-answer 3f2a9c"),
    "sql examples add": (
        "kb sql examples add 'How many orders were late?' \"SELECT COUNT(*) FROM orders WHERE delivered_at > due_at\"",
        "kb sql examples add --from-answer 3f2a9c",
        "kb sql examples add --from-answer 3f2a9c --sql 'SELECT COUNT(*) FROM returns'",
    ),
    "sql examples import": ("kb sql examples import sql-examples.yaml",),
    "sql examples list": ("kb sql examples list",),
    "sql examples remove": ("kb sql examples remove 5d1e0a7b9c2f",),
    "sql examples check": ("kb sql examples check",),
    "sql examples export": ("kb sql examples export -o approved.yaml",),
    "route": ("kb route 'How many tickets are open?'",),
    "chat": ("kb chat --session support",),
    "sessions": ("kb sessions", "kb sessions show support", "kb sessions delete support"),
    "stats": ("kb stats", "kb stats --by variant"),
    "serve": ("kb serve", "kb serve --host 0.0.0.0 --port 8420"),
    "keys": ("kb keys create alice --collections handbook", "kb keys list"),
    "keys create": (
        "kb keys create alice --collections handbook",
        "kb keys create ops --collections '*' --scope admin --sql --requests-per-minute 120",
    ),
    "keys list": ("kb keys list",),
    "keys revoke": ("kb keys revoke alice",),
    "eval": ("kb eval my-questions.yaml", "kb eval my-questions.yaml --modes dense,hybrid --answers"),
    "feedback": ("kb feedback list --negative", "kb feedback rate 3f2a9c positive --comment 'cited the right page'"),
    "feedback list": ("kb feedback list", "kb feedback list --negative --limit 10"),
    "feedback rate": (
        "kb feedback rate 3f2a9c negative --comment 'wrong year'",
        "kb feedback rate 3f2a9c negative --sql 'SELECT COUNT(*) FROM orders WHERE YEAR(ordered_at) = 2025'",
    ),
    "reembed": ("kb reembed --profile openai", "kb reembed --drop-old"),
    "cost": ("kb cost estimate --docs docs/ --questions-per-day 200",),
    "cost estimate": ("kb cost estimate --docs docs/ --questions-per-day 200",),
    "demo": ("kb demo",),
}


class ExamplesFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that the examples keep their lines (argparse would join them)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def commands_of(parser: argparse.ArgumentParser, path: str = "") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command under ``parser`` with its path (``""`` for ``parser`` itself), depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands_of(sub, f"{path} {name}".strip())


def add_examples(parser: argparse.ArgumentParser) -> None:
    """Put each command's examples under its ``--help``; a command without examples is a bug."""
    for path, command in commands_of(parser):
        examples = EXAMPLES.get(path)
        if not examples:
            raise RuntimeError(f"`kb {path}` has no examples in kb.cli.examples.EXAMPLES")
        command.epilog = "examples:\n" + "".join(f"  {line}\n" for line in examples)
        command.formatter_class = ExamplesFormatter
