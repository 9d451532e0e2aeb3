"""The byte-level A-ASSOCIATE-AC reader agrees with pynetdicom's decoder, or steps aside.

Differential: for every AC (clean ones encoded by pynetdicom, and seeded random mutations of
them), whenever ``read_accept`` gives a record it equals what ``negotiation.decode_accept`` makes
of the same bytes; where pynetdicom's path fails, the fast reader has returned None.
"""

from __future__ import annotations

import random
import struct

import pytest
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext

from dicomguard.dul import pdu as P
from dicomguard.dul.accept_bytes import read_accept
from dicomguard.dul.acse import AssociateRequest, decode_accept
from dicomguard.knowledge import sopclasses as sc

#: mutated UIDs make pydicom warn; the warnings are the slow path's business, not the test's
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REQUEST = AssociateRequest(abstract_syntaxes=sc.ALL_PROPOSED)
EXPLICIT = "1.2.840.10008.1.2.1"


def encode_ac(
    results: list[tuple[int, int, str | None]],
    *,
    icu: str | None = "1.2.276.0.7230010.3.0.3.6.7",
    ivn: str | None = "OFFIS_DCMTK_367",
    max_pdu: int | None = 16384,
    responding: str = "DGORTHANC",
) -> bytes:
    """An A-ASSOCIATE-AC encoded by pynetdicom: (context id, result, transfer syntax) each."""
    p = prim.A_ASSOCIATE()
    p.application_context_name = "1.2.840.10008.3.1.1.1"
    p.called_ae_title = responding
    p.calling_ae_title = "DICOMGUARD"
    p.result = 0
    contexts = []
    for cid, code, ts in results:
        cx = PresentationContext()
        cx.context_id = cid
        cx.result = code
        if ts is not None:
            cx.add_transfer_syntax(ts)
        contexts.append(cx)
    p.presentation_context_definition_results_list = contexts
    items: list[object] = []
    if max_pdu is not None:
        ml = prim.MaximumLengthNotification()
        ml.maximum_length_received = max_pdu
        items.append(ml)
    if icu is not None:
        ic = prim.ImplementationClassUIDNotification()
        ic.implementation_class_uid = icu
        items.append(ic)
    if ivn is not None:
        iv = prim.ImplementationVersionNameNotification()
        iv.implementation_version_name = ivn
        items.append(iv)
    p.user_information = items  # type: ignore[assignment]
    ac = _pdu.A_ASSOCIATE_AC()
    ac.from_primitive(p)
    return ac.encode()


def slow(data: bytes, request: AssociateRequest = REQUEST) -> object:
    """pynetdicom's path, as client.associate_on used it; an exception is a result too."""
    try:
        return decode_accept(P.decode(P.RawPdu(P.A_ASSOCIATE_AC, data)), request)  # type: ignore[arg-type]
    except Exception as exc:  # the comparison is "it failed"
        return type(exc)


def orthanc_like() -> bytes:
    """What Orthanc 1.10.1 answers to the scanner's assessment request (shape, not bytes)."""
    res = []
    for i, uid in enumerate(REQUEST.abstract_syntaxes):
        cid = 2 * i + 1
        accepted = uid not in (sc.MODALITY_WORKLIST_FIND, sc.MPPS, sc.CANARY)
        res.append((cid, 0 if accepted else 3, EXPLICIT))
    return encode_ac(res)


def empty_rejected_syntax() -> bytes:
    """A rejected context whose transfer syntax sub-item is empty (PS3.8 9.3.3.2 allows it)."""
    data = encode_ac([(1, 3, EXPLICIT), (3, 0, EXPLICIT)])
    item = bytes([0x21, 0, 0, 4 + 4 + len(EXPLICIT), 1, 0, 3, 0, 0x40, 0, 0, len(EXPLICIT)])
    start = data.index(item)
    new = bytes([0x21, 0, 0, 8, 1, 0, 3, 0, 0x40, 0, 0, 0])
    out = bytearray(data[:start] + new + data[start + len(item) + len(EXPLICIT) :])
    struct.pack_into(">L", out, 2, len(out) - 6)
    return bytes(out)


@pytest.mark.parametrize(
    "data",
    [
        orthanc_like(),
        encode_ac([(1, 0, "1.2.840.10008.1.2")], icu=None, ivn=None, max_pdu=None),
        encode_ac([(1, 3, EXPLICIT), (3, 0, EXPLICIT), (99, 0, EXPLICIT)], responding="  X  "),
        empty_rejected_syntax(),
        encode_ac([(1, 4, EXPLICIT)], ivn="PYNETDICOM_220"),
        encode_ac([(1, 0, EXPLICIT)], ivn=" ODD NAME ", max_pdu=0),
    ],
)
def test_clean_acs_read_like_pynetdicom(data: bytes) -> None:
    fast = read_accept(data, REQUEST)
    assert fast is not None
    assert fast == slow(data)


def _mutations(base: bytes, rng: random.Random) -> bytes:
    data = bytearray(base)
    for _ in range(rng.randint(1, 3)):
        if len(data) < 8:
            break
        how = rng.randrange(6)
        pos = rng.randrange(6, len(data))
        if how == 0:
            data[pos] = rng.randrange(256)
        elif how == 1:
            data[pos] = rng.choice(b"0123456789.A \x00\x01\x5c\xff")
        elif how == 2:
            del data[pos : pos + rng.randint(1, 8)]
        elif how == 3:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 6)))
        elif how == 4:  # a context ID, result or length byte
            data[pos] = rng.choice((0, 1, 2, 3, 4, 5, 7, 8, 0x21, 0x40, 0x50, 0x52, 0x55, 0x59))
        else:
            data = data[: rng.randrange(7, len(data) + 1)]
    if rng.random() < 0.7:  # usually keep the header honest so the items get exercised
        struct.pack_into(">L", data, 2, len(data) - 6)
    return bytes(data)


def test_mutated_acs_agree_or_fall_back() -> None:
    rng = random.Random(13)
    bases = [orthanc_like(), encode_ac([(1, 0, EXPLICIT)])]
    fast_taken = 0
    for i in range(3000):
        data = _mutations(bases[i % 2], rng)
        if len(data) < 6:
            continue
        fast = read_accept(data, REQUEST)
        if fast is None:
            continue
        fast_taken += 1
        assert fast == slow(data), data.hex()
    assert fast_taken > 100  # the mutations did not all fall back


def test_never_raises_on_garbage() -> None:
    rng = random.Random(7)
    for n in range(0, 300):
        junk = bytes(rng.randrange(256) for _ in range(n))
        read_accept(b"\x02\x00" + struct.pack(">L", len(junk)) + junk, REQUEST)
        read_accept(junk, REQUEST)
