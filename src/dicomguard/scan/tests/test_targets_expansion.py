"""Lazy expansion: counts, resume, orders, excludes and loopback checks, without materialising.

Only loopback and documentation addresses appear here, and nothing connects anywhere.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import pytest

from dicomguard.scan.targets import DEFAULT_PORTS, build_targets, is_loopback

SLASH8 = 2**24


def test_slash8_counts_without_materialising() -> None:
    tracemalloc.start()
    try:
        targets = build_targets(["127.0.0.0/8"])
        assert targets.count() == SLASH8 * len(DEFAULT_PORTS)
        first = list(itertools.islice(targets.iter_endpoints(), 1000))
        spread = list(itertools.islice(targets.iter_endpoints(order="spread"), 1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert first[0] == ("127.0.0.0", 104)
    assert first[999] == ("127.0.0.199", 2762)
    assert len(set(spread)) == 1000
    assert peak < 400_000, f"peak {peak} bytes"


def test_huge_ipv6_prefix_is_counted_not_listed() -> None:
    targets = build_targets(["2001:db8::/32"], ports=(104, 11112))
    assert targets.count() == 2 * 2**96
    assert next(targets.iter_endpoints(start=2 * 2**96 - 1)) == (
        "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff",
        11112,
    )
    assert next(targets.iter_endpoints(order="spread", start=10**20))[1] in (104, 11112)


def test_start_skips_without_iterating() -> None:
    targets = build_targets(["127.0.0.0/8"])
    t0 = time.perf_counter()
    host, port = next(targets.iter_endpoints(start=10_000_000))
    spread = next(targets.iter_endpoints(start=10_000_000, order="spread"))
    elapsed = time.perf_counter() - t0
    assert elapsed < 0.05
    hi, pi = divmod(10_000_000, len(DEFAULT_PORTS))
    assert host == str(ipaddress.IPv4Address(0x7F000000 + hi))
    assert port == DEFAULT_PORTS[pi]
    assert spread[0].startswith("127.")


@pytest.mark.parametrize("order", ["sequential", "spread"])
def test_start_resumes_exactly_where_a_full_run_was(order: str) -> None:
    targets = build_targets(
        ["127.0.0.1-5", "::1", "127.0.1.0/30", "localhost"],
        ports=(104, 11112, 4242),
        excludes=["127.0.0.3"],
    )
    full = list(targets.iter_endpoints(order=order))  # type: ignore[arg-type]
    assert len(full) == (4 + 1 + 4 + 1) * 3
    for start in range(len(full) + 2):
        assert list(targets.iter_endpoints(start=start, order=order)) == full[start:]  # type: ignore[arg-type]


def test_spread_order_is_a_permutation() -> None:
    targets = build_targets(["127.0.4.0/22"], ports=(104, 11112))
    sequential = list(targets.iter_endpoints())
    spread = list(targets.iter_endpoints(order="spread"))
    assert len(spread) == targets.count() == 1024 * 2
    assert sorted(spread) == sorted(sequential)
    assert spread != sequential


def test_spread_order_does_not_hammer_one_host_or_slash24() -> None:
    targets = build_targets(["127.1.0.0/16"])
    window = list(itertools.islice(targets.iter_endpoints(order="spread"), 1280))
    per_host = Counter(h for h, _ in window)
    per_24 = Counter(h.rsplit(".", 1)[0] for h, _ in window)
    assert max(per_host.values()) == 1  # 1280 probes over 65536 hosts: none twice
    assert max(per_24.values()) <= 15  # ~5 expected per /24; never a burst
    for (a, _), (b, _) in itertools.pairwise(window):
        assert a.rsplit(".", 1)[0] != b.rsplit(".", 1)[0]


def test_orders_are_deterministic() -> None:
    def take(order: str) -> list[tuple[str, int]]:
        t = build_targets(["127.0.0.0/20", "::1"], ports=(104, 4242))
        return list(itertools.islice(t.iter_endpoints(order=order), 500))  # type: ignore[arg-type]

    assert take("spread") == take("spread")
    assert take("sequential") == take("sequential")


def test_start_past_the_end_yields_nothing_and_bad_arguments_fail_early() -> None:
    targets = build_targets(["127.0.0.1"])
    assert list(targets.iter_endpoints(start=5)) == []
    assert list(targets.iter_endpoints(start=99, order="spread")) == []
    with pytest.raises(ValueError, match="negative"):
        targets.iter_endpoints(start=-1)
    with pytest.raises(ValueError, match="unknown order"):
        targets.iter_endpoints(order="random")  # type: ignore[arg-type]


def test_exclude_removes_range() -> None:
    targets = build_targets(["127.0.0.0/24"], ports=(104,), excludes=["127.0.0.10-19,127.0.0.0"])
    got = [h for h, _ in targets.iter_endpoints()]
    assert targets.count() == 256 - 11 == len(got)
    assert "127.0.0.9" in got and "127.0.0.20" in got
    assert not {f"127.0.0.{i}" for i in [0, *range(10, 20)]} & set(got)


def test_exclude_slash16_from_slash8_is_interval_arithmetic() -> None:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        targets = build_targets(["127.0.0.0/8"], excludes=["127.5.0.0/16"])
        total = targets.count()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 0.05
    assert peak < 200_000
    assert total == (SLASH8 - 2**16) * len(DEFAULT_PORTS)
    boundary = (5 * 2**16) * len(DEFAULT_PORTS)  # first endpoint past the hole
    assert next(targets.iter_endpoints(start=boundary - 1)) == ("127.4.255.255", 2762)
    assert next(targets.iter_endpoints(start=boundary)) == ("127.6.0.0", 104)
    assert targets.is_excluded("127.5.200.1")
    assert not targets.is_excluded("127.6.0.0")


@pytest.mark.parametrize("order", ["sequential", "spread"])
def test_excluded_addresses_are_never_yielded(order: str) -> None:
    targets = build_targets(
        ["127.0.0.0/23", "::1", "2001:db8::/125", "localhost", "pacs.example.invalid"],
        ports=(104, 11112),
        excludes=["127.0.0.128/25", "127.0.1.7", "2001:db8::2", "::1", "pacs.example.invalid"],
    )
    got = list(targets.iter_endpoints(order=order))  # type: ignore[arg-type]
    assert len(got) == len(set(got)) == (512 - 128 - 1 + 8 - 1 + 1) * 2
    assert not any(targets.is_excluded(h) for h, _ in got)
    assert ("127.0.1.7", 104) not in got
    assert ("pacs.example.invalid", 104) not in got


def test_exclude_file_uses_the_target_list_syntax(tmp_path: Path) -> None:
    exclude = tmp_path / "exclude.txt"
    exclude.write_text("# never touch\n127.0.0.1, 127.0.0.2\n\n127.0.0.250-255  # tail\n")
    targets = build_targets(["127.0.0.0/24"], ports=(104,), exclude_files=[exclude])
    assert targets.count() == 256 - 2 - 6
    assert targets.is_excluded("127.0.0.252")


def test_is_excluded_covers_resolved_names_and_mapped_addresses() -> None:
    targets = build_targets(
        ["localhost"], excludes=["127.0.0.0/30", "2001:db8::/64", "other.example.invalid"]
    )
    assert targets.is_excluded("127.0.0.2")
    assert targets.is_excluded("::ffff:127.0.0.1")
    assert targets.is_excluded("[2001:db8::1]")
    assert targets.is_excluded("OTHER.example.invalid")
    assert not targets.is_excluded("127.0.0.4")
    assert not targets.is_excluded("::1")
    assert not targets.is_excluded("localhost")


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("[::1]", True),
        ("::ffff:127.0.0.9", True),
        ("localhost", True),
        ("LocalHost.", True),
        ("192.0.2.1", False),
        ("128.0.0.1", False),
        ("2001:db8::1", False),
        ("::2", False),
        ("localhost.example.invalid", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_all_loopback_accepts_only_loopback_targets() -> None:
    assert build_targets(["127.0.0.0/8", "::1", "localhost", "::ffff:127.0.0.1"]).all_loopback()
    assert build_targets([]).all_loopback()
    assert not build_targets(["127.0.0.1", "192.0.2.1"]).all_loopback()
    assert not build_targets(["126.0.0.0/7"]).all_loopback()
    assert not build_targets(["::1/127"]).all_loopback()
    assert not build_targets(["pacs.example.invalid"]).all_loopback()


def test_all_loopback_judges_what_remains_after_excludes() -> None:
    targets = build_targets(["127.0.0.1", "192.0.2.0/24"], excludes=["192.0.2.0/24"])
    assert targets.all_loopback()
