"""``keeneye batch``: one task over many images or videos, results as Parquet, resumable.

See docs/batch.md for the inputs, the tasks, the output schema and how resuming works.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from keeneye.cli.common import DataDirOption, count_progress, fail, load_settings, print_json, user_errors

# The commands import what they run inside their bodies: keeneye/cli/main.py says why (`keeneye --help`).


# Over 80 lines for its typer options (69 lines) and --help text (22); the body is 54 lines.
def batch(
    input: str = typer.Argument(
        ...,
        help="What to process: a folder (recursive: .jpg .jpeg .png, .mp4 .mkv .avi .mov .ts), a glob "
        "('photos/**/*.jpg', quoted), s3://bucket/prefix, or a manifest file (one path or s3:// URI per "
        'line, or Rekognition JSON Lines: {"source-ref": "s3://..."})',
    ),
    task: str = typer.Option(
        ...,
        "--task",
        "-t",
        help="detect-faces (FaceDetails), index-faces (into --collection), search-faces (largest face in "
        "--collection) or track (videos: persons, --line / --zone counts)",
    ),
    output: Path = typer.Option(
        ...,
        "--output",
        "-o",
        help="Output folder: Parquet parts (one row per input) and summary.json. Run again with the same "
        "folder to resume: inputs already there are skipped",
    ),
    engine: str = typer.Option(
        "local", "--engine", help="local (a process pool here) or ray (a Ray cluster)"
    ),
    ray_address: str | None = typer.Option(
        None, "--ray-address", help="Ray cluster to join (ray://host:10001, auto); default: a local Ray"
    ),
    workers: int | None = typer.Option(
        None,
        "--workers",
        "-w",
        min=1,
        help="Worker processes (default: the CPU cores); each loads the models",
    ),
    collection: str | None = typer.Option(
        None, "--collection", help="Collection id for index-faces and search-faces (in the data directory)"
    ),
    threshold: float = typer.Option(
        80.0, "--threshold", min=0.0, max=100.0, help="search-faces: least Similarity (0-100) of a match"
    ),
    create_collection: bool = typer.Option(
        False, "--create-collection", help="index-faces: create --collection if it does not exist"
    ),
    line: list[str] = typer.Option(
        [],
        "--line",
        help="track: counting line NAME:x1,y1,x2,y2 in ratios 0-1, as `keeneye track`. Repeatable",
    ),
    zone: list[str] = typer.Option(
        [], "--zone", help="track: zone NAME:x1,y1,x2,y2,x3,y3,... in ratios 0-1. Repeatable"
    ),
    fps: float | None = typer.Option(None, "--fps", min=0.1, help="track: frames per second analysed"),
    batch_size: int = typer.Option(
        8,
        "--batch-size",
        min=1,
        help="Inputs per batch sent to a worker (larger: less overhead, coarser resume)",
    ),
    part_rows: int = typer.Option(
        200, "--part-rows", min=1, help="Rows per Parquet part (a part is also written every 5 s)"
    ),
    bucket: list[str] = typer.Option(
        [], "--bucket", help="Read s3://NAME/... from a local folder: NAME=FOLDER. Repeatable"
    ),
    s3_endpoint: str | None = typer.Option(
        None, "--s3-endpoint", help="S3 API for the buckets not mapped with --bucket (AWS_* credentials)"
    ),
    data_dir: Path | None = DataDirOption,
) -> None:
    """Run TASK over every image or video of INPUT; write one result row per input to OUTPUT.

    A bad file (corrupt, empty, not an image, too large) gives a row with
    status `error` and its error code: the job goes on.

    Interrupted (Ctrl-C, kill -9, a crash)? Run the same command again:
    it skips what OUTPUT already holds and does only the rest.

    Prints the summary (counts, errors by code, inputs/s) as JSON.

    Examples:

      keeneye batch photos/ --task detect-faces -o out/faces

      keeneye batch s3://staff/ --bucket staff=/srv/staff
        --task index-faces --collection staff --create-collection -o out/index

      keeneye batch list.jsonl --task search-faces --collection staff -o out/s

    Read the rows with pandas.read_parquet("OUTPUT/parts"),
    or DuckDB: SELECT * FROM 'OUTPUT/parts/*.parquet'. See docs/batch.md.
    """
    from keeneye.batch.base import TaskSpec
    from keeneye.batch.inputs import Sources, list_inputs, parse_buckets
    from keeneye.batch.job import run_job
    from keeneye.batch.tasks import IMAGE_TASKS, TASKS, AuditCollector, IndexCollector, check_collection

    if task not in TASKS:
        fail("InvalidParameter", f"--task {task!r}: one of {', '.join(TASKS)}")
    if engine not in ("local", "ray"):
        fail("InvalidParameter", f"--engine {engine!r}: local or ray")
    if task in ("index-faces", "search-faces") and not collection:
        fail("InvalidParameter", f"--task {task} needs --collection ID")
    with user_errors():
        settings = load_settings(data_dir)
        sources = Sources(parse_buckets(bucket), s3_endpoint)
        options: dict[str, Any] = sources.to_options()
        if collection is not None and task in ("index-faces", "search-faces"):
            options["collection_id"] = collection
        if task == "search-faces":
            options["threshold"] = threshold
        if task == "track":
            options.update(_track_options(line, zone, fps))
        spec = TaskSpec(
            task,  # type: ignore[arg-type]  # checked against TASKS above
            options,
            data_dir=str(settings.data_dir.resolve()),
            models_path=None if settings.models_path is None else str(settings.models_path.resolve()),
        )
        if task == "search-faces":
            check_collection(spec)
        kinds = frozenset({"image"}) if task in IMAGE_TASKS else frozenset({"video"})
        inputs = list_inputs(input, sources, kinds)
        runner = _engine(engine, ray_address, workers)
        collector = None
        if task in ("index-faces", "search-faces"):  # both are audited, as on the server

            def collector(job_id: str) -> AuditCollector:
                inner = (
                    IndexCollector(spec, job_id, create=create_collection) if task == "index-faces" else None
                )
                return AuditCollector(spec, job_id, inner)

        with count_progress(task, sys.stderr.isatty()) as bar:
            summary = run_job(
                runner,
                engine,
                spec,
                inputs,
                output,
                batch_size=batch_size,
                flush_rows=part_rows,
                collector_factory=collector,
                on_progress=bar,
            )
        print_json(summary)


def _track_options(line: list[str], zone: list[str], fps: float | None) -> dict[str, Any]:
    from keeneye.cli.track import _parse_geometry

    lines, zones = _parse_geometry(line, zone)
    return {
        "lines": [{"name": x.name, "p1": list(x.p1), "p2": list(x.p2)} for x in lines],
        "zones": [{"name": z.name, "polygon": [list(p) for p in z.polygon]} for z in zones],
        "fps": fps,
    }


def _engine(name: str, address: str | None, workers: int | None) -> Any:
    if name == "local":
        from keeneye.batch.local_engine import LocalEngine

        return LocalEngine(workers=workers)
    try:
        from keeneye.batch.ray_engine import RayEngine
    except ImportError as e:
        fail("BackendUnavailable", f"the ray engine is not available here ({e}); use --engine local")
    return RayEngine(address=address, workers=workers)
