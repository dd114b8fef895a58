"""The database side of the router: kb's SQL engine over the business tables, or why there is none."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mariadb
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from sqlalchemy.exc import SQLAlchemyError

from kb.business_database.examples import SQLExampleStore, load_sql_examples
from kb.config import Settings, SqlSettings
from kb.engines.database_side import DatabaseSide, Unavailable
from kb.engines.sql.engine import SQLEngine
from kb.engines.sql.guard import SQLRefused
from kb.engines.sql.options import SQLOptions
from kb.errors import KBError
from kb.server.database import uses_private_server
from kb.stores import MariaDBConnection, StoreError


def engine_settings(sql: SqlSettings) -> dict[str, Any]:
    """The ``sql.*`` settings :class:`SQLEngine` takes: those of :class:`SQLOptions`, which both declare
    (the one place the settings reach the engine; the database, its tables and the example store are
    the caller's)."""
    return {name: getattr(sql, name) for name in SQLOptions.model_fields}


def build_database_side(
    settings: Settings,
    *,
    llm: Callable[[], LLM],
    embed_model: Callable[[], BaseEmbedding],
    connect: Callable[[], MariaDBConnection],
    examples: Callable[[], SQLExampleStore],
) -> DatabaseSide:
    """The NL->SQL engine, or :class:`Unavailable` with the reason there is none. The engine shows
    the model the ``sql.examples_k`` approved pairs of ``examples`` (the live example store) closest to
    each question; the pairs of ``sql.examples`` are imported into that store first, and one that
    fails (other than over a table outside the allow-list) is a configuration mistake and raised. A
    database that cannot be read is a reason (the documents still answer). The models, the kb
    connection and the example store are given as providers: they are made only when the engine is."""
    from kb.business_database.provisioning import readonly_url, sql_examples_file, sync_reader_grants

    sql = settings.sql
    if not sql.enabled:
        return Unavailable("sql.enabled is false")
    examples_file = sql_examples_file(settings)
    pairs = load_sql_examples(examples_file) if examples_file else []
    try:
        if not sql.url and uses_private_server(settings):
            connect()  # the private server is started (and checked) first
            sync_reader_grants(settings)  # its reader reads exactly the allowed tables
        readonly = MariaDBConnection(readonly_url(settings), pool_size=2)
        tables = list(sql.tables) or [row[0] for row in readonly.fetchall("SHOW TABLES")]
        if not tables:
            return Unavailable(f"the account has no table to read in {sql.database}")
        model = llm()
        engine = SQLEngine(
            model,
            readonly,
            database=sql.database,
            tables=tables,
            embed_model=embed_model,
            examples=lambda question: examples().closest(
                sql.database, question, sql.examples_k, sql.examples_min_similarity
            ),
            callback_manager=model.callback_manager,
            **engine_settings(sql),
        )
        if pairs:
            _import_file(engine, examples(), pairs, examples_file or "")
        return engine
    except KBError as exc:  # no business database configured: the documents still answer
        return Unavailable(str(exc))
    except (StoreError, SQLAlchemyError, mariadb.Error) as exc:  # reported in every routing decision instead
        return Unavailable(
            f"cannot read {sql.database}: {str(exc).splitlines()[0][:200]}; run `kb demo` or set sql.url"
        )


def _import_file(engine: SQLEngine, store: SQLExampleStore, pairs: list[tuple[str, str]], file: str) -> None:
    """Import the pairs of ``sql.examples`` that the store lacks. A pair over a table outside the
    allow-list is left out (``sql.tables`` may narrow what a shared file covers); any other that
    fails is a configuration mistake, raised."""

    def allowed(sql: str) -> bool:
        try:
            engine.guard.check(sql)
        except SQLRefused as refusal:
            return refusal.table is None
        return True

    _, _, refused = store.import_pairs(
        engine.database, [p for p in pairs if allowed(p[1])], verify=engine.verify_example, source="file"
    )
    if refused:
        question, why = refused[0]
        raise KBError(f"sql.examples ({file}): the pair for {question!r} is {why}; fix or remove it")
