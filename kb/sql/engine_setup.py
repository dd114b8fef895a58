"""The database side of the router: kb's SQL engine over the business tables, or why there is none."""

from __future__ import annotations

from collections.abc import Callable

import mariadb
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.llms import LLM
from sqlalchemy.exc import SQLAlchemyError

from kb.config import Settings
from kb.engines.router import DatabaseSide, Unavailable
from kb.engines.sql import SQLEngine
from kb.engines.sql_guard import SQLRefused
from kb.errors import KBError
from kb.server.database import uses_private_server
from kb.sql.examples import load_sql_examples
from kb.stores import MariaDBConnection, StoreError


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
    from kb.sql.business_database import readonly_url, sql_examples_file, sync_reader_grants

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
            row_limit=sql.row_limit,
            timeout_s=sql.timeout_s,
            max_tables_in_prompt=sql.max_tables_in_prompt,
            embed_model=embed_model,
            examples=examples,
            candidates=sql.candidates,
            sample_temperature=sql.sample_temperature,
            candidate_source=sql.candidate_source,
            rescue_samples=sql.rescue_samples,
            rescue_temperature=sql.rescue_temperature,
            rewrites_answer=sql.rewrites_answer,
            value_linking=sql.value_linking,
            checks=sql.checks,
            skipped_checks=frozenset(sql.skip_checks),
            callback_manager=model.callback_manager,
        )
    except SQLRefused as exc:
        raise KBError(f"sql.examples ({examples_file}): {exc}; fix or remove that example") from None
    except KBError as exc:  # no business database configured: the documents still answer
        return Unavailable(str(exc))
    except (StoreError, SQLAlchemyError, mariadb.Error) as exc:  # reported in every routing decision instead
        return Unavailable(
            f"cannot read {sql.database}: {str(exc).splitlines()[0][:200]}; run `kb demo` or set sql.url"
        )
