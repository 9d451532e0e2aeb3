"""The scan engine: lazy targets in, assessed endpoints out, on one event loop.

Two stages. The sweep (:mod:`.sweep`) pulls from the lazy target iterator and keeps a bounded
number of TCP connects in flight, so memory depends on the concurrency, not on the size of the
address space. Endpoints that accept go to the assessment stage (:func:`.assess.assess`), with at
most ``concurrency`` at once, ``per_host`` per machine, and no more than the congestion window
of their port and address block allows (:mod:`.congestion`: one server answering many
addresses, its accept queue overrun, halves it). The token bucket bounds new connections per
second over both stages.

One endpoint never costs the rest (issue 12). The engine, not each probe, holds every
assessment to a budget: ``endpoint_budget`` seconds of its own time (waits for the shared rate
limiter do not count, so a slow ``--rate`` does not eat it) and ``endpoint_connections`` new
connections (associations, TLS handshakes, HTTP requests). When either runs out, every stream
the endpoint still holds is ended (A-ABORT where an association is up) and the record keeps
what was learned, with ``error_kind`` "budget". An exception that is not the peer's doing
(a bug) becomes that endpoint's ``error_kind`` "internal" record, never the scan's end. An
A-ASSOCIATE-RJ that says "try later" (result 2 transient, source 3: congestion or local
limit exceeded, PS3.8 Table 9-21) sends the endpoint back to the queue after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import logging
import socket
import time
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..dul.errors import BudgetExhausted
from ..dul.scu import Connections, current_connections
from ..knowledge.fingerprint import load_database
from .assess import ProbeOptions, assess, derive_findings
from .congestion import CONGESTION_RETRIES, Answers, Window, group_of
from .exposure import ArchiveCache
from .ratelimit import RateLimiter
from .result import EndpointResult
from .sweep import Sweep, raise_fd_limit
from .synsweep import SynSweep, raw_sockets_available
from .targets import TargetSet

Sink = Callable[[EndpointResult], None]
Progress = Callable[[int, EndpointResult], None]
#: called once per target index when everything for it is finished (for resume bookkeeping)
Done = Callable[[int], None]
#: called with (target index, archive cache entry) when an endpoint's measurement is remembered
#: for later ports of its host: {"host", "key", "signature", "exposure"} (the entry's
#: exposure says its origin in ``same_archive_as``); the store keeps it with that index
Archived = Callable[[int, dict[str, Any]], None]

log = logging.getLogger(__name__)


#: the second last formatted by utc_timestamp, and its text
_stamped: list[Any] = [None, ""]


def utc_timestamp() -> str:
    """Now, ISO 8601 in UTC with milliseconds (a record's ``measured_at``), e.g.
    ``2026-11-30T02:43:06.093Z``: what ``datetime.now(UTC).isoformat(timespec=
    "milliseconds")`` gives with ``Z``, the date and time formatted once per second (every
    record of an all-DICOM scan asks: 2.3 -> 0.4 us per call)."""
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    if seconds != _stamped[0]:
        _stamped[0], _stamped[1] = seconds, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                          time.gmtime(seconds))
    return f"{_stamped[1]}.{nanoseconds // 1_000_000:03d}Z"


def shard_of(host: str, shards: int) -> int:
    """The worker that scans every endpoint of ``host`` (issue 12: --per-host and the
    same-archive link hold only if one process sees all of a host's ports). CRC-32, not
    ``hash()``: it must not change between processes."""
    return zlib.crc32(host.encode("utf-8", "replace")) % shards if shards > 1 else 0


class Closed:
    """What the progress callback sees for an endpoint that did not accept."""

    dicom = False
    tls = False

    def __init__(self, state: str) -> None:
        self.state = state


@dataclass
class ScanConfig:
    targets: TargetSet
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    concurrency: int = 256
    per_host: int = 2
    #: new connections per second over the whole scan; 0 = unlimited
    rate: float = 300.0
    order: str = "sequential"
    #: TCP probes in flight during the sweep
    connect_concurrency: int = 1024
    #: "syn" (raw half-open probes, needs root), "connect", or "auto" (syn when possible)
    sweep: str = "auto"
    #: (k, n): scan only the hosts with shard_of(host, n) == k (one worker of a parallel scan)
    shard: tuple[int, int] = (0, 1)
    #: first target index to scan, and indices past it already done (resume)
    start: int = 0
    skip: frozenset[int] = frozenset()
    #: seconds one endpoint's assessment may take, waits for the rate limiter excluded
    #: (0 = no limit); a record cut off here says error_kind "budget"
    endpoint_budget: float = 120.0
    #: new connections (associations, TLS handshakes, HTTP requests) one endpoint may cost
    endpoint_connections: int = 200
    #: how often an endpoint answering with a transient reject is assessed again, and the
    #: first wait (seconds, doubled each time)
    transient_retries: int = 2
    retry_backoff: float = 5.0
    #: written into every record (``scan_id``): the id of the scan database
    scan_id: str | None = None
    #: congestion control of the assessment stage (scan.congestion): a window of assessments
    #: in flight per port and address block, halved on a lost connection; False: only
    #: ``concurrency`` and ``per_host`` bound it
    congestion: bool = True
    #: archive cache entries a resumed scan starts with (exposure.ArchiveCache.remember's
    #: arguments: host, key, signature, exposure), read back from the scan database
    archives: tuple[tuple[str, tuple[Any, ...], tuple[Any, ...], dict[str, Any]], ...] = ()
    #: answers per congestion group, shared by the workers of a parallel scan
    #: (congestion.Answers.shared, made by scan.parallel before forking); None: this engine's own
    answers: Answers | None = None


@dataclass
class ScanStats:
    endpoints: int = 0
    states: Counter[str] = field(default_factory=Counter)
    dicom: int = 0
    tls: int = 0
    associations: int = 0
    started: float = field(default_factory=time.time)
    finished: float | None = None

    def add(self, r: EndpointResult) -> None:
        self.endpoints += 1
        self.states[r.state] += 1
        self.dicom += r.dicom
        self.tls += r.tls
        self.associations += r.associations

    @property
    def elapsed(self) -> float:
        return (self.finished or time.time()) - self.started


def _is_ip(host: str) -> bool:
    """An address literal? (inet_pton: the ipaddress module costs 10 µs per call here.)"""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


class _Endpoints:
    """The sweep's input: numbered targets, skipping resumed ones, resolving names aside.

    ``next()`` returns None when nothing is ready yet but names are still being resolved.
    """

    def __init__(self, engine: Engine, it: Iterator[tuple[int, tuple[str, int]]]) -> None:
        self.engine = engine
        self.it = it
        self.ready: deque[tuple[int, str, int]] = deque()
        self.resolving = 0
        self.exhausted = False
        #: a countable target set holds no host names: skip the per-endpoint check
        self.literals = engine.config.targets.count() is not None
        self.shard, self.shards = engine.config.shard

    def __iter__(self) -> _Endpoints:
        return self

    def __next__(self) -> tuple[int, str, int] | None:
        while True:
            if self.ready:
                item = self.ready.popleft()
                self.engine._announce(item[0], item[1])
                return item
            if self.exhausted:
                if self.resolving:
                    return None
                raise StopIteration
            try:
                seq, (host, port) = next(self.it)
            except StopIteration:
                self.exhausted = True
                continue
            if seq in self.engine.config.skip:
                continue
            if self.shards > 1 and shard_of(host, self.shards) != self.shard:
                continue
            if self.literals or _is_ip(host):
                self.engine._pending[seq] = 1
                self.engine._announce(seq, host)
                return seq, host, port
            self.resolving += 1
            self.engine._spawn(self._resolve(seq, host, port))

    async def _resolve(self, seq: int, host: str, port: int) -> None:
        try:
            addresses = await self.engine._resolve(host)
        finally:
            self.resolving -= 1
        if not addresses:
            self.engine._pending[seq] = 1
            self.engine._emit(seq, EndpointResult(host, port, state="unresolved"))
        else:
            self.engine._pending[seq] = len(addresses)
            self.ready.extend((seq, a, port) for a in addresses)
        if self.engine._sweep is not None:
            self.engine._sweep.refill()


#: the target index and budget deadline of the assessment running in this task
_current_seq: contextvars.ContextVar[int] = contextvars.ContextVar("dicomguard_seq", default=-1)
_current_deadline: contextvars.ContextVar[asyncio.Timeout | None] = contextvars.ContextVar(
    "dicomguard_deadline", default=None
)


@contextlib.asynccontextmanager
async def _paused(deadline: asyncio.Timeout | None) -> AsyncIterator[None]:
    """Stop an endpoint's budget clock for the duration of a wait that is not its own (the
    shared rate limiter, a host's turn at the archive cache), then restart it with what was
    left."""
    when = deadline.when() if deadline is not None else None
    if deadline is None or when is None or deadline.expired():
        yield
        return
    loop = asyncio.get_running_loop()
    left = when - loop.time()
    deadline.reschedule(None)
    try:
        yield
    finally:
        deadline.reschedule(loop.time() + max(left, 0.0))


class _ArchiveTurns:
    """Turns at the archive cache (exposure.ArchiveCache): the endpoints of one host measure
    in target order, so which port is counted and which is marked ``same_archive_as`` does not
    depend on which association happened to be faster (issue 12: records identical whatever
    the timing or the number of workers).

    A host's endpoint waits for its turn only while a lower index of the same host is being
    assessed (it holds a per-host slot: it is expected from the start of its assessment) and
    has not finished with the cache, so the wait cannot deadlock; the backlog releases a
    host's endpoints lowest first, so the lower one is there first. The wait does not count
    against the endpoint's budget.
    """

    def __init__(self) -> None:
        self._waiting: dict[str, set[int]] = {}
        self._events: dict[str, asyncio.Event] = {}

    def expect(self, host: str, seq: int) -> None:
        self._waiting.setdefault(host, set()).add(seq)

    def done(self, host: str, seq: int) -> None:
        waiting = self._waiting.get(host)
        if waiting is None or seq not in waiting:
            return
        waiting.discard(seq)
        if not waiting:
            del self._waiting[host]
        event = self._events.pop(host, None)
        if event is not None:
            event.set()  # every waiter of the host looks again

    @contextlib.asynccontextmanager
    async def turn(self, host: str, lock: asyncio.Lock) -> AsyncIterator[None]:
        seq = _current_seq.get()
        async with _paused(_current_deadline.get()):  # waiting for a turn is not our time
            while any(s < seq for s in self._waiting.get(host, ())):
                await self._events.setdefault(host, asyncio.Event()).wait()
        async with lock:
            try:
                yield
            finally:
                self.done(host, seq)

    def view(self, archives: ArchiveCache, on_remember: Archived | None = None) -> ArchiveCache:
        return _TurnArchives(archives, self, on_remember)


class _TurnArchives(ArchiveCache):
    """The scan's ArchiveCache, with :class:`_ArchiveTurns` in front of its per-host lock."""

    def __init__(
        self, inner: ArchiveCache, turns: _ArchiveTurns, on_remember: Archived | None = None
    ) -> None:
        self._inner = inner
        self._turns = turns
        self._on_remember = on_remember

    def lock(self, host: str) -> Any:
        return self._turns.turn(host, self._inner.lock(host))

    def lookup(self, host: str, key: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], dict]]:
        return self._inner.lookup(host, key)

    def remember(
        self, host: str, key: tuple[Any, ...], signature: tuple[Any, ...], exposure: dict
    ) -> None:
        self._inner.remember(host, key, signature, exposure)
        if self._on_remember is not None:  # stored with the endpoint's record (resume)
            self._on_remember(
                _current_seq.get(),
                {"host": host, "key": key, "signature": signature, "exposure": exposure},
            )


