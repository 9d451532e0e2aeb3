"""Legitimate traffic from every real SCU available here still passes the gateway's strict
command-set reading: DCMTK storescu/findscu/movescu/getscu, pynetdicom's apps, GDCM's gdcmscu
and odil, and a pynetdicom AE proposing 120 presentation contexts with SCP/SCU role selection,
an asynchronous operations window and SOP class extended negotiation items.

The backend is DCMTK's dcmqrscp (FIND/MOVE/GET/STORE) with one C-MOVE destination per SCU
that can be one; the truth is checked on the far side: files stored in dcmqrscp's archive,
files received by the C-MOVE/C-GET SCU, and the same C-FIND sent straight to dcmqrscp.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmwrite
from pynetdicom import AE, StoragePresentationContexts, build_role
from pynetdicom.pdu_primitives import (
    AsynchronousOperationsWindowNegotiation,
    SOPClassCommonExtendedNegotiation,
    SOPClassExtendedNegotiation,
)
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    Verification,
)

from dicomguard.testing.base import find_binary
from dicomguard.testing.dcmtk import DcmqrscpServer
from dicomguard.testing.loopback import free_port, lab_address

from .scu import ct_instance, patient_query

ADMIN = "ADMIN1"
DESTINATIONS = ("DGMOVE1", "DGMOVE2", "DGMOVE3")


def _run(argv: list[str], timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def qr() -> Iterator[DcmqrscpServer]:
    if find_binary("dcmqrscp") is None:
        pytest.skip("dcmqrscp not installed")
    ports = {aet: free_port("127.0.0.1") for aet in DESTINATIONS}
    server = DcmqrscpServer(lab_address(33), move_destinations=list(ports.items()))
    server.move_ports = ports  # type: ignore[attr-defined]
    with server:
        yield server


@pytest.fixture
def gw(raw_config: dict[str, Any], gateway_factory: Any, qr: DcmqrscpServer) -> Any:
    for aet in (ADMIN, "DGMOVE3"):  # gdcmscu moves to its own calling AE title
        raw_config["client"].append({"calling_aet": aet, "sources": ["127.0.0.1/32"],
                                     "identity": "admin"})
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": qr.host,
                            "backend_port": qr.port, "backend_aet": qr.aet,
                            "calling_aet": "DGVIEWER"}]
    return gateway_factory(raw_config)


def _archive(qr: DcmqrscpServer) -> set[str]:
    return {p.name for p in (qr.workdir / qr.aet).iterdir() if p.name != "index.dcm"}


def _files(tmp_path: Path, n: int, base: int) -> list[str]:
    out = []
    for i in range(n):
        path = tmp_path / f"ct{base + i}.dcm"
        dcmwrite(path, ct_instance(base + i), enforce_file_format=True)
        out.append(str(path))
    return out


def _pending(text: str) -> int:
    return len(re.findall(r"Find Response: \d+ \(Pending\)", text))


def _patient_id(qr: DcmqrscpServer) -> str:
    return qr.patients[0].patient_id


def _assert_no_gateway_aborts(gw: Any) -> None:
    aborts = gw.gateway.metrics.aborts
    assert aborts.value(reason="command-set") == 0
    assert aborts.value(reason="protocol") == 0


# -- DCMTK ------------------------------------------------------------------------------------
def test_dcmtk_storescu_with_its_120_odd_contexts(gw: Any, qr: DcmqrscpServer,
                                                   tmp_path: Path) -> None:
    host, port = gw.address()
    before = _archive(qr)
    done = _run(["storescu", "-d", "-aet", ADMIN, "-aec", "PACS", host, str(port),
                 *_files(tmp_path, 2, 500)])
    assert done.returncode == 0, done.stdout + done.stderr
    proposed = len(re.findall(r"Context ID:\s+\d+", done.stdout + done.stderr))
    assert proposed >= 100, proposed
    assert len(_archive(qr) - before) == 2
    _assert_no_gateway_aborts(gw)


def test_dcmtk_findscu_matches_the_direct_answer(gw: Any, qr: DcmqrscpServer) -> None:
    host, port = gw.address()
    keys = ["-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=*"]
    through = _run(["findscu", "-v", "-P", "-aet", ADMIN, "-aec", "PACS", *keys, host,
                    str(port)])
    direct = _run(["findscu", "-v", "-P", "-aet", "DGVIEWER", "-aec", qr.aet, *keys, qr.host,
                   str(qr.port)])
    assert through.returncode == 0, through.stderr
    assert _pending(through.stderr + through.stdout) == _pending(direct.stderr + direct.stdout)
    assert _pending(direct.stderr + direct.stdout) >= len(qr.patients)
    _assert_no_gateway_aborts(gw)


def test_dcmtk_movescu_and_getscu(gw: Any, qr: DcmqrscpServer, tmp_path: Path) -> None:
    host, port = gw.address()
    keys = ["-k", "QueryRetrieveLevel=PATIENT", "-k", f"PatientID={_patient_id(qr)}"]
    moved = tmp_path / "moved"
    moved.mkdir()
    move_port = qr.move_ports["DGMOVE1"]  # type: ignore[attr-defined]
    done = _run(["movescu", "-v", "-P", "-aet", ADMIN, "-aec", "PACS", "-aem", "DGMOVE1",
                 "--port", str(move_port), "-od", str(moved), *keys, host, str(port)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(moved.iterdir()), done.stdout + done.stderr
    got = tmp_path / "got"
    got.mkdir()
    # getscu proposes its storage contexts with SCP/SCU role selection items
    done = _run(["getscu", "-v", "-P", "-aet", ADMIN, "-aec", "PACS", "-od", str(got), *keys,
                 host, str(port)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert list(got.iterdir()), done.stdout + done.stderr
    _assert_no_gateway_aborts(gw)


# -- pynetdicom's apps ------------------------------------------------------------------------
def _pynetdicom(app: str, *args: str) -> subprocess.CompletedProcess[str]:
    return _run([sys.executable, "-m", "pynetdicom", app, *args])


def test_pynetdicom_apps(gw: Any, qr: DcmqrscpServer, tmp_path: Path) -> None:
    host, port = gw.address()
    common = ["-aet", ADMIN, "-aec", "PACS"]
    keys = ["-k", "QueryRetrieveLevel=PATIENT", "-k", f"PatientID={_patient_id(qr)}"]
    echo = _pynetdicom("echoscu", host, str(port), *common, "-v")
    assert echo.returncode == 0 and "Received Echo Response" in echo.stderr, echo.stderr
    assert "Success" in echo.stderr, echo.stderr
    before = _archive(qr)
    store = _pynetdicom("storescu", host, str(port), *common, "-v", *_files(tmp_path, 1, 600))
    assert store.returncode == 0, store.stderr
    assert len(_archive(qr) - before) == 1, store.stderr
    find = _pynetdicom("findscu", host, str(port), *common, "-v", "-P",
                       "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=*")
    assert find.returncode == 0, find.stderr
    assert find.stderr.count("Pending") >= len(qr.patients), find.stderr
    got = tmp_path / "pyget"
    get = _pynetdicom("getscu", host, str(port), *common, "-v", "-P", *keys, "-od", str(got))
    assert get.returncode == 0, get.stderr
    assert got.exists() and list(got.iterdir()), get.stderr
    moved = tmp_path / "pymove"
    move = _pynetdicom("movescu", host, str(port), *common, "-v", "-P", *keys,
                       "-aem", "DGMOVE2", "--store", "--store-aet", "DGMOVE2",
                       "--store-port", str(qr.move_ports["DGMOVE2"]),  # type: ignore[attr-defined]
                       "-od", str(moved))
    assert move.returncode == 0, move.stderr
    assert moved.exists() and list(moved.iterdir()), move.stderr
    _assert_no_gateway_aborts(gw)


# -- GDCM and odil ----------------------------------------------------------------------------
def _gdcmscu(*args: str) -> str:
    """gdcmscu's debug output (-D prints every PDU code and response command set).

    Debian 12's gdcmscu 3.0.21 aborts (SIGABRT, "ProtocolStream as nullptr is invalid") after
    the A-RELEASE-RP of every association, also straight to a server, so its exit status
    says nothing: success is read from the PDUs it logged.
    """
    done = _run(["gdcmscu", "-D", *args])
    return done.stdout + done.stderr


def _gdcm_ok(text: str) -> bool:
    """Associated (A-ASSOCIATE-AC, PDU 2), released (A-RELEASE-RP, 6), never aborted (7)."""
    return "PDU code: 2" in text and "PDU code: 6" in text and "PDU code: 7" not in text


def test_gdcmscu(gw: Any, qr: DcmqrscpServer, tmp_path: Path) -> None:
    if find_binary("gdcmscu") is None:
        pytest.skip("gdcmscu not installed (apt-get install libgdcm-tools)")
    host, port = gw.address()
    common = ["--aetitle", ADMIN, "--call", "PACS"]
    echo = _gdcmscu("--echo", *common, host, str(port))
    assert _gdcm_ok(echo) and re.search(r"\(0000,0900\) .* 0\s+# 2,1 Status", echo), echo
    before = _archive(qr)
    store = _gdcmscu("--store", *common, "-i", _files(tmp_path, 1, 700)[0], host, str(port))
    assert _gdcm_ok(store), store
    assert len(_archive(qr) - before) == 1
    find = _gdcmscu("--find", "--patientroot", "--patient", *common,
                    "--key", "10,20=*", host, str(port))
    assert _gdcm_ok(find), find
    assert "C-Find was successful." in find
    assert find.count("(US) 65280") >= len(qr.patients), find[-4000:]  # pending (0xFF00)
    moved = tmp_path / "gdcmmove"
    moved.mkdir()
    move = _gdcmscu("--move", "--patientroot", "--patient", "--aetitle", "DGMOVE3", "--call",
                    "PACS", "--port-scp", str(qr.move_ports["DGMOVE3"]),  # type: ignore[attr-defined]
                    "-o", str(moved), "--key", f"10,20={_patient_id(qr)}", host, str(port))
    assert _gdcm_ok(move), move[-4000:]
    assert list(moved.iterdir()), move[-4000:]
    _assert_no_gateway_aborts(gw)


def test_odil(gw: Any, qr: DcmqrscpServer, tmp_path: Path) -> None:
    if find_binary("odil") is None:
        pytest.skip("odil not installed (apt-get install odil)")
    host, port = gw.address()
    echo = _run(["odil", "echo", host, str(port), ADMIN, "PACS"])
    assert echo.returncode == 0, echo.stdout + echo.stderr
    before = _archive(qr)
    store = _run(["odil", "store", host, str(port), ADMIN, "PACS",
                  *_files(tmp_path, 1, 800)])
    assert store.returncode == 0, store.stdout + store.stderr
    assert len(_archive(qr) - before) == 1
    find = _run(["odil", "find", host, str(port), ADMIN, "PACS", "patient",
                 "QueryRetrieveLevel=PATIENT", "PatientID=*"])
    assert find.returncode == 0, find.stdout + find.stderr
    assert _patient_id(qr) in find.stdout + find.stderr
    _assert_no_gateway_aborts(gw)


def test_odil_get_from_orthanc(raw_config: dict[str, Any], gateway_factory: Any,
                               orthanc_open: Any, tmp_path: Path) -> None:
    """odil's C-GET first asks for SOPClassesInStudy, which dcmqrscp does not compute (odil
    0.12.2 then falls back to code that fails in Debian's build before connecting); Orthanc
    answers it, so odil's C-GET with SCP role selection goes through the gateway to Orthanc."""
    if find_binary("odil") is None:
        pytest.skip("odil not installed (apt-get install odil)")
    raw_config["client"].append({"calling_aet": ADMIN, "sources": ["127.0.0.1/32"],
                                 "identity": "admin"})
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": orthanc_open.host,
                            "backend_port": orthanc_open.port,
                            "backend_aet": orthanc_open.aet}]
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    study = orthanc_open.patients[0].studies[0].study_instance_uid
    got = tmp_path / "odilget"
    got.mkdir()
    get = _run(["odil", "get", "-d", str(got), host, str(port), ADMIN, "PACS", "study",
                "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={study}"])
    assert get.returncode == 0, get.stdout + get.stderr
    assert list(got.iterdir()), get.stdout + get.stderr
    _assert_no_gateway_aborts(gw)


