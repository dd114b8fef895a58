"""The read-only guard: every LLM-written statement passes here before it may reach the server.

Layer 1 (this module): the text is cleaned of code fences and prompt labels, checked for
executable comments, parsed with sqlglot (MySQL dialect) and must be exactly one SELECT (set
operations and ``WITH ... SELECT`` included) that reads only allowed tables and calls no dangerous
function, assigns no variable, takes no lock and writes no file. What runs is sqlglot's rendering
of the checked tree, never the raw text, so a parser difference cannot smuggle anything past.

Layers 2 and 3 (``kb.engines.sql``): the statement runs as an account that has SELECT on the allowed
tables only, inside a READ ONLY transaction, with a statement time limit and a row cap.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Optional

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import Scope, traverse_scope

FORBIDDEN_FUNCTIONS = {
    "LOAD_FILE",
    "SLEEP",
    "BENCHMARK",
    "GET_LOCK",
    "RELEASE_LOCK",
    "RELEASE_ALL_LOCKS",
    "IS_FREE_LOCK",
    "IS_USED_LOCK",
    "MASTER_POS_WAIT",
    "MASTER_GTID_WAIT",
    "SYS_EXEC",
    "SYS_EVAL",
    "LAST_INSERT_ID",
    "NEXTVAL",
    "SETVAL",
    "LASTVAL",
    "DATABASE",
    "USER",
    "CURRENT_USER",
    "SESSION_USER",
    "SYSTEM_USER",
    "VERSION",
    "CONNECTION_ID",
    "ROW_COUNT",
    "FOUND_ROWS",
    "UPDATEXML",
    "EXTRACTVALUE",
    "COLUMN_CREATE",
}
SYSTEM_SCHEMAS = {"information_schema", "mysql", "performance_schema", "sys"}
_FENCE = re.compile(r"```(?:[a-zA-Z]+)?\s*(.*?)```", re.S)
_LABEL = re.compile(r"^\s*(?:sql\s*query|sqlquery|sql|query)\s*:\s*", re.I)
_STATEMENT_WORD = re.compile(
    r"\b(insert|update|delete|drop|create|alter|truncate|grant|revoke|set|call|load|"
    r"replace|rename|lock|handler|prepare|execute|do|show|use|kill|flush)\b|[;()]",
    re.I,
)


class SQLRefused(Exception):
    """A statement the guard will not let through; the message says why.

    ``retryable``: the statement is malformed rather than dangerous (no SQL, a parse error, an
    unknown table), so the model may be asked for a correction; a write, a lock or a file access
    is refused for good.
    """

    def __init__(self, message: str, *, retryable: bool = False, table: str | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.table = table  # a table outside the allow-list, when that is the reason


@dataclass(frozen=True)
class CheckedSQL:
    original: str
    sql: str  # what will run: the checked tree, rendered
    tables: tuple[str, ...]


# Deeper trees are refused as unparseable: sqlglot's parser, its renderer and kb's checks recurse
# once or more per level, so a model's pathological output (thousands of unary minus signs, nested
# parentheses) would otherwise end in RecursionError. No question needs a statement nested this deep.
MAX_STATEMENT_DEPTH = 64


def _depth(tree: exp.Expr) -> int:
    """The number of levels of ``tree``, counted without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_STATEMENT_DEPTH:
            break
        stack.extend((child, level + 1) for child in node.iter_expressions())
    return deepest


@functools.lru_cache(maxsize=256)
def _parsed(sql: str) -> tuple[exp.Expr, ...]:
    try:
        statements = tuple(statement for statement in sqlglot.parse(sql, read="mysql") if statement is not None)
    except RecursionError:
        raise sqlglot.errors.ParseError("the statement is nested too deeply to parse") from None
    if any(_depth(statement) > MAX_STATEMENT_DEPTH for statement in statements):
        raise sqlglot.errors.ParseError(f"the statement is nested more than {MAX_STATEMENT_DEPTH} levels deep")
    return statements


