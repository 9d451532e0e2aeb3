"""Three shards as separate processes, merged, equal one unsharded scan of the same lab.

The lab (src/dicomguard/lab) runs in this process on 127.42.140.0/27 with two ports per host
(so "two ports front one archive" must survive the split); each scan is its own
``python -m dicomguard scan`` process with its own database, as on separate machines. Then
``dicomguard merge`` joins the shards, and reports read the result. Also: merge refuses
shards of different targets or options, duplicates and missing shards, in one line, exit 2.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dicomguard.lab.fleet import FleetThread
from dicomguard.testing.scans import stored_records, stored_states

NETWORK = "127.42.140.0/27"
PORTS = (11112, 2762)
SIZE = 12
#: fields that describe the run, not the endpoint: differ between any two scans
VOLATILE = {"seq", "elapsed_ms", "measured_at", "scan_id"}


def dicomguard(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicomguard", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=240,
        env={**os.environ, "COLUMNS": "200"},
    )


def scan_argv(db: Path, *extra: str, targets: str = NETWORK) -> list[str]:
    return [
        "scan",
        targets,
        "-p",
        ",".join(map(str, PORTS)),
        "--db",
        str(db),
        "--rate",
        "0",
        "--timeout",
        "2",
        "--workers",
        "1",
        "--no-progress",
        "-q",
        *extra,
    ]


def records(db: Path) -> dict[tuple[str, int], dict[str, Any]]:
    rows = stored_records(db)
    out = {}
    for r in rows:
        rec = {k: v for k, v in r.items() if k not in VOLATILE}
        called = dict(rec.get("called_aet") or {})
        if not called.get("enforced"):
            called["accepted"] = "<random>"  # the random title each scan offers first
        rec["called_aet"] = called
        exposure = dict(rec.get("exposure") or {})
        if exposure:
            # two ports of one host assessed at once: which one is counted and which says
            # "same archive as" follows who finished first; the link is what must survive
            exposure.pop("queries", None)
            other = exposure.pop("same_archive_as", None)
            if other:
                exposure["same_archive"] = sorted([f"{r['host']}:{r['port']}", other])
            rec["exposure"] = exposure
        cert = ((rec.get("tls_details") or {}).get("certificate")) or {}
        for key in ("not_before", "not_after", "days_left", "serial"):
            cert.pop(key, None)  # a lab started again makes new certificates
        out[(r["host"], r["port"])] = rec
    for rec in out.values():  # the link, on both ends
        pair = (rec.get("exposure") or {}).get("same_archive")
        for end in pair or ():
            host, port = end.rsplit(":", 1)
            linked = out.get((host, int(port)), {}).get("exposure")
            if linked is not None:
                linked["same_archive"] = pair
    return out


def field_diffs(
    got: dict[tuple[str, int], dict[str, Any]], expected: dict[tuple[str, int], dict[str, Any]]
) -> dict[Any, Any]:
    """(endpoint, field) -> (got, expected) for every field that differs; {} when equal."""
    assert set(got) == set(expected)
    return {
        (key, field): (got[key].get(field), expected[key].get(field))
        for key in expected
        for field in set(got[key]) | set(expected[key])
        if got[key].get(field) != expected[key].get(field)
    }


def findings(db: Path) -> list[tuple[str, int, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return sorted(
            conn.execute(
                "SELECT e.host, e.port, f.finding, f.severity FROM findings f"
                " JOIN endpoints e ON e.id = f.endpoint_id"
            )
        )
    finally:
        conn.close()


states = stored_states


@pytest.fixture(scope="module")
def lab_scans(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("shards")
    with FleetThread(NETWORK, size=SIZE, ports=PORTS, slow_delay=0.2, max_patients=60):
        shards = [tmp / f"shard{k}.db" for k in range(3)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "dicomguard", *scan_argv(db, "--shard", f"{k}/3")],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for k, db in enumerate(shards)
        ]
        outs = [p.communicate(timeout=240) for p in procs]
        codes = [p.returncode for p in procs]
        whole = tmp / "whole.db"
        unsharded = dicomguard(*scan_argv(whole))
    return {
        "tmp": tmp,
        "shards": shards,
        "codes": codes,
        "outs": outs,
        "whole": whole,
        "unsharded": unsharded,
    }


def test_three_shard_processes_merge_into_the_unsharded_scan(lab_scans: dict[str, Any]) -> None:
    assert lab_scans["codes"] == [0, 0, 0], lab_scans["outs"]
    assert lab_scans["unsharded"].returncode == 0, lab_scans["unsharded"].stderr
    shards, whole = lab_scans["shards"], lab_scans["whole"]
    parts = [set(records(db)) for db in shards]
    assert all(parts), "every shard got hosts"
    assert not (parts[0] & parts[1] or parts[1] & parts[2] or parts[0] & parts[2])
    merged = lab_scans["tmp"] / "all.db"
    jsonl = lab_scans["tmp"] / "all.jsonl"
    done = dicomguard("merge", *map(str, shards), "-o", str(merged), "--jsonl", str(jsonl))
    assert done.returncode == 0, done.stderr
    assert "merged 3 of 3 shard(s)" in done.stderr
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert sorted((r["host"], r["port"]) for r in lines) == sorted(records(merged))
    expected = records(whole)
    got = records(merged)
    assert set(got) == set(expected)
    assert field_diffs(got, expected) == {}
    assert states(merged) == states(whole)
    assert findings(merged) == findings(whole)  # the findings table followed its endpoints
    # the merged database is a finished scan the reports read like any other
    csv = dicomguard("report", str(merged), "--format", "csv", "-o", "-")
    assert csv.returncode == 0, csv.stderr
    assert len(csv.stdout.strip().splitlines()) == len(expected) + 1
    stats = json.loads(dicomguard("report", str(merged), "--format", "json", "-o", "-").stdout)
    whole_stats = json.loads(dicomguard("report", str(whole), "--format", "json", "-o", "-").stdout)
    for key in ("patients", "studies", "endpoints", "dicom"):
        if key in whole_stats:
            assert stats[key] == whole_stats[key], key


def test_merge_refuses_a_missing_or_duplicate_shard(lab_scans: dict[str, Any]) -> None:
    shards, tmp = lab_scans["shards"], lab_scans["tmp"]
    missing = dicomguard("merge", str(shards[0]), str(shards[2]), "-o", str(tmp / "m1.db"))
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines() == [
        "dicomguard: error: refusing to merge: shard(s) 1/3 missing (or merge with --partial)"
    ]
    assert not (tmp / "m1.db").exists()
    twice = dicomguard("merge", str(shards[0]), str(shards[0]), "-o", str(tmp / "m2.db"))
    assert twice.returncode == 2 and "are both shard 0/3" in twice.stderr
    partial = dicomguard(
        "merge", str(shards[0]), str(shards[2]), "-o", str(tmp / "m3.db"), "--partial"
    )
    assert partial.returncode == 0 and "missing shard(s) [1]" in partial.stderr


def test_merge_into_an_unwritable_jsonl_is_one_line_before_any_merge(
    lab_scans: dict[str, Any],
) -> None:
    """Found by a fresh tester: merge --jsonl /proc/version wrote all.db, then ended with an
    OSError traceback."""
    shards, tmp = lab_scans["shards"], lab_scans["tmp"]
    for jsonl in ("/proc/version", str(tmp / "no" / "such" / "all.jsonl"), str(tmp)):
        out = dicomguard(
            "merge", *[str(s) for s in shards], "-o", str(tmp / "j.db"), "--jsonl", jsonl
        )
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("dicomguard: error: --jsonl"), out.stderr
        assert not (tmp / "j.db").exists()


def test_merge_refuses_shards_of_different_targets_or_options(lab_scans: dict[str, Any]) -> None:
    shards, tmp = lab_scans["shards"], lab_scans["tmp"]
    # other scans of nothing listening (127.42.141.x): quick, and their shard 1/3 fits ours
    other = tmp / "other-targets.db"
    r = dicomguard(*scan_argv(other, "--shard", "1/3", targets="127.42.141.0/30"))
    assert r.returncode == 0, r.stderr
    out = dicomguard("merge", str(shards[0]), str(other), str(shards[2]), "-o", str(tmp / "x.db"))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"dicomguard: error: refusing to merge: {shards[0]} and {other} scanned different targets"
    ]
    opts = tmp / "other-options.db"
    r = dicomguard(*scan_argv(opts, "--shard", "1/3", "--no-tls"))
    assert r.returncode == 0, r.stderr
    out = dicomguard("merge", str(shards[0]), str(opts), str(shards[2]), "-o", str(tmp / "y.db"))
    assert out.returncode == 2
    assert "were scanned with different options (--no-tls: False vs True)" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_shard_resumes_as_the_same_shard(lab_scans: dict[str, Any]) -> None:
    conn = sqlite3.connect(lab_scans["shards"][1])
    try:
        meta = dict(conn.execute("SELECT key, value FROM meta"))
        options = json.loads(conn.execute("SELECT options FROM scan").fetchone()[0])
    finally:
        conn.close()
    assert meta["shard"] == "1/3" and options["shard"] == "1/3"
    assert len(meta["targets_digest"]) == 64


def test_a_shard_killed_mid_scan_resumes_to_the_same_records(
    lab_scans: dict[str, Any], tmp_path: Path
) -> None:
    import signal
    import time

    db = tmp_path / "killed.db"
    with FleetThread(NETWORK, size=SIZE, ports=PORTS, slow_delay=0.2, max_patients=60):
        argv = scan_argv(db, "--shard", "1/3")
        argv[argv.index("--rate") + 1] = "10"  # slow enough to be killed mid-way
        proc = subprocess.Popen(
            [sys.executable, "-m", "dicomguard", *argv],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        conn = sqlite3.connect(db)
        try:
            finished = conn.execute("SELECT finished_at FROM scan").fetchone()[0]
        finally:
            conn.close()
        assert finished is None, "killed before the end"
        resumed = dicomguard("scan", "--resume", str(db), "--no-progress", "-q")
    assert resumed.returncode == 0, resumed.stderr
    diffs = field_diffs(records(db), records(lab_scans["shards"][1]))
    assert not diffs, json.dumps({str(k): v for k, v in diffs.items()}, sort_keys=True)[:3000]
    assert states(db) == states(lab_scans["shards"][1])
