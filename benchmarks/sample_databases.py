"""The sample databases of the SQL benchmark, loaded once into kb's private server and made readable
by kb's read-only account: the public ones of ../shared/eval (Chinook, Northwind, classicmodels; the
repository keeps only the questions about them, in benchmarks/data) and the university, airline,
clinic, staff, rental, supply and ledger databases that benchmarks/university_database.py,
airline_database.py, clinic_database.py, staff_database.py, rental_database.py, supply_database.py and
ledger_database.py generate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import airline_database
import clinic_database
import ledger_database
import rental_database
import staff_database
import supply_database
import university_database
from common import ROOT, SHARED

from kb.stores.connection import MariaDBConnection, quote_identifier

EVAL = SHARED / "eval"


@dataclass(frozen=True)
class SampleDatabase:
    name: str  # the database the scripts create
    scripts: tuple[Path, ...]  # run in order
    tables: int  # how many tables a complete load has
    generate: Optional[Callable[[], str]] = None  # writes scripts[0] when given (a generated database)


def generated(module: Any, tables: int) -> SampleDatabase:
    """A database one of the benchmark's generator modules writes (its ``NAME`` and ``script``), cached
    as a script under .kb/cache/benchmarks until it is loaded."""
    return SampleDatabase(
        module.NAME, (ROOT / ".kb" / "cache" / "benchmarks" / f"{module.NAME}.sql",), tables, module.script
    )


SAMPLES = {
    "chinook": SampleDatabase("Chinook", (EVAL / "chinook" / "Chinook_MySql.sql",), 11),
    "northwind": SampleDatabase(
        "northwind", (EVAL / "northwind" / "northwind.sql", EVAL / "northwind" / "northwind-data.sql"), 20
    ),
    "classicmodels": SampleDatabase("classicmodels", (EVAL / "classicmodels" / "mysqlsampledatabase.sql",), 8),
    **{
        module.NAME: generated(module, tables)
        for module, tables in (
            (university_database, 6),
            (airline_database, 6),
            (clinic_database, 7),
            (staff_database, 8),
            (rental_database, 10),
            (supply_database, 9),
            (ledger_database, 13),
        )
    },
}


def load_sample(server: Any, key: str) -> str:
    """Load sample ``key`` (a key of SAMPLES) unless it is there; its database name."""
    sample = SAMPLES[key]
    missing = [p for p in sample.scripts if not p.is_file()] if sample.generate is None else []
    if missing:
        raise SystemExit(f"{missing[0]} not found: the benchmarks read the sample databases from ../shared/eval")
    admin = MariaDBConnection(server.admin_url(), pool_size=1)
    try:
        present = admin.fetchall(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?", (sample.name,)
        )[0][0]
        if present < sample.tables:
            if sample.generate is not None:  # written only when it is loaded
                sample.scripts[0].parent.mkdir(parents=True, exist_ok=True)
                sample.scripts[0].write_text(sample.generate())
            for script in sample.scripts:
                server.run_script(script)
        user, _ = server.readonly_credentials()
        for host in ("localhost", "127.0.0.1"):
            admin.execute(f"GRANT SELECT ON {quote_identifier(sample.name)}.* TO '{user}'@'{host}'")
    finally:
        admin.dispose()
    return sample.name
