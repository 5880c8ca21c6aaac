"""The crash test's kill/restart cycles, 20 by default, with per-cycle figures as JSON.

Runs tests/faults/crash.py's harness (the same code as tests/faults/test_crash.py): a ``keeneye
serve`` subprocess on 127.0.0.1 with a temporary data directory and the installed models, four
threads of IndexFaces through boto3, SIGKILL at a random moment, restart on the same data directory,
then the consistency checks (every acknowledged face listed once and found by search; FaceCount,
ListFaces, the search index and the index files agree). Stops at the first failed check and reports
it. Prints JSON; the server log stays in the temporary folder only while it runs (``--keep-log``
copies it next to the output).

Usage: python bench/crash_loop.py [--cycles 20] [--seed N] [--keep-log PATH]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from common import SHARED, emit
from live_server import exit_on_sigterm, models_path

# common put the checkout on sys.path: the harness is the crash test's own code.
from tests.faults.crash import LOAD_THREADS, PHOTOS, run_cycles


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None, help="seed of the kill moments (default: random)")
    parser.add_argument("--keep-log", type=Path, default=None, help="copy the server log here")
    args = parser.parse_args()
    exit_on_sigterm()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    load_start = round(os.getloadavg()[0], 2)
    started = time.perf_counter()
    failure: str | None = None
    results = []
    with tempfile.TemporaryDirectory(prefix="keeneye-crash-") as tmp:
        log_path = Path(tmp) / "server.log"
        try:
            results = run_cycles(Path(tmp) / "data", models_path(), SHARED, args.cycles, seed, log_path)
        except (AssertionError, RuntimeError) as exc:
            failure = str(exc)
        if args.keep_log is not None and log_path.exists():
            shutil.copyfile(log_path, args.keep_log)
    restarts = [r.restart_s for r in results]
    emit(
        {
            "benchmark": "crash_loop",
            "what": f"{LOAD_THREADS} threads of IndexFaces ({PHOTOS} LFW photos, some DeleteFaces) -> "
            "SIGKILL of keeneye serve at a random moment -> restart on the same data directory -> checks",
            "seed": seed,
            "cycles_asked": args.cycles,
            "cycles_passed": len(results),
            "passed": failure is None and len(results) == args.cycles,
            "failure": failure,
            "faces_acknowledged": sum(r.acked for r in results),
            "faces_deleted": sum(r.deleted for r in results),
            "faces_committed_unacknowledged": sum(r.committed_unacknowledged for r in results),
            "faces_final": results[-1].faces_total if results else 0,
            "restart_s": {
                "median": round(statistics.median(restarts), 2) if restarts else None,
                "max": max(restarts) if restarts else None,
            },
            "load_average_1m": [load_start, round(os.getloadavg()[0], 2)],
            "total_s": round(time.perf_counter() - started, 1),
            "cycles": [asdict(r) for r in results],
        }
    )


if __name__ == "__main__":
    main()
