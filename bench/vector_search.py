"""Exact vector search (keeneye.store.vectors.NumpyIndex) on synthetic unit vectors.

For 1k, 10k and 100k faces of D=128 (dlib) and D=512 (ArcFace-size): the median and p95 of one
search (k=10 and k=4096, Rekognition's MaxFaces ceiling), the time to build the index from a
matrix, and the save/load time of its files, with OPENBLAS_NUM_THREADS=1 unless the environment
says otherwise. Prints JSON. Usage: python bench/vector_search.py [--runs 200]
"""

from __future__ import annotations

import os

# One BLAS thread, as the server runs (see keeneye/store/vectors.py); must be set before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from common import emit

from keeneye.store.vectors import NumpyIndex


def _unit(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal((n, d), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _ms(samples: list[float]) -> dict[str, float]:
    a = np.array(samples) * 1000
    return {"p50_ms": round(float(np.median(a)), 3), "p95_ms": round(float(np.quantile(a, 0.95)), 3)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    results = []
    for dim in (128, 512):
        for n in (1_000, 10_000, 100_000):
            vecs = _unit(n, dim, rng)
            ids = [f"{i:08d}" for i in range(n)]
            t0 = time.perf_counter()
            index = NumpyIndex(dim)
            index.add(ids, vecs)
            build_s = time.perf_counter() - t0
            queries = _unit(args.runs, dim, rng)
            row: dict[str, object] = {"dim": dim, "faces": n, "build_s": round(build_s, 4)}
            for k in (10, 4096):
                times = []
                for q in queries:
                    t = time.perf_counter()
                    index.search(q, k)
                    times.append(time.perf_counter() - t)
                row[f"search_k{k}"] = _ms(times)
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp) / "c-bench"
                t = time.perf_counter()
                index.save(folder, 1, "bench")
                row["save_s"] = round(time.perf_counter() - t, 4)
                t = time.perf_counter()
                NumpyIndex.load(folder, 1, n, dim, "bench")
                row["load_s"] = round(time.perf_counter() - t, 4)
            results.append(row)
    emit(
        {
            "benchmark": "vector_search",
            "index": "NumpyIndex (exact, float32)",
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
