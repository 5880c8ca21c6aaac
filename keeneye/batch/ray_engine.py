"""The ``ray`` engine of ``keeneye batch``: Ray Data with a pool of actors, each holding one set-up task.

The inputs become a dataset (``ray.data.from_items``, one block per batch); ``map_batches`` runs
:class:`_TaskActor`, a callable class, on a fixed pool of ``workers`` actors, so each actor builds its
task from the (picklable) :class:`TaskSpec` and loads the models once (:meth:`Task.setup`), then sees
whole batches of ``batch_size`` inputs (the embedder batches them). Rows stream back to the driver as
batches complete (``iter_batches``), in any order.

Without an address, a private single-node Ray is started for the job and shut down by :meth:`close`.
It listens on the loopback interface only: Ray would otherwise resolve ``127.0.0.1`` to the machine's
external address and bind its gRPC servers (GCS, raylet, object manager, workers) there, so we set
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` before Ray is imported (Ray's own single-node mode) and check the
node address after start. The dashboard is off, usage stats are off, worker logs do not reach the
driver's terminal, and Ray's session files live under ``/tmp/ray`` (``RAY_TMPDIR`` to move it; unix
socket paths must stay short). With ``address`` (``--ray-address``), the engine joins that cluster and
leaves it running; every node then needs keeneye and its models installed (see docs/batch.md).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, cast

import pyarrow as pa

from keeneye.batch.base import BatchInput, Row, Task, TaskFactory, TaskSpec
from keeneye.core.errors import BackendUnavailable, InvalidParameter

# Ray is imported inside the functions that use it: it is optional (pip install 'keeneye[ray]'), and
# _import_ray imports it first with _LOCAL_RAY_ENV set, which Ray reads at import (the later imports of
# ray and ray.data only bind what is loaded).

LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
MAX_BLOCKS = 10_000
DEFAULT_TEMP_DIR = "/tmp/ray"  # Ray's own default; named so it does not follow $TMPDIR (socket path length)

# Set (unless the user set them) around ``import ray`` and ``ray.init`` for a Ray this engine starts, so
# its processes inherit them; a cluster joined with ``address`` keeps its own settings.
_LOCAL_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    # Ray's single-node mode: keep the node address 127.0.0.1 instead of resolving it to the external
    # address, so the gRPC servers bind to the loopback interface only.
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    # Ray 2.60 enables token authentication for a new local cluster and warns about it; saying so
    # explicitly keeps it on and quiet (the token is in ~/.ray/auth_token).
    "RAY_AUTH_MODE": "token",
}


def _default_factory(spec: TaskSpec) -> Task:
    # Local: importing keeneye.batch.tasks (its models and services) costs ~1.1 s of CPU; an actor given
    # another factory (the tests') does not pay it.
    from keeneye.batch.tasks import build_task

    return build_task(spec)


class _TaskActor:
    """One Ray actor's task: built and set up once, then called with each batch (an Arrow table of
    ``uri``, ``kind``); returns one pickled :class:`Row` per input (``row`` column) with its ``uri``."""

    def __init__(self, spec: TaskSpec, factory: TaskFactory | None) -> None:
        self.task = (factory or _default_factory)(spec)
        self.task.setup()

    def __call__(self, batch: pa.Table) -> pa.Table:
        uris = batch.column("uri").to_pylist()
        kinds = batch.column("kind").to_pylist()
        rows = self.task.run_batch([BatchInput(uri=u, kind=k) for u, k in zip(uris, kinds, strict=True)])
        if len(rows) != len(uris):
            raise RuntimeError(f"task returned {len(rows)} rows for {len(uris)} inputs")
        # A Row's ``result`` is free-form JSON-able data whose shape differs between rows (and can be
        # empty): pickled, it crosses Arrow unchanged instead of needing one schema for every row.
        blobs = [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in rows]
        return pa.table(
            {"uri": pa.array([r.uri for r in rows], pa.string()), "row": pa.array(blobs, pa.binary())}
        )


class RayEngine:
    """Runs a task over inputs on Ray (a private local Ray, or the cluster at ``address``).

    ``workers``: actors in the pool (each holds its own models); default: the CPUs of the local Ray, or
    of the cluster divided by ``cpus_per_worker``. ``task_factory`` builds the task in each actor
    (default :func:`keeneye.batch.tasks.build_task`); it travels to the actors, so it must be picklable
    and importable there. ``log_to_driver`` shows the workers' output on this terminal.
    """

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        task_factory: TaskFactory | None = None,
        *,
        cpus_per_worker: float = 1.0,
        log_to_driver: bool = False,
        temp_dir: str | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise InvalidParameter(f"--workers must be at least 1, not {workers}")
        if cpus_per_worker <= 0:
            raise InvalidParameter(f"cpus_per_worker must be positive, not {cpus_per_worker}")
        self.address = address
        self.task_factory = task_factory
        self.cpus_per_worker = cpus_per_worker
        self._owns_ray = False
        self._closed = False
        with _environment(_LOCAL_RAY_ENV if address is None else {}):
            ray = _import_ray()
            if ray.is_initialized():
                pass  # someone in this process already started or joined Ray: use it, leave it to them
            elif address is None:
                num_cpus = workers or os.cpu_count() or 1
                ray.init(
                    num_cpus=max(1, math.ceil(num_cpus * cpus_per_worker)),
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    _temp_dir=temp_dir or os.environ.get("RAY_TMPDIR") or DEFAULT_TEMP_DIR,
                    log_to_driver=log_to_driver,
                    logging_level=logging.WARNING,
                )
                self._owns_ray = True
                self._check_loopback(ray)
            else:
                ray.init(address=address, log_to_driver=log_to_driver, logging_level=logging.WARNING)
        self.workers = workers or self._default_workers(ray)
        _quiet_ray_data(verbose=log_to_driver)

    def _check_loopback(self, ray: Any) -> None:
        node_ip = str(ray.util.get_node_ip_address())
        if node_ip not in LOOPBACK:
            self.close()
            raise BackendUnavailable(
                f"the local Ray came up on {node_ip}, not 127.0.0.1 (was ray imported before "
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 could be set?); refusing to listen beyond loopback"
            )

    def _default_workers(self, ray: Any) -> int:
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus // self.cpus_per_worker))

    def run(self, spec: TaskSpec, inputs: Sequence[BatchInput], *, batch_size: int) -> Iterator[Row]:
        """Yield one :class:`Row` per input as the actors finish their batches (any order)."""
        if self._closed:
            raise RuntimeError("RayEngine is closed")
        if batch_size < 1:
            raise InvalidParameter(f"batch size must be at least 1, not {batch_size}")
        if not inputs:
            return
        import ray.data

        items = [{"uri": i.uri, "kind": i.kind} for i in inputs]
        # One block per batch, so the actors share the work evenly and rows come back batch by batch;
        # capped, so a million inputs do not make a million objects (a block then holds a few batches).
        blocks = min(math.ceil(len(items) / batch_size), MAX_BLOCKS)
        dataset = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
            _TaskActor,
            fn_constructor_kwargs={"spec": spec, "factory": self.task_factory},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, blocks)),
            num_cpus=self.cpus_per_worker,
        )
        for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            table = cast("pa.Table", batch)  # batch_format="pyarrow"
            for blob in table.column("row").to_pylist():
                row = pickle.loads(blob)  # our own actors' output (the cluster is trusted with code)
                assert isinstance(row, Row)
                yield row

    def close(self) -> None:
        """Shut down the Ray this engine started (not a cluster it joined); idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_ray:
            import ray

            ray.shutdown()


@contextlib.contextmanager
def _environment(defaults: dict[str, str]) -> Iterator[None]:
    """Set the variables of ``defaults`` the user has not set, for Ray's import and start only (the
    processes Ray starts inherit them); this process's environment is restored afterwards."""
    added = {k: v for k, v in defaults.items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as e:  # an optional dependency: pip install 'keeneye[ray]'
        raise BackendUnavailable("the ray engine needs Ray: pip install 'keeneye[ray]'") from e
    return ray


def _quiet_ray_data(*, verbose: bool) -> None:
    """No progress bars or execution banners from Ray Data on the driver's terminal (errors still
    show; ``verbose`` keeps Ray Data's INFO lines)."""
    from ray.data import DataContext

    if not verbose:
        logging.getLogger("ray.data").setLevel(logging.ERROR)

    with warnings.catch_warnings():
        # Ray 2.60's DataContext() warns about its own default for use_push_based_shuffle.
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
