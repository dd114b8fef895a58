"""Which MariaDB a knowledge base uses: the configured external one, or kb's private server."""

from __future__ import annotations

import logging

from sqlalchemy.engine import URL

from kb.config import Settings
from kb.server.private_server import PrivateServer
from kb.stores.connection import MariaDBConnection
from kb.stores.errors import DatabaseUnavailable, ServerTooOld
from kb.stores.replication import ReplicatedConnection

# When a server dies mid-call, SQLAlchemy's pool logs each broken connection with a traceback before
# kb's one-line error; kb reports the failure itself.
logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)


def private_server(settings: Settings) -> PrivateServer:
    server = settings.database.server
    return PrivateServer(
        settings.home_path,
        port=server.port,
        database=settings.database.name,
        vector_cache_mb=server.vector_cache_mb,
        buffer_pool_mb=server.buffer_pool_mb,
    )


def uses_private_server(settings: Settings) -> bool:
    return not settings.database.url


def connect(settings: Settings, *, start: bool = True) -> MariaDBConnection:
    """A checked connection pool: reachable, and a server with the VECTOR type.

    With no ``database.url``, kb's private server is started first when ``start`` is true (it is
    idempotent and takes a few seconds), so that every command works on a fresh machine.
    """
    database = settings.database
    listed: list[str | URL] | None = None
    if database.replicas is not None:
        listed = [r.get_secret_value() for r in database.replicas]
    if database.url:
        url: str | URL = database.url.get_secret_value()
        replicas = listed or []
    else:
        server = private_server(settings)
        if start:
            server.start()
        url = server.app_url()
        # unset: the private server's own replicas (`kb db start --replicas N`)
        replicas = listed if listed is not None else [r.app_url() for r in server.provisioned_replicas()]
    connection: MariaDBConnection
    if replicas:
        connection = ReplicatedConnection(
            url,
            replicas,
            pool_size=database.pool_size,
            connect_timeout=database.connect_timeout,
            pool_timeout=database.pool_timeout_s,
            max_lag_s=database.replica_max_lag_s,
            wait_s=database.replica_wait_s,
            retry_s=database.replica_retry_s,
            consistency=database.replica_consistency,
        )
    else:
        connection = MariaDBConnection(
            url,
            pool_size=database.pool_size,
            connect_timeout=database.connect_timeout,
            pool_timeout=database.pool_timeout_s,
        )
    try:
        connection.check_vector_support()
    except DatabaseUnavailable as exc:
        connection.dispose()
        hint = (
            "check database.url (or KB_DATABASE__URL)"
            if settings.database.url
            else "start kb's server with `kb db start`"
        )
        raise DatabaseUnavailable(f"{exc}; {hint}") from None
    except ServerTooOld as exc:
        connection.dispose()
        raise ServerTooOld(
            f"{exc}. Upgrade it, or unset database.url to use kb's private MariaDB 11.8 (`kb db start`)"
        ) from None
    except Exception:
        connection.dispose()
        raise
    return connection
