"""A server-wide amount that concurrent requests share: decoded pixels, body bytes of callers not yet
authenticated. A request takes its share before it spends the memory and gives it back after; a request
that does not fit is refused at once (the adapters answer ThrottlingException / HTTP 429), never queued,
so a flood of large requests cannot hold threads waiting either.
"""

from __future__ import annotations

import threading


class Budget:
    """At most ``capacity`` units (``unit`` names them in messages) in use at once; thread-safe.

    One request larger than the whole capacity is let in when nothing else holds any of it (it runs alone):
    a limit on single requests is the job of the per-request limits (``images.max_pixels``,
    ``server.max_body_bytes``), not of this one."""

    def __init__(self, capacity: int, unit: str) -> None:
        if capacity < 1:
            raise ValueError(f"a budget needs a capacity of at least 1 {unit}")
        self.capacity = capacity
        self.unit = unit
        self._used = 0
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        with self._lock:
            return self._used

    def take(self, amount: int) -> bool:
        """Take ``amount`` if it fits (or nothing is in use); False, taking nothing, otherwise."""
        if amount <= 0:
            return True
        with self._lock:
            if self._used and self._used + amount > self.capacity:
                return False
            self._used += amount
            return True

    def give(self, amount: int) -> None:
        """Give back ``amount`` taken before."""
        if amount <= 0:
            return
        with self._lock:
            if amount > self._used:
                raise ValueError(f"giving back {amount} {self.unit}, but only {self._used} are taken")
            self._used -= amount

    def __repr__(self) -> str:
        return f"Budget({self.in_use}/{self.capacity} {self.unit})"
