"""The local model answers one prompt at a time (llama.cpp's context is not thread-safe); requests that
need it take turns here, first come first served, in a line of bounded length with a share per key.

* A request that finds ``serve.model_queue`` requests already waiting is refused at once with 503 and
  ``Retry-After``: waiting requests hold worker threads, and an unbounded line would hold them all
  (then health checks and retrieval, which never need the model, would wait behind it).
* A key that already has ``serve.model_queue_per_key`` requests waiting gets 429 with ``Retry-After``
  for its next one, so one key's flood fills its own share of the line, never the whole of it: the
  other keys still find a place.
* A waiting request leaves the line when its deadline passes (504) or its client goes away (499),
  as its :class:`~kb.service.gate.RequestBudget` says.
* The line's length, each wait and each refusal are in ``/metrics``.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Optional

from kb.engines.timing import Stopwatch
from kb.service.gate import ApiError, RequestBudget, current_budget
from kb.service.metrics import ServiceMetrics

_POLL_S = 0.1  # how often a waiting request looks at its budget


class ModelQueue:
    def __init__(self, max_waiting: int, metrics: ServiceMetrics, max_waiting_per_key: Optional[int] = None) -> None:
        self.max_waiting = max_waiting
        self.max_waiting_per_key = min(max_waiting if max_waiting_per_key is None else max_waiting_per_key, max_waiting)
        self.metrics = metrics
        self._condition = threading.Condition()
        self._busy = False
        self._tickets = itertools.count()
        self._line: list[int] = []  # the waiting requests' tickets, in the order they came
        self._waiting_by_key: Counter[str] = Counter()

    @property
    def waiting(self) -> int:
        return len(self._line)

    @contextmanager
    def turn(self, key: Optional[str] = None, budget: Optional[RequestBudget] = None) -> Iterator[None]:
        """Hold the model for the block's duration, after waiting for it (behind every request that
        came before) within ``budget`` (the current request's by default). ``key``: whose request it
        is, for the per-key share (None: no share applies, as for kb's own start-up work)."""
        budget = budget or current_budget()
        waiting = Stopwatch()
        with self._condition:
            if self._busy or self._line:
                self._refuse_if_full(key)
            ticket = next(self._tickets)
            self._line.append(ticket)
            if key is not None:
                self._waiting_by_key[key] += 1
            self.metrics.model_queue.set(len(self._line))
            try:
                while self._busy or self._line[0] != ticket:
                    if budget is not None:
                        budget.check()
                    self._condition.wait(_POLL_S if budget is None else min(_POLL_S, max(budget.remaining(), 0.001)))
                if budget is not None:
                    budget.check()  # a request whose time ran out before its turn does not take the model
                self._busy = True
            finally:
                self._line.remove(ticket)
                if key is not None:
                    self._waiting_by_key[key] -= 1
                    if not self._waiting_by_key[key]:
                        del self._waiting_by_key[key]
                self.metrics.model_queue.set(len(self._line))
                self._condition.notify_all()  # the next in line may be free to go
        self.metrics.model_wait.observe(waiting.elapsed())
        try:
            yield
        finally:
            with self._condition:
                self._busy = False
                self._condition.notify_all()

    def _refuse_if_full(self, key: Optional[str]) -> None:
        if len(self._line) >= self.max_waiting:
            self.metrics.model_refused.inc()
            raise ApiError(
                503,
                f"the model is busy ({len(self._line)} requests waiting); retry shortly",
                {"Retry-After": "5"},
            )
        if key is not None and self._waiting_by_key[key] >= self.max_waiting_per_key:
            self.metrics.model_refused.inc()
            raise ApiError(
                429,
                f"key {key!r} already has {self._waiting_by_key[key]} requests waiting for the model "
                "(serve.model_queue_per_key); retry when one has been answered",
                {"Retry-After": "5"},
            )
