"""A token bucket shared by every connection the scan opens (sweep and assessment alike).

asyncio has no rate limiter, and the ones on PyPI (aiolimiter) add a dependency for twenty lines
and have no non-blocking take for the sweep's callback-driven loop; rate 0 means "unlimited"
without a branch at every call site.
"""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """At most ``rate`` acquisitions per second on average, bursts of at most ``burst``."""

    def __init__(self, rate: float, burst: int | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1, int(rate // 10) or 1)
        self._tokens = float(self.burst)
        self._last = time.monotonic()

    def try_take(self) -> float:
        """Take a token now and return 0, or return how many seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        while (wait := self.try_take()) > 0:
            await asyncio.sleep(wait)
