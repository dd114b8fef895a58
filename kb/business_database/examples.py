"""Good question/SQL pairs for a database, from a YAML file (``sql.examples``).

They go into the SQL prompt after the schema (see :class:`kb.engines.sql.SQLEngine`): what the
schema cannot say, such as which column a verb means ("requested" is a date here, not a status).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from kb.errors import KBError


def load_sql_examples(path: str) -> list[tuple[str, str]]:
    """[(question, sql), ...] from a YAML list of ``{q: ..., sql: ...}``; a clear error otherwise."""
    file = Path(path).expanduser()
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise KBError(
            f"sql.examples: cannot read {file} ({exc.strerror or exc}); fix the path or remove the key"
        ) from None
    except yaml.YAMLError as exc:
        raise KBError(f"sql.examples: {file} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, list):
        raise KBError(f"sql.examples: {file} must hold a list of {{q: question, sql: statement}} items")
    pairs = []
    for number, item in enumerate(data, 1):
        if not (isinstance(item, dict) and isinstance(item.get("q"), str) and isinstance(item.get("sql"), str)):
            raise KBError(f"sql.examples: item {number} of {file} needs a q and an sql, both text")
        pairs.append((item["q"].strip(), item["sql"].strip()))
    return pairs
