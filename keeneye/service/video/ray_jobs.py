"""Stored-video jobs as Ray tasks on a cluster (``video_jobs.ray_address``, ``keeneye serve --ray-address``).

:class:`RayJobRunner` is a JobRunner whose work runs as one Ray task on a node with room
(``RAY_NUM_CPUS``): the task builds the kind's runner from the server's settings (a module-level builder,
pickled by reference; kept in the Ray worker process, so a worker that runs the next job has its models
loaded already) and runs it on the video's path. The server's job worker stays the job's owner: it holds
the job's lease, checks the job's checkpoint every ``CHECK_S`` while it waits (a cancelled job or a
stopping pool cancels the task) and records the output as for a local run. A task lost with its node is
retried by Ray on another node (``RETRIES`` times, from the start of the video); errors the runner raises
(KeeneyeError: InvalidParameter, ...) fail the job with their own message.

Kinds: PersonTracking and Redaction, whose runners need only the settings. FaceDetection and FaceSearch
stay on the server: they share the server's face analyzer, and FaceSearch writes the audit chain and the
review queue, which keep one writer. The node reads the video at the server's path (the data directory's
downloads or a served bucket folder) and Redaction writes under the data directory: shared storage
(docs/streams.md, "Cameras on a Ray cluster").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keeneye.config import Settings
from keeneye.core.errors import BackendUnavailable, KeeneyeError
from keeneye.service.video.jobs import JobOutput, JobRunner
from keeneye.service.video.runners import person_tracking_runner, redaction_runner

log = logging.getLogger(__name__)

RunnerBuilder = Callable[[Settings], JobRunner]
"""Settings -> the kind's runner, called on the node. A module-level function: pickled by reference."""

RAY_KINDS: dict[str, RunnerBuilder] = {
    "PersonTracking": person_tracking_runner,
    "Redaction": redaction_runner,
}
CHECK_S = 0.5
"""How often the server checks a running job's checkpoint while its task runs, seconds."""
RAY_NUM_CPUS = 1.0
RETRIES = 3
"""Times Ray runs a task again after its node or worker process died (not after the runner raised)."""

_built: dict[tuple[str, str, str], JobRunner] = {}  # in a Ray worker process: runners built, by kind
_built_lock = threading.Lock()


def _run_job(builder: RunnerBuilder, settings_json: str, video: str, params: dict[str, Any]) -> JobOutput:
    """The Ray task: the kind's runner (built once per worker process and settings), run on ``video``."""
    key = (builder.__module__, builder.__qualname__, settings_json)
    with _built_lock:
        runner = _built.get(key)
        if runner is None:
            runner = _built[key] = builder(Settings.model_validate_json(settings_json))
    return runner(Path(video), params, lambda: None)  # the server checks the job's checkpoint


def connect(address: str) -> Any:
    """Ray, joined to the cluster at ``address`` (unless this process already is); BackendUnavailable
    without Ray."""
    try:
        import ray
    except ImportError as err:  # optional: pip install 'keeneye[ray]'
        raise BackendUnavailable("a Ray address needs Ray: pip install 'keeneye[ray]'") from err
    if not ray.is_initialized():
        ray.init(address=address, namespace="keeneye", log_to_driver=False, logging_level=logging.WARNING)
    return ray


class RayJobRunner:
    """A JobRunner that runs ``builder``'s runner as a Ray task on the cluster at ``address``."""

    def __init__(self, address: str, settings: Settings, builder: RunnerBuilder) -> None:
        self._address = address
        self._settings_json = settings.model_dump_json()
        self._builder = builder
        self._task: Any = None

    def __call__(self, video: Path, params: Mapping[str, Any], checkpoint: Callable[[], None]) -> JobOutput:
        ray = connect(self._address)
        if self._task is None:
            self._task = ray.remote(_run_job).options(
                num_cpus=RAY_NUM_CPUS, max_retries=RETRIES, retry_exceptions=False
            )
        ref = self._task.remote(self._builder, self._settings_json, str(video), dict(params))
        while not ray.wait([ref], timeout=CHECK_S)[0]:
            try:
                checkpoint()
            except BaseException:  # cancelled, or the pool is stopping: the task goes too
                ray.cancel(ref, force=True)
                raise
        try:
            output = ray.get(ref)
        except ray.exceptions.RayTaskError as err:
            cause = getattr(err, "cause", None)
            if isinstance(cause, KeeneyeError):
                raise cause from None
            raise BackendUnavailable(f"the job's Ray task failed: {_short(err)}") from None
        except ray.exceptions.RayError as err:  # its node or worker died, more often than RETRIES
            raise BackendUnavailable(f"the job's Ray task was lost: {_short(err)}") from None
        if not isinstance(output, JobOutput):
            raise BackendUnavailable(f"the job's Ray task returned {type(output).__name__}")
        return output


def ray_runners(settings: Settings) -> dict[str, JobRunner]:
    """The kinds that run on the cluster at ``video_jobs.ray_address`` (none when it is unset)."""
    address = settings.video_jobs.ray_address
    if address is None:
        return {}
    return {kind: RayJobRunner(address, settings, builder) for kind, builder in RAY_KINDS.items()}


def _short(err: Exception) -> str:
    return " ".join(str(err).split())[:500]