#: seconds between two looks at the parked endpoints (Engine._watch_parked): what a retry
#: after another worker's answer waits at most (a local answer sends them back at once)
PARK_POLL = 0.05
#: the k-th retry of an endpoint lost to congestion waits at least PARK_POLL * 2**(k-2)
#: seconds, up to this (the first not at all): while the other workers keep a small server
#: full, every answer of theirs is followed at once by their next connection, and a retry
#: polled after each answer would spend CONGESTION_RETRIES in a second (measured: 2 and 3
#: workers, 1 endpoint in 8,000 needed 24 attempts); spaced, they span ~20 s of contention
CONGESTION_WAIT_MAX = 1.0


@dataclass
class _Parked:
    """An endpoint waiting for a retry: its last record, its group's answer count when it was
    lost (None: not lost to congestion, or its free retries spent), when its counted retry
    is due and the earliest time of a retry after an answer (event loop time)."""

    result: EndpointResult
    mark: int | None
    due: float
    #: no retry after an answer before this (event loop time; CONGESTION_WAIT_MAX)
    earliest: float = 0.0


def is_transient(result: EndpointResult) -> bool:
    """An A-ASSOCIATE-RJ that asks to come back later: result 2 (rejected-transient) from the
    presentation service provider (source 3: temporary congestion, local limit exceeded).

    Not (2, 2, 1): pynetdicom sends that for refused user identities, a permanent answer in
    practice (negotiation.Reject.may_mean_authentication).
    """
    rej = result.reject
    return (
        bool(rej)
        and rej.get("result") == 2
        and rej.get("source") == 3
        and not (result.services and any(result.services.values()))
    )


