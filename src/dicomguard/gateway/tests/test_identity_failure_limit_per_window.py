"""A source fails at most ``max_identity_failures_per_source`` user identity checks in any
``identity_failure_window`` seconds, as the README and the configuration promise, and a
reload that changes the limits does not give it a fresh count.

Found by review (rgw) against the real gateway with the defaults (5 per 60 s): the limit was a
token bucket of 5 refilled over 60 s, starting full, so an address failed 5 passcodes at once,
was refused, and 12.5 s later got its 6th guess: 10 in the first 60 s. And a reload that
changed either limit replaced every source's bucket by a full one. Driven with a clock of the
test's, without sockets (the real passcode checks: test_identity_checks_under_attack.py).
"""

from __future__ import annotations

from dicomguard.dul.codes import REJECT_NO_REASON
from dicomguard.gateway.config import Limits
from dicomguard.gateway.identity_queue import LIMITED, SUSPECT, UNKNOWN, IdentityQueue
from dicomguard.gateway.metrics import Metrics
from dicomguard.gateway.policy import Refusal

WRONG = Refusal(REJECT_NO_REASON, "bad username or passcode for 'mallory'", "identity")
SOURCE = "127.0.0.3"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _guess(queue: IdentityQueue, limits: Limits) -> Refusal:
    result = await queue.decide(SOURCE, lambda: WRONG, limits)
    assert isinstance(result, Refusal)
    return result


async def _guesses_until_limited(queue: IdentityQueue, limits: Limits) -> int:
    checked = 0
    while await _guess(queue, limits) is not LIMITED:
        checked += 1
    return checked


async def test_no_more_failures_than_the_limit_in_any_window() -> None:
    clock = Clock()
    queue = IdentityQueue(Metrics(), clock)
    limits = Limits()  # 5 per 60 s
    assert await _guesses_until_limited(queue, limits) == 5
    for later in (12.5, 30.0, 59.9):  # a bucket refilled one guess every 12 s
        clock.now = 1000.0 + later
        assert await _guess(queue, limits) is LIMITED
        assert queue.standing(SOURCE) == SUSPECT
    clock.now = 1060.1  # the first five are out of the window
    assert await _guesses_until_limited(queue, limits) == 5
    clock.now = 1120.2
    assert queue.standing(SOURCE) == UNKNOWN
    queue.close()


async def test_failures_spread_over_the_window_count_too() -> None:
    clock = Clock()
    queue = IdentityQueue(Metrics(), clock)
    limits = Limits()
    for _ in range(5):  # one every 11 s: 5 within 44 s
        assert await _guess(queue, limits) is not LIMITED
        clock.now += 11.0
    assert await _guess(queue, limits) is LIMITED  # at 55 s
    clock.now = 1000.0 + 60.5  # the first is out: one more
    assert await _guesses_until_limited(queue, limits) == 1
    queue.close()


async def test_new_limits_apply_to_the_failures_already_counted() -> None:
    clock = Clock()
    queue = IdentityQueue(Metrics(), clock)
    assert await _guesses_until_limited(queue, Limits()) == 5
    # a reload that lengthens the window: still limited, no fresh five
    longer = Limits(identity_failure_window=120.0)
    assert await _guess(queue, longer) is LIMITED
    clock.now += 90.0
    assert await _guess(queue, longer) is LIMITED
    # one that allows one more: one more, not seven
    more = Limits(max_identity_failures_per_source=6, identity_failure_window=120.0)
    assert await _guesses_until_limited(queue, more) == 1
    queue.close()

