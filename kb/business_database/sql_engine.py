"""The database side of the router: kb's SQL engine over the business tables, or why there is none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mariadb
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from sqlalchemy.exc import SQLAlchemyError

from kb.business_database.examples import load_sql_examples
from kb.config import Settings, SqlSettings
from kb.engines.database_side import DatabaseSide, Unavailable
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.guard import SQLRefused
from kb.errors import KBError
from kb.server.database import uses_private_server
from kb.stores import MariaDBConnection, StoreError


def engine_settings(sql: SqlSettings) -> dict[str, Any]:
    """The ``sql.*`` settings :class:`SQLEngine` takes, by their shared names (its fields, and the
    arguments of its constructor): the one place the settings reach the engine."""
    taken = set(SQLEngine.model_fields) | {"max_tables_in_prompt", "value_linking"}
    taken -= {"database", "tables"}  # the caller's: the tables are those the account reads when sql.tables is empty
    return {name: getattr(sql, name) for name in type(sql).model_fields if name in taken}


def build_database_side(
    settings: Settings,
    *,
    llm: Callable[[], LLM],
    embed_model: Callable[[], BaseEmbedding],
    connect: Callable[[], MariaDBConnection],
) -> DatabaseSide:
    """The NL->SQL engine, or :class:`Unavailable` with the reason there is none. A bad examples
    file is a configuration mistake and raised; a database that cannot be read is a reason (the
    documents still answer). The models and the kb connection are given as providers: they are
    made only when the engine is."""
    from kb.business_database.provisioning import readonly_url, sql_examples_file, sync_reader_grants

    sql = settings.sql
    if not sql.enabled:
        return Unavailable("sql.enabled is false")
    examples_file = sql_examples_file(settings)
    examples = load_sql_examples(examples_file) if examples_file else []
    try:
        if not sql.url and uses_private_server(settings):
            connect()  # the private server is started (and checked) first
            sync_reader_grants(settings)  # its reader reads exactly the allowed tables
        readonly = MariaDBConnection(readonly_url(settings), pool_size=2)
        tables = list(sql.tables) or [row[0] for row in readonly.fetchall("SHOW TABLES")]
        if not tables:
            return Unavailable(f"the account has no table to read in {sql.database}")
        model = llm()
        return SQLEngine(
            model,
            readonly,
            database=sql.database,
            tables=tables,
            embed_model=embed_model,
            examples=examples,
            callback_manager=model.callback_manager,
            **engine_settings(sql),
        )
    except SQLRefused as exc:
        raise KBError(f"sql.examples ({examples_file}): {exc}; fix or remove that example") from None
    except KBError as exc:  # no business database configured: the documents still answer
        return Unavailable(str(exc))
    except (StoreError, SQLAlchemyError, mariadb.Error) as exc:  # reported in every routing decision instead
        return Unavailable(
            f"cannot read {sql.database}: {str(exc).splitlines()[0][:200]}; run `kb demo` or set sql.url"
        )
