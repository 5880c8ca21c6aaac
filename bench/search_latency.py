"""SearchFacesByImage end-to-end latency against collections of 1k, 10k and 100k faces.

What is measured, per collection size N:
- ``end_to_end``: p50/p95 of ``--runs`` SearchFacesByImage calls made with boto3 (signing, HTTP on
  127.0.0.1, the server's work, response parsing) against a real ``keeneye serve`` subprocess
  (bench/live_server.py: free port, temporary data directory, the installed models). The call is
  the plain one (``FaceMatchThreshold`` 80, ``MaxFaces`` 4096 by default) with one real LFW photo,
  made round-robin over the sizes so that load from other work on the machine hits all alike;
- ``server``: the server's own time for the same calls, from its per-request log lines (SigV4
  check, image decode, detection + embedding, vector search, audit record);
- ``first_search_ms``: the first call after filling, which also rebuilds the collection's vector
  index from the database (the server reloads an index whose generation moved on);
- in-process, on the same data directory once the server has stopped: ``collection_search`` (the
  service's search step, ``FaceCollections.search_faces_by_vector``: collection row, exact index
  search with k = MaxFaces, calibration, threshold cut, reading the matched rows) and ``index_search`` (only
  ``NumpyIndex.search`` over the same vectors, k = 4096), and ``describe_collection`` (the
  FaceModelVersion lookup the handler makes per search; it counts the collection's faces). The rest
  of ``server`` is the face pipeline, decoding, signing and the audit write.

How collections are filled: CreateCollection and IndexFaces of one real photo (ExternalImageId
``enrolled``) go through boto3, so every search has a true match; then N - 1 synthetic L2-normalised
float32 vectors are written straight into the ``faces`` table through the store layer
(keeneye.store.db.Store and keeneye.store.tables.FaceRow) in one transaction that also bumps the
collection's generation, exactly as the service stores indexed faces. Their embedder id is the
collection's FaceModelVersion (read from DescribeCollection at run time, so a different default
embedder is picked up) and their dimension is that of the real indexed face. Random unit vectors
of D >= 128 stay far below the match threshold, so the answer holds the real face only.

Timings come from whatever machine runs this (in this project: a shared 2-core machine; the JSON
says so in ``note``). Prints JSON; progress goes to stderr.

Usage: python bench/search_latency.py [--sizes 1000,10000,100000] [--runs 50]
"""

from __future__ import annotations

import os

# One BLAS thread in this process too (in-process search timings), as the server runs.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np
from common import PROTOCOL, emit, read_pairs, settings
from live_server import LiveServer, exit_on_sigterm
from sqlalchemy import insert, select, update

from keeneye.analysis.faces import FaceAnalyzer
from keeneye.service.faces.collections import FaceCollections
from keeneye.store.db import Store
from keeneye.store.tables import CollectionRow, FaceRow
from keeneye.store.vectors import NumpyIndex

INSERT_CHUNK = 10_000  # rows per executemany, all in one transaction
ENROLLED = "enrolled"
DEFAULT_MAX_FACES = 4096  # SearchFacesByImage's default MaxFaces in keeneye (Rekognition's ceiling)
DEFAULT_THRESHOLD = 80.0
IN_PROCESS_RUNS = 200


def log(message: str) -> None:
    print(f"[search_latency] {message}", file=sys.stderr, flush=True)


def percentiles_ms(samples_ms: list[float]) -> dict[str, float]:
    a = np.asarray(samples_ms, dtype=np.float64)
    return {
        "p50_ms": round(float(np.median(a)), 2),
        "p95_ms": round(float(np.quantile(a, 0.95)), 2),
        "mean_ms": round(float(a.mean()), 2),
        "n": len(samples_ms),
    }


