"""``kb sql examples``: the approved question/SQL pairs kb shows the model (kb.business_database.examples).

argparse cannot give one command both a free positional (``kb sql QUESTION``) and sub-commands, so
this command is registered under the one word ``"sql examples"`` and :func:`joined_command` turns
``kb sql examples ...`` into it before parsing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kb.config import Settings
from kb.display import one_line, printable
from kb.errors import KBError

COMMAND = "sql examples"


def joined_command(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``sql examples`` (the first words after the global options) as one word."""
    words = list(argv)
    position = 0
    while position < len(words) and words[position].startswith("-"):
        position += 1 if "=" in words[position] or words[position] in ("-h", "--help") else 2
    if words[position : position + 2] == ["sql", "examples"]:
        words[position : position + 2] = [COMMAND]
    return words


def _cmd_add(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        if args.from_answer:
            if args.question:
                raise KBError("--from-answer takes the question and the SQL from the answer: give neither")
            example, new = kb.sql_example_from_answer(args.from_answer, sql=args.sql, added_by="cli")
        else:
            if not args.question or not (args.sql or args.statement):
                raise KBError('give the question and its SQL: kb sql examples add "question" "SELECT ..."')
            example, new = kb.add_sql_example(args.question, args.statement or args.sql, source="cli", added_by="cli")
    print(f"{'added' if new else 'already approved'}: example {example.id}")
    print(f"  question: {one_line(example.question)}\n  SQL: {one_line(example.sql)}")
    return 0


def _cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        added, known, refused = kb.import_sql_examples(args.file, added_by="cli")
    print(f"{added} added, {known} already approved, {len(refused)} refused")
    for question, why in refused:
        print(f"  refused: {one_line(question)}: {one_line(why)}")
    return 1 if refused else 0


def _cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        examples = kb.list_sql_examples()
    if not examples:
        print(f'no approved examples for {settings.sql.database}: kb sql examples add "question" "SELECT ..."')
    for example in examples:
        print(f"{example.id}  {example.added_at}  {example.source}")
        print(f"  question: {one_line(example.question)}\n  SQL: {one_line(example.sql)}")
    return 0


def _cmd_remove(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        if not kb.remove_sql_example(args.example_id):
            raise KBError(f"no approved example {args.example_id!r} for {settings.sql.database} (kb sql examples list)")
    print(f"removed example {printable(args.example_id)}")
    return 0


def _cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from kb.knowledge_base import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        total = len(kb.list_sql_examples())
        failing = kb.check_sql_examples()
    print(f"{total - len(failing)} of {total} approved examples run")
    for example, why in failing:
        print(f"  {example.id}: {one_line(example.question)}\n    SQL: {one_line(example.sql)}\n    {one_line(why)}")
    return 1 if failing else 0


def _cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    from kb.business_database.examples import dump_sql_examples
    from kb.knowledge_base import KnowledgeBase

    with KnowledgeBase(settings) as kb:
        text = dump_sql_examples(kb.list_sql_examples())
    if args.output:
        if Path(args.output).exists():
            raise KBError(f"{args.output} exists; name a new file")
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def add_sql_examples_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    examples = commands.add_parser(
        COMMAND,
        help="the approved question/SQL pairs shown to the model (kb sql examples ACTION)",
        description="Approved question/SQL pairs for the business database: for each question, the closest "
        "(sql.examples_k) are shown to the model. Each pair's SQL must pass the read-only guard and run.",
    )
    actions = examples.add_subparsers(dest="examples_command", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="approve a question with its SQL, or what an answer ran")
    add.add_argument("question", nargs="?")
    add.add_argument("statement", nargs="?", metavar="SQL")
    add.add_argument("--from-answer", metavar="ANSWER_ID", help="approve the question and the SQL of a logged answer")
    add.add_argument("--sql", help="with --from-answer: this statement instead of the one the answer ran")
    add.set_defaults(handler=_cmd_add)
    imported = actions.add_parser("import", help="approve every pair of a YAML file ([{q: ..., sql: ...}])")
    imported.add_argument("file")
    imported.set_defaults(handler=_cmd_import)
    actions.add_parser("list", help="the approved pairs, oldest first").set_defaults(handler=_cmd_list)
    remove = actions.add_parser("remove", help="remove an approved pair by its id")
    remove.add_argument("example_id", metavar="ID")
    remove.set_defaults(handler=_cmd_remove)
    actions.add_parser("check", help="run every pair again: those that no longer run, and why").set_defaults(
        handler=_cmd_check
    )
    export = actions.add_parser("export", help="the pairs as a YAML file that import reads")
    export.add_argument("--output", "-o", metavar="FILE", help="write here (default: print)")
    export.set_defaults(handler=_cmd_export)