# -- negotiation a strict gateway must not trip on ---------------------------------------------
def test_120_contexts_role_selection_async_window_and_extended_negotiation(
    gw: Any, qr: DcmqrscpServer
) -> None:
    ae = AE(ae_title=ADMIN)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 20
    ae.add_requested_context(Verification)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelFind)
    ae.add_requested_context(PatientRootQueryRetrieveInformationModelGet)
    storage = StoragePresentationContexts[:125]
    for cx in storage:
        ae.add_requested_context(cx.abstract_syntax)
    assert len(ae.requested_contexts) == 123
    roles = [build_role(cx.abstract_syntax, scp_role=True) for cx in storage[:40]]
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 5
    window.maximum_number_operations_performed = 5
    ext = SOPClassExtendedNegotiation()
    ext.sop_class_uid = PatientRootQueryRetrieveInformationModelFind
    ext.service_class_application_information = b"\x01\x01\x01"
    common = SOPClassCommonExtendedNegotiation()
    common.sop_class_uid = storage[0].abstract_syntax
    common.service_class_uid = "1.2.840.10008.4.2"  # Storage Service Class
    host, port = gw.address()
    got: list[Any] = []

    def on_store(event: Any) -> int:
        got.append(event.request.AffectedSOPInstanceUID)
        return 0

    from pynetdicom import evt

    assoc = ae.associate(host, port, ae_title="PACS", ext_neg=[*roles, window, ext, common],
                         evt_handlers=[(evt.EVT_C_STORE, on_store)])
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    finds = [s for s, _ in assoc.send_c_find(patient_query(),
                                              PatientRootQueryRetrieveInformationModelFind)]
    assert finds[-1].Status == 0 and len(finds) > len(qr.patients)  # + the ones stored here
    query = patient_query()
    query.PatientID = _patient_id(qr)
    gets = [s for s, _ in assoc.send_c_get(query, PatientRootQueryRetrieveInformationModelGet)]
    assoc.release()
    assert gets[-1].Status == 0, gets[-1]
    assert got, "no C-STORE sub-operation reached the C-GET SCU"
    _assert_no_gateway_aborts(gw)