def parse_statements(sql: str) -> list[exp.Expr]:
    """sqlglot's MySQL parse of ``sql``, one tree per statement. A text is parsed once however many
    steps look at it (guard, corrections, tie probe); each caller gets copies it may change. Raises
    sqlglot's errors for a text that does not parse, or whose tree is deeper than
    ``MAX_STATEMENT_DEPTH`` levels."""
    return [statement.copy() for statement in _parsed(sql)]


def parse_statement(sql: str) -> exp.Expr:
    """The first statement of ``sql`` (:func:`parse_statements`); sqlglot's ParseError when there is none."""
    statements = parse_statements(sql)
    if not statements:
        raise sqlglot.errors.ParseError(f"no statement was parsed from {sql[:80]!r}")
    return statements[0]


def table_named(statement: str | exp.Expr, qualifier: str) -> Optional[str]:
    """The table an alias (or a table name) stands for in a statement (its text, or parsed), as the
    statement spells it; None when no table of the statement goes by that name or it does not parse."""
    if isinstance(statement, str):
        try:
            tree = parse_statement(statement)
        except Exception:  # a failed statement may not parse: no alias to resolve then
            return None
    else:
        tree = statement
    for table in tree.find_all(exp.Table):
        if qualifier.lower() in (table.alias_or_name.lower(), table.name.lower()):
            return table.name
    return None


def clean(text: str) -> str:
    """Strip code fences, ``SQLQuery:`` labels, a prose lead-in ("Here is the query:"), a trailing
    ``SQLResult:`` and one final ';'."""
    text = text or ""
    fenced = _FENCE.search(text)
    if fenced:
        text = fenced.group(1)
    text = text.replace("```", "")
    text = _LABEL.sub("", text.strip())
    start = re.search(r"\b(SELECT|WITH)\b", text, re.I)
    if (
        start
        and start.start() > 0
        and not _STATEMENT_WORD.search(text[: start.start()])
        and text[: start.start()].rstrip()[-1:] in (":", ".", "!")
    ):
        text = text[start.start() :]  # only words before it, no statement: nothing is dropped that could run
    text = re.split(r"\n\s*SQLResult\s*:", text, maxsplit=1, flags=re.I)[0]
    text = text.strip()
    if text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def normalized(sql: str) -> str:
    """One spelling per statement (sqlglot's), to tell whether a rewrite is a failed statement again."""
    try:
        return parse_statement(clean(sql)).sql(dialect="mysql")
    except Exception:  # not parseable: compare the text
        return " ".join(clean(sql).split())


