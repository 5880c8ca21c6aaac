"""Helpers shared by CLI commands: settings, JSON output, one-line errors."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import ValidationError

from keeneye.config import Settings
from keeneye.core.errors import KeeneyeError

# The helpers import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).

DataDirOption = typer.Option(
    None,
    "--data-dir",
    envvar="KEENEYE_DATA_DIR",
    help="Data directory (database, keys, indexes, spools). Default: ./var",
)
ModelsDirOption = typer.Option(
    None,
    "--models-dir",
    envvar="KEENEYE_MODELS_PATH",
    help="Where the converted models are. Default: DATA_DIR/models if models were installed there, "
    "else ~/.local/share/keeneye/models (shared by every data directory)",
)


def load_settings(data_dir: Path | None, models_dir: Path | None = None) -> Settings:
    overrides: dict[str, Path] = {}
    if data_dir is not None:
        overrides["data_dir"] = data_dir
    if models_dir is not None:
        overrides["models_path"] = models_dir
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        fail("InvalidConfiguration", str(exc).replace("\n", "; "))


def fail(code: str, message: str, exit_code: int = 1) -> NoReturn:
    typer.echo(f"keeneye: error: {code}: {message}", err=True)
    raise typer.Exit(exit_code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn keeneye's own errors into one line on stderr and exit code 1."""
    try:
        yield
    except KeeneyeError as exc:
        fail(exc.code, exc.message)
    except KeyboardInterrupt:
        fail("Interrupted", "stopped by the user", 130)


def print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def write_json(path: Path, doc: Any, *, indent: int | None = None) -> None:
    """Write ``doc`` as JSON to a file a user named; InvalidParameter (one-line error) if it cannot."""
    from keeneye.core.errors import InvalidParameter

    try:
        path.write_text(json.dumps(doc, indent=indent) + "\n")
    except OSError as e:
        raise InvalidParameter(f"cannot write {path}: {e.strerror or e}") from e


VideoProgress = Callable[[float, float | None, int], None]
"""(video time done in ms, video time to do in ms or None when unknown, frames so far)."""

CountProgress = Callable[[int, int, int], None]
"""(items done, items in all, errors so far)."""


def _progress_bar(label: str, middle: Any) -> Any:
    """A transient rich progress bar on stderr: label, bar, ``middle`` columns, elapsed time, ETA."""
    from rich.console import Console
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.progress import Progress as ProgressBar

    return ProgressBar(
        TextColumn(label),
        BarColumn(),
        *middle,
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


@contextmanager
def video_progress(label: str, enabled: bool) -> Iterator[VideoProgress | None]:
    """A progress bar on stderr (video time done, frames/s, ETA) when ``enabled`` (a terminal); else
    None, so that scripts reading stdout get no bar."""
    if not enabled:
        yield None
        return
    from rich.progress import TextColumn

    bar = _progress_bar(
        label,
        [
            TextColumn("{task.percentage:>3.0f}%"),
            TextColumn("{task.fields[frames]} frames, {task.fields[rate]} frames/s"),
        ],
    )
    task = bar.add_task(label, total=None, frames=0, rate="-")
    start = time.perf_counter()

    def update(done_ms: float, end_ms: float | None, frames: int) -> None:
        elapsed = time.perf_counter() - start
        rate = f"{frames / elapsed:.1f}" if elapsed > 0 else "-"
        bar.update(task, total=end_ms, completed=done_ms, frames=frames, rate=rate)

    with bar:
        yield update


@contextmanager
def count_progress(label: str, enabled: bool) -> Iterator[CountProgress | None]:
    """A progress bar on stderr for a count of items (done/total, errors, items/s, ETA) when
    ``enabled`` (a terminal); else None, like :func:`video_progress`."""
    if not enabled:
        yield None
        return
    from rich.progress import MofNCompleteColumn, TextColumn

    bar = _progress_bar(
        label, [MofNCompleteColumn(), TextColumn("{task.fields[errors]} errors, {task.fields[rate]}/s")]
    )
    task = bar.add_task(label, total=None, errors=0, rate="-")
    start = time.perf_counter()
    first: list[int] = []

    def update(done: int, total: int, errors: int) -> None:
        if not first:
            first.append(done - 1)  # inputs done by earlier runs do not count in the rate
        elapsed = time.perf_counter() - start
        rate = f"{(done - first[0]) / elapsed:.1f}" if elapsed > 0 else "-"
        bar.update(task, total=total, completed=done, errors=errors, rate=rate)

    with bar:
        yield update
