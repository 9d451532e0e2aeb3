"""The scan engine: lazy targets in, one assessed endpoint out at a time, on one event loop.

Workers pull from the lazy target iterator directly (no queue holding the target list), so
memory depends on the concurrency, not on the size of the address space. Per-host semaphores keep
the scan polite to any single machine; the token bucket bounds connections per second overall.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from .assess import ProbeOptions, assess
from .fingerprint import load_database
from .ratelimit import RateLimiter
from .result import EndpointResult
from .targets import TargetSet

Sink = Callable[[EndpointResult], None]
Progress = Callable[[int, EndpointResult], None]
#: called once per target index when everything for it is finished (for resume bookkeeping)
Done = Callable[[int], None]


@dataclass
class ScanConfig:
    targets: TargetSet
    probe: ProbeOptions = field(default_factory=ProbeOptions)
    concurrency: int = 256
    per_host: int = 2
    #: new connections per second over the whole scan; 0 = unlimited
    rate: float = 300.0
    order: str = "sequential"
    #: first target index to scan, and indices past it already done (resume)
    start: int = 0
    skip: frozenset[int] = frozenset()


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
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class Engine:
    """Runs one scan; ``sink`` receives every endpoint that is open (all of them with ``all``)."""

    def __init__(
        self,
        config: ScanConfig,
        sink: Sink,
        *,
        progress: Progress | None = None,
        report_closed: bool = False,
        on_done: Done | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.progress = progress
        self.report_closed = report_closed
        self.on_done = on_done
        self.stats = ScanStats()
        self.limiter = RateLimiter(config.rate)
        self._hosts: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self._fingerprints = load_database()
        self._done = 0

    async def run(self) -> ScanStats:
        it = enumerate(
            self.config.targets.iter_endpoints(
                start=self.config.start,
                order=self.config.order,  # type: ignore[arg-type]
            ),
            start=self.config.start,
        )
        workers = [asyncio.create_task(self._worker(it)) for _ in range(self.config.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
        self.stats.finished = time.time()
        return self.stats

    async def _worker(self, it: Iterator[tuple[int, tuple[str, int]]]) -> None:
        for seq, (host, port) in it:  # a shared iterator: each endpoint goes to one worker
            if seq in self.config.skip:
                continue
            for address in await self._resolve(host):
                await self._one(seq, address, port)
            if self.on_done:
                self.on_done(seq)

    async def _resolve(self, host: str) -> list[str]:
        if _is_ip(host):
            return [host]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except OSError:
            return []
        addrs = list(dict.fromkeys(str(i[4][0]) for i in infos))
        return [a for a in addrs if not self.config.targets.is_excluded(a)]

    async def _one(self, seq: int, host: str, port: int) -> None:
        # per-host politeness: at most per_host endpoints of one machine at a time
        sem, users = self._hosts.get(host, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(self.config.per_host)
        self._hosts[host] = (sem, users + 1)
        try:
            async with sem:
                result = await assess(
                    host,
                    port,
                    self.config.probe,
                    pace=self.limiter.acquire,
                    fingerprints=self._fingerprints,
                )
        finally:
            sem, users = self._hosts[host]
            if users == 1:
                del self._hosts[host]
            else:
                self._hosts[host] = (sem, users - 1)
        result.seq = seq
        self.stats.add(result)
        self._done += 1
        if result.state == "open" or self.report_closed:
            self.sink(result)
        if self.progress:
            self.progress(self._done, result)
