"""The order in which the identity thread takes the waiting checks (gateway/identity_queue.py):
sources in turn, known good ones first, suspect ones last; failures limited per source.

Driven without sockets: each check is a function that records its source when the thread runs
it; the first one waits on a gate until every check is queued, so the order is decided by the
queue alone (the real passcode checks behind it: test_identity_checks_under_attack.py).
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from dicomguard.dul.codes import REJECT_NO_REASON
from dicomguard.gateway.auth import Authenticated
from dicomguard.gateway.config import IdentityPolicy, Limits, Route
from dicomguard.gateway.identity_queue import (
    KNOWN_GOOD,
    LIMITED,
    SUSPECT,
    UNKNOWN,
    IdentityQueue,
)
from dicomguard.gateway.metrics import Metrics
from dicomguard.gateway.policy import Admission, Refusal

ADMITTED = Admission(Route("PACS", "127.0.21.1", 104, "LEGACYPACS"),
                     Authenticated("viewer", "alice", "passcode"),
                     IdentityPolicy("viewer", frozenset({"ECHO"})), None)
WRONG = Refusal(REJECT_NO_REASON, "bad username or passcode for 'alice'", "identity")
LIMITS = Limits(max_identity_failures_per_source=3, identity_failure_window=3600)


class Checks:
    """Checks that record the order they ran in; the first waits for :meth:`release`."""

    def __init__(self, queue: IdentityQueue) -> None:
        self.queue = queue
        self.order: list[str] = []
        self._gate = threading.Event()
        self._held = True

    def release(self) -> None:
        self._gate.set()

    def submit(self, source: str, passes: bool) -> asyncio.Task[Admission | Refusal]:
        def check() -> Admission | Refusal:
            if self._held:
                self._held = False
                self._gate.wait(10)
            self.order.append(source)
            return ADMITTED if passes else WRONG

        return asyncio.ensure_future(self.queue.decide(source, check, LIMITS))


async def _queued(queue: IdentityQueue, n: int) -> None:
    while queue.waiting() < n:
        await asyncio.sleep(0)


async def test_sources_are_served_in_turn_known_good_first_suspect_last() -> None:
    queue = IdentityQueue(Metrics())
    warm = Checks(queue)
    warm.release()
    # history: GOOD passed once; BAD failed once
    assert await warm.submit("127.0.0.2", True) is ADMITTED
    assert await warm.submit("127.0.0.3", False) is WRONG
    assert queue.standing("127.0.0.2") == KNOWN_GOOD
    assert queue.standing("127.0.0.3") == SUSPECT
    assert queue.standing("127.0.0.9") == UNKNOWN

    checks = Checks(queue)
    tasks = [checks.submit("127.0.0.9", False)]  # runs first, held on the gate
    await asyncio.sleep(0)
    for _ in range(2):
        tasks += [checks.submit("127.0.0.3", False), checks.submit("127.0.0.4", False),
                  checks.submit("127.0.0.5", False)]
    tasks.append(checks.submit("127.0.0.2", True))
    await _queued(queue, 7)
    checks.release()
    results = await asyncio.gather(*tasks)
    # the held one; the known good source, queued last; the unknown ones in turn (each
    # suspect once it failed); then the suspect ones in turn
    assert checks.order == ["127.0.0.9", "127.0.0.2", "127.0.0.4", "127.0.0.5",
                            "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.3"]
    assert results[-1] is ADMITTED
    assert all(r is WRONG for r in results[:-1])
    queue.close()


async def test_a_source_past_its_failures_is_refused_without_a_check() -> None:
    queue = IdentityQueue(Metrics())
    checks = Checks(queue)
    checks.release()
    for _ in range(LIMITS.max_identity_failures_per_source):
        assert await checks.submit("127.0.0.3", False) is WRONG
    assert await checks.submit("127.0.0.3", True) is LIMITED  # even a right one: not checked
    assert checks.order == ["127.0.0.3"] * LIMITS.max_identity_failures_per_source
    assert await checks.submit("127.0.0.4", True) is ADMITTED  # another source is not limited
    queue.close()


async def test_a_check_whose_connection_went_away_is_not_run() -> None:
    queue = IdentityQueue(Metrics())
    checks = Checks(queue)
    first = checks.submit("127.0.0.3", True)
    await asyncio.sleep(0)
    gone = checks.submit("127.0.0.4", True)
    await _queued(queue, 1)
    gone.cancel()  # an evicted connection
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert queue.waiting() == 0
    checks.release()
    assert await first is ADMITTED
    assert checks.order == ["127.0.0.3"]
    queue.close()
