"""One A-ASSOCIATE-RJ and one A-ABORT encoding: ours gives pynetdicom's bytes and reads back.

``pdu.reject_pdu`` replaced two encoders (the lab acceptor's through pynetdicom, the gateway's
by hand); this holds it to pynetdicom's encoder for every reject dicomguard sends, and the
decoder to the same triple (PS3.8 9.3.4, Table 9-21; 9.3.8, Table 9-26).
"""

from __future__ import annotations

import pytest
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim

from dicomguard.dul import codes
from dicomguard.dul import pdu as P
from dicomguard.dul.acse import decode_reject
from dicomguard.testing import pdus

SENT = [
    codes.REJECT_NO_REASON,
    codes.REJECT_APPLICATION_CONTEXT,
    codes.REJECT_CALLING_AET,
    codes.REJECT_CALLED_AET,
    codes.REJECT_PROTOCOL_VERSION,
    codes.REJECT_USER_IDENTITY,
    codes.REJECT_TEMPORARY_CONGESTION,
    codes.REJECT_LOCAL_LIMIT,
]


def _pynetdicom_reject(reject: codes.Reject) -> bytes:
    p = prim.A_ASSOCIATE()
    p.result = reject.result
    p.result_source = reject.source
    p.diagnostic = reject.reason
    rj = _pdu.A_ASSOCIATE_RJ()
    rj.from_primitive(p)
    return bytes(rj.encode())


@pytest.mark.parametrize("reject", SENT, ids=lambda r: r.reason_text)
def test_reject_pdu_is_pynetdicoms_encoding_and_decodes_to_the_same_triple(
    reject: codes.Reject,
) -> None:
    data = P.reject_pdu(reject)
    assert data == _pynetdicom_reject(reject)
    decoded = decode_reject(P.decode(P.RawPdu(codes.A_ASSOCIATE_RJ, data)))  # type: ignore[arg-type]
    assert decoded == reject


@pytest.mark.parametrize("reason", list(codes.AbortReason))
def test_provider_abort_pdu_is_pynetdicoms_encoding(reason: codes.AbortReason) -> None:
    p = prim.A_P_ABORT()
    p.provider_reason = int(reason)
    rq = _pdu.A_ABORT_RQ()
    rq.from_primitive(p)
    assert P.provider_abort_pdu(reason) == bytes(rq.encode())


def test_user_abort_pdu_is_pynetdicoms_encoding() -> None:
    p = prim.A_ABORT()
    p.abort_source = int(codes.AbortSource.SERVICE_USER)
    rq = _pdu.A_ABORT_RQ()
    rq.from_primitive(p)
    assert P.abort_pdu() == bytes(rq.encode())


@pytest.mark.parametrize(
    ("reject", "vector"),
    [
        (codes.REJECT_CALLED_AET, pdus.A_ASSOCIATE_RJ_CALLED_AET),
        (codes.REJECT_CALLING_AET, pdus.A_ASSOCIATE_RJ_CALLING_AET),
        (codes.REJECT_NO_REASON, pdus.A_ASSOCIATE_RJ_NO_REASON),
        (codes.REJECT_LOCAL_LIMIT, pdus.A_ASSOCIATE_RJ_LOCAL_LIMIT),
        (codes.REJECT_USER_IDENTITY, pdus.A_ASSOCIATE_RJ_USER_IDENTITY),
    ],
    ids=lambda v: v.reason_text if isinstance(v, codes.Reject) else "",
)
def test_reject_pdu_is_the_canonical_vector(reject: codes.Reject, vector: bytes) -> None:
    """The test kit's canonical RJs, which Orthanc 1.10.1 sends byte for byte for (1, 1, 7)
    (testing/tests/test_pdus_against_real_servers.py)."""
    assert P.reject_pdu(reject) == vector
