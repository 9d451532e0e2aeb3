"""TCP sweep: find which endpoints accept a connection, at the rate of the kernel, not of asyncio.

Most endpoints of a scan are closed or silent, so the cost of *not finding* something decides a
scan's speed. This stage keeps up to ``limit`` non-blocking connects in flight with plain
callbacks on the event loop's selector (no Task, Future, stream or exception per endpoint), one
timer for all deadlines, and an inline token bucket. Only endpoints that accept reach the
assessment stage, which opens its own connection like nmap's scripts do after its port scan.

Congestion control (issue 13): one server often answers many addresses, and its accept queue is
short (pynetdicom's socketserver: 5). A thousand connects in flight toward it overflow the queue
(TcpExt ListenOverflows); each dropped SYN waits a second for its retransmission, and the
assessments running beside the sweep lose their connections too. With ``window_of`` the sweep
takes its connects from the congestion window of the endpoint's group, the very window of the
assessment stage (:mod:`.congestion`: one server, one queue). In the window's accounting:

* a connect that completes is a finished transfer: open with a TCP retransmission (the SYN was
  resent, ``TCP_INFO``) is a loss, anything else grows the window;
* a connect the peer reset right after the handshake (ECONNRESET, not ECONNREFUSED: a server
  at its connection limit, a listener that accepts and resets everyone) is open, as the SYN
  sweep says, and a loss; its slot goes to the assessment without a connection to hand over;
* a connect still pending after :meth:`~.congestion.Window.slow_connect` in a group where no
  connect was answered open yet leaves the window as if answered: nothing listens in that
  group to overrun, and a silent network must not hold the window for the whole timeout.
  In a group with a listener it stays until answered or expired: a dropped SYN holds its slot,
  so an overrun queue throttles the sweep at once (self-clocking, the loss is confirmed a
  second later by the retransmitted SYN);
* a connect that expires unanswered in a group that has lost connections is tried once more
  before it is called "filtered" (it was most likely dropped by the overrun queue).
"""

from __future__ import annotations

import asyncio
import errno
import os
import select
import socket
import time
from collections.abc import Callable, Iterator

from ..dul.scu import RESET_AFTER_HANDSHAKE, _retransmitted
from .congestion import Window
from .ratelimit import RateLimiter

#: (target index, host, port) -> called once per endpoint with "open" | "closed" | "filtered"
#: | "unreachable"
Verdict = Callable[[int, str, int, str], None]
#: (host, port) -> the congestion window of the endpoint's group, or None (not controlled)
WindowOf = Callable[[str, int], Window | None]
#: (window, ticket, host, port, lost) -> called once when a connect leaves the window
WindowDone = Callable[[Window, int, str, int, bool], None]

_REFUSED = {errno.ECONNREFUSED}
#: probes started per event-loop callback before the sweep lets other work run
SLICE = 256
_TIMEDOUT = {errno.ETIMEDOUT}


