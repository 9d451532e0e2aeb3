"""The canonical vectors are what real servers speak: Orthanc 1.10.1, DCMTK 3.6.7 storescp and
pynetdicom's SCP accept the canonical A-ASSOCIATE-RQ, answer the canonical C-ECHO-RQ with
Success and the canonical A-RELEASE-RQ with exactly the canonical A-RELEASE-RP."""

from __future__ import annotations

import socket
import struct
from io import BytesIO

import pytest
from pydicom.filereader import read_dataset
from pynetdicom import pdu as pdus_of_pynetdicom

from dicomguard.testing import pdus
from dicomguard.testing.base import LoopbackServer


def _read_pdu(sock: socket.socket) -> bytes:
    """One whole PDU (header and body), read by its length as every DUL does."""
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack(">L", data[2:6])[0]:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize("fixture", ["orthanc_open", "storescp_server", "pynetdicom_scp"])
def test_real_servers_answer_the_canonical_vectors(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server: LoopbackServer = request.getfixturevalue(fixture)
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(pdus.A_ASSOCIATE_RQ)
        ac = pdus_of_pynetdicom.A_ASSOCIATE_AC()
        ac.decode(_read_pdu(sock))
        verification = [c for c in ac.presentation_context if c.context_id == 1]
        assert [c.result for c in verification] == [0], ac  # context 1 accepted

        sock.sendall(pdus.P_DATA_TF_C_ECHO_RQ)
        answer = pdus_of_pynetdicom.P_DATA_TF()
        answer.decode(_read_pdu(sock))
        [pdv] = answer.presentation_data_value_items
        assert pdv.presentation_context_id == 1
        assert pdv.presentation_data_value[0] == pdus.COMMAND_LAST
        command = read_dataset(BytesIO(pdv.presentation_data_value[1:]), True, True)
        assert (command.CommandField, command.MessageIDBeingRespondedTo, command.Status) == (
            0x8030, 1, 0x0000)

        sock.sendall(pdus.A_RELEASE_RQ)
        assert _read_pdu(sock) == pdus.A_RELEASE_RP


def test_orthanc_checking_the_called_ae_sends_the_canonical_reject(
    orthanc_locked: LoopbackServer,
) -> None:
    """The canonical RQ calls "ANY-SCP"; an Orthanc that checks the called AE title answers
    with exactly the canonical A-ASSOCIATE-RJ (1, 1, 7)."""
    with socket.create_connection((orthanc_locked.host, orthanc_locked.port), timeout=10) as s:
        s.sendall(pdus.A_ASSOCIATE_RQ)
        assert _read_pdu(s) == pdus.A_ASSOCIATE_RJ_CALLED_AET
