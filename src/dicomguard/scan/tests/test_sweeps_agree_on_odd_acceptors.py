"""Odd acceptors among closed ports: the connect sweep and the SYN sweep give the same record.

The neighbours of the accept-then-reset peer (test_connect_sweep_records_accept_then_reset.py),
each alone in a /24 of closed ports, scanned once with each sweep:

- ``reset``: accepts, then RST at once: open, not DICOM (DG-014), re-assessed --retries times;
- ``close``: accepts, then FIN at once: the same;
- ``silent``: accepts and never answers: open, DICOM unknown (DG-016, "silent");
- ``full-queue``: a listener whose accept queue is full for good: the kernel drops every SYN
  (TcpExt ListenOverflows grows), so both sweeps call it filtered, after one more try.

The port's state is checked with an independent tool, nmap's SYN scan (``testing.nmap``: a
SYN-ACK is open, whatever follows). Each scan must end within a bound (a hang fails, it does
not hold the suite), every other address be closed, and the two records agree but for what
differs between any two runs of one sweep: timings, and the error text (also in the findings'
detail), which says how the loss was seen (end of file, ECONNRESET at the read, asyncio's
"Connection lost" at the write; the FIN peer's kernel resets our A-ASSOCIATE-RQ when it lands
on the closed socket): one text or another from run to run, with either sweep.
``error_kind`` is compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.hostile import HostileThread
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.synsweep import raw_sockets_available
from dicomguard.scan.targets import build_targets
from dicomguard.testing.accept_queue import full_accept_queue, listen_overflows
from dicomguard.testing.loopback import free_port
from dicomguard.testing.nmap import syn_scan_state

#: one /24 per behaviour (a peer's connections must not meet another test's)
NETS = {"reset": 90, "close": 91, "silent": 92, "full-queue": 93}
#: the whole scan, generous for a loaded 2-core machine (a healthy one: 1-4 s)
BOUND = 90.0
#: fields that differ between two runs of one scan (the module docstring)
RUN_FIELDS = ("elapsed_ms", "slow_greeting_s", "measured_at", "scan_id", "error")
EXPECTED = {
    # behaviour: (state, dicom, error_kind, findings)
    "reset": ("open", False, "closed", ["DG-014"]),
    "close": ("open", False, "closed", ["DG-014"]),
    "silent": ("open", False, "timeout", ["DG-016"]),
    "full-queue": ("filtered", False, None, []),
}


@contextlib.contextmanager
def _peer(behaviour: str, host: str, port: int) -> Iterator[None]:
    if behaviour == "full-queue":
        with full_accept_queue(host, port):
            yield
    else:
        with HostileThread({host: behaviour}, port=port):
            yield


def _scan(net: str, port: int, sweep: str, probe: ProbeOptions
          ) -> tuple[list[EndpointResult], Counter[str], str]:
    config = ScanConfig(targets=build_targets([net], ports=(port,)), probe=probe, rate=0,
                        sweep=sweep, retry_backoff=0.05)
    records: list[EndpointResult] = []
    closed: Counter[str] = Counter()
    engine = Engine(config, records.append, report_closed=False,
                    on_closed=lambda seq, state: closed.update([state]))

    async def run() -> None:
        async with asyncio.timeout(BOUND):
            await engine.run()

    asyncio.run(run())
    return records, closed, engine.sweep_kind


def _comparable(r: EndpointResult) -> dict[str, Any]:
    out = {k: v for k, v in r.to_dict().items() if k not in RUN_FIELDS}
    out["findings"] = [{k: v for k, v in f.items() if k != "detail"} for f in out["findings"]]
    return out


@pytest.mark.parametrize("behaviour", list(NETS))
def test_both_sweeps_give_the_same_record(behaviour: str) -> None:
    net = f"127.89.{NETS[behaviour]}.0/24"
    host = f"127.89.{NETS[behaviour]}.200"
    port = free_port(host)
    probe = ProbeOptions(timeouts=Timeouts(connect=1.0, associate=1.0, dimse=1.0, release=0.5),
                         slow_greeting_timeout=0, web=None)
    sweeps = ["connect"]
    if raw_sockets_available():
        sweeps.append("syn")
    elif os.environ.get("CI") == "true":
        pytest.fail("CI runs as root: the SYN sweep must be compared")
    found: dict[str, EndpointResult] = {}
    for sweep in sweeps:
        overflows = listen_overflows()
        with _peer(behaviour, host, port):
            records, closed, kind = _scan(net, port, sweep, probe)
        assert kind == sweep
        if behaviour == "full-queue":
            # the kernel dropped the SYNs: the queue was full, not the port closed
            assert listen_overflows() > overflows
            assert records == [] and closed == {"closed": 255, "filtered": 1}, (sweep, closed)
            continue
        assert closed == {"closed": 255}, (sweep, closed)
        (r,) = records
        state, dicom, error_kind, findings = EXPECTED[behaviour]
        assert (r.host, r.port, r.state, r.dicom, r.error_kind) == (
            host, port, state, dicom, error_kind), (sweep, r.error)
        assert [f.id for f in r.findings] == findings, sweep
        # bounded: a peer closing every connection costs --retries more assessments, each at
        # most a plain and a TLS connection; a silent one is not re-assessed
        retried = error_kind == "closed"
        assert r.attempts == (3 if retried else 1), sweep
        assert r.associations <= 2, sweep
        found[sweep] = r
    if len(found) == 2:
        assert _comparable(found["connect"]) == _comparable(found["syn"])
    if raw_sockets_available():
        with _peer(behaviour, host, port):
            assert syn_scan_state(host, port) == EXPECTED[behaviour][0]
