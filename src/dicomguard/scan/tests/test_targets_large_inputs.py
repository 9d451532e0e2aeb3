"""Large and hostile -iL files: streamed, bounded, and read exactly as before.

A reviewer measured 780 MB peak RSS for a 1,000,000-line host:port list and saw a gzip bomb
inflated whole. Line formats are now streamed and IPv4 pairs held packed (inputs.py); these
tests check the bounds and that packing changes nothing of what is read (order, origins,
port union). Loopback addresses only; nothing connects.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dicomguard.scan import inputs
from dicomguard.scan.targets import FileTarget, TargetError, build_targets, read_input_file


def test_a_gzip_bomb_of_one_endless_line_is_a_target_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "MAX_LINE", 1 << 16)
    f = tmp_path / "bomb.txt"
    f.write_bytes(gzip.compress(b"127.0.0.1:104\n" + b"1" * (1 << 20)))
    with pytest.raises(TargetError, match=r"bomb.txt:2: line longer than 65,536 characters"):
        read_input_file(f)


def test_a_gzipped_json_over_the_cap_is_a_target_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(inputs, "MAX_WHOLE_BYTES", 1 << 16)
    rows = "\n".join(json.dumps({"ip_str": "127.0.0.1", "port": 104}) for _ in range(10_000))
    f = tmp_path / "shodan.json.gz"
    f.write_bytes(gzip.compress(rows.encode()))
    with pytest.raises(TargetError, match=r"more than 0 MiB of JSON"):
        read_input_file(f)


def test_damaged_and_truncated_gzip_are_target_errors(tmp_path: Path) -> None:
    data = gzip.compress(b"127.0.0.1:104\n" * 1000)
    f = tmp_path / "t.gz"
    f.write_bytes(data[: len(data) // 2])
    with pytest.raises(TargetError, match="gzip data is damaged"):
        read_input_file(f)
    f.write_bytes(data[:20] + b"\xff" * 40 + data[60:])
    with pytest.raises(TargetError, match="gzip data is damaged"):
        read_input_file(f)


def test_concatenated_gzip_members_are_all_read(tmp_path: Path) -> None:
    f = tmp_path / "t.gz"
    f.write_bytes(gzip.compress(b"127.0.0.1:104\n") + gzip.compress(b"127.0.0.2:105\n"))
    assert [t.spec for t in read_input_file(f)] == ["127.0.0.1", "127.0.0.2"]


def test_packed_pairs_keep_first_seen_order_origins_and_union_of_ports(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text(
        "127.0.0.9:11112\n[::1]:104\n127.0.0.2:104\n127.0.0.9:104\n127.0.0.9:11112\n"
        "127.0.0.3\n[::ffff:127.0.0.2]:4242\n"
    )
    assert read_input_file(f) == [
        FileTarget("127.0.0.3", None, f"{f}:6"),
        FileTarget("127.0.0.9", (104, 11112), f"{f}:1"),
        FileTarget("::1", (104,), f"{f}:2"),
        FileTarget("127.0.0.2", (104, 4242), f"{f}:3"),
    ]


def test_many_lines_read_into_one_endpoint_each(tmp_path: Path) -> None:
    f = tmp_path / "t.txt.gz"
    lines = (f"127.1.{i >> 8 & 255}.{i & 255}:{104 + i % 2}\n" for i in range(20_000))
    f.write_bytes(gzip.compress("".join(lines).encode()))
    ts = build_targets([], ports=(104,), input_files=[f])
    assert ts.count() == 20_000
