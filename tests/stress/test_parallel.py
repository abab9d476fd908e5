"""engine.parallel: every task's result arrives once, on_result sees each, errors are raised or recorded."""

from __future__ import annotations

import pytest

from engine.parallel import run_parallel
from risk.errors import DeleverageError


def square(task: dict) -> dict:
    if task["x"] == 13:
        raise ValueError("unlucky 13")
    return {"x": task["x"], "y": task["x"] ** 2}


@pytest.mark.parametrize("workers", [1, 2])
def test_all_results_arrive_and_are_handed_to_on_result(workers: int) -> None:
    seen: list[int] = []
    out = list(run_parallel(square, [{"x": i} for i in range(6)], workers=workers, progress=False,
                            on_result=lambda t, r: seen.append(r["y"])))
    assert sorted(r["y"] for _, r in out) == [0, 1, 4, 9, 16, 25]
    assert all(t["x"] == r["x"] for t, r in out)
    assert sorted(seen) == [0, 1, 4, 9, 16, 25]


@pytest.mark.parametrize("workers", [1, 2])
def test_worker_error_is_raised_or_recorded(workers: int) -> None:
    tasks = [{"x": 12}, {"x": 13}]
    with pytest.raises(ValueError, match="unlucky 13"):
        list(run_parallel(square, tasks, workers=workers, progress=False))
    out = dict((t["x"], r) for t, r in run_parallel(square, tasks, workers=workers, progress=False,
                                                    errors="record"))
    assert out[12] == {"x": 12, "y": 144}
    assert out[13] == {"error": "ValueError: unlucky 13"}


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(DeleverageError, match="workers"):
        list(run_parallel(square, [{"x": 1}], workers=0))
    with pytest.raises(DeleverageError, match="errors"):
        list(run_parallel(square, [{"x": 1}], errors="ignore"))