def dropped_before_greeting(result: EndpointResult) -> bool:
    """The sweep saw the port open, yet the assessment's connections were closed or reset
    before a single PDU (no A-ASSOCIATE-AC/RJ, nothing to decode): what a server with a
    connection limit does to the excess (one server behind many addresses, an appliance taking
    one association at a time; echoscu gets in a moment later). A loss for the congestion
    window and retried later as a transient reject is, never "not DICOM" at the first try."""
    return (
        result.state == "open"
        and not result.dicom
        and result.error_kind == "closed"
        and not result.reject
        and result.web is None
        and result.dicom_likelihood is None
    )


class Engine:
    """Runs one scan: a TCP sweep, then an assessment of every endpoint that accepted.

    ``sink`` receives every open endpoint (every endpoint with ``report_closed``); ``on_done``
    is called once per target index when all its results have gone to the sink.
    """

    def __init__(
        self,
        config: ScanConfig,
        sink: Sink,
        *,
        progress: Progress | None = None,
        report_closed: bool = False,
        on_done: Done | None = None,
        on_closed: Callable[[int, str], None] | None = None,
        on_archive: Archived | None = None,
    ) -> None:
        self.config = config
        #: told of each archive cache entry made, with the target index it came from
        self.on_archive = on_archive
        #: cheap path for endpoints that did not accept: (seq, state), no record built
        self.on_closed = on_closed
        self.sink = sink
        self.progress = progress
        self.report_closed = report_closed
        self.on_done = on_done
        self.stats = ScanStats()
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._fingerprints = load_database()
        self.limiter = RateLimiter(config.rate)
        self._archives = ArchiveCache()
        for host, key, signature, exposure in config.archives:  # a resumed scan's
            self._archives.remember(host, key, signature, exposure)
        self._done = 0
        self._pending: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._assessing = 0
        self._backlog: deque[tuple[int, str, int]] = deque()
        #: endpoints sent back for another assessment: (assessments made, retries after
        #: their group answered (congestion.CONGESTION_RETRIES), retries counted against
        #: ``transient_retries``)
        self._tries: dict[tuple[int, str, int], tuple[int, int, int]] = {}
        #: lost or transiently rejected endpoints waiting for a retry, by answer counter
        #: (congestion.Answers.slot; None: no congestion group), and the task watching them
        self._parked: dict[int | None, dict[tuple[int, str, int], _Parked]] = {}
        self._watching = False
        self._answers = config.answers if config.answers is not None else Answers()
        #: per host: target indices handed to the sweep and not yet answered, and open
        #: endpoints held back until every lower index of their host is answered, so a host's
        #: endpoints are assessed in target order (issue 12: records independent of timing)
        self._sweeping: dict[str, set[int]] = {}
        self._held: dict[str, list[tuple[int, str, int]]] = {}
        self._archive_turns = _ArchiveTurns()
        #: congestion windows by group (scan.congestion.group_of); idle windows that never
        #: saw a loss are dropped, so this holds the groups in flight and the fragile ones
        self._windows: dict[tuple[int, str], Window] = {}
        self._errors: list[BaseException] = []
        self._sweep: Sweep | None = None
        self._all_done: asyncio.Event | None = None

    async def run(self) -> ScanStats:
        raise_fd_limit()
        self._all_done = asyncio.Event()
        numbered = enumerate(
            self.config.targets.iter_endpoints(
                start=self.config.start,
                order=self.config.order,  # type: ignore[arg-type]
            ),
            start=self.config.start,
        )
        use_syn = self.config.sweep == "syn" or (
            self.config.sweep == "auto" and raw_sockets_available()
        )
        self.sweep_kind = "syn" if use_syn else "connect"
        # the connect sweep's connects fill the accept queues the assessments use: they take
        # their slots from the same congestion windows (scan.sweep); a SYN probe leaves no
        # connection in the queue (the kernel's RST answers the SYN-ACK)
        windows: dict[str, Any] = (
            {}
            if use_syn or not self.config.congestion
            else {"window_of": self._window, "window_done": self._sweep_window_done}
        )
        self._sweep = (SynSweep if use_syn else Sweep)(
            _Endpoints(self, numbered),
            self._verdict,
            limit=self.config.connect_concurrency * (4 if use_syn else 1),
            timeout=self.config.probe.timeouts.connect,
            limiter=self.limiter,
            may_start=lambda: len(self._backlog) < self.config.concurrency,
            **windows,
        )
        try:
            await self._sweep.run()
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
        finally:
            self._sweep.close()
            for task in list(self._tasks):
                task.cancel()
        if self._errors:
            raise self._errors[0]
        self.stats.finished = time.time()
        return self.stats

    # -- plumbing -------------------------------------------------------------------------------
    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._reap)

    def _reap(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._errors.append(task.exception())  # type: ignore[arg-type]
            if self._sweep is not None:
                self._sweep.close()

    async def _resolve(self, host: str) -> list[str]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return []
        addrs = list(dict.fromkeys(str(i[4][0]) for i in infos))
        return [a for a in addrs if not self.config.targets.is_excluded(a)]

    def _announce(self, seq: int, host: str) -> None:
        """The sweep is about to probe target ``seq`` on ``host``."""
        self._sweeping.setdefault(host, set()).add(seq)

    def _answered(self, seq: int, host: str, open_port: int | None) -> None:
        """The sweep answered ``seq``; release the host's open endpoints whose lower indices
        are all answered, lowest first, to the assessment backlog."""
        sweeping = self._sweeping.get(host)
        if sweeping is not None:
            sweeping.discard(seq)
            if not sweeping:
                del self._sweeping[host]
        held = self._held.get(host)
        if open_port is not None:
            if held is None:
                held = self._held[host] = []
            heapq.heappush(held, (seq, host, open_port))
        if not held:
            return
        lowest = min(sweeping) if sweeping else None
        while held and (lowest is None or held[0][0] < lowest):
            entry = heapq.heappop(held)
            self._backlog.append(entry)
        if not held:
            del self._held[host]
        self._drain_backlog()

    def _verdict(self, seq: int, host: str, port: int, state: str) -> None:
        """The sweep's answer for one endpoint: assess it if open, else record it.

        A closed endpoint is counted the same way whether or not a progress display is
        attached (issue 12: the display used to decide what was stored)."""
        self._answered(seq, host, port if state == "open" else None)
        if state != "open":
            if self.report_closed or self.on_closed is None:
                self._emit(seq, EndpointResult(host, port, state=state))
                return
            self.stats.endpoints += 1
            self.stats.states[state] += 1
            self._done += 1
            self.on_closed(seq, state)
            if self.progress:
                self.progress(self._done, Closed(state))  # type: ignore[arg-type]
            self._finish_seq(seq)
            return

    def _window(self, host: str, port: int) -> Window | None:
        if not self.config.congestion:
            return None
        key = group_of(host, port)
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = Window(self.config.concurrency)
        return window

    def _drain_backlog(self) -> None:
        """Start assessments from the backlog, in order, while the scan's concurrency and the
        congestion window of the next endpoint's group allow. An endpoint whose group's window
        is full holds the ones behind it (they stay in target order; a slot of that group
        frees as soon as one of its assessments ends, which drains again), except those whose
        connection the sweep kept open (or only its slot, when the peer reset it at once):
        they hold their slot already (scan.sweep.Sweep.kept), so they start past a blocked
        head and cannot wait for each other."""
        kept = self._sweep.kept if self._sweep is not None else {}
        while self._backlog and self._assessing < self.config.concurrency:
            seq, host, port = self._backlog[0]
            handed = kept.pop((seq, host, port), None) if kept else None
            if handed is not None:
                self._backlog.popleft()
                sock, window, ticket = handed
                self._start_assessment(seq, host, port, window, ticket, sock)
                continue
            window = self._window(host, port)
            if window is not None and not window.may_start():
                if kept:
                    self._start_kept(kept)
                break
            self._backlog.popleft()
            ticket = window.start() if window is not None else 0
            self._start_assessment(seq, host, port, window, ticket, None)

    def _start_kept(
        self, kept: dict[tuple[int, str, int], tuple[socket.socket | None, Window, int]]
    ) -> None:
        """Start the endpoints of the backlog whose connection the sweep kept (behind a head
        that waits for its window), in order, while the concurrency allows."""
        rest: deque[tuple[int, str, int]] = deque()
        while self._backlog:
            key = self._backlog.popleft()
            handed = kept.pop(key, None) if self._assessing < self.config.concurrency else None
            if handed is None:
                rest.append(key)
                continue
            sock, window, ticket = handed
            self._start_assessment(*key, window, ticket, sock)
        self._backlog = rest

    def _start_assessment(self, seq: int, host: str, port: int, window: Window | None,
                          ticket: int, sock: socket.socket | None) -> None:
        self._assessing += 1
        self._spawn(self._assess(seq, host, port, window, ticket, sock))

    def _window_done(self, window: Window, ticket: int, host: str, port: int, lost: bool) -> None:
        window.finish(ticket, lost)
        if window.in_flight == 0 and window.decreases == 0:
            self._windows.pop(group_of(host, port), None)

    def _sweep_window_done(
        self, window: Window, ticket: int, host: str, port: int, lost: bool
    ) -> None:
        """A connect of the sweep left its group's window: assessments held by it may start."""
        self._window_done(window, ticket, host, port, lost)
        self._drain_backlog()

    async def _assess(
        self,
        seq: int,
        host: str,
        port: int,
        window: Window | None = None,
        ticket: int = 0,
        sock: socket.socket | None = None,
    ) -> None:
        # per-host politeness: at most per_host endpoints of one machine at a time
        sem, users = self._hosts.get(host, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(self.config.per_host)
        self._hosts[host] = (sem, users + 1)
        result: EndpointResult | None = None
        # the group's answers so far: those of the connections that fill the server while
        # this one is turned away may well be counted before its loss is
        slot = Answers.slot(group_of(host, port)) if window is not None else None
        answers_before = self._answers.count(slot) if slot is not None else 0
        try:
            async with sem:
                result = await self._assess_bounded(seq, host, port, window, ticket, sock)
        finally:
            sem, users = self._hosts[host]
            if users == 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (sem, users - 1)
            self._assessing -= 1
            # the sweep saw it open: refused, reset or silent now is the server overrun; an
            # A-ASSOCIATE-RJ "temporary congestion / local limit exceeded" says so too
            lost = result is not None and (
                result.state in ("closed", "filtered")
                or dropped_before_greeting(result)
                or is_transient(result)
            )
            if window is not None:
                self._window_done(window, ticket, host, port, lost)
        assert result is not None  # _assess_bounded returns a record or raises
        key = (seq, host, port)
        made, free, counted = self._tries.pop(key, (0, 0, 0))
        made += 1
        if lost:
            self._park(key, slot, result, (made, free, counted), answers_before)
        else:
            if slot is not None and result.dicom:
                self._answers.answered(slot)
                self._unpark(slot, asyncio.get_running_loop().time())
            result.attempts = made
            self._emit(seq, result)
        self._drain_backlog()
        if self._sweep is not None:
            self._sweep.refill()

    def _park(self, key: tuple[int, str, int], slot: int | None, result: EndpointResult,
              tries: tuple[int, int, int], answers_before: int = 0) -> None:
        """An endpoint lost to congestion or transiently rejected waits for its retry.

        Lost to congestion (its group has a window, ``slot``), a transient reject included (a
        server at its association limit, pynetdicom's or DCMTK's, says "busy" where another
        closes the connection), it goes back to the queue as soon as its group has answered
        another endpoint since the lost
        assessment began (``answers_before``: the group's count then), in this process or in
        another worker (:class:`.congestion.Answers`): the server was busy with others, and a
        retry now is not counted against ``transient_retries`` (at most
        :data:`.congestion.CONGESTION_RETRIES` of them, spaced by up to
        :data:`CONGESTION_WAIT_MAX` seconds). Otherwise, and if its group stays
        silent, it goes back after ``retry_backoff * 2**k`` seconds as the k-th counted retry
        (``transient_retries`` of them); with none left its record is the last assessment's,
        at once if its group never answered, else after ``retry_backoff`` seconds without an
        answer.
        """
        made, free, counted = tries
        mark = None
        if slot is not None and free < CONGESTION_RETRIES:
            mark = answers_before
        backoff = self.config.retry_backoff * 2**counted
        if counted >= self.config.transient_retries:
            if mark is None or slot is None or self._answers.count(slot) == 0:
                # no retry left, nor an answer to hope for
                result.attempts = made
                self._emit(key[0], result)
                return
            # counted retries spent: one more backoff for the group to answer
            backoff = self.config.retry_backoff
        now = asyncio.get_running_loop().time()
        earliest = now + min(PARK_POLL * 2 ** (free - 1), CONGESTION_WAIT_MAX) if free else now
        self._tries[key] = tries
        self._parked.setdefault(slot, {})[key] = _Parked(result, mark, now + backoff, earliest)
        if not self._watching:
            self._watching = True
            self._spawn(self._watch_parked())

    def _unpark(self, slot: int | None, now: float) -> None:
        """Send the parked endpoints of ``slot`` whose turn came (see :meth:`_park`) back to
        the queue, or record them when no retry is left."""
        parked = self._parked.get(slot)
        if not parked:
            return
        for key, entry in list(parked.items()):
            made, free, counted = self._tries[key]
            if (
                entry.mark is not None
                and slot is not None
                and now >= entry.earliest
                and self._answers.moved(slot, entry.mark)
            ):
                self._tries[key] = (made, free + 1, counted)
            elif now >= entry.due and counted < self.config.transient_retries:
                self._tries[key] = (made, free, counted + 1)
            elif now >= entry.due:
                del self._tries[key]
                del parked[key]
                entry.result.attempts = made
                self._emit(key[0], entry.result)
                continue
            else:
                continue
            del parked[key]
            # the rate limiter and the per-host limit apply to a retry as to any assessment
            self._backlog.append(key)
        if not parked:
            del self._parked[slot]
        self._drain_backlog()

    async def _watch_parked(self) -> None:
        """While endpoints are parked: every :data:`PARK_POLL` seconds, look at their groups'
        answer counts (another worker's answers change them without telling this process) and
        their due times."""
        loop = asyncio.get_running_loop()
        try:
            while self._parked:
                await asyncio.sleep(PARK_POLL)
                now = loop.time()
                for slot in list(self._parked):
                    self._unpark(slot, now)
                if self._sweep is not None:
                    self._sweep.refill()
        finally:
            self._watching = False

    async def _assess_bounded(
        self,
        seq: int,
        host: str,
        port: int,
        window: Window | None = None,
        ticket: int = 0,
        sock: socket.socket | None = None,
    ) -> EndpointResult:
        """One assessment within the endpoint budget (seconds and connections); ``window``
        (with this assessment's ``ticket``) hears of every lost connection at once; ``sock``:
        the sweep's open connection to the endpoint, used by its first connect."""
        config = self.config
        seq_token = seq
        _current_seq.set(seq)
        # expected at the cache only while assessing (holding a per-host slot): a waiter
        # never waits for an endpoint that waits for a slot (no deadlock, retries included)
        self._archive_turns.expect(host, seq)
        result = EndpointResult(host, port)
        loop = asyncio.get_running_loop()
        started = loop.time()
        connections = 0
        tracker = Connections()
        if window is not None:
            tracker.on_loss = lambda: window.loss(ticket)  # type: ignore[assignment]
            tracker.on_connected = window.connected  # type: ignore[assignment]
            tracker.slow_connect = window.slow_connect  # type: ignore[assignment]
        if sock is not None:
            tracker.preconnected = {(host, port): sock}
        token = current_connections.set(tracker)
        budget = config.endpoint_budget if config.endpoint_budget > 0 else None
        try:
            async with asyncio.timeout(budget) as deadline:
                _current_deadline.set(deadline)

                async def pace() -> None:
                    nonlocal connections
                    if connections >= config.endpoint_connections:
                        raise BudgetExhausted(
                            f"endpoint budget of {config.endpoint_connections} connections spent"
                        )
                    connections += 1
                    if self.limiter.try_take() == 0:
                        return
                    async with _paused(deadline):  # the limiter's wait is not ours
                        await self.limiter.acquire()

                await assess(
                    host,
                    port,
                    config.probe,
                    pace=pace,
                    fingerprints=self._fingerprints,
                    archives=self._archive_turns.view(self._archives, self.on_archive),
                    result=result,
                )
        except TimeoutError:
            self._cut_off(result, f"endpoint budget of {config.endpoint_budget:g}s spent")
            result.associations = result.associations or connections
            result.elapsed_ms = int((loop.time() - started) * 1000)
        except Exception as exc:  # a bug, not the peer: this endpoint's record, not the scan's end
            log.exception("assessment of %s:%d failed", host, port)
            result.error = f"internal error: {type(exc).__name__}: {exc}"
            result.error_kind = "internal"
            result.state = "open"
        finally:
            tracker.abort_all()
            if tracker.preconnected:  # not used: the assessment never connected to it
                for unused in tracker.preconnected.values():
                    unused.close()
            current_connections.reset(token)
            self._archive_turns.done(host, seq_token)
        return result

    def _cut_off(self, result: EndpointResult, why: str) -> None:
        result.error = why if result.error is None else f"{why}; before that: {result.error}"
        result.error_kind = "budget"
        if result.state == "open":
            try:
                result.findings = derive_findings(result)
            except Exception:  # findings of a half-filled record: best effort
                log.exception("findings of %s:%d", result.host, result.port)

    def _emit(self, seq: int, result: EndpointResult) -> None:
        result.seq = seq
        result.measured_at = utc_timestamp()
        result.scan_id = self.config.scan_id
        self.stats.add(result)
        self._done += 1
        if result.state == "open" or self.report_closed:
            self.sink(result)
        elif self.on_closed is not None:
            self.on_closed(seq, result.state)
        if self.progress:
            self.progress(self._done, result)
        self._finish_seq(seq)

    def _finish_seq(self, seq: int) -> None:
        left = self._pending.get(seq, 1) - 1
        if left > 0:
            self._pending[seq] = left
            return
        self._pending.pop(seq, None)
        if self.on_done:
            self.on_done(seq)
