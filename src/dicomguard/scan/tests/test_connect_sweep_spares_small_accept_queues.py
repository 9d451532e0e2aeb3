"""One real server behind many addresses: the connect sweep does not overrun its accept queue.

Issue 13: the connect sweep (used without root) kept up to ``connect_concurrency`` connects in
flight whatever answered them. pynetdicom's ``echoscp`` (one process, a socketserver accept
queue of 5) behind 192 loopback addresses at ``--concurrency 256``: 1,714 connections dropped
(TcpExt ListenOverflows) and records "silent" instead of answered; here 2,100-2,900 drops and
94-159 of 192 answered, the rest mostly A-ASSOCIATE-RJ 2/3/2 (local limit exceeded): every bare
sweep connection holds one of echoscp's 10 association slots for its 30 s ACSE timeout
(checked with DCMTK's echoscu after 12 bare connects: rejected, and accepted 31 s later). The
sweep now takes its connects from the same congestion window (scan.congestion) as the
assessments of the group, and hands each open connection to the assessment.
The scan is forced onto the connect sweep (``ScanConfig.sweep = "connect"``, what the engine
picks without raw sockets); the kernel's count of dropped connections decides, not the clock.
"""

from __future__ import annotations

from dicomguard.scan.result import EndpointResult
from dicomguard.scan.tests.test_congestion_spares_small_accept_queues import (
    HOSTS,
    scan_behind_many,
)
from dicomguard.testing.accept_queue import echoscp_app


def _connect_scan(congestion: bool) -> tuple[list[EndpointResult], int, str]:
    """A fresh echoscp per scan: every bare connection it accepted holds one of its 10
    association slots for its 30 s ACSE timeout, so a scan leaves it unfit for the next."""
    with echoscp_app("127.66.0.1") as port:
        return scan_behind_many(port, congestion, sweep="connect")


def test_connect_sweep_keeps_the_accept_queue_of_one_server_behind_many_addresses() -> None:
    records_off, dropped_off, kind = _connect_scan(congestion=False)
    assert kind == "connect"
    records_on, dropped_on, _ = _connect_scan(congestion=True)
    answered_off = sum(r.dicom for r in records_off)
    print(f"connect sweep, ListenOverflows: {dropped_off} without the window "
          f"({answered_off}/{len(records_off)} answered), {dropped_on} with it")
    assert len(records_on) == HOSTS
    unanswered = [r for r in records_on
                  if not r.dicom
                  or r.operations.get("verification", {}).get("state") != "answered"]
    assert not unanswered, (len(unanswered), [(r.host, r.reject) for r in unanswered][:3])
    assert dropped_off >= 40, f"the uncontrolled scan dropped only {dropped_off}: test too weak"
    assert dropped_on * 4 <= dropped_off, (dropped_on, dropped_off)
