"""What a batch job is made of, shared by the engines: inputs, a task, result rows.

A batch job (``keeneye batch``) runs one :class:`Task` over many :class:`BatchInput` items. The task is
code that knows nothing of processes or Ray: an engine (``local``: a process pool; ``ray``: Ray Data
with actor pools) creates one task instance per worker with :meth:`Task.setup` (loading the models
once), feeds it batches of inputs with :meth:`Task.run_batch`, and hands the resulting :class:`Row`
objects back to the driver, which writes them (Parquet parts) and marks the inputs done. A task never
raises for one bad input: it returns a row with ``status="error"`` and the error's code and message,
so the job goes on. Tasks and their specs must be picklable (they travel to worker processes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RowStatus = Literal["ok", "error"]


@dataclass(frozen=True)
class BatchInput:
    """One item of a job: ``uri`` as the user named it (a path, ``s3://bucket/key``), unique in the job;
    ``kind`` image or video (decided from the name, confirmed when read)."""

    uri: str
    kind: Literal["image", "video"] = "image"


@dataclass
class Row:
    """One input's result. ``result`` is task-specific JSON-able data (e.g. FaceDetails); ``error_code``
    is a keeneye error code (InvalidImage, ImageTooLarge, NotFound, ...) when ``status`` is error."""

    uri: str
    status: RowStatus
    seconds: float = 0.0
    result: dict[str, Any] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class TaskSpec:
    """A task by name with its options (``collection_id``, ``threshold``, track options...) and the
    settings' data dir / models path, so a worker anywhere can rebuild it: ``build_task(spec)``."""

    name: Literal["detect-faces", "index-faces", "search-faces", "track"]
    options: dict[str, Any] = field(default_factory=dict)
    data_dir: str = "var"
    models_path: str | None = None


class Task(Protocol):
    """The work done on each input, once per worker set up."""

    def setup(self) -> None:
        """Load models (called once per worker, before any batch)."""

    def run_batch(self, inputs: Sequence[BatchInput]) -> list[Row]:
        """One row per input, in order; bad inputs give error rows, never an exception."""


class Engine(Protocol):
    """Runs a task over inputs and yields rows as they complete (any order)."""

    def run(self, spec: TaskSpec, inputs: Sequence[BatchInput], *, batch_size: int) -> Iterator[Row]: ...

    def close(self) -> None: ...


TaskFactory = Callable[[TaskSpec], Task]
