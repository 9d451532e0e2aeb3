"""The one token bucket of dicomguard: the scan's connection rate and the gateway's per-identity
operation rate are both this class, set up two ways.

``refill`` tokens a second, at most ``burst`` saved up; ``full`` says whether it starts with
``burst`` tokens (the gateway: an identity may use its burst at once) or none (the scan: its
promise of at most R connections in *every* one-second window holds from the first second on,
see :mod:`dicomguard.scan.ratelimit` for the refill rate that keeps it). ``slack`` lets a
token count as whole when float rounding left it a hair short (the scan's windowed refill sums
many small increments). Hand-written: asyncio has none, and the ones on PyPI (aiolimiter) have no
non-blocking take for the sweep's callback-driven loop; twenty lines.

A part of its own (no import of any other part) so scan/ and gateway/ share it without one
reaching into the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """``refill`` tokens per second (> 0), at most ``burst`` held; ``clock`` in seconds
    (monotonic; for tests). Not thread-safe: one event loop uses it."""

    def __init__(
        self,
        refill: float,
        burst: float,
        *,
        full: bool,
        slack: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refill = refill
        self.burst = burst
        self.slack = slack
        self.clock = clock
        self.tokens = float(burst) if full else 0.0
        self.stamp = clock()

    def take(self, now: float | None = None) -> bool:
        """Take a token if one is there (``now``: the clock's reading, if the caller has it)."""
        now = self.clock() if now is None else now
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.refill)
        self.stamp = now
        if self.tokens >= 1.0 - self.slack:
            self.tokens = max(0.0, self.tokens - 1.0)
            return True
        return False

    def try_take(self, now: float | None = None) -> float:
        """Take a token now and return 0, or return how many seconds until one is there."""
        if self.take(now):
            return 0.0
        return (1.0 - self.tokens) / self.refill
