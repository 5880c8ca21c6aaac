"""Stream-processor workers as Ray actors on a cluster, restarted on another node when theirs dies.

:class:`RaySupervisor` is :class:`~keeneye.streams.supervisor.WorkerSupervisor` with another placement
(``streams.ray_address``, ``keeneye serve --ray-address``): each running processor's worker is a
:class:`ProcessorActor` (its own process, on a node that has ``streams.ray_num_cpus`` free; spread over
the nodes), which runs exactly what a spawned worker runs (keeneye.streams.worker ``work``) and
speaks the same messages. Only the pipe changes: the worker's sends go to the actor's outbox, which the
server drains with a long poll (``drain``, at most ``DRAIN_WAIT_S``), and what the server says (stop,
view, snapshot, review) goes in with ``tell``. The server side of an actor (:class:`_ActorLink`) looks to
WorkerSupervisor's monitor thread like the pipe and the process it follows, so statuses, identifications,
views, snapshots and ends are handled by the same code, and the service (keeneye.service.streams) does
not know where its workers run.

Failover: a run's end is the actor's own (its last message is ``END``), or the actor is lost: Ray says
it died (ActorDiedError: its node died, or its process). A lost actor that nobody asked to stop is started
again, with the same config and session id, on a node with room (at most ``streams.ray_restarts`` times a
session, then FAILED); the processor is STARTING meanwhile, RUNNING again when the new worker reports, and
a MaxDurationInSeconds counts from the session's start. How fast a node's death is noticed is Ray's GCS
health check (defaults: about 15 s after a node goes silent; measured in docs/streams.md); while Ray only
says the actor is unavailable the server waits for its verdict rather than run the camera twice.

Actors are not detached: they share the server's fate (a server that dies takes its workers with it, and
the processors' leases let another server take them over). Each node needs keeneye, its models and the
server's data directory or database (docs/streams.md, "Cameras on a Ray cluster").
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, cast

from keeneye.config import Settings
from keeneye.core.errors import BackendUnavailable
from keeneye.streams.supervisor import Worker, WorkerReports, WorkerSupervisor
from keeneye.streams.worker import LockedConnection, WorkerConfig, work

log = logging.getLogger(__name__)

END = "__keeneye_end__"
"""The last thing an actor's run puts in its outbox: nothing the worker says follows it."""
DRAIN_WAIT_S = 0.5
"""How long one drain call waits for the worker's next message (the monitor's poll interval)."""
CALL_GRACE_S = 30.0
"""How much longer than its wait a drain call may take (a loaded node) before it is given up and tried
again; the actor's loss is Ray's to say (ActorDiedError), not this timeout's."""
MAX_CONCURRENCY = 8
"""Threads of an actor: its run holds one for the session; drains and tells use the others."""


# -- on the node: the actor ------------------------------------------------------------------------------


class _QueueConnection:
    """The actor's end of the 'pipe', as ``work`` uses it: ``send`` to the outbox the server drains,
    ``poll`` / ``recv`` from the inbox the server's ``tell`` fills."""

    def __init__(self, inbox: queue.Queue[Any], outbox: queue.Queue[Any]) -> None:
        self._inbox, self._outbox = inbox, outbox
        self._next: deque[Any] = deque()

    def send(self, message: Any) -> None:
        self._outbox.put(message)

    def poll(self, timeout_s: float) -> bool:
        if self._next:
            return True
        try:
            self._next.append(self._inbox.get(timeout=max(0.0, timeout_s)))
        except queue.Empty:
            return False
        return True

    def recv(self) -> Any:
        return self._next.popleft() if self._next else self._inbox.get()


class ProcessorActor:
    """One stream processor's worker as a Ray actor (threaded: ``run`` holds one thread for the session;
    ``drain`` and ``tell`` are served beside it). Made a Ray actor class by :class:`RaySupervisor`."""

    def __init__(self) -> None:
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._outbox: queue.Queue[Any] = queue.Queue()

    def where(self) -> dict[str, Any]:
        """This actor's process id and Ray node id (for stats and tests)."""
        import ray

        return {"pid": os.getpid(), "node_id": ray.get_runtime_context().get_node_id()}

    def run(self, config: WorkerConfig) -> int:
        """The worker, as a spawned one runs it (keeneye.streams.supervisor): 0 when it stopped, 1 when
        it failed (the reason already sent, as ``("failed", why)``). ``END`` is always sent last."""
        conn = LockedConnection(cast(Connection, _QueueConnection(self._inbox, self._outbox)))
        try:
            return work(config, conn)
        except Exception as err:  # reported to the server, as a spawned worker does, and the run ends
            log.exception("stream processor %s failed", config.name)
            conn.send(("failed", f"{type(err).__name__}: {err}"))
            return 1
        finally:
            self._outbox.put(END)

    def drain(self, wait_s: float) -> list[Any]:
        """What the worker sent since the last drain, waiting up to ``wait_s`` for the first message."""
        out: list[Any] = []
        try:
            out.append(self._outbox.get(timeout=max(0.0, wait_s)))
            while True:
                out.append(self._outbox.get_nowait())
        except queue.Empty:
            return out

    def tell(self, message: Any) -> None:
        """What the server says to the worker: ``"stop"``, ``"view"``, ``("snapshot", id)``, ``("review",
        decision)`` (keeneye.streams.worker.serve)."""
        self._inbox.put(message)


