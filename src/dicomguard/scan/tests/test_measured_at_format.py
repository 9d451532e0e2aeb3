"""A record's ``measured_at`` is ISO 8601 UTC with milliseconds, as ``datetime`` writes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dicomguard.scan import engine


@pytest.mark.parametrize(
    "ns",
    [
        0,
        1_764_470_586_093_999_999,  # 2025-11-30T02:43:06.093999999: truncated, not rounded
        1_764_470_586_999_500_000,
        1_764_470_587_000_000_000,  # a new second
        1_767_225_599_999_999_999,  # the last instant of 2025
        1_767_225_600_000_000_001,
    ],
)
def test_measured_at_is_what_datetime_writes(monkeypatch: pytest.MonkeyPatch, ns: int) -> None:
    monkeypatch.setattr(engine.time, "time_ns", lambda: ns)
    seconds, rest = divmod(ns, 1_000_000_000)
    expected = (
        datetime.fromtimestamp(seconds, UTC)
        .replace(microsecond=rest // 1000)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )
    assert engine.utc_timestamp() == expected
    assert engine.utc_timestamp() == expected  # the second's text, cached, is the same
