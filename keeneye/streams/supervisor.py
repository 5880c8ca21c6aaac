"""The supervisor that starts stream-processor worker processes and follows them.

:class:`WorkerSupervisor` starts workers (keeneye.streams.worker: what runs in each process and what it
reports), keeps the latest counters of each (``stats()``), and runs one monitor thread per worker that
hands what the worker says to the :class:`WorkerReports` its owner gave: the status when it changes
(STARTING, RUNNING, STOPPING and a message for the operator: reconnects, camera errors, sink outages),
every identification, and once the process has exited, STOPPED (asked to stop, or the run's duration
reached) or FAILED with the reason: a worker never dies silently.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from keeneye.streams.live import VIEW_TTL_S
from keeneye.streams.worker import WorkerConfig, status_message, worker_main

log = logging.getLogger(__name__)


# -- the supervisor ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReports:
    """Where a worker's reports go, called in its monitor thread: ``status(status, message)`` when either
    changes (STARTING, RUNNING or STOPPING; ``message`` from :func:`status_message`),
    ``identified({"matches": [{"FaceId", "Similarity"}], "track_id"})`` for each identification, and
    ``ended(status, message)`` once, after the process exited (STOPPED or FAILED, with why)."""

    status: Callable[[str, str | None], None]
    identified: Callable[[dict[str, Any]], None]
    ended: Callable[[str, str | None], None]
    view: Callable[[dict[str, Any]], None] | None = None
    """The live view's latest frame, when someone watches (keeneye.streams.live.render_view's message)."""
    event: Callable[[dict[str, Any]], None] | None = None
    """A line crossing or zone visit (``{"kind": "line" | "zone", "name", "direction", "track_id",
    "pts_ms", "identity"}``), for the server's timeline (keeneye.service.streams.events)."""


@dataclass
class Worker:
    """One worker process as the supervisor follows it."""

    name: str
    process: BaseProcess
    conn: Connection
    reports: WorkerReports
    stop_requested: bool = False
    stats: dict[str, Any] = field(default_factory=dict)
    outcome: tuple[str, str] | None = None  # ("stopped", why) | ("failed", why) from the worker
    monitor: threading.Thread | None = None
    send_lock: threading.Lock = field(default_factory=threading.Lock)  # API threads and stop() both send
    view_asked_at: float | None = None  # monotonic time "view" was last sent
    snapshots: dict[int, _Answer] = field(default_factory=dict)  # request id -> its answer, pending


@dataclass
class _Answer:
    """A snapshot request's answer: set once (``jpeg`` None: the worker had no frame, or it ended)."""

    done: threading.Event = field(default_factory=threading.Event)
    jpeg: bytes | None = None


