"""Whatever a client sends in the data phase, the gateway answers it (a response, a refusal or
an A-ABORT) and logs no traceback: hypothesis sends mutated command sets (the differential
fuzz's strategy) on accepted, refused and never-proposed presentation contexts through a live
gateway, and the test reads every log record the gateway and asyncio wrote. Bounded for CI
(60 associations, no deadline, derandomized)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomguard.dul import pdu as P
from dicomguard.dul import scu
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.errors import DulError
from dicomguard.testing.pdus import p_data_tf

from .conftest import RecordingBackend
from .test_command_set_differential import command_sets

ECHO = "1.2.840.10008.1.1"
FIND = "1.2.840.10008.5.1.4.1.2.1.1"
MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
CT = "1.2.840.10008.5.1.4.1.1.2"
MPPS = "1.2.840.10008.3.1.2.3.3"  # proposed, refused by the recording backend


def _pdata(items: list[tuple[int, int, bytes]]) -> bytes:
    return p_data_tf(*items)


async def _exchange(address: tuple[str, int], calling: str, pdu: bytes) -> str:
    rq = AssociateRequest(called_aet="PACS", calling_aet=calling,
                          abstract_syntaxes=(ECHO, FIND, MOVE, CT, MPPS),
                          transfer_syntaxes=("1.2.840.10008.1.2",))
    outcome = await scu.associate(address[0], address[1], rq)
    assert outcome.association is not None
    assoc = outcome.association
    try:
        assoc.writer.write(pdu)
        raw = await P.read_pdu(assoc.reader, timeout=3)
        return P.PDU_NAMES.get(raw.pdu_type, "?")
    except DulError as exc:
        return type(exc).__name__
    finally:
        await assoc.close()


def test_no_input_gets_a_traceback(raw_config: dict[str, Any], gateway_factory: Any,
                                   backend: RecordingBackend,
                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    gw = gateway_factory(raw_config)
    address = gw.address()
    answers: list[str] = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(command=command_sets(), cid=st.sampled_from([1, 3, 5, 7, 9, 2, 99]),
           calling=st.sampled_from(["CT01", "VIEWER1"]),
           data=st.none() | st.binary(max_size=40), last=st.booleans())
    def send(command: bytes, cid: int, calling: str, data: bytes | None, last: bool) -> None:
        items = [(cid, 0x03 if last or data is None else 0x01, command)]
        if data is not None:
            items.append((cid, 0x02, data))
        answers.append(asyncio.run(_exchange(address, calling, _pdata(items))))

    send()
    bad = [r for r in caplog.records
           if (r.name.startswith(("dicomguard", "asyncio")))
           and (r.exc_info or r.levelno >= logging.ERROR)]
    assert not bad, [r.getMessage() for r in bad]
    assert gw.gateway.metrics.aborts.value(reason="internal") == 0
    assert "A-ABORT" in answers and "P-DATA-TF" in answers, answers


async def _send_raw(address: tuple[str, int], data: bytes) -> str:
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        writer.write_eof()  # a cut request must not cost the gateway's ARTIM wait
        raw = await P.read_pdu(reader, timeout=3)
        return P.PDU_NAMES.get(raw.pdu_type, "?")
    except (DulError, OSError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


def test_no_association_request_gets_a_traceback(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    caplog: pytest.LogCaptureFixture
) -> None:
    """The same for the association phase: A-ASSOCIATE-RQs with bytes flipped, cut or
    lengthened (protocol version, AE titles, item lengths, UIDs) get an AC, RJ or A-ABORT."""
    caplog.set_level(logging.DEBUG)
    gw = gateway_factory(raw_config)
    address = gw.address()
    good = AssociateRequest(called_aet="PACS", calling_aet="CT01",
                            abstract_syntaxes=(ECHO, FIND, CT)).encode()
    answers: list[str] = []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(flips=st.lists(st.tuples(st.integers(0, len(good) - 1), st.integers(0, 255)),
                          max_size=4),
           cut=st.integers(0, 40), extra=st.binary(max_size=8))
    def send(flips: list[tuple[int, int]], cut: int, extra: bytes) -> None:
        data = bytearray(good)
        for pos, value in flips:
            data[pos] = value
        data = data[: len(data) - cut] + extra
        answers.append(asyncio.run(_send_raw(address, bytes(data))))

    send()
    bad = [r for r in caplog.records
           if (r.name.startswith(("dicomguard", "asyncio")))
           and (r.exc_info or r.levelno >= logging.ERROR)]
    assert not bad, [r.getMessage() for r in bad]
    assert gw.gateway.metrics.aborts.value(reason="internal") == 0
