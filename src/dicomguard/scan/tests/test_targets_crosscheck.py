"""Targets against a brute-force model, the loopback guard, and big list files staying fast.

The model expands every spec into a Python set, which the real code must never do; agreeing with
it on hundreds of random small cases (ranges, CIDRs, octet lists, excludes, starts, both orders)
is what makes the interval arithmetic trustworthy. Only loopback and documentation addresses
appear, and nothing connects anywhere.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import time
from pathlib import Path

import pytest

from dicomguard.scan.targets import TargetError, build_targets, only_loopback


def _expand(spec: str) -> set[int]:
    """Brute-force meaning of an IPv4 spec: CIDR or nmap octet ranges (``*``, lists, a-b)."""
    if "/" in spec:
        return {int(a) for a in ipaddress.ip_network(spec, strict=False)}
    octets = []
    for part in spec.split("."):
        values: set[int] = set()
        for item in part.split(","):
            if item == "*":
                values.update(range(256))
            elif "-" in item:
                lo, hi = item.split("-")
                values.update(range(int(lo or 0), int(hi or 255) + 1))
            else:
                values.add(int(item))
        octets.append(sorted(values))
    return {(a << 24) | (b << 16) | (c << 8) | d for a, b, c, d in itertools.product(*octets)}


def _random_spec(rng: random.Random) -> str:
    third = rng.randrange(4)
    kind = rng.randrange(4)
    if kind == 0:
        return f"127.0.{third}.{rng.randrange(256)}/{rng.randrange(22, 33)}"
    if kind == 1:
        lo = rng.randrange(256)
        return f"127.0.{third}.{lo}-{rng.randrange(lo, 256)}"
    if kind == 2:
        return f"127.0.{third},{(third + 2) % 4}.{rng.randrange(200)}-{rng.randrange(200, 256)},7"
    return f"127.0.{third}.{rng.randrange(256)}"


def test_random_specs_and_excludes_match_brute_force(tmp_path: Path) -> None:
    rng = random.Random(20240607)
    exclude_file = tmp_path / "exclude.txt"
    for _ in range(120):
        specs = [_random_spec(rng) for _ in range(rng.randrange(1, 4))]
        excludes = [_random_spec(rng) for _ in range(rng.randrange(0, 4))]
        ports = tuple(rng.sample([104, 11112, 4242], rng.randrange(1, 4)))
        # an exclude file keeps octet lists such as 127.0.1,3.7 in one piece
        exclude_file.write_text("\n".join(excludes) + "\n")
        targets = build_targets(specs, ports=ports, exclude_files=[exclude_file])

        hosts = set().union(*map(_expand, specs)) - set().union(set(), *map(_expand, excludes))
        want = {(str(ipaddress.IPv4Address(h)), p) for h in hosts for p in ports}
        assert targets.count() == len(want), (specs, excludes)
        for order in ("sequential", "spread"):
            full = list(targets.iter_endpoints(order=order))  # type: ignore[arg-type]
            assert len(full) == len(want) and set(full) == want, (order, specs, excludes)
            for start in {1, len(full) // 3, max(len(full) - 1, 0), len(full)}:
                resumed = list(targets.iter_endpoints(start=start, order=order))  # type: ignore[arg-type]
                assert resumed == full[start:], (order, start, specs, excludes)


def test_only_loopback_accepts_loopback_sets_and_host_lists() -> None:
    assert only_loopback(build_targets(["127.0.0.0/8", "::1", "127.42.0-3.1-254"]))
    assert only_loopback(["127.0.0.1", "::1", "[::1]", "::ffff:127.0.0.9"])
    assert only_loopback([])


@pytest.mark.parametrize(
    "specs",
    [["127.0.0.1", "192.0.2.1"], ["126.0.0.0/7"], ["2001:db8::1"], ["scanner.example"]],
)
def test_only_loopback_refuses_anything_else(specs: list[str]) -> None:
    assert not only_loopback(build_targets(specs))
    assert not only_loopback(specs)


def test_only_loopback_judges_what_remains_after_excludes() -> None:
    assert only_loopback(build_targets(["127.0.0.0/7"], excludes=["126.0.0.0/8"]))


def test_plain_dotted_quads_mean_the_same_as_octet_specs() -> None:
    fast = build_targets(["127.0.0.1", "192.0.2.255", "0.0.0.0"], ports=(104,))
    slow = build_targets(["127.0.0.1-1", "192.0.2.255-255", "0.0.0.0-0"], ports=(104,))
    assert list(fast.iter_endpoints()) == list(slow.iter_endpoints())


@pytest.mark.parametrize(
    ("spec", "reason"),
    [("127.0.0.256", "octet out of range"), ("127.00.0.1", "leading zero")],
)
def test_plain_dotted_quads_keep_the_precise_errors(spec: str, reason: str) -> None:
    with pytest.raises(TargetError, match=reason):
        build_targets([spec])


def test_large_plain_list_file_imports_quickly(tmp_path: Path) -> None:
    """zmap-style lists run to millions of lines; 50k must take well under a few seconds."""
    path = tmp_path / "zmap.txt"
    lines = (f"127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n" for i in range(50_000))
    path.write_text("".join(lines))
    began = time.perf_counter()
    targets = build_targets([], ports=(104,), input_files=[path])
    elapsed = time.perf_counter() - began
    assert targets.count() == 50_000
    assert elapsed < 3.0, f"50k-line list took {elapsed:.2f}s"