# -- on the server: one actor as the monitor sees it -----------------------------------------------------


class _ActorLink:
    """The server's end of one actor, shaped as the pipe (``send``, ``poll``, ``recv``) and the process
    (``is_alive``, ``join``, ``kill``, ``pid``, ``exitcode``, ``name``) WorkerSupervisor's monitor
    follows. ``lost``: why the actor is gone without ending its run (None while it is not)."""

    def __init__(self, ray: Any, actor: Any, config: WorkerConfig) -> None:
        self._ray = ray
        self._actor = actor
        self._run = actor.run.remote(config)
        self._where = actor.where.remote()
        self.name = f"keeneye-processor-{config.name} (Ray actor)"
        self.lost: str | None = None
        self.killed = False
        self._finished = False  # END drained
        self._buffer: deque[Any] = deque()
        self._drain_lock = threading.Lock()
        self._exitcode: int | None = None

    # the pipe

    def send(self, message: Any) -> None:
        if self.lost is not None or self._finished:
            raise OSError(self.lost or "the worker has ended")
        self._actor.tell.remote(message)

    def poll(self, timeout_s: float) -> bool:
        if not self._buffer:
            self._drain(timeout_s)
        return bool(self._buffer)

    def recv(self) -> Any:
        if not self._buffer:
            raise EOFError("nothing received")
        return self._buffer.popleft()

    def _drain(self, wait_s: float) -> None:
        """Move what the actor sent into the buffer; EOFError once it is lost."""
        ray = self._ray
        with self._drain_lock:
            if self._finished:
                time.sleep(min(wait_s, 0.05))
                return
            if self.lost is not None:
                raise EOFError(self.lost)
            try:
                messages = ray.get(self._actor.drain.remote(wait_s), timeout=wait_s + CALL_GRACE_S)
            except ray.exceptions.ActorUnavailableError:  # unreachable for now: Ray says if it died
                time.sleep(wait_s)
                return
            except ray.exceptions.RayActorError as err:
                self.lost = _why_lost(err)
                raise EOFError(self.lost) from None
            except ray.exceptions.GetTimeoutError:
                return
        for message in messages:
            if message == END:
                self._finished = True
                break
            self._buffer.append(message)

    # the process

    @property
    def pid(self) -> int | None:
        where = self.where()
        return None if where is None else int(where["pid"])

    def where(self) -> dict[str, Any] | None:
        """The actor's pid and node id, once it told them (None before, or when it is lost)."""
        ray = self._ray
        ready, _ = ray.wait([self._where], timeout=0)
        if not ready:
            return None
        try:
            return cast("dict[str, Any]", ray.get(self._where))
        except ray.exceptions.RayError:
            return None

    @property
    def exitcode(self) -> int | None:
        return self._exitcode

    def is_alive(self) -> bool:
        """Until its run has ended (and what it said before is read) or it is lost."""
        if self.lost is not None:
            return False
        return not self._finished or bool(self._buffer)

    def join(self, timeout: float | None = None) -> None:
        """Wait up to ``timeout`` for the run to end; once it has (or the actor is lost), the actor goes
        (its CPUs are the node's again)."""
        ray = self._ray
        ready, _ = ray.wait([self._run], timeout=timeout)
        if not ready and self.lost is None:
            return
        if ready:
            try:
                self._exitcode = int(ray.get(self._run))
            except ray.exceptions.RayError as err:
                self.lost = self.lost or _why_lost(err)
            if not self._finished:
                with contextlib.suppress(EOFError):
                    self._drain(0.0)  # what it said last, before it goes
        self._end_actor()

    def kill(self) -> None:
        """Asked: the actor is killed (a stop that took too long, or shutdown)."""
        self.killed = True
        self._end_actor()

    def _end_actor(self) -> None:
        with contextlib.suppress(self._ray.exceptions.RayError, ValueError):  # already gone
            self._ray.kill(self._actor, no_restart=True)


def _why_lost(err: Exception) -> str:
    text = " ".join(str(err).split())
    return f"its Ray actor was lost: {text[:300]}"


# -- the supervisor ----------------------------------------------------------------------------------------


