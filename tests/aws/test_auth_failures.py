"""Failed authentication attempts are limited per client address and per access key id (issue 13, item
9): the buckets only failures drain, refilled with time, IPv6 counted by /64, and a bounded memory."""

from __future__ import annotations

import pytest

from keeneye.auth.errors import Throttled
from keeneye.auth.failures import FailureLimiter, source_key


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_after_its_failures_and_gets_them_back() -> None:
    clock = Clock()
    limiter = FailureLimiter(source_burst=3, source_per_min=6, key_burst=0, clock=clock)
    for _ in range(3):
        limiter.check("203.0.113.7")
        limiter.failed("203.0.113.7")
    with pytest.raises(Throttled) as caught:
        limiter.check("203.0.113.7")
    assert caught.value.wait_s == pytest.approx(10.0) and "203.0.113.7" in caught.value.message
    limiter.check("203.0.113.8")  # another address is not slowed
    limiter.check(None)  # nor a request whose address is unknown
    clock.now = 10.0
    limiter.check("203.0.113.7")  # one attempt back every 10 s


def test_a_key_id_named_from_many_addresses_waits_too() -> None:
    clock = Clock()
    limiter = FailureLimiter(source_burst=2, key_burst=4, key_per_min=60, clock=clock)
    for i in range(4):
        limiter.failed(f"198.51.100.{i}", "AKIAVICTIM")
    with pytest.raises(Throttled) as caught:
        limiter.check("198.51.100.99", "AKIAVICTIM")
    assert "AKIAVICTIM" in caught.value.message and caught.value.wait_s == pytest.approx(1.0)
    limiter.check("198.51.100.99", "AKIAOTHER")
    clock.now = 1.0
    limiter.check("198.51.100.99", "AKIAVICTIM")


def test_ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() -> None:
    assert source_key("2001:db8:1:2:aaaa::1") == source_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert source_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert source_key(None) is None and source_key("testclient") == "testclient"
    limiter = FailureLimiter(source_burst=1, key_burst=0, clock=Clock())
    limiter.failed("2001:db8:1:2::1")
    with pytest.raises(Throttled):
        limiter.check("2001:db8:1:2::ffff")


def test_zero_turns_it_off_and_memory_is_bounded() -> None:
    off = FailureLimiter(source_burst=0, key_burst=0, clock=Clock())
    for _ in range(100):
        off.failed("203.0.113.7", "AKIA1")
    off.check("203.0.113.7", "AKIA1")
    clock = Clock()
    small = FailureLimiter(source_burst=5, key_burst=0, max_entries=10, clock=clock)
    for i in range(50):
        small.failed(f"10.0.0.{i}")
    assert len(small._sources._items) <= 10
    small.failed("10.0.0.49")
    small.failed("10.0.0.49")
    for _ in range(5):
        small.failed("10.0.0.49")
    with pytest.raises(Throttled):  # the newest are kept
        small.check("10.0.0.49")
