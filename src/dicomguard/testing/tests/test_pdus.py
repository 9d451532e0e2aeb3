"""Every canonical vector of testing/pdus.py decodes with pynetdicom's PDU classes to the
fields its comments name, and pynetdicom encodes those fields back to the same bytes."""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pynetdicom import dimse_messages as dm
from pynetdicom import pdu as pdus_of_pynetdicom
from pynetdicom import pdu_items as it
from pynetdicom.dimse_primitives import C_ECHO, C_FIND
from pynetdicom.sop_class import (
    CTImageStorage,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicomguard.dul import codes
from dicomguard.dul import pdu as P
from dicomguard.testing import pdus

IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"


def decoded(cls: Any, data: bytes) -> Any:
    """``data`` decoded by pynetdicom's class ``cls``, checked to re-encode to ``data``."""
    obj = cls()
    obj.decode(data)
    assert obj.encode() == data, cls.__name__
    return obj


def user_items(pdu: Any) -> dict[type, Any]:
    return {type(i): i for i in pdu.user_information.user_data}


def test_associate_rq_fields() -> None:
    rq = decoded(pdus_of_pynetdicom.A_ASSOCIATE_RQ, pdus.A_ASSOCIATE_RQ)
    assert (rq.protocol_version, rq.called_ae_title, rq.calling_ae_title) == (
        1, "ANY-SCP", "DICOMGUARD")
    assert rq.application_context_name == "1.2.840.10008.3.1.1.1"
    contexts = [(c.context_id, c.abstract_syntax, c.transfer_syntax)
                for c in rq.presentation_context]
    assert contexts == [
        (1, Verification, [IMPLICIT]),
        (3, StudyRootQueryRetrieveInformationModelFind, [IMPLICIT, EXPLICIT]),
        (5, CTImageStorage, [IMPLICIT]),
    ]
    ui = user_items(rq)
    assert ui[it.MaximumLengthSubItem].maximum_length_received == 16384
    assert ui[it.ImplementationClassUIDSubItem].implementation_class_uid == (
        "2.25.305828488182648779632024563416215404731")
    assert ui[it.ImplementationVersionNameSubItem].implementation_version_name == (
        "DICOMGUARD_010")
    window = ui[it.AsynchronousOperationsWindowSubItem]
    assert (window.maximum_number_operations_invoked,
            window.maximum_number_operations_performed) == (1, 1)
    role = ui[it.SCP_SCU_RoleSelectionSubItem]
    assert (role.sop_class_uid, role.scu_role, role.scp_role) == (CTImageStorage, 0, 1)
    ext = ui[it.SOPClassExtendedNegotiationSubItem]
    assert ext.sop_class_uid == StudyRootQueryRetrieveInformationModelFind
    assert ext.service_class_application_information == b"\x01"
    identity = ui[it.UserIdentitySubItemRQ]
    assert (identity.user_identity_type, identity.positive_response_requested) == (2, 1)
    assert (identity.primary_field, identity.secondary_field) == (b"dgtest", b"not-a-secret")


def test_associate_ac_fields() -> None:
    ac = decoded(pdus_of_pynetdicom.A_ASSOCIATE_AC, pdus.A_ASSOCIATE_AC)
    results = [(c.context_id, c.result, c.transfer_syntax) for c in ac.presentation_context]
    assert results == [(1, 0, IMPLICIT), (3, 0, EXPLICIT), (5, 3, IMPLICIT)]
    ui = user_items(ac)
    assert ui[it.MaximumLengthSubItem].maximum_length_received == 16384
    assert ui[it.ImplementationClassUIDSubItem].implementation_class_uid == (
        "1.2.826.0.1.3680043.9.3811.3.0.4")
    assert ui[it.ImplementationVersionNameSubItem].implementation_version_name == (
        "PYNETDICOM_304")
    assert ui[it.SCP_SCU_RoleSelectionSubItem].scp_role == 1
    assert ui[it.UserIdentitySubItemAC].server_response == b""


@pytest.mark.parametrize(("vector", "reject"), [
    (pdus.A_ASSOCIATE_RJ_CALLED_AET, codes.REJECT_CALLED_AET),
    (pdus.A_ASSOCIATE_RJ_CALLING_AET, codes.REJECT_CALLING_AET),
    (pdus.A_ASSOCIATE_RJ_NO_REASON, codes.REJECT_NO_REASON),
    (pdus.A_ASSOCIATE_RJ_LOCAL_LIMIT, codes.REJECT_LOCAL_LIMIT),
    (pdus.A_ASSOCIATE_RJ_USER_IDENTITY, codes.REJECT_USER_IDENTITY),
])
def test_associate_rj_triples(vector: bytes, reject: codes.Reject) -> None:
    rj = decoded(pdus_of_pynetdicom.A_ASSOCIATE_RJ, vector)
    assert (rj.result, rj.source, rj.reason_diagnostic) == (
        reject.result, reject.source, reject.reason)


@pytest.mark.parametrize(("vector", "source", "reason"), [
    (pdus.A_ABORT_INVALID_PARAMETER, codes.AbortSource.SERVICE_PROVIDER,
     codes.AbortReason.INVALID_PDU_PARAMETER_VALUE),
    (pdus.A_ABORT_UNEXPECTED_PDU, codes.AbortSource.SERVICE_PROVIDER,
     codes.AbortReason.UNEXPECTED_PDU),
    (pdus.A_ABORT_SERVICE_USER, codes.AbortSource.SERVICE_USER, codes.AbortReason.NOT_SPECIFIED),
])
def test_abort_source_and_reason(vector: bytes, source: int, reason: int) -> None:
    abort = decoded(pdus_of_pynetdicom.A_ABORT_RQ, vector)
    assert (abort.source, abort.reason_diagnostic) == (source, reason)
    assert P.abort_pdu(source, reason) == vector  # dicomguard's encoder agrees


def test_release_pdus_are_dicomguards_constants() -> None:
    decoded(pdus_of_pynetdicom.A_RELEASE_RQ, pdus.A_RELEASE_RQ)
    decoded(pdus_of_pynetdicom.A_RELEASE_RP, pdus.A_RELEASE_RP)
    assert (P.RELEASE_RQ, P.RELEASE_RP) == (pdus.A_RELEASE_RQ, pdus.A_RELEASE_RP)


def _pynetdicom_command(primitive: Any, context_id: int, **fields: Any) -> bytes:
    """The command set pynetdicom encodes for a DIMSE ``primitive`` with ``fields`` set
    (through its own primitive -> message path, as its DIMSE provider does)."""
    for name, value in fields.items():
        setattr(primitive, name, value)
    msg = _MESSAGES[type(primitive).__name__, "Status" in fields]()
    msg.primitive_to_message(primitive)
    first = next(iter(msg.encode_msg(context_id, 16384)))  # a P-DATA primitive
    return bytes(first.presentation_data_value_list[0][1][1:])


_MESSAGES = {("C_ECHO", False): dm.C_ECHO_RQ, ("C_ECHO", True): dm.C_ECHO_RSP,
             ("C_FIND", False): dm.C_FIND_RQ}


def _pdvs(vector: bytes) -> list[tuple[int, int, bytes]]:
    p_data = decoded(pdus_of_pynetdicom.P_DATA_TF, vector)
    return [(v.presentation_context_id, v.presentation_data_value[0],
             bytes(v.presentation_data_value[1:]))
            for v in p_data.presentation_data_value_items]


def test_c_echo_rq_and_rsp_are_what_pynetdicom_encodes() -> None:
    [(cid, control, command)] = _pdvs(pdus.P_DATA_TF_C_ECHO_RQ)
    assert (cid, control) == (1, pdus.COMMAND_LAST)
    assert command == _pynetdicom_command(C_ECHO(), 1, MessageID=1,
                                          AffectedSOPClassUID=Verification)
    [(cid, control, command)] = _pdvs(pdus.P_DATA_TF_C_ECHO_RSP)
    assert (cid, control) == (1, pdus.COMMAND_LAST)
    assert command == _pynetdicom_command(C_ECHO(), 1, MessageIDBeingRespondedTo=1,
                                          AffectedSOPClassUID=Verification, Status=0)


def _find_with_identifier() -> C_FIND:
    find = C_FIND()
    find.Identifier = BytesIO(b"\x00")  # present: pynetdicom sets CommandDataSetType 0001H
    return find


def test_c_find_rq_command_and_identifier() -> None:
    (cid, control, command), (did, dcontrol, identifier) = _pdvs(pdus.P_DATA_TF_C_FIND_RQ)
    assert (cid, control, did, dcontrol) == (3, pdus.COMMAND_LAST, 3, pdus.DATA_LAST)
    assert command == _pynetdicom_command(
        _find_with_identifier(), 3, MessageID=1, Priority=0,
        AffectedSOPClassUID=StudyRootQueryRetrieveInformationModelFind)
    ds = read_dataset(BytesIO(identifier), is_implicit_VR=True, is_little_endian=True)
    expected = Dataset()
    expected.StudyDate = ""
    expected.QueryRetrieveLevel = "STUDY"
    expected.StudyInstanceUID = ""
    assert ds == expected


def test_the_issue_11_command_set_holds_two_command_fields() -> None:
    raw = pdus.C_FIND_RQ_COMMAND_FIELD_TWICE
    assert int.from_bytes(raw[8:12], "little") == len(raw) - 12  # CommandGroupLength
    elements, pos = [], 0
    while pos < len(raw):  # implicit VR LE: group, element, 4-byte length, value
        group, elem, length = struct.unpack_from("<HHL", raw, pos)
        elements.append(((group, elem), raw[pos + 8 : pos + 8 + length]))
        pos += 8 + length
    assert pos == len(raw)
    assert [v for tag, v in elements if tag == (0, 0x0100)] == [pdus.us(0x0020), pdus.us(0x0030)]


def test_builders_make_the_vectors() -> None:
    echo = pdus.P_DATA_TF_C_ECHO_RQ
    assert pdus.p_data_tf((1, pdus.COMMAND_LAST, echo[12:])) == echo
    assert pdus.pdu(P.A_RELEASE_RQ, bytes(4)) == pdus.A_RELEASE_RQ
    assert pdus.item(0x10, b"1.2.840.10008.3.1.1.1") == pdus.A_ASSOCIATE_RQ[74:99]
    assert pdus.element(0x0100, pdus.us(0x0030)) == echo[50:60]
