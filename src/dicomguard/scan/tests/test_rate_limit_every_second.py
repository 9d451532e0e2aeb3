"""--rate R holds in every one-second window, the first included (issue 12, item 8)."""

from __future__ import annotations

import asyncio
import time

import pytest

from dicomguard.scan.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _greedy(limiter: RateLimiter, clock: FakeClock, seconds: float, pause_at: float) -> list[float]:
    """Take every token as soon as it exists; idle for 3 s at ``pause_at`` to fill the bucket."""
    start = clock.now
    times: list[float] = []
    paused = False
    while clock.now - start < seconds:
        if not paused and clock.now - start >= pause_at:
            clock.now += 3.0
            paused = True
        wait = limiter.try_take()
        if wait == 0:
            times.append(clock.now - start)
        else:
            clock.now += wait
    return times


def _worst_window(times: list[float]) -> int:
    """Most events in any half-open window [t, t + 1) (windows starting at an event suffice)."""
    worst, j = 0, 0
    for i, t in enumerate(times):
        while j < len(times) and times[j] < t + 1.0:
            j += 1
        worst = max(worst, j - i)
    return worst


@pytest.mark.parametrize("rate", [1, 3, 10, 99.5, 300, 1000, 25_000])
def test_no_second_ever_sees_more_than_rate(rate: float) -> None:
    clock = FakeClock()
    times = _greedy(RateLimiter(rate, clock=clock), clock, 8.0, pause_at=4.0)
    first = sum(1 for t in times if t < 1.0)
    assert first <= int(rate), "the bucket must start empty"
    assert _worst_window(times) <= int(rate)
    busy = sum(1 for t in times if 1.0 <= t < 4.0) / 3.0
    assert busy >= 0.95 * int(rate) - 1  # and the average stays close to the rate


def test_several_workers_sum_to_the_rate() -> None:
    clock = FakeClock()
    merged = sorted(
        t for _ in range(3) for t in _greedy(RateLimiter(300 / 3, clock=clock), clock, 3.0, 1.5)
    )
    # each worker's clock ran on its own; their sum per window is what the network sees
    assert _worst_window(merged) <= 300


def test_real_clock_first_second_holds_the_rate() -> None:
    rate = 40
    limiter = RateLimiter(rate)
    stamps: list[float] = []

    async def taker() -> None:
        while True:
            await limiter.acquire()
            stamps.append(time.monotonic())

    async def go() -> None:
        tasks = [asyncio.create_task(taker()) for _ in range(8)]
        await asyncio.sleep(1.5)
        for t in tasks:
            t.cancel()

    start = time.monotonic()
    asyncio.run(go())
    rel = [s - start for s in stamps]
    assert sum(1 for t in rel if t < 1.0) <= rate
    assert _worst_window(rel) <= rate
