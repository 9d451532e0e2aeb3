"""The one token bucket, in the two set-ups dicomguard uses (gateway: starts full; scan: starts
empty with slack), on a fake clock."""

from __future__ import annotations

from dicomguard.tokenbucket import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_gives_its_burst_at_once_then_refills_at_its_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(2.0, 3, full=True, clock=clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.now += 0.5  # one token at 2 a second
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.now += 60.0  # never more than the burst saved up
    assert sum(bucket.take() for _ in range(10)) == 3


def test_an_empty_bucket_says_how_long_until_the_next_token() -> None:
    clock = Clock()
    bucket = TokenBucket(4.0, 1, full=False, clock=clock)
    assert bucket.try_take() == 0.25
    clock.now += 0.25
    assert bucket.try_take() == 0.0
    assert bucket.try_take() == 0.25


def test_slack_counts_a_token_a_rounding_error_short_as_whole() -> None:
    clock = Clock()
    strict = TokenBucket(1.0, 1, full=False, clock=clock)
    lenient = TokenBucket(1.0, 1, full=False, slack=1e-9, clock=clock)
    clock.now += 1.0 - 1e-12
    assert not strict.take()
    assert lenient.take() and lenient.tokens == 0.0
