"""The public sample databases of ../shared/eval (Chinook, Northwind, classicmodels), loaded once into
kb's private server and made readable by kb's read-only account. The repository keeps only the
questions about them (benchmarks/data); the databases are read from ../shared/eval."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import SHARED

from kb.stores.connection import MariaDBConnection, quote_identifier

EVAL = SHARED / "eval"


@dataclass(frozen=True)
class SampleDatabase:
    name: str  # the database the scripts create
    scripts: tuple[Path, ...]  # run in order
    tables: int  # how many tables a complete load has


SAMPLES = {
    "chinook": SampleDatabase("Chinook", (EVAL / "chinook" / "Chinook_MySql.sql",), 11),
    "northwind": SampleDatabase(
        "northwind", (EVAL / "northwind" / "northwind.sql", EVAL / "northwind" / "northwind-data.sql"), 20
    ),
    "classicmodels": SampleDatabase("classicmodels", (EVAL / "classicmodels" / "mysqlsampledatabase.sql",), 8),
}


def load_sample(server: Any, key: str) -> str:
    """Load sample ``key`` (chinook, northwind, classicmodels) unless it is there; its database name."""
    sample = SAMPLES[key]
    missing = [p for p in sample.scripts if not p.is_file()]
    if missing:
        raise SystemExit(f"{missing[0]} not found: the benchmarks read the sample databases from ../shared/eval")
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    try:
        present = admin.fetchall(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (sample.name,)
        )[0][0]
        if present < sample.tables:
            for script in sample.scripts:
                server.run_script(script)
        user, _ = server.readonly_credentials()
        for host in ("localhost", "127.0.0.1"):
            admin.execute(f"GRANT SELECT ON {quote_identifier(sample.name)}.* TO '{user}'@'{host}'")
    finally:
        admin.dispose()
    return sample.name