class WorkerSupervisor:
    """Starts worker processes (one per running processor, by name), follows each in a monitor thread,
    stops them (killed after ``stop_timeout_s``). Thread-safe; ``close()`` stops every worker."""

    def __init__(self, *, stop_timeout_s: float) -> None:
        self._stop_timeout_s = stop_timeout_s
        self._lock = threading.RLock()
        self._workers: dict[str, Worker] = {}
        self._mp = multiprocessing.get_context("spawn")
        self._ids = 0  # snapshot request ids

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._workers

    def get(self, name: str) -> Worker | None:
        with self._lock:
            return self._workers.get(name)

    def alive(self) -> int:
        """How many worker processes are alive."""
        with self._lock:
            return sum(1 for w in self._workers.values() if w.process.is_alive())

    def spawn(self, config: WorkerConfig, reports: WorkerReports) -> None:
        """Start the worker of ``config.name`` and its monitor thread."""
        parent, child = self._mp.Pipe()
        process = self._mp.Process(
            target=worker_main, args=(config, child), name=f"keeneye-processor-{config.name}", daemon=True
        )
        process.start()
        child.close()
        worker = Worker(config.name, process, parent, reports)
        with self._lock:
            self._workers[config.name] = worker
        worker.monitor = threading.Thread(
            target=self._monitor, args=(worker,), name=f"keeneye-monitor-{config.name}", daemon=True
        )
        worker.monitor.start()

    def _monitor(self, worker: Worker) -> None:
        """Follow one worker until it exits; report its status changes, identifications and end."""
        last: tuple[str, str | None] | None = None
        while True:
            try:
                if not worker.conn.poll(0.5):
                    if not worker.process.is_alive():
                        break
                    continue
                kind, payload = worker.conn.recv()
            except (EOFError, OSError):
                break
            if kind == "status":
                worker.stats = payload
                status = "STOPPING" if worker.stop_requested else "RUNNING"
                if payload.get("state") == "starting":
                    status = "STARTING"
                message = status_message(payload)
                if (status, message) != last:
                    last = (status, message)
                    worker.reports.status(status, message)
            elif kind == "identified":
                worker.reports.identified(payload)
            elif kind == "view" and worker.reports.view is not None:
                worker.reports.view(payload)
            elif kind == "event" and worker.reports.event is not None:
                worker.reports.event(payload)
            elif kind == "snapshot":
                self._answer(worker, int(payload["id"]), payload.get("jpeg"))
            elif kind in ("stopped", "failed"):
                worker.outcome = (kind, str(payload))
        for request_id in list(worker.snapshots):
            self._answer(worker, request_id, None)
        worker.process.join(5)
        status, message = _ending(worker)
        with self._lock:
            if self._workers.get(worker.name) is worker:
                del self._workers[worker.name]
        worker.reports.ended(status, message)

    def stop(self, worker: Worker) -> None:
        """Ask a worker to stop (it delivers what it has and exits); killed after ``stop_timeout_s``."""
        worker.stop_requested = True
        _send(worker, "stop")
        threading.Thread(target=self._reap, args=(worker,), daemon=True).start()

    def tell_review(self, name: str, decision: Mapping[str, Any]) -> bool:
        """A reviewer's decision on one of ``name``'s identifications (keeneye.streams.review.ReviewGate
        .decided's message); False when the processor is not running."""
        worker = self.get(name)
        return worker is not None and _send(worker, ("review", dict(decision)))

    def want_view(self, name: str) -> bool | None:
        """Someone watches ``name``'s live view: the worker is told (at most every third of
        ``VIEW_TTL_S``). None when it is not running; True when its views had stopped (or never began):
        the next one is a few hundred ms away."""
        worker = self.get(name)
        if worker is None:
            return None
        now = time.monotonic()
        asked = worker.view_asked_at
        if asked is not None and now - asked < VIEW_TTL_S / 3:
            return False
        worker.view_asked_at = now
        _send(worker, "view")
        return asked is None or now - asked >= VIEW_TTL_S

    def snapshot(self, name: str, timeout_s: float) -> tuple[bool, bytes | None]:
        """The running worker's latest frame as a JPEG: (False, None) when it is not running, (True,
        None) when it had no frame or did not answer within ``timeout_s``, else (True, JPEG)."""
        worker = self.get(name)
        if worker is None:
            return False, None
        answer = _Answer()
        with self._lock:
            self._ids += 1
            request_id = self._ids
            worker.snapshots[request_id] = answer
        try:
            if _send(worker, ("snapshot", request_id)):
                answer.done.wait(timeout_s)
            return True, answer.jpeg
        finally:
            with self._lock:
                worker.snapshots.pop(request_id, None)

    def _answer(self, worker: Worker, request_id: int, jpeg: bytes | None) -> None:
        with self._lock:
            answer = worker.snapshots.pop(request_id, None)
        if answer is not None:
            answer.jpeg = jpeg
            answer.done.set()

    def _reap(self, worker: Worker) -> None:
        worker.process.join(self._stop_timeout_s)
        if worker.process.is_alive():
            log.warning("stream processor worker %s did not stop in time: killed", worker.process.name)
            worker.process.kill()

    def stats(self, name: str) -> dict[str, Any]:
        """The latest counters a worker reported, with its pid (empty when it is not running)."""
        with self._lock:
            worker = self._workers.get(name)
            if worker is None:
                return {}
            return {**worker.stats, "worker_pid": worker.process.pid}

    def all_stats(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {name: dict(w.stats) for name, w in self._workers.items()}

    def wait_stopped(self, name: str, timeout_s: float) -> bool:
        """Whether the worker's monitor ended (its end reported) within ``timeout_s``."""
        worker = self.get(name)
        if worker is None or worker.monitor is None:
            return True
        worker.monitor.join(timeout_s)
        return not worker.monitor.is_alive()

    def close(self) -> None:
        """Stop every worker: asked first, killed when still alive after ``stop_timeout_s``."""
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.stop_requested = True
            _send(w, "stop")
        deadline = time.monotonic() + self._stop_timeout_s
        for w in workers:
            w.process.join(max(0.1, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(2)
            if w.monitor is not None:
                w.monitor.join(5)


def _send(worker: Worker, message: Any) -> bool:
    """Send to a worker (one thread at a time); False when its pipe is closed."""
    with worker.send_lock:
        try:
            worker.conn.send(message)
        except (OSError, ValueError):
            return False
    return True


def _ending(worker: Worker) -> tuple[str, str | None]:
    """How an exited worker ended: STOPPED (asked, or its duration reached) or FAILED with why."""
    if worker.outcome is not None and worker.outcome[0] == "stopped":
        if worker.outcome[1] == "duration":
            return "STOPPED", "stopped after StopSelector.MaxDurationInSeconds"
        return "STOPPED", None
    if worker.stop_requested:
        return "STOPPED", None
    why = worker.outcome[1] if worker.outcome else f"worker exited with code {worker.process.exitcode}"
    log.error("stream processor %s failed: %s", worker.name, why)
    return "FAILED", f"the processor failed: {why}"