@dataclass
class _Session:
    """One session of a processor, across the actors that run it (a new one after each loss)."""

    config: WorkerConfig
    reports: WorkerReports
    started: float  # monotonic
    restarts: int = 0


class RaySupervisor(WorkerSupervisor):
    """WorkerSupervisor whose workers are Ray actors of the cluster at ``address`` (joined here, unless
    this process already is; left running at close). ``num_cpus``: what each processor takes of a node;
    ``restarts``: how often a session's lost actor is started again before the processor is FAILED."""

    def __init__(
        self,
        address: str,
        *,
        stop_timeout_s: float,
        num_cpus: float = 1.0,
        restarts: int = 3,
        namespace: str = "keeneye",
    ) -> None:
        super().__init__(stop_timeout_s=stop_timeout_s)
        try:
            import ray
        except ImportError as err:  # optional: pip install 'keeneye[ray]'
            raise BackendUnavailable("streams.ray_address needs Ray: pip install 'keeneye[ray]'") from err
        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address, namespace=namespace, log_to_driver=False, logging_level=logging.WARNING)
        self._actor_class = ray.remote(ProcessorActor)
        self._num_cpus = num_cpus
        self._restarts = restarts
        self._closing = False

    def spawn(self, config: WorkerConfig, reports: WorkerReports) -> None:
        """Start the worker of ``config.name`` as an actor on a node with room, and its monitor."""
        self._launch(_Session(config, reports, time.monotonic()), config)

    def _launch(self, session: _Session, config: WorkerConfig) -> None:
        actor = self._actor_class.options(
            num_cpus=self._num_cpus,
            max_concurrency=MAX_CONCURRENCY,
            max_restarts=0,  # restarted here, with the session's reports and remaining duration
            scheduling_strategy="SPREAD",
        ).remote()
        link = _ActorLink(self._ray, actor, config)
        # The link is both the worker's pipe and its process to the monitor (same methods).
        worker = Worker(config.name, cast(Any, link), cast(Any, link), session.reports)
        worker.reports = dataclasses.replace(
            session.reports, ended=partial(self._ended, session, worker, link)
        )
        with self._lock:
            self._workers[config.name] = worker
        worker.monitor = threading.Thread(
            target=self._monitor, args=(worker,), name=f"keeneye-monitor-{config.name}", daemon=True
        )
        worker.monitor.start()

    def _ended(
        self, session: _Session, worker: Worker, link: _ActorLink, status: str, message: str | None
    ) -> None:
        """A run's actor is gone: its end reported, or (lost, not asked to stop) started again."""
        if link.lost is None or link.killed or worker.stop_requested or self._closing:
            session.reports.ended(status, message)
            return
        if session.restarts >= self._restarts:
            session.reports.ended(
                "FAILED", f"the processor failed: {link.lost} (after {session.restarts} restarts)"[:1024]
            )
            return
        config = session.config
        if config.stop_after_s is not None:
            left = session.started + config.stop_after_s - time.monotonic()
            if left <= 0:
                session.reports.ended("STOPPED", "stopped after StopSelector.MaxDurationInSeconds")
                return
            config = dataclasses.replace(config, stop_after_s=left)
        session.restarts += 1
        log.warning("stream processor %s: %s; starting it again", config.name, link.lost)
        session.reports.status("STARTING", f"{link.lost}; starting again on a node with room"[:1024])
        try:
            self._launch(session, config)
        except self._ray.exceptions.RayError as err:
            session.reports.ended("FAILED", f"the processor failed: could not start it again: {err}"[:1024])

    def stats(self, name: str) -> dict[str, Any]:
        """WorkerSupervisor's, with the actor's Ray node id (``ray_node_id``) once it is known."""
        out = super().stats(name)
        worker = self.get(name)
        if out and worker is not None:
            where = cast(_ActorLink, worker.process).where()
            if where is not None:
                out["ray_node_id"] = where["node_id"]
        return out

    def close(self) -> None:
        """Stop every worker (asked, killed after ``stop_timeout_s``); leave the cluster running. The
        connection to it stays for the process's life: video jobs may use it (keeneye.service.video
        .ray_jobs), and Ray disconnects at exit."""
        self._closing = True
        super().close()


def supervisor_for(settings: Settings) -> WorkerSupervisor:
    """The server's supervisor: Ray actors on the cluster at ``streams.ray_address``, else worker
    processes on this machine."""
    streams = settings.streams
    if streams.ray_address is None:
        return WorkerSupervisor(stop_timeout_s=streams.stop_timeout_s)
    return RaySupervisor(
        streams.ray_address,
        stop_timeout_s=streams.stop_timeout_s,
        num_cpus=streams.ray_num_cpus,
        restarts=streams.ray_restarts,
    )
