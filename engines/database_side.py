"""The database side of a knowledge base: its SQL engine, or why it has none. The router and the
route selectors both read it; neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

from kb.engines.sql.engine import SQLEngine


@dataclass(frozen=True)
class Unavailable:
    """Why there is no database side (no business database configured, or it cannot be read)."""

    reason: str


DatabaseSide = Union[SQLEngine, Unavailable]
