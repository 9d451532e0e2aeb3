"""A scan split over worker processes stores exactly what a one-process scan stores.

Issue 12 items 8 and 10: workers are sharded by host, so --per-host holds across them and the
link between two ports fronting one archive survives; records (minus times) and every total
are the same with --workers 1 and --workers 2.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from dicomguard.lab.fleet import FleetThread
from dicomguard.report.stats import counted_exposure
from dicomguard.scan import parallel
from dicomguard.scan.engine import shard_of
from dicomguard.store.db import JOIN_FIELDS
from dicomguard.testing.scans import run_cli, scan_argv, stored_records, stored_states
from dicomguard.testing.threads import LoopThread

NETWORK = "127.42.222.0/27"
#: fields that measure time or name the run, not the endpoint
VOLATILE = {"elapsed_ms", "measured_at", "scan_id"}


def _columns(db: Path) -> tuple[list[tuple], list[tuple]]:
    """The endpoints' extracted columns and the findings table, sorted (what reports and SQL
    users read beside the JSON records)."""
    conn = sqlite3.connect(db)
    try:
        endpoints = conn.execute(
            "SELECT host, port, state, dicom, tls, product, product_version, patients, studies,"
            " worst_severity FROM endpoints"
        ).fetchall()
        findings = conn.execute(
            "SELECT e.host, e.port, f.finding, f.severity, f.title, f.confidence, f.detail"
            " FROM findings f JOIN endpoints e ON e.id = f.endpoint_id"
        ).fetchall()
    finally:
        conn.close()
    return sorted(endpoints), sorted(findings, key=repr)


def _scan(tmp: Path, name: str, workers: int, *extra: str) -> tuple[dict, list[dict]]:
    db = tmp / f"{name}.db"
    run_cli(*scan_argv(NETWORK, "104,11112,4242", db, "--workers", str(workers),
                       "--timeout", "2", "--no-web", *extra))
    return stored_states(db), stored_records(db)


def _comparable(rec: dict) -> str:
    out = {k: v for k, v in rec.items() if k not in VOLATILE}
    if not out["called_aet"]["enforced"]:
        out["called_aet"] = {**out["called_aet"], "accepted": None}  # our random title
    return json.dumps(out, sort_keys=True)


def _totals(records: list[dict]) -> dict[str, int]:
    counted = [counted_exposure(r) for r in records]
    return {
        "patients": sum(e.get("patients") or 0 for e in counted),
        "studies": sum(e.get("studies") or 0 for e in counted),
        "dicom": sum(bool(r["dicom"]) for r in records),
        "findings": sum(len(r["findings"]) for r in records),
    }


def test_two_workers_store_the_same_records_and_totals_as_one(tmp_path: Path) -> None:
    personas = ["open", "echo-only", "called-aet-guessable", "not-dicom", "capped", "store-only"]
    with FleetThread(NETWORK, personas, ports=(104, 11112), max_patients=30):
        one_states, one = _scan(tmp_path, "one", 1)
        two_states, two = _scan(tmp_path, "two", 2)
    assert one_states == two_states
    assert sum(one_states.values()) == 32 * 3
    assert sorted(map(_comparable, one)) == sorted(map(_comparable, two))
    assert _totals(one) == _totals(two)
    assert any((r.get("exposure") or {}).get("same_archive_as") for r in two)  # link kept
    assert len({r["seq"] for r in two}) == len(two)  # nothing stored twice
    # workers send each record as its JSON text and the fields the store reads: the same
    # columns and findings rows as one process that stores the records themselves
    assert _columns(tmp_path / "one.db") == _columns(tmp_path / "two.db")


def test_workers_send_every_field_the_store_reads() -> None:
    read = {"seq", "host", "port", "state", "dicom", "tls", "associations", "product",
            "product_version", "exposure", "findings", *JOIN_FIELDS}
    assert read <= set(parallel.PARENT_FIELDS)


def test_every_port_of_a_host_goes_to_one_worker() -> None:
    hosts = [f"10.0.{i // 250}.{i % 250}" for i in range(2000)]
    for n in (2, 3, 8):
        shards = [shard_of(h, n) for h in hosts]
        assert set(shards) == set(range(n))
        assert all(shard_of(h, n) == s for h, s in zip(hosts, shards, strict=True))
    assert {shard_of(h, 1) for h in hosts} == {0}


class _Counter:
    """Servers on several ports of one host that count assessment connections at once (a
    connection counts once it sends bytes: the sweep's bare connects do not)."""

    def __init__(self, host: str, ports: tuple[int, ...]) -> None:
        self.host, self.ports = host, ports
        self.active = self.peak = 0
        self._thread: LoopThread | None = None
        self._servers: list[asyncio.Server] = []

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await reader.read(1):
                self.active += 1
                self.peak = max(self.peak, self.active)
                try:
                    await asyncio.sleep(0.3)
                finally:
                    self.active -= 1
        finally:
            writer.close()

    async def _start(self) -> None:
        self._servers = [await asyncio.start_server(self._handle, self.host, p)
                         for p in self.ports]

    async def _close(self) -> None:
        for s in self._servers:
            s.close()
        await asyncio.sleep(0.2)

    def __enter__(self) -> _Counter:
        self._thread = LoopThread()
        self._thread.call(self._start(), timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._thread is not None
        self._thread.call(self._close())
        self._thread.close()


def test_per_host_holds_across_workers(tmp_path: Path) -> None:
    host, ports = "127.42.223.1", (104, 11112, 4242, 2761, 2762, 2763)
    with _Counter(host, ports) as counter:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "dicomguard",
                "scan",
                host,
                "-p",
                ",".join(map(str, ports)),
                "--workers",
                "2",
                "--per-host",
                "2",
                "--rate",
                "0",
                "--timeout",
                "2",
                "--no-web",
                "--no-tls",
                "--no-progress",
                "-q",
                "--db",
                str(tmp_path / "p.db"),
            ],
            check=True,
            timeout=120,
        )
    assert 1 <= counter.peak <= 2, counter.peak