class ReadOnlyGuard:
    """Checks statements against an allow-list of tables (names compared case-insensitively). A table
    named in another case than the one allowed table of that name (``artist`` for ``Artist``) is
    rendered as the table is spelled, aliased as written where it had no alias (so that its columns'
    qualifiers still name it): MariaDB on a case-sensitive file system (``lower_case_table_names=0``,
    Linux's default) would not find it, and no other table is meant by it. Where two allowed tables'
    names differ only in case, the statement names one of them exactly or fails as written."""

    def __init__(self, allowed_tables: Iterable[str], database: str | None = None) -> None:
        spellings: dict[str, set[str]] = {}
        for table in allowed_tables:
            spellings.setdefault(table.lower(), set()).add(table)
        self.allowed = set(spellings)
        self._spelled = {low: next(iter(names)) for low, names in spellings.items() if len(names) == 1}
        self.database = database.lower() if database else None

    def check(self, text: str) -> CheckedSQL:
        sql = clean(text)
        if not sql:
            raise SQLRefused("no SQL statement was produced", retryable=True)
        if "\x00" in sql:
            raise SQLRefused("NUL byte in the statement")
        if re.search(r"/\*[!M+]", sql):
            raise SQLRefused("executable comments (/*! ... */) are not allowed")
        if re.search(r"\bINTO\s+(?:OUTFILE|DUMPFILE|@)", sql, re.I):
            raise SQLRefused("SELECT ... INTO (files or variables) is not allowed")
        try:
            statements = parse_statements(sql)
        except sqlglot.errors.SqlglotError as exc:  # a parse or a tokenizer error (an unclosed quote)
            raise SQLRefused(
                f"the statement could not be parsed as MySQL/MariaDB SQL ({str(exc).splitlines()[0][:120]})",
                retryable=True,
            ) from None
        if len(statements) != 1:
            raise SQLRefused(f"exactly one statement is allowed, got {len(statements)}", retryable=len(statements) == 0)
        tree = statements[0]
        if not isinstance(tree, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
            raise SQLRefused(f"only SELECT statements are allowed, not {tree.key.upper()}")
        self._check_tree(tree)
        tables = self._check_tables(tree)
        return CheckedSQL(original=text, sql=tree.sql(dialect="mysql"), tables=tuple(sorted(tables)))

    def _check_tree(self, tree: exp.Expression) -> None:
        for node in tree.walk():
            if isinstance(
                node,
                (
                    exp.Insert,
                    exp.Update,
                    exp.Delete,
                    exp.Drop,
                    exp.Create,
                    exp.Alter,
                    exp.Command,
                    exp.Merge,
                    exp.TruncateTable,
                    exp.Set,
                    exp.Use,
                ),
            ):
                raise SQLRefused(f"{node.key.upper()} is not allowed inside a query")
            if isinstance(node, exp.Into):
                raise SQLRefused("SELECT ... INTO is not allowed")
            if isinstance(node, exp.Lock):
                raise SQLRefused("locking reads (FOR UPDATE, LOCK IN SHARE MODE) are not allowed")
            if isinstance(node, (exp.Parameter, exp.SessionParameter, exp.Placeholder, exp.PropertyEQ)):
                raise SQLRefused("variables and assignments (@x, @@x, :=) are not allowed")
            if isinstance(node, exp.Func):
                name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
                if name in FORBIDDEN_FUNCTIONS:
                    raise SQLRefused(f"the function {name}() is not allowed")
            if isinstance(node, exp.Column) and node.name.startswith("@"):
                raise SQLRefused("variables are not allowed")

    def _check_tables(self, tree: exp.Expression) -> set[str]:
        """The allowed tables ``tree`` reads; :class:`SQLRefused` for any other table it names. A name
        is a CTE's only where that CTE is in scope (:func:`cte_references`); everywhere else it is a
        table, and must be allowed, whatever CTE elsewhere in the statement shares its name."""
        ctes = cte_references(tree)
        used = set()
        for table in tree.find_all(exp.Table):
            name = table.name.lower()
            schema = (table.db or "").lower()
            if schema in SYSTEM_SCHEMAS or (not schema and name in SYSTEM_SCHEMAS):
                raise SQLRefused(f"system schema {schema or name} is not allowed")
            if schema and schema != self.database:
                raise SQLRefused(f"table {schema}.{name} is outside the business database")
            if not name:
                raise SQLRefused("table functions are not allowed")
            if id(table) in ctes:
                continue
            if name not in self.allowed:
                raise SQLRefused(
                    f"table {name!r} is not one of the allowed tables ({', '.join(sorted(self.allowed))})",
                    retryable=True,
                    table=name,
                )
            self._respell(table, name)
            used.add(name)
        return used

    def _respell(self, table: exp.Table, name: str) -> None:
        """``table`` (an allowed table, ``name`` in lower case) renamed to the allowed table's own
        spelling where it is written otherwise and only one allowed table has that name."""
        spelled = self._spelled.get(name)
        if spelled is None or table.name == spelled:
            return
        if not table.alias:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(table.name)))
        table.set("this", exp.to_identifier(spelled))


def cte_references(tree: exp.Expression) -> set[int]:
    """The ``id()`` of each table reference in ``tree`` that names a CTE in scope where it stands.

    sqlglot's scopes (``traverse_scope``) resolve each name as SQL does: a CTE is visible in the
    query that defines it (its body, its subqueries) and in the CTEs defined after it, in its own
    body only when ``RECURSIVE``; a CTE of a subquery is not visible outside that subquery. A
    reference the scopes do not reach, or a statement they cannot analyse, counts as a table (the
    allow-list then decides), so an error here can only refuse more, never let more through."""
    found: set[int] = set()
    try:
        scopes = traverse_scope(tree)
    except Exception:  # a construct the scope analysis does not know: every name is a table
        return found
    for scope in scopes:
        for table in scope.tables:
            if not table.db and isinstance(scope.sources.get(table.alias_or_name), Scope):
                found.add(id(table))
    return found
