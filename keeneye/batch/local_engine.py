"""The ``local`` engine: a pool of worker processes on this machine.

Each worker process builds the task and loads its models once (the pool's initializer), then runs
batches of inputs. Processes are started with ``spawn``, never ``fork``: ONNX Runtime sessions and
their thread pools do not survive a fork. With several workers each ONNX session gets one intra-op
thread (``KEENEYE_INTRA_OP_THREADS=1``), so N workers use N cores instead of N x cores threads
fighting over them. Workers ignore SIGINT: Ctrl-C reaches the driver, which stops them.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import cv2

from keeneye.batch.base import BatchInput, Row, Task, TaskSpec
from keeneye.batch.tasks import build_task
from keeneye.core.errors import KeeneyeError

_task: Task | None = None  # the worker process's task, set up once by _start_worker
_setup_error: KeeneyeError | None = None  # why it could not be (a missing model...), told per batch


class WorkerFailed(KeeneyeError):
    """A worker process died (out of memory, a crash in native code); the job stops, a re-run resumes."""

    code = "WorkerFailed"


def _start_worker(spec: TaskSpec, threads: int | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if threads is not None:
        os.environ["KEENEYE_INTRA_OP_THREADS"] = str(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        cv2.setNumThreads(
            threads
        )  # resizing and colour conversions: one thread too, or N workers oversubscribe
    global _task, _setup_error
    try:
        task = build_task(spec)
        task.setup()
        _task = task
    except KeeneyeError as e:
        # An initializer that raises breaks the pool and loses the message: keep it for _run_batch.
        _setup_error = e


def _run_batch(inputs: Sequence[BatchInput]) -> list[Row]:
    if _setup_error is not None:
        raise _setup_error
    assert _task is not None, "the worker was not initialised"
    return _task.run_batch(inputs)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class LocalEngine:
    """Runs a task over inputs in ``workers`` processes (default: the cores this process may use).

    ``run`` keeps at most two batches per worker in flight, so a job over a million inputs does not
    queue a million futures, and yields rows as batches complete (any order)."""

    name = "local"

    def __init__(self, workers: int | None = None, *, start_method: str = "spawn") -> None:
        self.workers = workers or default_workers()
        self.start_method = start_method
        self._pool: ProcessPoolExecutor | None = None

    def run(self, spec: TaskSpec, inputs: Sequence[BatchInput], *, batch_size: int) -> Iterator[Row]:
        if not inputs:
            return
        build_task(spec)  # a bad spec fails here, in the driver, before any process starts
        threads = 1 if self.workers > 1 else None
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=multiprocessing.get_context(self.start_method),
            initializer=_start_worker,
            initargs=(spec, threads),
        )
        batches = [inputs[i : i + batch_size] for i in range(0, len(inputs), batch_size)]
        pending: dict[Future[list[Row]], Sequence[BatchInput]] = {}
        next_batch = 0
        try:
            while next_batch < len(batches) or pending:
                while next_batch < len(batches) and len(pending) < 2 * self.workers:
                    batch = batches[next_batch]
                    pending[self._pool.submit(_run_batch, batch)] = batch
                    next_batch += 1
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    pending.pop(future)
                    yield from future.result()
        except BrokenProcessPool as e:
            # A worker died (out of memory, a crash in native code): the job stops; what is written
            # stays written and a re-run resumes.
            raise WorkerFailed(f"a worker process died: {e}") from e
        finally:
            self.close()

    def close(self) -> None:
        """Stop the workers: queued batches are dropped, running ones finish (a batch at most)."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            pool.shutdown(wait=True, cancel_futures=True)
