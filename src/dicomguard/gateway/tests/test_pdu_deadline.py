"""One byte at a time (issue 11 item 4): a P-DATA PDU that arrives slower than
``limits.min_pdu_rate`` is aborted at its deadline even though bytes keep coming (so the idle
timer never fires), and the backend association behind it (DCMTK storescp) is closed too."""

from __future__ import annotations

import asyncio
import struct
import time
from typing import Any

import pytest

from dicomguard.dul import dimse, scu
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.errors import PeerAborted, PeerClosed, PeerTimeout
from dicomguard.gateway.config import Limits

ECHO = "1.2.840.10008.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"

pytestmark = pytest.mark.usefixtures("no_tracebacks")


def _config(raw: dict[str, Any], server: Any, **limits: Any) -> dict[str, Any]:
    raw["route"] = [{"called_aet": "PACS", "backend_host": server.host,
                     "backend_port": server.port, "backend_aet": server.aet}]
    raw["limits"] = limits
    return raw


async def _open(gw: Any) -> scu.Association:
    host, port = gw.address()
    rq = AssociateRequest(called_aet="PACS", calling_aet="CT01", abstract_syntaxes=(ECHO, CT))
    outcome = await scu.associate(host, port, rq)
    assert outcome.association is not None, outcome.reject
    return outcome.association


def test_default_deadline_bounds_a_maximal_pdu_below_the_idle_timeout() -> None:
    lim = Limits()
    assert lim.pdu_timeout + lim.max_pdu_bytes / lim.min_pdu_rate < lim.idle_timeout


async def test_pdu_trickled_a_byte_at_a_time_is_aborted_at_its_deadline(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_server: Any
) -> None:
    # 4000 bytes announced at >= 1000 B/s: 0.5 + 4 = 4.5 s; sent at 10 B/s it would take 400 s
    gw = gateway_factory(_config(raw_config, storescp_server, pdu_timeout=0.5,
                                 min_pdu_rate=1000))
    metrics = gw.gateway.metrics
    assoc = await _open(gw)
    assert metrics.active.value() == 1
    header = struct.pack(">BBL", P.P_DATA_TF, 0, 4000) + struct.pack(">LBB", 3998, 1, 0x02)
    started = time.monotonic()
    outcome = None
    # the headers at once (a PDU's header must itself arrive within pdu_timeout), then the
    # body a byte every 0.1 s
    assoc.writer.write(header)
    for byte in b"\x00" * 3990:
        try:
            assoc.writer.write(bytes([byte]))
            await assoc.writer.drain()
            raw = await P.read_pdu(assoc.reader, timeout=0.1)
        except PeerTimeout:  # nothing from the gateway yet: send the next byte
            continue
        except (PeerClosed, OSError):
            outcome = "closed"
            break
        try:
            P.raise_if_abort(raw)
        except PeerAborted as exc:
            assert exc.source == 2  # the gateway, as service provider
            outcome = "aborted"
            break
    elapsed = time.monotonic() - started
    await assoc.close()
    assert outcome == "aborted"
    assert 4.5 <= elapsed < 8.0, elapsed  # the deadline, plus the watchdog's granularity
    assert metrics.aborts.value(reason="pdu-deadline") == 1
    for _ in range(100):  # both sockets closed: the backend association is gone too
        if metrics.active.value() == 0:
            break
        await asyncio.sleep(0.05)
    assert metrics.active.value() == 0


async def test_pdus_at_a_normal_rate_pass_under_tight_deadlines(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_server: Any
) -> None:
    gw = gateway_factory(_config(raw_config, storescp_server, pdu_timeout=0.5,
                                 min_pdu_rate=1000))
    assoc = await _open(gw)
    for i in range(5):
        pdu = dimse.echo_pdus(i + 1, 1, 0)[0]
        half = len(pdu) // 2
        assoc.writer.write(pdu[:half])  # split, with a pause well inside the deadline
        await asyncio.sleep(0.2)
        assoc.writer.write(pdu[half:])
        reply = dimse.MessageAssembler().feed((await P.read_pdu(assoc.reader, timeout=5)).data)
        assert reply[0].status == 0
    await assoc.release()
    assert gw.gateway.metrics.aborts.value(reason="pdu-deadline") == 0
