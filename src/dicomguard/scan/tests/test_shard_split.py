"""--shard K/N: N runs cover the target space exactly once, whole hosts, deterministically.

Pure arithmetic on target sets (no sockets); ``--shard auto`` from Kubernetes and Slurm
environments.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dicomguard.scan.shard import ShardError, parse_shard
from dicomguard.scan.targets import build_targets

SPECS = ["127.42.0.0/28", "127.42.1.1-3,9", "::1", "127.42.2.5"]


def _split(specs: list[str], n: int, **kw: object) -> list[list[tuple[str, int]]]:
    whole = build_targets(specs, **kw)  # type: ignore[arg-type]
    return [list(whole.shard(k, n).iter_endpoints()) for k in range(n)]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 9),
    ports=st.lists(st.integers(1, 65535), min_size=1, max_size=4, unique=True),
    order=st.sampled_from(["sequential", "spread"]),
)
def test_shards_are_disjoint_and_cover_the_space_once(n: int, ports: list[int], order: str) -> None:
    whole = build_targets(SPECS, ports=ports, excludes=["127.42.0.3"])
    parts = [whole.shard(k, n) for k in range(n)]
    got = Counter(ep for p in parts for ep in p.iter_endpoints(order=order))  # type: ignore[arg-type]
    assert got == Counter(whole.iter_endpoints())
    assert max(got.values()) == 1
    assert sum(p.count() or 0 for p in parts) == whole.count()


def test_a_host_is_never_split_between_shards() -> None:
    shards = _split(SPECS, 3, ports=(104, 11112, 4242))
    owner: dict[str, int] = {}
    for k, endpoints in enumerate(shards):
        for host, _ in endpoints:
            assert owner.setdefault(host, k) == k, host


def test_hosts_with_ports_from_scanner_output_stay_with_their_shard(tmp_path: Path) -> None:
    masscan = tmp_path / "m.txt"
    masscan.write_text("open tcp 2762 127.42.0.1 1\nopen tcp 2762 127.42.0.2 1\n")
    shards = _split(["127.42.0.0/29"], 2, ports=(104,), input_files=[masscan])
    for endpoints in shards:
        hosts = {h for h, _ in endpoints}
        for host, port in endpoints:
            if port == 2762:
                assert (host, 104) in endpoints, host
        assert hosts
    assert {h for h, _ in shards[0]}.isdisjoint({h for h, _ in shards[1]})


def test_interleaving_balances_a_dense_range() -> None:
    sizes = [len(s) for s in _split(["127.42.0.0/24"], 4, ports=(104,))]
    assert sizes == [64, 64, 64, 64]


def test_same_inputs_same_split_and_same_digest() -> None:
    a = build_targets(SPECS, ports=(104,))
    b = build_targets(list(reversed(SPECS[:1])) + SPECS[1:], ports=(104,))
    assert [list(a.shard(1, 3).iter_endpoints())] == [list(b.shard(1, 3).iter_endpoints())]
    assert a.shard(0, 3).space_digest() == a.shard(2, 3).space_digest() == a.space_digest()
    assert build_targets(SPECS, ports=(11112,)).space_digest() != a.space_digest()


def test_shard_resume_skips_by_its_own_numbering() -> None:
    part = build_targets(["127.42.0.0/24"], ports=(104, 11112)).shard(1, 3)
    full = list(part.iter_endpoints())
    assert list(part.iter_endpoints(start=10)) == full[10:]
    assert part.all_loopback()


def test_a_big_space_is_split_without_listing_it() -> None:
    part = build_targets(["127.0.0.0/8"], ports=(104,)).shard(6, 7)
    assert part.count() == (1 << 24) // 7 + (1 if (1 << 24) % 7 > 6 else 0)
    it = part.iter_endpoints(start=part.count() - 1)  # type: ignore[operator]
    assert len(list(it)) == 1


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("2/5", {}, (2, 5)),
        ("auto", {"JOB_COMPLETION_INDEX": "3", "DICOMGUARD_SHARDS": "4"}, (3, 4)),
        ("auto", {"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_COUNT": "3"}, (0, 3)),
        (
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            (2, 3),
        ),
        (
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "14",
                "SLURM_ARRAY_TASK_MIN": "10",
                "SLURM_ARRAY_TASK_STEP": "2",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            (2, 3),
        ),
    ],
)
def test_shard_spec_and_orchestrator_environments(
    text: str, env: dict[str, str], expected: tuple[int, int]
) -> None:
    assert parse_shard(text, env) == expected


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("3/3", {}, "0 <= K < N"),
        ("1-3", {}, "expected K/N"),
        ("auto", {}, "neither JOB_COMPLETION_INDEX"),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}, "set it to the Job's completions"),
        (
            "auto",
            {
                "SLURM_ARRAY_TASK_ID": "7",
                "SLURM_ARRAY_TASK_MIN": "1",
                "SLURM_ARRAY_TASK_COUNT": "3",
            },
            "not one of 3 contiguous tasks",
        ),
    ],
)
def test_bad_shard_values_say_why(text: str, env: dict[str, str], message: str) -> None:
    with pytest.raises(ShardError, match=message):
        parse_shard(text, env)
