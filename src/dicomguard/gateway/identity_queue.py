"""User identity checks (PS3.7 D.3.3.7) off the event loop, fair between sources, limited.

A passcode check is one scrypt (``hashlib.scrypt``: ~45 ms here, ~70 ms on a loaded machine;
memory-hard by design). ``hashlib.scrypt`` releases the GIL (measured: a pure-Python loop on
another thread runs as fast while it hashes), so on a worker thread it does not slow the event
loop. But one worker serves every check in turn, and served first come, first served, ~128
wrong passcodes sent at once from 8 addresses (16 connections in setup each, the default
``max_setup_per_source``) put a legitimate user's check behind all of them: storescu with a
right passcode took 8.8 s instead of 0.25 s (measured through the gateway to DCMTK storescp).
More threads would not help on a 2-core machine and multiply scrypt's 16 MiB each.

So :class:`IdentityQueue`:

* keeps one queue of checks per source address and serves the sources in turn (round robin),
  by standing: first the sources known good (a check passed within an hour, none failed
  since), then those unknown, last the suspect ones (a failure not yet forgotten by their
  bucket). A client waits for at most one check of each other source of its standing or
  better that has checks waiting, however many connections those sources hold: once each
  attacking address has failed once, a legitimate client waits for the one check running.
  (Measured, 128 connections with wrong passcodes: from 8 addresses round robin alone gave
  storescu 0.54 s instead of 8.8 s; from 128 addresses, one each, round robin gave it 5.2 s,
  as first come first served, since every address had one check in the round; with its
  address known good, as a modality that stored before: 0.15 s and 0.12 s, against 0.11 s
  alone.) A first-time client arriving in a burst of fresh addresses still waits for their
  one check each: bounded by ``max_setup`` checks;
* charges every failed check to its source's token bucket (``limits.
  max_identity_failures_per_source`` per ``limits.identity_failure_window`` seconds); a source
  whose bucket is empty is refused *before* hashing, with A-ASSOCIATE-RJ (2, 3, 2) transient,
  local limit exceeded (so that a client of that source that only mistyped knows to try again
  later), both when its request arrives and when its queued check comes up;
* runs the checks on one thread, in order: the JWT replay cache (auth.ReplayCache) is not
  shared between threads.

Every refusal, limited or not, is audited by the relay as a User Authentication failure (the
aggregation of repeated refusals in gateway/audit.py bounds their volume). The queue lives as
long as the gateway, so a reload neither forgets a source's failures nor drops a waiting check
(each check keeps the policy it was queued with).

The sources are exact addresses (as ``max_setup_per_source``): an attacker with one fresh
address per connection, as an IPv6 /64 gives, gets one unknown-standing check per address
(then it is suspect), and ``max_setup`` of them can be waiting at once. The tables of sources
are bounded (``MAX_SOURCES``; a failure bucket is forgotten once full again).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..dul.codes import REJECT_LOCAL_LIMIT
from ..tokenbucket import TokenBucket
from .policy import Admission, Refusal

if TYPE_CHECKING:
    from .config import Limits
    from .metrics import Metrics

#: the refusal of a source that failed too often (audited as a User Authentication failure:
#: its check starts with "identity")
LIMITED = Refusal(REJECT_LOCAL_LIMIT, "too many failed user identities from this source",
                  "identity-limit")
#: failure buckets (and passed sources) kept at most; past it, the stale ones are forgotten
MAX_SOURCES = 4096
#: a source whose check passed this recently (seconds), with no failure since, goes first
KNOWN_GOOD_SECONDS = 3600.0
#: standings of a source (:meth:`IdentityQueue.standing`), best first
KNOWN_GOOD, UNKNOWN, SUSPECT = 0, 1, 2

Check = Callable[[], Admission | Refusal]


@dataclass(eq=False)
class _Job:
    source: str
    check: Check
    future: asyncio.Future[Admission | Refusal]


class IdentityQueue:
    """``await queue.decide(source, check, limits)``: ``check()`` run on the identity thread
    when its source's turn comes, or :data:`LIMITED` without running it. Event-loop side only
    (not thread-safe); :meth:`close` at the gateway's stop."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        #: waiting checks by source; the dict's order is the rotation (served source moves last)
        self._waiting: dict[str, deque[_Job]] = {}
        self._running: _Job | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._failures: dict[str, TokenBucket] = {}
        #: when a check of each source last passed (monotonic), oldest first
        self._passed: dict[str, float] = {}

    def waiting(self, source: str | None = None) -> int:
        """Checks queued and not started (of ``source``, or of all sources)."""
        if source is not None:
            return len(self._waiting.get(source, ()))
        return sum(len(jobs) for jobs in self._waiting.values())

    async def decide(self, source: str, check: Check, limits: Limits) -> Admission | Refusal:
        """The result of ``check()`` (its exception re-raised), or :data:`LIMITED`. Cancelling
        the caller (a connection evicted or closed at stop) takes its check out of the queue."""
        if self._limited(source, limits):
            self.metrics.identity_checks.inc(result="limited")
            return LIMITED
        job = _Job(source, check, asyncio.get_running_loop().create_future())
        self._waiting.setdefault(source, deque()).append(job)
        self.metrics.identity_waiting.inc()
        job.future.add_done_callback(lambda _f: self._forget(job))
        self._next(limits)
        return await job.future

    def _forget(self, job: _Job) -> None:
        """A job's future is done: if it is still queued (cancelled), take it out."""
        jobs = self._waiting.get(job.source)
        if jobs is None or job not in jobs:
            return
        jobs.remove(job)
        self.metrics.identity_waiting.dec()
        if not jobs:
            del self._waiting[job.source]

    def standing(self, source: str, now: float | None = None) -> int:
        """The source's place in line: :data:`KNOWN_GOOD` (a check passed within
        ``KNOWN_GOOD_SECONDS`` and none failed since), :data:`UNKNOWN`, or :data:`SUSPECT` (a
        failed check its failure bucket has not yet forgotten)."""
        now = time.monotonic() if now is None else now
        bucket = self._failures.get(source)
        if bucket is not None and (
                bucket.tokens + (now - bucket.stamp) * bucket.refill < bucket.burst):
            return SUSPECT
        passed = self._passed.get(source)
        if passed is not None and now - passed < KNOWN_GOOD_SECONDS:
            return KNOWN_GOOD
        return UNKNOWN

    def _pop(self) -> _Job:
        """The next check: of the first source in the rotation with the best standing."""
        now = time.monotonic()
        source, best = "", SUSPECT + 1
        for candidate in self._waiting:
            standing = self.standing(candidate, now)
            if standing < best:
                source, best = candidate, standing
                if standing == KNOWN_GOOD:
                    break
        jobs = self._waiting.pop(source)
        job = jobs.popleft()
        if jobs:
            self._waiting[source] = jobs  # back at the end of the rotation
        self.metrics.identity_waiting.dec()
        return job

    def _next(self, limits: Limits) -> None:
        """Start the next source's check if the thread is free (limited ones answered)."""
        loop = asyncio.get_running_loop()
        while self._running is None and self._waiting:
            job = self._pop()
            if job.future.done():
                continue
            if self._limited(job.source, limits):
                self.metrics.identity_checks.inc(result="limited")
                job.future.set_result(LIMITED)
                continue
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="dicomguard-identity")
            self._running = job
            done = self._executor.submit(job.check)
            done.add_done_callback(functools.partial(self._from_thread, loop, job, limits))

    def _from_thread(self, loop: asyncio.AbstractEventLoop, job: _Job, limits: Limits,
                     done: Future[Admission | Refusal]) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (a stop)
            loop.call_soon_threadsafe(self._finished, job, done, limits)

    def _finished(self, job: _Job, done: Future[Admission | Refusal], limits: Limits) -> None:
        self._running = None
        try:
            result = done.result()
        except BaseException as exc:  # a bug in a check: its caller logs it, one association
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            failed = isinstance(result, Refusal) and result.check == "identity"
            self.metrics.identity_checks.inc(result="failed" if failed else "ok")
            if failed:
                self._charge(job.source, limits)
            elif isinstance(result, Admission):
                self._passed.pop(job.source, None)
                if len(self._passed) >= MAX_SOURCES:
                    self._prune_passed()
                self._passed[job.source] = time.monotonic()
            if not job.future.done():  # its connection may have been evicted meanwhile
                job.future.set_result(result)
        self._next(limits)

    # -- failed checks per source ---------------------------------------------------------------
    def _bucket(self, source: str, limits: Limits) -> TokenBucket:
        burst = limits.max_identity_failures_per_source
        refill = burst / limits.identity_failure_window
        bucket = self._failures.get(source)
        if bucket is None or bucket.burst != burst or bucket.refill != refill:
            if bucket is None and len(self._failures) >= MAX_SOURCES:
                self._prune()
            bucket = self._failures[source] = TokenBucket(refill, burst, full=True)
        return bucket

    def _limited(self, source: str, limits: Limits) -> bool:
        bucket = self._failures.get(source)
        if bucket is None:
            return False
        bucket = self._bucket(source, limits)  # the limits of a reload apply
        now = time.monotonic()
        return min(bucket.burst, bucket.tokens + (now - bucket.stamp) * bucket.refill) < 1.0

    def _charge(self, source: str, limits: Limits) -> None:
        self._bucket(source, limits).take()

    def _prune_passed(self) -> None:
        """Forget the sources whose pass is older than ``KNOWN_GOOD_SECONDS``, and the oldest
        half if that is not enough (the dict is in order of the last pass)."""
        now = time.monotonic()
        self._passed = {source: t for source, t in self._passed.items()
                        if now - t < KNOWN_GOOD_SECONDS}
        if len(self._passed) >= MAX_SOURCES:
            self._passed = dict(list(self._passed.items())[MAX_SOURCES // 2:])

    def _prune(self) -> None:
        now = time.monotonic()
        self._failures = {
            source: bucket for source, bucket in self._failures.items()
            if bucket.tokens + (now - bucket.stamp) * bucket.refill < bucket.burst}

    def close(self) -> None:
        """At the gateway's stop: the thread ends after the check it is running."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
