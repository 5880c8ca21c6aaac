"""A token bucket per access key: ``rate_per_s`` requests a second on average, bursts of ``burst``.

Each key's bucket holds up to ``burst`` tokens and refills at ``rate_per_s`` tokens a second; a request
takes one token or is refused with the time until one is available (the adapters answer
ThrottlingException / HTTP 429 with ``Retry-After``). In memory, per server process: a restart
refills every bucket. ``rate_per_s`` 0 turns limiting off.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Thread-safe token buckets keyed by access key id. ``clock``: seconds, monotonic."""

    def __init__(self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s < 0 or burst < 1:
            raise ValueError("rate_per_s must be >= 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """Take a token for ``key``: 0.0 if granted, else the seconds until one will be available."""
        if self.rate_per_s == 0:
            return 0.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.rate_per_s)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate_per_s


def retry_after_s(wait_s: float) -> int:
    """A ``Retry-After`` header value: whole seconds, at least 1."""
    return max(1, math.ceil(wait_s))
