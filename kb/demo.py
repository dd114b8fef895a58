"""The README's main command: show, end to end on the offline default, that kb works."""

from __future__ import annotations

from kb.config import Settings
from kb.database import connect, private_server, uses_private_server


def run(settings: Settings, out=print) -> None:
    if uses_private_server(settings):
        out(private_server(settings).start().describe())
    connection = connect(settings)
    try:
        out(f"kb is alive: MariaDB {connection.server_version()} at {connection.where}, "
            f"profile {settings.profile!r}, configuration from {settings.source}")
    finally:
        connection.dispose()
