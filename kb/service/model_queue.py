"""The local model answers one prompt at a time (llama.cpp's context is not thread-safe); requests that
need it take turns here, in a line of bounded length.

* A request that finds ``serve.model_queue`` requests already waiting is refused at once with 503 and
  ``Retry-After``: waiting requests hold worker threads, and an unbounded line would hold them all
  (then health checks and retrieval, which never need the model, would wait behind it).
* A waiting request leaves the line when its deadline passes (504) or its client goes away (499),
  as its :class:`~kb.service.gate.RequestBudget` says.
* The line's length, each wait and each refusal are in ``/metrics``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

from kb.engines.timing import Stopwatch
from kb.service.gate import ApiError, RequestBudget, current_budget
from kb.service.metrics import ServiceMetrics

_POLL_S = 0.1  # how often a waiting request looks at its budget


class ModelQueue:
    def __init__(self, max_waiting: int, metrics: ServiceMetrics) -> None:
        self.max_waiting = max_waiting
        self.metrics = metrics
        self._condition = threading.Condition()
        self._busy = False
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def turn(self, budget: Optional[RequestBudget] = None) -> Iterator[None]:
        """Hold the model for the block's duration, after waiting for it within ``budget`` (the current
        request's by default)."""
        budget = budget or current_budget()
        waiting = Stopwatch()
        with self._condition:
            if self._busy and self._waiting >= self.max_waiting:
                self.metrics.model_refused.inc()
                raise ApiError(
                    503,
                    f"the model is busy ({self._waiting} requests waiting); retry shortly",
                    {"Retry-After": "5"},
                )
            self._waiting += 1
            self.metrics.model_queue.set(self._waiting)
            try:
                while self._busy:
                    if budget is not None:
                        budget.check()
                    self._condition.wait(_POLL_S if budget is None else min(_POLL_S, max(budget.remaining(), 0.001)))
                if budget is not None:
                    budget.check()  # a request whose time ran out before its turn does not take the model
                self._busy = True
            finally:
                self._waiting -= 1
                self.metrics.model_queue.set(self._waiting)
        self.metrics.model_wait.observe(waiting.elapsed())
        try:
            yield
        finally:
            with self._condition:
                self._busy = False
                self._condition.notify()
