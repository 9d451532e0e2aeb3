"""The byte-level A-ASSOCIATE reader/rewriter against pynetdicom's codec: what it reads equals
what pynetdicom decodes, what it writes pynetdicom decodes to the intended edit, and no mangled
request gets through as anything but MalformedPdu."""

from __future__ import annotations

import random

import pytest
from pynetdicom import pdu as _pdu
from pynetdicom import pdu_primitives as prim
from pynetdicom.presentation import PresentationContext
from pynetdicom.sop_class import CTImageStorage, Verification

from dicomguard.dul.acse import AssociateRequest, UserIdentity, UserIdentityType
from dicomguard.dul.associate_bytes import parse_associate, rewrite_associate
from dicomguard.dul.errors import MalformedPdu

MANY = tuple(f"1.2.840.10008.5.1.4.1.1.{i}" for i in range(1, 121))


def _request(identity: bool = True, syntaxes: tuple[str, ...] = (Verification, *MANY)) -> bytes:
    ui = UserIdentity(UserIdentityType.USERNAME_PASSCODE, b"alice", b"s3cret", True)
    return AssociateRequest(called_aet="PACS", calling_aet="CT01", abstract_syntaxes=syntaxes,
                            user_identity=ui if identity else None).encode()


def _decoded(data: bytes, kind: type[_pdu.PDU] = _pdu.A_ASSOCIATE_RQ) -> prim.A_ASSOCIATE:
    pdu = kind()
    pdu.decode(data)
    return pdu.to_primitive()


def test_reads_what_pynetdicom_reads() -> None:
    data = _request()
    view = parse_associate(data)
    ref = _decoded(data)
    assert view.called_ae_title == ref.called_ae_title.strip() == "PACS"
    assert view.calling_ae_title == ref.calling_ae_title.strip() == "CT01"
    (ui,) = view.user_information
    assert (ui.user_identity_type, ui.primary_field, ui.secondary_field) == (2, b"alice", b"s3cret")
    assert ui.positive_response_requested is True


@pytest.mark.parametrize("strip", [False, True])
def test_rewrite_changes_only_titles_and_identity(strip: bool) -> None:
    data = _request()
    out = rewrite_associate(data, parse_associate(data), called="LEGACYPACS",
                            calling="DGGATEWAY", strip_identity=strip)
    before, after = _decoded(data), _decoded(out)
    assert after.called_ae_title.strip() == "LEGACYPACS"
    assert after.calling_ae_title.strip() == "DGGATEWAY"
    assert [(c.context_id, c.abstract_syntax, c.transfer_syntax)
            for c in after.presentation_context_definition_list] == [
        (c.context_id, c.abstract_syntax, c.transfer_syntax)
        for c in before.presentation_context_definition_list]
    kinds = [type(i).__name__ for i in after.user_information]
    assert ("UserIdentityNegotiation" in kinds) is not strip
    assert after.maximum_length_received == before.maximum_length_received
    assert parse_associate(out).user_information == ([] if strip else parse_associate(data)
                                                     .user_information)


def test_accept_gets_an_empty_identity_answer() -> None:
    ac = prim.A_ASSOCIATE()
    ac.application_context_name = "1.2.840.10008.3.1.1.1"
    ac.called_ae_title = "LEGACYPACS"
    ac.calling_ae_title = "DGGATEWAY"
    ac.result = 0
    cx = PresentationContext()
    cx.context_id = 1
    cx.abstract_syntax = CTImageStorage
    cx.transfer_syntax = ["1.2.840.10008.1.2"]
    cx.result = 0
    ac.presentation_context_definition_results_list = [cx]
    ml = prim.MaximumLengthNotification()
    ml.maximum_length_received = 16384
    ac.user_information = [ml]
    pdu = _pdu.A_ASSOCIATE_AC()
    pdu.from_primitive(ac)
    data = pdu.encode()
    out = rewrite_associate(data, parse_associate(data), called="PACS", calling="CT01",
                            strip_identity=True, identity_answer=True)
    after = _decoded(out, _pdu.A_ASSOCIATE_AC)
    answers = [i for i in after.user_information if isinstance(i, prim.UserIdentityNegotiation)]
    assert len(answers) == 1 and not answers[0].server_response
    assert after.called_ae_title.strip() == "PACS"
    assert after.maximum_length_received == 16384


@pytest.mark.parametrize("mangle, why", [
    (lambda d: d[:2] + (76).to_bytes(4, "big") + d[6:82], "overruns"),
    (lambda d: d[:-1], "length does not match"),
    (lambda d: d + b"\x00", "length does not match"),
    (lambda d: d[:10] + b"PACS\x01" + d[15:], "control"),
])
def test_mangled_requests_are_malformed(mangle: object, why: str) -> None:
    with pytest.raises(MalformedPdu, match=why):
        parse_associate(mangle(_request()))  # type: ignore[operator]


def test_identity_whose_lengths_lie_is_malformed() -> None:
    data = bytearray(_request(syntaxes=(Verification,)))
    at = data.index(b"\x58\x00")  # user identity sub-item
    data[at + 6 : at + 8] = (200).to_bytes(2, "big")  # primary field length past the sub-item
    with pytest.raises(MalformedPdu, match="primary field"):
        parse_associate(bytes(data))


def test_random_corruption_is_malformed_or_parsed_never_a_crash() -> None:
    data = _request(syntaxes=(Verification, CTImageStorage))
    rng = random.Random(7)
    for _ in range(3000):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        try:
            view = parse_associate(bytes(mutated))
        except MalformedPdu:
            continue
        rewrite_associate(bytes(mutated), view, called="A", calling="B", strip_identity=True)


def test_contexts_and_protocol_version_are_read() -> None:
    data = bytearray(_request(syntaxes=(Verification, CTImageStorage)))
    view = parse_associate(bytes(data))
    assert view.contexts == {1: Verification, 3: CTImageStorage}
    assert view.protocol_version == 1
    data[6:8] = (2).to_bytes(2, "big")
    assert parse_associate(bytes(data)).protocol_version == 2


def test_a_context_id_proposed_twice_is_malformed() -> None:
    """Which abstract syntax context 1 has would depend on the reader (first or last)."""
    data = bytearray(_request(identity=False, syntaxes=(Verification, CTImageStorage)))
    first = 74 + 4 + 21  # after the header and the application context item
    assert data[first] == 0x20
    second = data.index(bytes([0x20, 0]), first + 1)
    assert data[second + 4] == 3
    data[second + 4] = 1
    with pytest.raises(MalformedPdu, match="given twice"):
        parse_associate(bytes(data))
