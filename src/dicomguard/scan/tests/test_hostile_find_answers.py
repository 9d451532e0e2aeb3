"""A hostile or broken C-FIND SCP: every answer gives a sane count or a typed error, never a
traceback, and never a verdict the answer does not support.

Each peer is the lab acceptor (``dul/scp.py``) answering every C-FIND with the same hand-made
data sets, encoded byte by byte in Implicit VR Little Endian (PS3.5 7.1.3) so that VRs, lengths
and character sets can be wrong in ways pydicom would never write.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Callable
from datetime import date

import pytest

from dicomguard.dul.scp import AcceptorPolicy, FindRequest, Handlers, start_acceptor
from dicomguard.dul.scu import Timeouts
from dicomguard.lab.personas import SERVICE_SOP_CLASSES
from dicomguard.scan.assess import ProbeOptions, assess

HOST = "127.0.0.1"
SOP = tuple(
    uid for k in ("verification", "find_patient_root", "find_study_root")
    for uid in SERVICE_SOP_CLASSES[k]
)


def _el(group: int, element: int, value: bytes, length: int | None = None) -> bytes:
    """One implicit-VR element; ``length`` lies about the value's length when given."""
    return struct.pack("<HHI", group, element, len(value) if length is None else length) + value


def _uid(i: int) -> bytes:
    text = f"2.25.9900{i}".encode()
    return text + b"\0" * (len(text) % 2)


def _study(i: int, study_date: bytes = b"20200101", patient_id: bytes = b"DGSYNHOST1 ",
           before: bytes = b"", after: bytes = b"") -> bytes:
    return (before + _el(0x0008, 0x0020, study_date) + _el(0x0008, 0x0052, b"STUDY ")
            + _el(0x0010, 0x0020, patient_id) + _el(0x0020, 0x000D, _uid(i)) + after)


def _answers(items: list[bytes]) -> Callable[[FindRequest], AsyncIterator]:
    async def find(request: FindRequest) -> AsyncIterator[tuple[int, bytes | None]]:
        for item in items:
            yield 0xFF00, item
        yield 0x0000, None

    return find


async def _assess(items: list[bytes]):
    policy = AcceptorPolicy(abstract_syntaxes=SOP)
    server = await start_acceptor(HOST, 0, policy, Handlers(find=_answers(items)))
    port = server.sockets[0].getsockname()[1]
    try:
        opts = ProbeOptions(timeouts=Timeouts(1.0, 2.0, 5.0, 0.5), try_tls=False, web=None)
        return await assess(HOST, port, opts)
    finally:
        server.close()


INVALID_DATES = [b"20231341", b"", b"19000101-", b"2023", b"abcdefgh", b"00000000",
                 b"99991231", b"20200230", b"1899123 "]


async def test_invalid_study_dates_are_counted_but_give_no_year() -> None:
    items = [_study(i, d) for i, d in enumerate(INVALID_DATES)]
    r = await _assess(items)
    exp = r.exposure
    assert exp["studies"] == len(INVALID_DATES) and exp["patients"] == 1
    assert exp["studies_by_year"] == {}
    assert exp["earliest_study_date"] is None and exp["latest_study_date"] is None


async def test_valid_dates_beside_invalid_ones_span_only_the_valid() -> None:
    items = [_study(0, b"19991224"), _study(1, b"99991231"), _study(2, b"19000101-"),
             _study(3, b"20200101")]
    exp = (await _assess(items)).exposure
    assert exp["earliest_study_date"] == "19991224" and exp["latest_study_date"] == "20200101"
    assert set(exp["studies_by_year"]) == {"1999", "2020"}
    assert all(1900 <= int(y) <= date.today().year for y in exp["studies_by_year"])


async def test_an_answer_above_our_size_bound_is_a_typed_error_not_a_refusal() -> None:
    """8 MiB in one match (a private element; icons in C-FIND answers exist): we stop reading
    at our bound. The server answered: the probe is ``failed``, the count records the error,
    and no "access enforced per operation" (DG-015) is claimed."""
    r = await _assess([_study(1, after=_el(0x0009, 0x0010, b"X" * (8 << 20)))])
    assert r.operations["find_study_root"]["state"] == "failed"
    assert "MalformedPdu" in r.operations["find_study_root"]["detail"]
    assert r.access_enforced_per_operation is False
    assert "DG-015" not in {f["id"] for f in r.findings}
    assert r.exposure is not None and "MalformedPdu" in r.exposure["error"]
    assert r.exposure["complete"] is False


