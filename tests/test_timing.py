"""The one clock of an answer or an indexing run (kb.engines.timing.Stopwatch)."""

from __future__ import annotations

import threading
import time

import pytest

from kb.engines.timing import Stopwatch


def test_steps_add_up_by_name_and_the_total_runs_from_the_start():
    clock = Stopwatch()
    with clock.step("retrieval"):
        time.sleep(0.02)
    for _ in range(2):
        with clock.step("generation"):
            time.sleep(0.01)
    timings = clock.milliseconds()
    assert set(timings) == {"retrieval_ms", "generation_ms", "total_ms"}
    assert timings["retrieval_ms"] >= 20 and timings["generation_ms"] >= 20
    assert timings["total_ms"] >= timings["retrieval_ms"] + timings["generation_ms"]


def test_a_step_that_raises_still_counts_and_the_error_passes():
    clock = Stopwatch()
    with pytest.raises(RuntimeError), clock.step("query"):
        time.sleep(0.01)
        raise RuntimeError("the server went away")
    assert clock.seconds["query"] >= 0.01


def test_steps_from_several_threads_are_all_counted_in_a_dict_the_caller_keeps():
    kept = {"read": 0.0}
    clock = Stopwatch(kept)

    def work() -> None:
        for _ in range(200):
            clock.add("read", 0.001)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert kept["read"] == pytest.approx(0.8)
