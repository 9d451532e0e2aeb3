"""Opt-in busy polling: an event loop that spins briefly before it sleeps.

A relay adds two hops to every request/response round trip, and on a virtual machine each hop
costs a wake-up of a sleeping process (an inter-processor interrupt and a halted vCPU coming
back), tens of microseconds, more than the gateway's own work on a small C-STORE. The kernel's
answer (``SO_BUSY_POLL``) works only for NIC queues, not for loopback or for sockets in
general, so this does the same in user space: after handling events, the selector keeps
polling with a zero timeout for up to ``window`` seconds before it blocks in ``epoll_wait``.

It spins only while traffic is flowing: when the last events came longer ago than ``window``,
the next wait sleeps at once, so an idle gateway uses no CPU. The price is CPU time under load
(up to one core while associations are busy), which is why ``limits.busy_poll_us`` is 0 (off)
by default; it is for a gateway host with a core to spare in front of a latency-bound device.
"""

from __future__ import annotations

import asyncio
import selectors
import time


class SpinningSelector(selectors.EpollSelector):
    """``EpollSelector`` whose blocking ``select`` first spins for up to ``window`` seconds."""

    def __init__(self, window: float) -> None:
        super().__init__()
        self.window = window
        self._last_events = 0.0
        #: zero-timeout polls made so far (what the spinning costs, for tests and debugging)
        self.spins = 0

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout <= 0:
            return super().select(0)
        clock = time.perf_counter
        now = clock()
        if now - self._last_events <= self.window:
            limit = now + self.window
            if timeout is not None:
                limit = min(limit, now + timeout)
            while True:
                ready = super().select(0)
                self.spins += 1
                if ready:
                    self._last_events = clock()
                    return ready
                if clock() >= limit:
                    break
            if timeout is not None:
                timeout = max(0.0, timeout - (clock() - now))
        ready = super().select(timeout)
        if ready:
            self._last_events = clock()
        return ready


def event_loop(busy_poll_us: int) -> asyncio.AbstractEventLoop:
    """A new event loop; a spinning one when ``busy_poll_us`` > 0."""
    if busy_poll_us <= 0:
        return asyncio.new_event_loop()
    return asyncio.SelectorEventLoop(SpinningSelector(busy_poll_us / 1e6))
