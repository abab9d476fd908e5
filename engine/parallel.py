"""Map a worker over many tasks on a local process pool, with a progress bar.

The one reusable helper is :func:`run_parallel`::

    from engine.parallel import run_parallel

    def work(task: dict) -> dict:          # top-level, picklable; returns a small plain record
        ...

    for task, record in run_parallel(work, tasks, workers=None, desc="stress",
                                     on_result=lambda t, r: save(r)):
        ...

- ``worker`` must be a module-level function (picklable); ``tasks`` plain picklable values
  (dicts of numbers/strings/paths). Never ship Cerebro, strategies or brokers between processes:
  workers build them from the plain config and return a plain record (write large outputs,
  e.g. a run directory, to disk inside the worker).
- Results are **yielded as they finish** (not in task order), each as ``(task, record)``.
  ``on_result(task, record)`` is called in the parent as soon as a result arrives, so a caller
  can write each finished cell to disk immediately: long work never loses finished results.
- ``workers``: default ``os.cpu_count()``, capped at the number of tasks; ``workers=1`` (or a
  single task) runs in-process, serially, which is handy for tests and debugging.
- A worker exception is not swallowed: with ``errors="raise"`` (default) the pool is shut down
  (pending tasks cancelled) and the exception re-raised in the parent; with ``errors="record"``
  the record yielded is ``{"error": "<Type>: <message>"}`` and the run goes on.
- Tasks are submitted :data:`WINDOW_PER_WORKER` per worker ahead and topped up as each
  finishes, so a sweep of many thousand batches keeps a handful of futures in the parent.
- ``progress``: a tqdm bar on stderr (``True``/``False``; default: only when stderr is a
  terminal).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, TypeVar

from risk.errors import DeleverageError

T = TypeVar("T")
R = TypeVar("R")

__all__ = ["run_parallel", "default_workers"]


WINDOW_PER_WORKER = 4  # tasks submitted ahead per worker
_DONE = object()


def default_workers() -> int:
    """The default pool size: ``os.cpu_count()`` (1 when unknown)."""
    return max(1, os.cpu_count() or 1)


def _progress_bar(total: int, desc: str, enabled: bool | None) -> Any:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, dynamic_ncols=True)


def _ignore_sigint() -> None:
    """Pool workers leave Ctrl-C to the parent (which stops them): no traceback from each worker."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _error_record(exc: BaseException) -> dict[str, Any]:
    return {"error": f"{type(exc).__name__}: {exc}"}


def run_parallel(worker: Callable[[T], R], tasks: Iterable[T], *, workers: int | None = None,
                 desc: str = "", progress: bool | None = None, errors: str = "raise",
                 on_result: Callable[[T, R], None] | None = None) -> Iterator[tuple[T, R]]:
    """Yield ``(task, worker(task))`` for every task, as they finish (see the module docstring)."""
    if errors not in ("raise", "record"):
        raise DeleverageError(f"errors must be 'raise' or 'record', got {errors!r}")
    items = list(tasks)
    if workers is None:
        workers = default_workers()
    if int(workers) < 1:
        raise DeleverageError(f"workers must be at least 1, got {workers}")
    workers = min(int(workers), max(1, len(items)))
    bar = _progress_bar(len(items), desc, progress)
    try:
        if workers == 1:
            for task in items:
                try:
                    record = worker(task)
                except Exception as exc:  # noqa: BLE001 - re-raised or recorded on purpose
                    if errors == "raise":
                        raise
                    record = _error_record(exc)  # type: ignore[assignment]
                if on_result is not None:
                    on_result(task, record)
                if bar is not None:
                    bar.update(1)
                yield task, record
            return
        with ProcessPoolExecutor(max_workers=workers, initializer=_ignore_sigint) as pool:
            # the workers are started by the first submit: ignore Ctrl-C while they are forked, so
            # none inherits the default handler before its initializer runs
            import signal
            import threading

            main_thread = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main_thread else None
            # a bounded window of submitted tasks (a few per worker), topped up as each finishes:
            # the parent holds a few futures, not one per task, and ``wait`` scans only those
            queue = iter(items)
            window = WINDOW_PER_WORKER * workers
            pending: dict[Future, T] = {}

            def top_up() -> None:
                while len(pending) < window:
                    task = next(queue, _DONE)
                    if task is _DONE:
                        return
                    pending[pool.submit(worker, task)] = task  # type: ignore[arg-type]

            try:
                top_up()
            finally:
                if main_thread:
                    signal.signal(signal.SIGINT, previous)
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in done:
                        task = pending.pop(fut)
                        exc = fut.exception()
                        if exc is not None:
                            if errors == "raise":
                                raise exc
                            record = _error_record(exc)
                        else:
                            record = fut.result()
                        if on_result is not None:
                            on_result(task, record)
                        if bar is not None:
                            bar.update(1)
                        yield task, record
                    top_up()
            except KeyboardInterrupt:  # Ctrl-C: cancel the queued tasks; the workers (which ignore
                # SIGINT) finish the task in hand and exit. Killing them instead races the pool's
                # manager thread into a traceback of its own (InvalidStateError on a cancelled future).
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            finally:
                for fut in pending:
                    fut.cancel()
    finally:
        if bar is not None:
            bar.close()
