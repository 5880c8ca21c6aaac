from __future__ import annotations

import threading

import pytest

from keeneye.core.budget import Budget


def test_take_what_fits_refuse_the_rest_and_give_back() -> None:
    budget = Budget(100, "pixels")
    assert budget.take(60) and budget.take(40)
    assert not budget.take(1)  # spent: refused at once, nothing taken
    assert budget.in_use == 100
    budget.give(40)
    assert budget.take(30) and budget.in_use == 90


def test_one_request_over_the_whole_budget_runs_alone() -> None:
    budget = Budget(100, "pixels")
    assert budget.take(150)  # nothing else in flight: admitted
    assert not budget.take(1)
    budget.give(150)
    assert budget.take(10) and not budget.take(150)


def test_giving_back_more_than_was_taken_is_a_bug() -> None:
    budget = Budget(100, "bytes")
    budget.take(10)
    with pytest.raises(ValueError, match="only 10"):
        budget.give(11)
    with pytest.raises(ValueError):
        Budget(0, "bytes")


def test_threads_never_take_more_than_the_capacity() -> None:
    budget = Budget(1000, "pixels")
    peak: list[int] = []

    def work() -> None:
        for _ in range(2000):
            if budget.take(300):
                peak.append(budget.in_use)
                budget.give(300)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budget.in_use == 0 and max(peak) <= 1000