def unit_vectors(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """(n, dim) little-endian float32 rows of unit length, uniformly distributed on the sphere."""
    v = rng.standard_normal((n, dim), dtype=np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return v.astype("<f4")


def fill_synthetic(store: Store, collection_id: str, count: int, rng: np.random.Generator) -> dict[str, Any]:
    """Add ``count`` synthetic faces to the collection in one transaction, like indexed faces.

    Embedder id and dimension come from what the collection already holds (the real enrolled face),
    so the vectors are comparable for the server. Bumps the generation so a loaded index reloads.
    """
    started = time.perf_counter()
    with store.transaction() as session:
        row = session.get(CollectionRow, collection_id)
        if row is None:
            raise RuntimeError(f"collection {collection_id} is missing")
        blob = session.scalar(select(FaceRow.vector).where(FaceRow.collection_id == collection_id).limit(1))
        if blob is None:
            raise RuntimeError(f"collection {collection_id} has no real face to copy the dimension from")
        dim = len(blob) // 4
        embedder_id = row.embedder_id
        now = datetime.now(UTC)
        for start in range(0, count, INSERT_CHUNK):
            m = min(INSERT_CHUNK, count - start)
            vecs = unit_vectors(m, dim, rng)
            session.execute(
                insert(FaceRow),
                [
                    {
                        "face_id": str(uuid.uuid4()),
                        "collection_id": collection_id,
                        "image_id": str(uuid.uuid4()),
                        "external_image_id": f"synthetic-{start + i}",
                        "x1": 70.0,
                        "y1": 65.0,
                        "x2": 180.0,
                        "y2": 190.0,
                        "image_width": 250,
                        "image_height": 250,
                        "score": 0.9,
                        "indexed_at": now,
                        "embedder_id": embedder_id,
                        "user_id": None,
                        "vector": vecs[i].tobytes(),
                    }
                    for i in range(m)
                ],
            )
        session.execute(
            update(CollectionRow)
            .where(CollectionRow.collection_id == collection_id)
            .values(generation=CollectionRow.generation + 1)
        )
    return {"dim": dim, "embedder_id": embedder_id, "fill_s": round(time.perf_counter() - started, 2)}


def time_searches(
    client: Any, collection_ids: list[str], probe: bytes, runs: int
) -> dict[str, tuple[list[float], list[str]]]:
    """End-to-end milliseconds and RequestIds of ``runs`` SearchFacesByImage calls per collection.

    The calls go round-robin over the collections, so a burst of other work on the shared machine
    slows every size alike instead of one; every answer must have the enrolled face on top.
    """
    out: dict[str, tuple[list[float], list[str]]] = {c: ([], []) for c in collection_ids}
    for _ in range(runs):
        for collection_id in collection_ids:
            t0 = time.perf_counter()
            answer = client.search_faces_by_image(CollectionId=collection_id, Image={"Bytes": probe})
            elapsed_ms = (time.perf_counter() - t0) * 1000
            matches = answer["FaceMatches"]
            top = matches[0]["Face"].get("ExternalImageId") if matches else None
            if top != ENROLLED:
                raise RuntimeError(f"{collection_id}: the enrolled face was not the top match ({top!r})")
            out[collection_id][0].append(elapsed_ms)
            out[collection_id][1].append(answer["ResponseMetadata"]["RequestId"])
    return out


class _NoModels:
    """Stands in for the face pipeline: the in-process search step needs no model."""

    embedder = None


def time_ms(call: Callable[[], object], runs: int) -> list[float]:
    """Milliseconds of ``runs`` calls of ``call``."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def in_process_search(data_dir: Path, collection_id: str, runs: int) -> dict[str, Any]:
    """Where the server's time goes besides the face pipeline, in this process, on its data.

    ``collection_search``: ``FaceCollections.search_faces_by_vector`` (exactly the step a search runs
    once the face is embedded) with the enrolled face's stored vector as query (one match above
    the threshold, as for the real probe). ``index_search_k4096``: ``NumpyIndex.search`` alone.
    ``describe_collection``: the lookup the SearchFacesByImage handler makes for FaceModelVersion
    (it counts the collection's faces and users).
    """
    store = Store.open(data_dir)
    try:
        # The server's vector index settings (KEENEYE_VECTOR_INDEX__*), so both search alike.
        collections = FaceCollections(
            store, cast(FaceAnalyzer, _NoModels()), vector_index=settings().vector_index
        )
        with store.sessions() as session:
            rows = session.execute(
                select(FaceRow.face_id, FaceRow.vector, FaceRow.external_image_id, FaceRow.embedder_id).where(
                    FaceRow.collection_id == collection_id
                )
            ).all()
        ids = [r.face_id for r in rows]
        matrix = np.frombuffer(b"".join(r.vector for r in rows), dtype="<f4").reshape(len(rows), -1)
        query_row = next(i for i, r in enumerate(rows) if r.external_image_id == ENROLLED)
        query = matrix[query_row].astype(np.float32)
        embedder_id = rows[query_row].embedder_id
        del rows

        def matches() -> int:
            found = collections.search_faces_by_vector(
                collection_id, query, embedder_id, DEFAULT_THRESHOLD, DEFAULT_MAX_FACES
            )
            return len(found)

        found = matches()  # loads the index (from the files the server saved, or the database)
        service_ms = time_ms(matches, runs)
        describe_ms = time_ms(lambda: collections.describe_collection(collection_id), runs)
        index = NumpyIndex(matrix.shape[1], capacity=len(ids))
        index.add(ids, matrix)
        del matrix
        index_ms = time_ms(lambda: index.search(query, DEFAULT_MAX_FACES), runs)
    finally:
        store.close()
    return {
        "collection_search": {**percentiles_ms(service_ms), "matches": found},
        "index_search_k4096": percentiles_ms(index_ms),
        "describe_collection": percentiles_ms(describe_ms),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="collection sizes, comma-separated")
    ap.add_argument("--runs", type=int, default=50, help="timed SearchFacesByImage calls per size")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    exit_on_sigterm()
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1 or args.runs < 1:
        ap.error("--sizes needs positive integers and --runs must be >= 1")
    enrol_path, probe_path, same, _fold = read_pairs(PROTOCOL / "pairs.txt")[0]
    assert same, "pairs.txt starts with same-person pairs"
    enrol, probe = enrol_path.read_bytes(), probe_path.read_bytes()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    load_start = round(os.getloadavg()[0], 2)
    results: list[dict[str, Any]] = []
    timed: dict[str, tuple[list[float], list[str]]] = {}
    with tempfile.TemporaryDirectory(prefix="keeneye-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        with LiveServer(data_dir) as server:
            log(f"server up on {server.url} in {server.startup_s:.1f} s")
            client = server.client()
            store = Store.open(data_dir)  # the same database the server uses (SQLite WAL: safe alongside)
            try:
                for n in sizes:
                    collection_id = f"bench-{n}"
                    client.create_collection(CollectionId=collection_id)
                    client.index_faces(
                        CollectionId=collection_id,
                        Image={"Bytes": enrol},
                        ExternalImageId=ENROLLED,
                        MaxFaces=1,
                        QualityFilter="NONE",
                    )
                    model = client.describe_collection(CollectionId=collection_id)["FaceModelVersion"]
                    log(f"{collection_id}: filling {n - 1} synthetic faces ({model})")
                    filled = fill_synthetic(store, collection_id, n - 1, rng)
                    count = client.describe_collection(CollectionId=collection_id)["FaceCount"]
                    if count != n:
                        raise RuntimeError(f"{collection_id} holds {count} faces, expected {n}")
                    t0 = time.perf_counter()
                    client.search_faces_by_image(CollectionId=collection_id, Image={"Bytes": probe})
                    first_ms = (time.perf_counter() - t0) * 1000
                    log(f"{collection_id}: first search (index rebuild) {first_ms:.0f} ms")
                    results.append(
                        {
                            "faces": n,
                            "face_model_version": filled["embedder_id"],
                            "dim": filled["dim"],
                            "fill_s": filled["fill_s"],
                            "first_search_ms": round(first_ms, 1),
                        }
                    )
                log(f"timing {args.runs} calls per size, round-robin over {len(sizes)} collections")
                timed = time_searches(client, [f"bench-{n}" for n in sizes], probe, args.runs)
            finally:
                store.close()
            startup_s = server.startup_s
        server_ms = server.request_times_ms("SearchFacesByImage")  # the log is complete once it stopped
        for row in results:
            times_ms, ids = timed[f"bench-{row['faces']}"]
            row["end_to_end"] = percentiles_ms(times_ms)
            logged = [server_ms[i] for i in ids if i in server_ms]
            row["server"] = percentiles_ms(logged) if logged else None
            log(f"bench-{row['faces']}: in-process search timings")
            row.update(in_process_search(data_dir, f"bench-{row['faces']}", max(args.runs, IN_PROCESS_RUNS)))
    emit(
        {
            "benchmark": "search_latency",
            "operation": "SearchFacesByImage (boto3 -> keeneye serve on 127.0.0.1)",
            "note": f"timings from a shared {os.cpu_count()}-core machine (other work runs alongside; "
            "load average at start and end below): compare sizes within one run, not across runs",
            "load_average_1m": [load_start, round(os.getloadavg()[0], 2)],
            "probe": str(probe_path.name),
            "enrolled": str(enrol_path.name),
            "face_match_threshold": DEFAULT_THRESHOLD,
            "max_faces": DEFAULT_MAX_FACES,
            "runs": args.runs,
            "server_startup_s": round(startup_s, 1),
            "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            # The server's vector index (docs/vector-index.md): by default exact below 20k faces, faiss above.
            "vector_index": {k: v for k, v in os.environ.items() if k.startswith("KEENEYE_VECTOR_INDEX__")}
            or "defaults (keeneye.config.VectorIndexSettings)",
            "total_s": round(time.perf_counter() - started, 1),
            "results": results,
        }
    )


if __name__ == "__main__":
    main()
