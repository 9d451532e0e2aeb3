"""TCP sweep: find which endpoints accept a connection, at the rate of the kernel, not of asyncio.

Most endpoints of a scan are closed or silent, so the cost of *not finding* something decides a
scan's speed. This stage keeps up to ``limit`` non-blocking connects in flight with plain
callbacks on the event loop's selector (no Task, Future, stream or exception per endpoint), one
timer for all deadlines, and an inline token bucket. Only endpoints that accept reach the
assessment stage, which opens its own connection like nmap's scripts do after its port scan.
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import time
from collections.abc import Callable, Iterator

from .ratelimit import RateLimiter

#: (target index, host, port) -> called once per endpoint with "open" | "closed" | "filtered"
#: | "unreachable"
Verdict = Callable[[int, str, int, str], None]

_REFUSED = {errno.ECONNREFUSED, errno.ECONNRESET}
#: probes started per event-loop callback before the sweep lets other work run
SLICE = 256
_TIMEDOUT = {errno.ETIMEDOUT}


def state_of(err: int) -> str:
    if err == 0:
        return "open"
    if err in _REFUSED:
        return "closed"
    if err in _TIMEDOUT:
        return "filtered"
    return "unreachable"


class Sweep:
    """Connect to every endpoint of ``endpoints`` once and report each one's TCP state."""

    def __init__(
        self,
        endpoints: Iterator[tuple[int, str, int] | None],
        verdict: Verdict,
        *,
        limit: int = 1024,
        timeout: float = 3.0,
        limiter: RateLimiter | None = None,
        may_start: Callable[[], bool] = lambda: True,
    ) -> None:
        self.endpoints = endpoints
        self.verdict = verdict
        self.limit = limit
        self.timeout = timeout
        self.limiter = limiter or RateLimiter(0)
        #: back-pressure from the assessment stage: no new connects while it is saturated
        self.may_start = may_start
        self._inflight: dict[int, tuple[int, str, int, socket.socket, float]] = {}
        self._exhausted = False
        self._wakeup: asyncio.TimerHandle | None = None
        self._resume_scheduled = False
        self._finished = asyncio.get_running_loop().create_future()
        self._loop = asyncio.get_running_loop()
        # On Linux one epoll set of our own, watched by the loop as a single reader: the
        # loop's add_writer/remove_writer per socket cost more than the connect itself.
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        if self._epoll is not None:
            self._loop.add_reader(self._epoll.fileno(), self._on_epoll)

    async def run(self) -> None:
        self.refill()
        self._tick()
        await self._finished

    def outstanding(self) -> int:
        """Probes sent and not yet answered or expired."""
        return len(self._inflight)

    @property
    def done(self) -> bool:
        return self._exhausted and not self.outstanding()

    def refill(self) -> None:
        """Start connects until the limit, the rate or the assessment stage says stop."""
        if self._finished.done():
            return
        # At most SLICE probes per call, then the rest from a fresh loop turn: a long burst
        # would hold up the assessments running beside the sweep at every one of their awaits.
        started = 0
        while not self._exhausted and self.outstanding() < self.limit and self.may_start():
            if started >= SLICE:
                if not self._resume_scheduled:
                    self._resume_scheduled = True
                    self._loop.call_soon(self._resume)
                break
            started += 1
            if not self._take_token():
                break
            try:
                item = next(self.endpoints)
            except StopIteration:
                self._exhausted = True
                break
            if item is None:  # names still resolving: their task calls refill() again
                break
            self._start(*item)
        if self.done:
            self._finish()

    def _resume(self) -> None:
        self._resume_scheduled = False
        self.refill()

    def _take_token(self) -> bool:
        wait = self.limiter.try_take()
        if wait <= 0:
            return True
        if self._wakeup is None:

            def wake() -> None:
                self._wakeup = None
                self.refill()

            self._wakeup = self._loop.call_later(wait, wake)
        return False

    def _start(self, seq: int, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as exc:  # out of descriptors: wait for some to come back
            if exc.errno in (errno.EMFILE, errno.ENFILE):
                self.endpoints = _prepend((seq, host, port), self.endpoints)
                self.limit = max(16, len(self._inflight))
                return
            raise
        sock.setblocking(False)
        err = sock.connect_ex((host, port))
        if err in (errno.EINPROGRESS, errno.EAGAIN, errno.EALREADY):
            fd = sock.fileno()
            self._inflight[fd] = (seq, host, port, sock, time.monotonic() + self.timeout)
            if self._epoll is not None:
                self._epoll.register(fd, select.EPOLLOUT)
            else:
                self._loop.add_writer(fd, self._ready, fd)
            return
        sock.close()
        self.verdict(seq, host, port, state_of(err))

    def _on_epoll(self) -> None:
        assert self._epoll is not None
        for fd, _events in self._epoll.poll(0, 4096):
            self._complete(fd)
        self.refill()

    def _ready(self, fd: int) -> None:
        self._loop.remove_writer(fd)
        self._complete(fd)
        self.refill()

    def _unwatch(self, fd: int) -> None:
        if self._epoll is not None:
            self._epoll.unregister(fd)
        else:
            self._loop.remove_writer(fd)

    def _complete(self, fd: int) -> None:
        entry = self._inflight.pop(fd, None)
        if entry is None:
            return
        seq, host, port, sock, _deadline = entry
        err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if self._epoll is not None:
            self._epoll.unregister(fd)
        sock.close()
        self.verdict(seq, host, port, state_of(err))

    def _tick(self) -> None:
        """Expire connects past their deadline (one timer for all of them)."""
        self._expire(time.monotonic())
        if not self._finished.done():
            self._loop.call_later(min(0.1, self.timeout / 4), self._tick)

    def _expire(self, now: float) -> None:
        expired = [fd for fd, entry in self._inflight.items() if entry[4] <= now]
        for fd in expired:
            seq, host, port, sock, _ = self._inflight.pop(fd)
            self._unwatch(fd)
            sock.close()
            self.verdict(seq, host, port, "filtered")
        if expired:
            self.refill()

    def _finish(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    def close(self) -> None:
        for fd, entry in list(self._inflight.items()):
            self._unwatch(fd)
            entry[3].close()
        self._inflight.clear()
        if self._epoll is not None:
            self._loop.remove_reader(self._epoll.fileno())
            self._epoll.close()
            self._epoll = None
        self._finish()


def _prepend(
    item: tuple[int, str, int], rest: Iterator[tuple[int, str, int] | None]
) -> Iterator[tuple[int, str, int] | None]:
    yield item
    yield from rest


def raise_fd_limit() -> int:
    """Raise the soft open-files limit to the hard one (scanners need thousands of sockets)."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 16
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    except (ImportError, ValueError, OSError):
        return os.sysconf("SC_OPEN_MAX")
