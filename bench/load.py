"""Load test: SearchFacesByImage and IndexFaces mixed, from many concurrent boto3 clients.

One ``keeneye serve`` subprocess on 127.0.0.1 (bench/live_server.py: temporary data directory, the
installed models, the configured pipeline), a collection filled through IndexFaces with ``--fill``
real LFW photos (the identification protocol's 423 gallery photos, then known probes; ``MaxFaces``
1, ``QualityFilter`` AUTO), then, for each concurrency level C in ``--levels``, C clients run for
``--duration`` seconds (after ``--warmup`` seconds that are not counted) a closed loop: each sends
one request, waits for the answer, sends the next. A request is SearchFacesByImage (``--search-share``,
default 90 %; the API defaults: threshold 80, MaxFaces 4096) of an LFW photo not in the collection,
or IndexFaces (the rest) of another one, so the collection grows a little during the run.

Per level: throughput (answered requests per second, by operation), latency p50/p95/p99 of answered
requests (the whole boto3 call: signing, HTTP on 127.0.0.1, the server's work, parsing), and
every other outcome counted by type: ``ThrottlingException`` separately (the server admits
``server.max_inflight`` requests at once, 8 by default, and refuses the rest; a refusal by the
per-key rate limit, ``server.rate_limit_per_s``, is counted in ``errors`` as
``ThrottlingException (rate)``: all clients here share one key), ``no_face``
(InvalidParameterException: the photo holds no face the detector finds; a correct answer, not
counted in the throughput), and any other error by its code.

Why plain threads and not locust: locust is not a dependency of keeneye, and it would bring gevent
(monkey-patching the sockets under boto3) and a web UI for what is a closed loop of at most 16
clients. Each thread owns one boto3 client with retries off, so every throttled call is seen and
counted; a throttled client waits a short random time (50-250 ms) before its next request, as
boto3's own retry would, instead of spinning. The client's own CPU (SigV4 signing, JSON) is small
next to the server's face pipeline (tens of ms per request), but it runs on the same 2 cores: the
JSON reports the machine and its load average before and after each level.

Usage: python bench/load.py [--fill 1000] [--levels 1,2,4,8,16] [--duration 20] [--warmup 3]
                            [--search-share 0.9] [--seed 0]
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import csv
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from botocore.exceptions import BotoCoreError, ClientError
from common import LFW, PROTOCOL, emit, settings
from live_server import LiveServer, exit_on_sigterm

COLLECTION = "load"
FILL_WORKERS = 2
THROTTLE_BACKOFF_S = (0.05, 0.25)


def log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


def photo_pools(fill: int, seed: int) -> tuple[list[Path], list[Path], list[Path]]:
    """(photos to fill the collection with, photos to search with, photos to index under load)."""
    roles: dict[str, list[str]] = {"gallery": [], "probe_known": [], "probe_unknown": []}
    with (PROTOCOL / "identification_protocol.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            roles[row["role"]].append(row["image"])
    rnd = random.Random(seed)
    known = sorted(roles["probe_known"])
    rnd.shuffle(known)
    unknown = sorted(roles["probe_unknown"])
    rnd.shuffle(unknown)
    filled = sorted(roles["gallery"])[:fill] + known[: max(0, fill - len(roles["gallery"]))]
    rest_known = known[max(0, fill - len(roles["gallery"])) :]
    half = len(unknown) // 2
    search = rest_known + unknown[:half]
    rnd.shuffle(search)
    return [LFW / p for p in filled], [LFW / p for p in search], [LFW / p for p in unknown[half:]]


def fill_collection(server: LiveServer, photos: list[Path]) -> dict[str, Any]:
    """IndexFaces of every photo (2 clients); how many faces it stored and how long it took."""
    local = threading.local()

    def work(path: Path) -> str:
        client = getattr(local, "client", None) or server.client()
        local.client = client
        try:
            out = client.index_faces(
                CollectionId=COLLECTION,
                Image={"Bytes": path.read_bytes()},
                ExternalImageId=path.parent.name,
                MaxFaces=1,
            )
        except ClientError as exc:
            return str(exc.response["Error"]["Code"])
        return "indexed" if out["FaceRecords"] else "not_indexed"

    started = time.perf_counter()
    with ThreadPoolExecutor(FILL_WORKERS) as pool:
        outcomes = Counter(pool.map(work, photos))
    return {
        "photos": len(photos),
        "outcomes": dict(outcomes),
        "seconds": round(time.perf_counter() - started, 1),
    }


@dataclass
class Sample:
    operation: str  # SearchFacesByImage or IndexFaces
    outcome: str  # ok, ThrottlingException, no_face, or an error code / exception name
    started: float  # perf_counter seconds
    latency_ms: float


@dataclass
class Level:
    clients: int
    samples: list[Sample] = field(default_factory=list)


def call(client: Any, operation: str, image: bytes, n: int) -> str:
    """One request; its outcome (``ok`` or the kind of failure)."""
    try:
        if operation == "SearchFacesByImage":
            client.search_faces_by_image(CollectionId=COLLECTION, Image={"Bytes": image})
        else:
            client.index_faces(
                CollectionId=COLLECTION, Image={"Bytes": image}, ExternalImageId=f"load-{n}", MaxFaces=1
            )
    except ClientError as exc:
        code = str(exc.response["Error"]["Code"])
        if code == "ThrottlingException":  # the in-flight limit, or the per-key rate limit
            return code if "in flight" in str(exc) else "ThrottlingException (rate)"
        return "no_face" if code == "InvalidParameterException" and "no faces" in str(exc) else code
    except BotoCoreError as exc:
        return type(exc).__name__
    return "ok"


def run_level(
    clients: list[Any],
    search: list[bytes],
    index: list[bytes],
    search_share: float,
    warmup_s: float,
    duration_s: float,
    seed: int,
) -> Level:
    """``len(clients)`` closed-loop clients for warmup + duration; samples of the measured window."""
    level = Level(len(clients))
    lock = threading.Lock()
    start_at = time.perf_counter() + 0.2
    measure_from = start_at + warmup_s
    stop_at = measure_from + duration_s

    def worker(i: int) -> None:
        rnd = random.Random(seed * 1000 + i)
        client = clients[i]
        n = 0
        while time.perf_counter() < start_at:
            time.sleep(0.005)
        while (t0 := time.perf_counter()) < stop_at:
            if rnd.random() < search_share:
                operation, image = "SearchFacesByImage", search[rnd.randrange(len(search))]
            else:
                operation, image = "IndexFaces", index[rnd.randrange(len(index))]
            outcome = call(client, operation, image, i * 1_000_000 + n)
            elapsed_ms = (time.perf_counter() - t0) * 1000
            n += 1
            if t0 >= measure_from and t0 + elapsed_ms / 1000 <= stop_at:
                with lock:
                    level.samples.append(Sample(operation, outcome, t0, elapsed_ms))
            if outcome.startswith("ThrottlingException"):
                time.sleep(rnd.uniform(*THROTTLE_BACKOFF_S))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(len(clients))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=warmup_s + duration_s + 180)
    if any(t.is_alive() for t in threads):
        raise RuntimeError(f"{len(clients)} clients: a request did not finish (read timeout 120 s)")
    return level


def percentiles(latencies_ms: list[float]) -> dict[str, float | int | None]:
    if not latencies_ms:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None}
    a = np.asarray(latencies_ms, np.float64)
    return {
        "n": len(latencies_ms),
        "p50_ms": round(float(np.percentile(a, 50)), 1),
        "p95_ms": round(float(np.percentile(a, 95)), 1),
        "p99_ms": round(float(np.percentile(a, 99)), 1),
    }


def summarise(level: Level, duration_s: float) -> dict[str, Any]:
    ok = [s for s in level.samples if s.outcome == "ok"]
    by_op: dict[str, Any] = {}
    for op in ("SearchFacesByImage", "IndexFaces"):
        answered = [s.latency_ms for s in ok if s.operation == op]
        by_op[op] = {"per_s": round(len(answered) / duration_s, 2), **percentiles(answered)}
    outcomes = Counter(s.outcome for s in level.samples)
    throttled = [s.latency_ms for s in level.samples if s.outcome == "ThrottlingException"]
    return {
        "clients": level.clients,
        "requests_per_s": round(len(ok) / duration_s, 2),
        "latency": percentiles([s.latency_ms for s in ok]),
        "by_operation": by_op,
        "throttled": outcomes.get("ThrottlingException", 0),  # in flight > server.max_inflight
        "throttled_share": round(len(throttled) / len(level.samples), 4) if level.samples else 0.0,
        "throttled_p50_ms": round(float(np.median(throttled)), 1) if throttled else None,
        "no_face": outcomes.get("no_face", 0),
        "errors": {k: v for k, v in outcomes.items() if k not in ("ok", "ThrottlingException", "no_face")},
    }


def cpu_seconds() -> dict[int, tuple[str, int]]:
    """pid -> (command, CPU seconds used so far) of every process (``ps``)."""
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,times,comm", "--no-headers"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    table: dict[int, tuple[str, int]] = {}
    for line in out.splitlines():
        parts = line.split(None, 2)
        if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
            table[int(parts[0])] = (parts[2], int(parts[1]))
    return table


def other_cpu(before: dict[int, tuple[str, int]], mine: set[int], limit: int = 8) -> dict[str, Any]:
    """CPU seconds used since ``before`` by processes other than ``mine`` (this bench, its server)."""
    used: Counter[str] = Counter()
    for pid, (comm, seconds) in cpu_seconds().items():
        if pid in mine:
            continue
        spent = seconds - before.get(pid, (comm, 0))[1]
        if spent > 0:
            used[comm] += spent
    return {"cpu_s_total": sum(used.values()), "busiest": dict(used.most_common(limit))}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--fill", type=int, default=1000, help="LFW photos indexed before the load")
    parser.add_argument("--levels", default="1,2,4,8,16", help="concurrent clients, comma-separated")
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds per level not measured")
    parser.add_argument("--search-share", type=float, default=0.9, help="share of SearchFacesByImage")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    exit_on_sigterm()
    levels = [int(x) for x in args.levels.split(",")]
    fill, search_paths, index_paths = photo_pools(args.fill, args.seed)
    search = [p.read_bytes() for p in search_paths]
    index = [p.read_bytes() for p in index_paths]
    started = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    cpu_before = cpu_seconds()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="keeneye-load-") as tmp, LiveServer(Path(tmp) / "data") as server:
        log(f"server up on {server.url} in {server.startup_s:.1f} s; filling {len(fill)} photos")
        server.client().create_collection(CollectionId=COLLECTION)
        filled = fill_collection(server, fill)
        faces_before = server.client().describe_collection(CollectionId=COLLECTION)["FaceCount"]
        log(f"filled: {filled}")
        for n_clients in levels:
            clients = [server.client() for _ in range(n_clients)]
            load_before = round(os.getloadavg()[0], 2)
            level = run_level(
                clients, search, index, args.search_share, args.warmup, args.duration, args.seed
            )
            row = summarise(level, args.duration)
            row["load_average_1m"] = [load_before, round(os.getloadavg()[0], 2)]
            results.append(row)
            log(
                f"{n_clients} clients: {row['requests_per_s']} req/s, p50 {row['latency']['p50_ms']} ms, "
                f"p99 {row['latency']['p99_ms']} ms, throttled {row['throttled']}, errors {row['errors']}"
            )
        faces_after = server.client().describe_collection(CollectionId=COLLECTION)["FaceCount"]
        startup_s = server.startup_s
        mine = {os.getpid(), server.pid or -1}
        others = other_cpu(cpu_before, mine)
        own = {
            "bench_cpu_s": round(time.process_time(), 1),
            "server_cpu_s": cpu_seconds().get(server.pid or -1, ("", 0))[1],
        }
    emit(
        {
            "benchmark": "load",
            "what": "closed-loop boto3 clients -> keeneye serve on 127.0.0.1 "
            f"({round(args.search_share * 100)} % SearchFacesByImage, the rest IndexFaces)",
            "note": f"clients and server share this machine's {os.cpu_count()} cores; other work may run "
            "alongside (load averages, and CPU seconds of other processes during the run, below)",
            "server": {
                "startup_s": round(startup_s, 1),
                "max_inflight": settings().server.max_inflight,
                "rate_limit_per_key_per_s": getattr(settings().server, "rate_limit_per_s", None),
                "threads": os.environ.get("KEENEYE_THREADS", "runtime default"),
                "openblas_threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            },
            "fill": filled,
            "faces": {"before_load": faces_before, "after_load": faces_after},
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "levels": results,
            "load_average_start": load_start,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "cpu_seconds": own,
            "other_processes_cpu_s": others,
            "total_s": round(time.perf_counter() - started, 1),
        }
    )


if __name__ == "__main__":
    main()
