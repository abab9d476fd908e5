"""Where evaluations run: a local process pool (default) or a Dask distributed cluster.

Both expose ``map(tasks, worker=evaluate)``, yielding ``(task, result)`` as each task finishes
(any order); the caller writes the records to SQLite on arrival. Workers get plain dicts and
run :func:`engine.optimize.evaluate.evaluate` (one parameter set) or
:func:`engine.optimize.evaluate.evaluate_batch` (many sets on one segment, a list of records);
results are the same wherever they ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from risk.errors import DeleverageError

from .evaluate import evaluate


class LocalExecutor:
    """A local process pool (:func:`engine.parallel.run_parallel`); ``workers=1`` runs in-process."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise DeleverageError(f"--workers {workers}: expected a whole number of at least 1 (1 = in-process)")
        self.workers = workers

    def describe(self) -> str:
        from engine.parallel import default_workers

        return f"local process pool, {self.workers or default_workers()} worker(s)"

    def pool_size(self) -> int:
        from engine.parallel import default_workers

        return int(self.workers or default_workers())

    def map(self, tasks: list[dict[str, Any]], worker: Callable[[dict[str, Any]], Any] = evaluate
            ) -> Iterator[tuple[dict[str, Any], Any]]:
        from engine.parallel import run_parallel

        if not tasks:
            return iter(())
        return run_parallel(worker, tasks, workers=self.workers, progress=False)

    def close(self) -> None:
        pass


class DaskExecutor:
    """A Dask distributed cluster at ``address`` (``tcp://host:8786``), or an existing client.

    The workers must be able to import this project and read ``--data`` at the same path
    (a shared filesystem, or the same files on every machine); ``synthetic:`` data is made on
    the workers themselves.
    """

    name = "dask"

    def __init__(self, address: str | None = None, client: Any = None, timeout: float = 30.0) -> None:
        from distributed import Client

        self._own = client is None
        if client is None:
            if not address:
                raise DeleverageError("--scheduler needs an address such as tcp://10.0.0.5:8786")
            try:
                client = Client(address, timeout=timeout)
            except (OSError, TimeoutError) as exc:
                raise DeleverageError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
        self.client = client
        self.address = address or getattr(client.scheduler, "address", "?")

    def describe(self) -> str:
        n = len(self.client.scheduler_info().get("workers", {}))
        return f"Dask cluster {self.address}, {n} worker(s)"

    def pool_size(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def map(self, tasks: list[dict[str, Any]], worker: Callable[[dict[str, Any]], Any] = evaluate
            ) -> Iterator[tuple[dict[str, Any], Any]]:
        from distributed import as_completed

        if not tasks:
            return
        futures = self.client.map(worker, tasks, pure=False)
        index = {fut.key: task for fut, task in zip(futures, tasks)}
        try:
            for fut in as_completed(futures):
                record = fut.result()  # re-raises a worker's exception here
                yield index[fut.key], record
        finally:
            self.client.cancel(futures)

    def close(self) -> None:
        if self._own:
            self.client.close()
