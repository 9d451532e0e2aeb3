"""Every decoder of peer bytes raises only dul.errors types, and never hangs (issue 12).

hypothesis feeds random and half-valid bytes to each decoder; an exception outside the
DulError hierarchy, or an example slower than the deadline, fails the test. Bounded for CI:
``max_examples`` per decoder and a per-example deadline keep the file at a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomguard.dul import dimse
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest, decode_accept, decode_reject
from dicomguard.dul.command import parse_command
from dicomguard.dul.errors import DulError, MalformedPdu
from dicomguard.dul.peek import peek
from dicomguard.testing import pdus
from dicomguard.testing.pdus import item as _item
from dicomguard.testing.pdus import pdu as _pdu

#: pydicom warns about every odd VR it meets in the junk: expected, not news
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
FUZZ = settings(
    max_examples=300,
    deadline=2000,  # ms per example: a decoder that loops on junk fails here
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,  # the same examples in every run: a failure is reproducible, not flaky
)
REQUEST = AssociateRequest(abstract_syntaxes=("1.2.840.10008.1.1", "1.2.840.10008.5.1.4.1.2.2.1"))
TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2")
APP_CONTEXT = pdus.A_ASSOCIATE_RQ[74:99]  # the Application Context item
#: issue 12's context item: ID 0, result 0, a transfer syntax sub-item
CONTEXT_ID_0 = bytes.fromhex("210000190000000040000011312e322e3834302e31303030382e312e32")


def _ac(items: bytes) -> bytes:
    fixed = b"\x00\x01\x00\x00" + b"ANY-SCP".ljust(16) + b"DICOMGUARD".ljust(16) + b"\x00" * 32
    return _pdu(P.A_ASSOCIATE_AC, fixed + items)


# an item whose type is one PS3.8 knows (or not) and whose body is random or nested items
item_types = st.sampled_from([0x10, 0x20, 0x21, 0x30, 0x40, 0x50, 0x51, 0x52, 0x55, 0x59, 0x00])
sub_item = st.builds(_item, item_types, st.binary(max_size=40))
context_item = st.builds(
    lambda cid, result, subs: _item(0x21, bytes([cid, 0, result, 0]) + b"".join(subs)),
    st.integers(0, 255),
    st.integers(0, 255),
    st.lists(sub_item, max_size=3),
)
ac_items = st.lists(st.one_of(context_item, sub_item, st.just(CONTEXT_ID_0)), max_size=5)


def _decode_fully(raw: P.RawPdu) -> None:
    obj = P.decode(raw)
    if raw.pdu_type == P.A_ASSOCIATE_AC:
        decode_accept(obj, REQUEST, raw=raw.data)  # type: ignore[arg-type]
    elif raw.pdu_type == P.A_ASSOCIATE_RJ:
        decode_reject(obj)  # type: ignore[arg-type]
    elif raw.pdu_type == P.P_DATA_TF:
        dimse.MessageAssembler(1 << 16).feed(raw.data)


def _only_typed(call: object) -> None:
    with contextlib.suppress(DulError):
        call()  # type: ignore[operator]


@pytest.mark.parametrize(
    "items",
    [CONTEXT_ID_0, APP_CONTEXT + _item(0x21, b"\x01\x00\x00\x00" + APP_CONTEXT)],
    ids=["context-id-0", "application-context-sub-item-in-a-context"],
)
def test_issue_12_malformed_accepts_are_malformed_pdu_with_evidence(items: bytes) -> None:
    data = _ac(APP_CONTEXT + items if items is CONTEXT_ID_0 else items)
    with pytest.raises(MalformedPdu) as err:
        _decode_fully(P.RawPdu(P.A_ASSOCIATE_AC, data))
    assert err.value.evidence == data[: len(err.value.evidence or b"")]
    assert err.value.evidence and err.value.kind == "malformed"


@FUZZ
@given(ac_items, st.booleans())
def test_accept_decoding_raises_only_typed_errors(items: list[bytes], app: bool) -> None:
    data = _ac((APP_CONTEXT if app else b"") + b"".join(items))
    _only_typed(lambda: _decode_fully(P.RawPdu(P.A_ASSOCIATE_AC, data)))


@FUZZ
@given(st.sampled_from(sorted(P.PDU_NAMES)), st.binary(max_size=300))
def test_every_pdu_type_decodes_or_raises_typed_errors(pdu_type: int, body: bytes) -> None:
    _only_typed(lambda: _decode_fully(P.RawPdu(pdu_type, _pdu(pdu_type, body))))


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 0xFFFFFFFF))
def test_read_pdu_on_junk_streams_raises_typed_errors_in_time(junk: bytes, length: int) -> None:
    async def go(data: bytes) -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        for _ in range(4):
            raw = await P.read_pdu(reader, timeout=0.5, max_length=1 << 16)
            _decode_fully(raw)

    for data in (junk, bytes([junk[0] % 8 if junk else 4, 0]) + struct.pack(">L", length) + junk):
        _only_typed(lambda d=data: asyncio.run(go(d)))


pdv = st.builds(
    lambda cid, header, frag: struct.pack(">L", len(frag) + 2) + bytes([cid, header]) + frag,
    st.integers(0, 3),
    st.integers(0, 3),
    st.binary(max_size=80),
)


@FUZZ
@given(st.lists(st.one_of(pdv, st.binary(max_size=20)), min_size=1, max_size=6))
def test_p_data_reassembly_raises_typed_errors(pdvs: list[bytes]) -> None:
    assembler = dimse.MessageAssembler(1 << 12, max_command_bytes=1 << 10)
    _only_typed(lambda: [assembler.feed(_pdu(P.P_DATA_TF, p)) for p in pdvs])


command_element = st.builds(
    lambda element, value: struct.pack("<HHL", 0, element, len(value)) + value,
    st.sampled_from([0x0000, 0x0002, 0x0100, 0x0110, 0x0120, 0x0800, 0x0900, 0x1000, 0x7777]),
    st.binary(max_size=24),
)


@FUZZ
@given(st.lists(st.one_of(command_element, st.binary(max_size=12)), max_size=8))
def test_command_set_parsing_raises_typed_errors(elements: list[bytes]) -> None:
    _only_typed(lambda: parse_command(b"".join(elements)))


def _element(group: int, element: int, vr: bytes, value: bytes, undefined: bool) -> bytes:
    head = struct.pack("<HH", group, element)
    if vr:  # explicit VR, short form
        return head + vr + struct.pack("<H", len(value)) + value
    return head + struct.pack("<L", 0xFFFFFFFF if undefined else len(value)) + value


# elements that look like a C-FIND match: study date, UID, modalities, sequences, item tags
data_element = st.builds(
    _element,
    st.sampled_from([0x0008, 0x0010, 0x0020, 0xFFFE]),
    st.sampled_from([0x0020, 0x0061, 0x0060, 0x000D, 0xE000, 0xE0DD]),
    st.sampled_from([b"", b"DA", b"UI", b"CS", b"SQ", b"UN"]),
    st.binary(max_size=20),
    st.booleans(),
)


@FUZZ
@given(
    st.one_of(st.binary(max_size=300), st.lists(data_element, max_size=5).map(b"".join)),
    st.sampled_from(TRANSFER_SYNTAXES),
)
def test_data_set_decoding_raises_typed_errors(data: bytes, ts: str) -> None:
    # decoded means every value can be read: nothing untyped waits in a lazy element
    _only_typed(lambda: [e.value for e in dimse.decode_dataset(data, ts).iterall()])
    # peek never raises at all: None means "not sure, ask pydicom"
    peek(data, ts, frozenset({0x0020000D, 0x00080020}))
