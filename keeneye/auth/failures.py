"""Failed authentication attempts, limited per source address and per access key id.

Each source address (an IPv6 address by its /64, what one host usually holds) and each access key id
named by a failed request has a bucket of ``burst`` failures that refills at ``per_min`` a minute. A
failure takes one; while either bucket of a request is empty the request is refused before anything
is checked (HTTP 429 ``Throttling`` with ``Retry-After`` on ``/v1``, ``ThrottlingException`` on the
Rekognition API), so guessing a secret or a token from one address, or against one key from many, goes
no faster than the refill. Successful requests cost nothing.

The per-key bucket is also a lever for whoever knows a key id (not a secret: it is in logs and
policies): failures sent in its name can make that key's requests wait too. Its default is therefore
five times the per-address one, and it only empties under a flood of failures, which the log shows
(``authentication failures ... limited``, once a minute per address or key). In memory, per process; at
most ``max_entries`` buckets are kept (full ones are forgotten first), so many addresses cannot grow it
without bound.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from keeneye.auth.errors import Throttled

log = logging.getLogger("keeneye.auth")

MAX_ENTRIES = 100_000
_LOG_EVERY_S = 60.0


@dataclass
class _Bucket:
    tokens: float
    updated: float
    logged: float = -_LOG_EVERY_S


class _Buckets:
    def __init__(self, burst: int, per_min: float, max_entries: int) -> None:
        self.burst, self.per_s, self.max_entries = burst, per_min / 60.0, max_entries
        self._items: OrderedDict[str, _Bucket] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.burst > 0 and self.per_s > 0

    def _current(self, key: str, now: float) -> _Bucket | None:
        bucket = self._items.get(key)
        if bucket is not None:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * self.per_s)
            bucket.updated = now
        return bucket

    def wait_s(self, key: str, now: float) -> float:
        """0 when ``key`` may try; else the seconds until its next try."""
        bucket = self._current(key, now)
        if bucket is None or bucket.tokens >= 1.0:
            return 0.0
        return (1.0 - bucket.tokens) / self.per_s

    def take(self, key: str, now: float) -> _Bucket:
        bucket = self._current(key, now)
        if bucket is None:
            bucket = self._items[key] = _Bucket(float(self.burst), now)
        self._items.move_to_end(key)
        bucket.tokens = max(0.0, bucket.tokens - 1.0)
        self._prune(now)
        return bucket

    def _prune(self, now: float) -> None:
        if len(self._items) <= self.max_entries:
            return
        # Down to 90 %, so the scan is paid once per max_entries / 10 new buckets, not per failure.
        full = [k for k in self._items if (b := self._current(k, now)) is not None and b.tokens >= self.burst]
        for key in full:
            del self._items[key]  # refilled: as if it never failed
        while len(self._items) > self.max_entries * 9 // 10:
            self._items.popitem(last=False)  # the least recently failed


_CREDENTIAL = re.compile(r"Credential=([A-Za-z0-9]{1,128})/")


def claimed_key(authorization: str | None) -> str | None:
    """The access key id a SigV4 ``Authorization`` header names (not verified: what failures count
    against); None for anything else."""
    if not authorization or not authorization.startswith("AWS4-HMAC-SHA256 "):
        return None
    found = _CREDENTIAL.search(authorization)
    return None if found is None else found.group(1)


def source_key(address: str | None) -> str | None:
    """The bucket of a client address: itself (IPv4), its /64 (IPv6), None when unknown."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a test client's name, a Unix socket: as given
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class FailureLimiter:
    """Thread-safe failure buckets per source address and per access key id (see the module doc).
    ``burst``/``per_min`` of 0 turn that kind off; ``clock``: monotonic seconds."""

    def __init__(
        self,
        *,
        source_burst: int = 20,
        source_per_min: float = 6.0,
        key_burst: int = 100,
        key_per_min: float = 30.0,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sources = _Buckets(source_burst, source_per_min, max_entries)
        self._keys = _Buckets(key_burst, key_per_min, max_entries)
        self._clock = clock
        self._lock = threading.Lock()

    def check(self, source: str | None, access_key_id: str | None = None) -> None:
        """Raise Throttled while the source's or the key's failures are used up."""
        now = self._clock()
        where = source_key(source)
        with self._lock:
            by_source = self._sources.wait_s(where, now) if where and self._sources.enabled else 0.0
            by_key = self._keys.wait_s(access_key_id, now) if access_key_id and self._keys.enabled else 0.0
        if by_source:
            raise Throttled(
                f"too many failed authentication attempts from {where}; retry in {by_source:.0f} s", by_source
            )
        if by_key:
            raise Throttled(
                f"too many failed authentication attempts for access key {access_key_id}; retry in "
                f"{by_key:.0f} s",
                by_key,
            )

    def failed(self, source: str | None, access_key_id: str | None = None) -> None:
        """Count one failed attempt against the source and, if named, the key."""
        now = self._clock()
        where = source_key(source)
        with self._lock:
            for buckets, key, what in (
                (self._sources, where, "from"),
                (self._keys, access_key_id, "for access key"),
            ):
                if not key or not buckets.enabled:
                    continue
                bucket = buckets.take(key, now)
                if bucket.tokens < 1.0 and now - bucket.logged >= _LOG_EVERY_S:
                    bucket.logged = now
                    log.warning("authentication failures %s %s are limited from now on", what, key)
