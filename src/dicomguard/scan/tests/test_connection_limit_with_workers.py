"""A connection-limited server behind 512 addresses: 1, 2 or 3 workers record the same, right.

Issue 13: ``--workers 2`` against one server that takes two connections at a time (and closes
the rest right after accepting them) behind 512 addresses recorded some of them "not DICOM",
``--workers 3`` up to 71 (closed before any PDU, three counted attempts spent), while one
worker got them right, most of the time; a server answering "busy" (A-ASSOCIATE-RJ transient)
instead left 3 (one worker) to 33 (three) records with that reject and no C-ECHO. Each worker
has its own congestion window, at least one slot each, so together they hold more connections
than the server takes for the whole scan. An endpoint lost that way is now retried each time
its group answered another endpoint, in any worker (scan.congestion.Answers), beyond
``--retries``; a port that refuses every time still ends, after at most CONGESTION_RETRIES +
``--retries`` more attempts.

The server's limit decides what is lost (testing.connection_limit counts the connections it
turned away; the records say how many attempts each endpoint took), not a timer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from dicomguard.dul.scp import AcceptorPolicy
from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.congestion import CONGESTION_RETRIES
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets
from dicomguard.testing.connection_limit import connection_limited_server
from dicomguard.testing.scans import comparable_records, run_cli, scan_argv, stored_records

TARGETS = "127.78.0-1.0-255"  # 512 addresses, one /16: one congestion group
HOSTS = [f"127.78.{i // 256}.{i % 256}" for i in range(512)]
LIMIT = 2


def _scan(db: Path, port: int, workers: int, sweep: str) -> tuple[dict[str, dict[str, Any]], int]:
    """The scan's records (without ``attempts``) and the most attempts one endpoint took."""
    run_cli(*scan_argv(TARGETS, str(port), db, "--discovery", "--workers", str(workers),
                       "--sweep", sweep))
    records = comparable_records(stored_records(db))
    # how many tries it took is timing: the record is the same
    most = max(rec.pop("attempts") for rec in records.values())
    return records, most


@pytest.mark.parametrize(
    ("refusal", "sweep"),
    [("fin", "connect"), ("rst", "auto"), ("busy", "auto")],
    ids=["close-connect-sweep", "reset-default-sweep", "busy-reject-default-sweep"],
)
def test_one_two_three_workers_record_every_address_dicom(
    tmp_path: Path, refusal: str, sweep: str
) -> None:
    """``refusal``: what the server does beyond two: close (FIN) or reset the connection, or
    answer A-ASSOCIATE-RJ (2, 3, 2) "local limit exceeded" as pynetdicom and DCMTK do."""
    runs: dict[int, dict[str, dict[str, Any]]] = {}
    busy = refusal == "busy"
    with connection_limited_server(
        HOSTS, 10 * LIMIT if busy else LIMIT, reset=refusal == "rst",
        policy=AcceptorPolicy(max_associations=LIMIT) if busy else None,
    ) as (port, server):
        for workers in (1, 2, 3):
            before = server.turned_away
            runs[workers], most = _scan(tmp_path / f"w{workers}.db", port, workers, sweep)
            # the limit was reached: some endpoint needed a retry
            assert most > 1, f"{workers} workers never reached the limit"
            assert busy or server.turned_away > before
    for workers, records in runs.items():
        wrong = sorted(key for key, r in records.items()
                       if not (r["dicom"] and r["operations"]["verification"]["state"]
                               == "answered"))
        assert len(records) == len(HOSTS) and not wrong, (workers, len(records), wrong[:5])
    assert runs[1] == runs[2] == runs[3]


def test_a_port_that_refuses_every_time_ends_in_bounded_retries() -> None:
    """Two addresses close every connection: one among 62 that answer (its group answers, so
    its losses look like congestion: free retries, bounded), one alone in its /16 (nothing in
    its group answers: only the counted ``--retries``)."""
    answering = [f"127.79.0.{i}" for i in range(1, 63)]
    among, alone = "127.79.0.63", "127.80.0.1"
    retries = 2

    async def scan(port: int) -> dict[str, EndpointResult]:
        targets = build_targets([*answering, among, alone], ports=(port,))
        probe = ProbeOptions(discovery=True, web=None, try_tls=False,
                             timeouts=Timeouts(2.0, 3.0, 3.0, 1.0))
        config = ScanConfig(targets=targets, probe=probe, rate=0, sweep="connect",
                            retry_backoff=0.05, transient_retries=retries)
        results: dict[str, EndpointResult] = {}
        await Engine(config, lambda r: results.__setitem__(r.host, r)).run()
        return results

    with connection_limited_server([*answering, among, alone], LIMIT,
                                   refuse=(among, alone)) as (port, _):
        results = asyncio.run(scan(port))
    assert all(results[h].dicom for h in answering)
    for host in (among, alone):
        r = results[host]
        assert not r.dicom and r.error_kind == "closed", (host, r.state, r.error)
    assert results[alone].attempts == 1 + retries
    assert 1 + retries <= results[among].attempts <= 1 + CONGESTION_RETRIES + retries
