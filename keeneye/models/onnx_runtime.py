"""ONNX Runtime session creation shared by every ONNX backend.

CPU everywhere; the CUDA provider is used first when onnxruntime-gpu offers it. Thread count comes
from ``KEENEYE_INTRA_OP_THREADS`` (default: ONNX Runtime's own choice).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from keeneye.core.errors import BackendUnavailable

_default_threads = 0


def configure(threads: int) -> None:
    """Set the intra-op thread count for sessions created from now on (0: ONNX Runtime's default).

    Called once by the composition root from ``Settings.threads``; ``KEENEYE_INTRA_OP_THREADS`` wins.
    """
    global _default_threads
    _default_threads = max(0, int(threads))


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _configured_threads() -> int:
    """``KEENEYE_INTRA_OP_THREADS``, else what ``configure`` set (0: ONNX Runtime's default)."""
    env_threads = os.environ.get("KEENEYE_INTRA_OP_THREADS")
    return int(env_threads) if env_threads else _default_threads


def intra_op_threads() -> int:
    """The intra-op threads a session created now gets: the configured count, else (ONNX Runtime's
    default) about one per CPU this process may run on."""
    n = _configured_threads()
    if n > 0:
        return n
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def create_session(path: Path | str, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` for ``path``; raises BackendUnavailable if the file is missing."""
    import onnxruntime as ort

    p = Path(path)
    if not p.is_file():
        raise BackendUnavailable(f"model file {p} is missing: run `keeneye models install`")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    n = threads if threads is not None else _configured_threads()
    if n:
        opts.intra_op_num_threads = n
    opts.inter_op_num_threads = 1
    # No busy-waiting between operators: a server runs many small models and numpy searches side by
    # side, and spinning threads measurably slowed searches on a 2-core machine (bench/search_latency.py).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    wanted = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available_providers()]
    return ort.InferenceSession(str(p), sess_options=opts, providers=wanted)
