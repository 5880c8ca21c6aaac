"""Throughput of ``keeneye batch --task detect-faces`` on a fixed LFW subset, per engine and workers.

Each run is a fresh job (a new output folder): start-up (worker processes, model loading) included,
as a user sees it; ``inputs_per_s`` is rows / wall seconds of the whole run. The subset is the first
--images LFW photos in sorted path order, the same on every machine.

Usage: python bench/batch.py [--images 500] [--workers 1,2] [--engine local|ray|both] [--ray-address A]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from common import LFW, emit, settings

from keeneye.batch.base import TaskSpec
from keeneye.batch.inputs import Sources, list_inputs
from keeneye.batch.job import run_job


def make_engine(name: str, workers: int, address: str | None) -> Any:
    if name == "local":
        from keeneye.batch.local_engine import LocalEngine

        return LocalEngine(workers=workers)
    from keeneye.batch.ray_engine import RayEngine  # the Ray engineer's module

    return RayEngine(address=address, workers=workers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--engine", choices=["local", "ray", "both"], default="local")
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()

    s = settings()
    inputs = list_inputs(str(LFW), Sources(), frozenset({"image"}))[: args.images]
    spec = TaskSpec(
        "detect-faces",
        {},
        data_dir=str(s.data_dir.resolve()),
        models_path=None if s.models_path is None else str(s.models_path.resolve()),
    )
    engines = ["local", "ray"] if args.engine == "both" else [args.engine]
    runs = []
    for engine_name in engines:
        for workers in (int(w) for w in args.workers.split(",")):
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.perf_counter()
                summary = run_job(
                    make_engine(engine_name, workers, args.ray_address),
                    engine_name,
                    spec,
                    inputs,
                    Path(tmp) / "out",
                    batch_size=args.batch_size,
                )
                wall = time.perf_counter() - t0
            runs.append(
                {
                    "engine": engine_name,
                    "workers": workers,
                    "images": summary["rows"],
                    "errors": summary["errors"],
                    "seconds": round(wall, 2),
                    "inputs_per_s": round(summary["rows"] / wall, 1),
                }
            )
    emit({"benchmark": "batch detect-faces", "subset": f"first {len(inputs)} LFW photos", "runs": runs})


if __name__ == "__main__":
    main()
