"""How long the steps of one answer (or one indexing run) take: one clock, started once.

A :class:`Stopwatch` starts with the question. Each step adds its time under its name
(``with clock.step("retrieval"): ...``), however often it runs; :meth:`Stopwatch.milliseconds` gives
``{"retrieval_ms": ..., "total_ms": ...}`` for a response's ``metadata["timings"]``. Steps may run in
several threads at once (the both-route's database side runs while the documents are retrieved).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional


class Stopwatch:
    """Seconds per named step since one start. ``seconds`` may be a dict the caller keeps (a report's)."""

    def __init__(self, seconds: Optional[dict[str, float]] = None) -> None:
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {} if seconds is None else seconds
        self._lock = threading.Lock()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Add the time the block takes (until it ends or raises) to step ``name``."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.started

    def milliseconds(self) -> dict[str, float]:
        """Each step as ``<name>_ms`` and the time since the start as ``total_ms``, rounded to 0.01 ms."""
        with self._lock:
            timings = {f"{name}_ms": round(seconds * 1000, 2) for name, seconds in self.seconds.items()}
        timings["total_ms"] = round(self.elapsed() * 1000, 2)
        return timings