CASES = {
    "patient ids with backslashes and escapes": (
        [_study(i, patient_id=p) for i, p in enumerate(
            [b"A\\B ", b"\\\\", b"", b"A\\B ", b"\x1b$B0!\x1b(B "])], 5),
    "ISO 2022 escape sequences": (
        [_study(i, patient_id=b"\x1b$B0!\x1b(B ", before=_el(0x0008, 0x0005, b"ISO 2022 IR 87"))
         for i in range(3)], 3),
    "unknown character set": (
        [_study(i, patient_id=b"\xff\xfe\xfd ", before=_el(0x0008, 0x0005, b"ISO_IR 999"))
         for i in range(3)], 3),
    "odd lengths": (
        [_el(0x0008, 0x0020, b"2020010") + _el(0x0010, 0x0020, b"X") + _el(0x0020, 0x000D, _uid(i))
         for i in range(3)], 3),
    "length beyond the data set": (
        [_el(0x0008, 0x0020, b"20200101", length=1000) + _el(0x0020, 0x000D, _uid(i))
         for i in range(3)], None),
    "undefined length on a non-sequence": (
        [_el(0x0008, 0x0020, b"20200101", length=0xFFFFFFFF) + _el(0x0020, 0x000D, _uid(i))
         for i in range(3)], None),
    "truncated element header": ([b"\x08\x00\x20"] * 3, None),
    "binary garbage": ([bytes(range(256)) * 4] * 3, None),
    "binary study uid": ([_el(0x0008, 0x0020, b"20200101") + _el(0x0020, 0x000D, b"\0\xff\x01\x02")]
                         * 3, 1),
    "one study repeated": ([_study(1)] * 50, 1),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_malformed_answers_give_a_sane_count(case: str) -> None:
    items, studies = CASES[case]
    r = await _assess(items)
    assert r.dicom and r.error is None
    exp = r.exposure
    assert exp is not None
    if studies is None:  # nothing readable as a study: no study counted, never a traceback
        assert not exp["studies"]
        assert exp["complete"] is False or exp["placeholder_matches"] > 0
    else:
        assert exp["studies"] == studies
    assert exp["studies_by_year"] in ({}, {"2020": studies})


async def test_invalid_values_are_not_quoted_on_the_console(caplog, recwarn) -> None:
    """pydicom quotes an invalid UI value in a warning and its log; a stranger's identifiers
    (or whatever a broken server puts in a UID) must not reach stderr (PHI rule)."""
    marker = b"DGSYNLEAK"
    items = [_el(0x0008, 0x0020, b"20200101") + _el(0x0010, 0x0020, marker + b"\x07\x1b ")
             + _el(0x0020, 0x000D, marker + b"\xff\xfe" + bytes([0x30 + i])) for i in range(3)]
    caplog.set_level("DEBUG")
    r = await _assess(items)
    assert r.exposure is not None and r.exposure["studies"] == 3
    said = caplog.text + " ".join(str(w.message) for w in recwarn)
    assert "DGSYNLEAK" not in said
    assert "DGSYNLEAK" not in str(r.to_dict())


async def test_a_server_slow_on_every_query_costs_the_time_budget_not_the_scan() -> None:
    """A peer answering every query, whatever its keys, with more matches than we take per
    query (cut: the count splits the range, again and again) and slowly: the time budget
    ends the count as a flagged lower bound (measured before it: 465 s for one such peer)."""
    import asyncio
    import time

    from dicomguard.scan.exposure import ExposureOptions

    items = [_study(i) for i in range(60)]

    async def slow(request: FindRequest) -> AsyncIterator[tuple[int, bytes | None]]:
        await asyncio.sleep(0.3)
        for item in items:
            yield 0xFF00, item
        yield 0x0000, None

    policy = AcceptorPolicy(abstract_syntaxes=SOP)
    server = await start_acceptor(HOST, 0, policy, Handlers(find=slow))
    port = server.sockets[0].getsockname()[1]
    started = time.monotonic()
    try:
        exposure = ExposureOptions(time_budget=2.0, max_results_per_query=50)
        opts = ProbeOptions(timeouts=Timeouts(1.0, 2.0, 5.0, 0.5), try_tls=False, web=None,
                            exposure=exposure)
        r = await assess(HOST, port, opts)
    finally:
        server.close()
    assert time.monotonic() - started < 15
    exp = r.exposure
    assert exp.get("time_budget_spent") is True and exp["complete"] is False, str(exp)
    assert exp["queries"] < 30 and exp["studies"] >= 50


async def test_a_peers_encoding_slips_raise_no_warning_on_the_console(recwarn) -> None:
    """Implicit VR data sets on an Explicit VR context: pydicom warns and reads on; the
    warning is not the scan user's business (it printed between the scan's results)."""
    r = await _assess([_study(i, after=_el(0x0008, 0x0060, b"\xff\xfe")) for i in range(3)])
    assert r.exposure is not None and r.exposure["studies"] == 3
    assert not [w for w in recwarn if "VR" in str(w.message)], [str(w.message) for w in recwarn]
