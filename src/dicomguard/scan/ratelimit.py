"""The rate limit shared by every connection the scan opens (sweep and assessment alike): the
one token bucket of dicomguard (:mod:`dicomguard.tokenbucket`), set up for a windowed promise.

Rate 0 means "unlimited" without a branch at every call site.

The promise (``--rate R``, issue 12): **at most R new connections in every window of one
second**, whatever second you look at, the first one included. A plain token bucket of capacity
B refilled at R per second allows B + R in some second (and starts full: R + R/10 in the first
second, as issue 12 measured). This one starts empty and refills at ``floor(R) - B + 1``:
in any half-open window of one second it hands out at most the B tokens it held at the start
plus fewer than ``floor(R) - B + 1`` new ones, so at most ``floor(R)``. B = R/100 (at least 1)
keeps the sweep's wake-ups few while the average stays within 1 % of R. With several worker
processes each holds R / workers, so the sum holds too. Below one per second (R < 1) the
spacing is 1/R seconds.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable

from ..tokenbucket import TokenBucket

#: refill a hair slower than the bound (relative), so the rounding slack below (_SLACK per
#: token taken) can never add up to a token in a window
_EPSILON = 1e-6
_SLACK = 1e-9


class RateLimiter:
    """At most ``rate`` acquisitions in every one-second window; starts empty.

    ``burst`` (default ``rate // 100``, at least 1) is how many may go back to back after a
    pause; ``clock`` (seconds, monotonic) is for tests.
    """

    def __init__(
        self,
        rate: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.clock = clock
        whole = max(1, math.floor(rate)) if rate >= 1 else 1
        self.burst = min(whole, burst if burst is not None else max(1, whole // 100))
        #: tokens per second: see the module docstring for why not ``rate``
        self.refill = (whole - self.burst + 1) * (1 - _EPSILON) if rate >= 1 else rate
        #: starts empty: the first second holds the promise too
        self._bucket = TokenBucket(self.refill, self.burst, full=False, slack=_SLACK, clock=clock)

    def try_take(self) -> float:
        """Take a token now and return 0, or return how many seconds until one is there."""
        if self.rate <= 0:
            return 0.0
        return self._bucket.try_take()

    async def acquire(self) -> None:
        while (wait := self.try_take()) > 0:
            await asyncio.sleep(wait)