def state_of(err: int) -> str:
    """The sweep's verdict for a connect's SO_ERROR (or connect_ex result): "open" |
    "closed" | "filtered" | "unreachable". A reset after the handshake is "open"
    (:data:`~dicomguard.dul.scu.RESET_AFTER_HANDSHAKE`: the SYN sweep got a SYN-ACK there)."""
    if err == 0 or err in RESET_AFTER_HANDSHAKE:
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
        window_of: WindowOf | None = None,
        window_done: WindowDone | None = None,
    ) -> None:
        self.endpoints = endpoints
        self.verdict = verdict
        self.limit = limit
        self.timeout = timeout
        self.limiter = limiter or RateLimiter(0)
        #: back-pressure from the assessment stage: no new connects while it is saturated
        self.may_start = may_start
        self._inflight: dict[int, tuple[int, str, int, socket.socket, float]] = {}
        #: congestion control (module docstring): the group's window and what it is told
        self.window_of = window_of
        self.window_done = window_done
        #: fd -> [window, ticket, started (monotonic), still counted in the window]
        self._windowed: dict[int, list] = {}
        #: the next endpoint, held back while its group's window is full
        self._held: tuple[int, str, int] | None = None
        #: endpoints already tried twice (a second chance after an expiry in a lossy group)
        self._retried: set[tuple[int, str, int]] = set()
        #: open connections of controlled groups, kept for the assessment with their slot of
        #: the window: (seq, host, port) -> (socket, window, ticket). A bare connection holds
        #: a server's worker until its own timeout (pynetdicom's acceptor waits ``acse_timeout``
        #: for the A-ASSOCIATE-RQ, 30 s in its apps, and counts it against its 10
        #: associations): the assessment sends its A-ASSOCIATE-RQ on this one instead. The
        #: socket is None when the peer reset the connection before the sweep read it: only the
        #: slot is kept, and the assessment's ticket it is (finished when the assessment ends)
        self.kept: dict[tuple[int, str, int], tuple[socket.socket | None, Window, int]] = {}
        #: the descriptor of the connect _start() left in flight (None: answered at once)
        self._started_fd: int | None = None
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
        return self._exhausted and self._held is None and not self.outstanding()

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
            if self._held is not None:
                item: tuple[int, str, int] | None = self._held
                self._held = None
            else:
                try:
                    item = next(self.endpoints)
                except StopIteration:
                    self._exhausted = True
                    break
                if item is None:  # names still resolving: their task calls refill() again
                    break
            window = self.window_of(item[1], item[2]) if self.window_of is not None else None
            if window is not None and not window.may_start() and item not in self._retried:
                # the group's window is full: wait for one of its connects or assessments
                # to end (both call refill); the endpoints behind it keep their order. A
                # second try does not wait: a connection kept for a higher port of its host
                # may hold the slot it would wait for (the engine assesses a host's
                # endpoints in target order)
                self._held = item
                break
            if not self._take_token():
                self._held = item
                break
            self._started_fd = None
            self._start(*item)
            if window is not None:
                self._track(window, item)
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
            self._started_fd = fd
            self._inflight[fd] = (seq, host, port, sock, time.monotonic() + self.timeout)
            if self._epoll is not None:
                self._epoll.register(fd, select.EPOLLOUT)
            else:
                self._loop.add_writer(fd, self._ready, fd)
            return
        sock.close()
        self.verdict(seq, host, port, state_of(err))

    def _track(self, window: Window, item: tuple[int, str, int]) -> None:
        """The connect of ``item`` just started takes a slot of ``window``; one answered at
        once (refused, unreachable) gives it back at once."""
        ticket = window.start()
        fd = self._started_fd
        if fd is None:
            self._tell(window, ticket, item[1], item[2], False)
            return
        self._windowed[fd] = [window, ticket, time.monotonic(), True]

    def _tell(self, window: Window, ticket: int, host: str, port: int, lost: bool) -> None:
        if self.window_done is not None:
            self.window_done(window, ticket, host, port, lost)
        else:
            window.finish(ticket, lost)

    def _release(self, fd: int, seq: int, host: str, port: int, sock: socket.socket | None,
                 state: str, *, reset: bool = False) -> bool:
        """The connect of ``fd`` ended with ``state``; tell its window, if it still counts.
        An open connection still counted is kept for the assessment (:attr:`kept`) with its
        slot of the window; returns whether the socket was (the caller closes it if not).

        ``reset``: open, but the peer reset the connection right after the handshake
        (:data:`RESET_AFTER_HANDSHAKE`): nothing to hand over, yet the slot is kept for the
        assessment all the same (its ticket is finished when the assessment ends, whatever
        happens), and it is a loss: what a server at its connection limit or an overflowing
        accept queue does (congestion.py)."""
        entry = self._windowed.pop(fd, None)
        if entry is None:
            return False
        window, ticket, started, counted = entry
        if state == "open":
            window.listening = True
        if not counted:
            return False
        lost = False
        if state == "open" and sock is not None:
            if reset or _retransmitted(sock):
                lost = True  # reset at once, or the SYN was resent: the queue dropped it
            else:
                window.connected(time.monotonic() - started)
            self.kept[(seq, host, port)] = (None if reset else sock, window, ticket)
            if lost:
                window.loss(ticket)
            return not reset
        self._tell(window, ticket, host, port, lost)
        return False

    def _age(self, now: float) -> bool:
        """Connects pending past their window's slow-connect time in groups where nothing
        answered open leave the window (module docstring); returns whether any did."""
        aged = False
        for fd, entry in self._windowed.items():
            window, ticket, started, counted = entry
            if counted and not window.listening and now - started > window.slow_connect():
                entry[3] = False
                aged = True
                item = self._inflight.get(fd)
                if item is None:
                    continue
                self._tell(window, ticket, item[1], item[2], False)
        return aged

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
        state = state_of(err)
        reset = err in RESET_AFTER_HANDSHAKE
        if not (self._windowed and self._release(fd, seq, host, port, sock, state, reset=reset)):
            sock.close()
        self.verdict(seq, host, port, state)

    def _tick(self) -> None:
        """Expire connects past their deadline (one timer for all of them)."""
        self._expire(time.monotonic())
        if not self._finished.done():
            self._loop.call_later(min(0.1, self.timeout / 4), self._tick)

    def _expire(self, now: float) -> None:
        aged = self._age(now) if self._windowed else False
        expired = [fd for fd, entry in self._inflight.items() if entry[4] <= now]
        for fd in expired:
            seq, host, port, sock, _ = self._inflight.pop(fd)
            self._unwatch(fd)
            sock.close()
            entry = self._windowed.get(fd)
            if entry is not None:
                self._release(fd, seq, host, port, None, "filtered")
                key = (seq, host, port)
                if entry[0].decreases and key not in self._retried:
                    # silent in a group whose queue overflowed: most likely a SYN dropped
                    # each time it was sent, not a filter; one more try before "filtered"
                    self._retried.add(key)
                    self.endpoints = _prepend(key, self.endpoints)
                    self._exhausted = False
                    continue
            self.verdict(seq, host, port, "filtered")
        if expired or aged:
            self.refill()

    def _finish(self) -> None:
        if not self._finished.done():
            self._finished.set_result(None)

    def close(self) -> None:
        for fd, entry in list(self._inflight.items()):
            self._unwatch(fd)
            entry[3].close()
        self._inflight.clear()
        self._windowed.clear()
        for sock, _window, _ticket in self.kept.values():
            if sock is not None:
                sock.close()
        self.kept.clear()
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
