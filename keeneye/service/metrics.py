"""Prometheus metrics of a server: requests by operation and status, and the live stream processors.

``GET /v1/metrics`` (keeneye.api.health) renders both; the AWS adapter observes every request.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestMetrics:
    """Request counters by operation and HTTP status (thread-safe), rendered as Prometheus text."""

    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def observe(self, operation: str, status: int, elapsed_s: float) -> None:
        with self._lock:
            self.requests[(operation, status)] += 1
            self.seconds[operation] = self.seconds.get(operation, 0.0) + elapsed_s

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP keeneye_requests_total Rekognition API requests by operation and HTTP status.",
                "# TYPE keeneye_requests_total counter",
            ]
            for (op, status), n in sorted(self.requests.items()):
                lines.append(f'keeneye_requests_total{{operation="{op}",status="{status}"}} {n}')
            lines += [
                "# HELP keeneye_request_seconds_total Time spent answering, by operation.",
                "# TYPE keeneye_request_seconds_total counter",
            ]
            for op, s in sorted(self.seconds.items()):
                lines.append(f'keeneye_request_seconds_total{{operation="{op}"}} {s:.6f}')
        return "\n".join(lines) + "\n"


def render_stream_metrics(stats: dict[str, dict[str, Any]]) -> str:
    """Prometheus text for the running processors' latest counters."""
    series: list[tuple[str, str, str, list[tuple[str, Any]]]] = [
        ("keeneye_stream_frames_total", "counter", "Frames a stream processor analysed", []),
        ("keeneye_stream_frames_dropped_total", "counter", "Frames dropped because analysis fell behind", []),
        ("keeneye_stream_records_total", "counter", "Records a stream processor emitted", []),
        ("keeneye_stream_latency_seconds", "gauge", "Capture-to-record latency over recent records", []),
        ("keeneye_stream_reconnects_total", "counter", "Camera reconnects", []),
        ("keeneye_stream_sink_queued", "gauge", "Records waiting on disk for a sink", []),
        (
            "keeneye_stream_sink_dropped_total",
            "counter",
            "Records dropped because a sink's spool was full",
            [],
        ),
    ]
    by_name = {s[0]: s[3] for s in series}
    for name, st in sorted(stats.items()):
        if not st:
            continue
        label = f'processor="{name}"'
        by_name["keeneye_stream_frames_total"].append((label, st.get("frames_processed", 0)))
        by_name["keeneye_stream_frames_dropped_total"].append((label, st.get("frames_dropped", 0)))
        by_name["keeneye_stream_records_total"].append((label, st.get("records", 0)))
        for q in ("p50", "p95"):
            value = st.get(f"latency_{q}_s")
            if value is not None:
                quantile = "0.5" if q == "p50" else "0.95"
                by_name["keeneye_stream_latency_seconds"].append((f'{label},quantile="{quantile}"', value))
        by_name["keeneye_stream_reconnects_total"].append(
            (label, (st.get("capture") or {}).get("reconnects", 0))
        )
        for sink in st.get("sinks", []):
            sink_label = f'{label},sink="{sink.get("name")}"'
            by_name["keeneye_stream_sink_queued"].append((sink_label, sink.get("queued", 0)))
            by_name["keeneye_stream_sink_dropped_total"].append((sink_label, sink.get("dropped", 0)))
    lines: list[str] = []
    for metric, kind, help_text, values in series:
        lines += [f"# HELP {metric} {help_text}.", f"# TYPE {metric} {kind}"]
        lines += [f"{metric}{{{label}}} {value}" for label, value in values]
    return "\n".join(lines) + "\n"
