"""Real peers on both sides of the gateway: DCMTK storescu/echoscu/findscu/movescu as clients,
DCMTK storescp and Orthanc as backends, plain and TLS."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmread, dcmwrite

from dicomguard.testing.base import LoopbackServer
from dicomguard.testing.orthanc import OrthancServer

from .conftest import GATEWAY_HOST, PASSCODE
from .scu import ct_instance

STORESCU = "/usr/bin/storescu"
ECHOSCU = "/usr/bin/echoscu"
FINDSCU = "/usr/bin/findscu"
MOVESCU = "/usr/bin/movescu"


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    # -d: DCMTK's debug output names every response and status, which the asserts read
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def _route_to(raw: dict[str, Any], server: LoopbackServer) -> dict[str, Any]:
    raw["route"] = [{"called_aet": "PACS", "backend_host": server.host,
                     "backend_port": server.port, "backend_aet": server.aet}]
    return raw


def _files(tmp_path: Path, n: int) -> list[str]:
    out = []
    for i in range(n):
        path = tmp_path / f"ct{i}.dcm"
        dcmwrite(path, ct_instance(100 + i, rows=64, columns=64), enforce_file_format=True)
        out.append(str(path))
    return out


def _received(server: Any) -> list[Path]:
    return list(Path(server.output_dir).glob("*"))


@pytest.fixture
def storescp_backend(storescp_server: Any) -> Any:
    for f in _received(storescp_server):
        f.unlink()
    return storescp_server


def test_storescu_to_storescp_through_gateway(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_backend: Any, tmp_path: Path
) -> None:
    gw = gateway_factory(_route_to(raw_config, storescp_backend))
    host, port = gw.address()
    done = _run([STORESCU, "-aet", "CT01", "-aec", "PACS", host, str(port),
                 *_files(tmp_path, 3)])
    assert done.returncode == 0, done.stderr
    assert len(_received(storescp_backend)) == 3


@pytest.mark.parametrize(("tls", "big_pdu"), [(False, False), (True, False), (False, True),
                                              (True, True)],
                         ids=["plain", "tls", "plain-128k-pdu", "tls-128k-pdu"])
def test_large_instances_stream_through_byte_for_byte(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_backend: Any, tmp_path: Path,
    pki: dict[str, Any], tls: bool, big_pdu: bool, request: pytest.FixtureRequest,
) -> None:
    # ~0.5 MB each: every data PDU takes the cut-through path of the relay; with 128 KiB PDUs
    # on plain TCP the rest of each PDU body is spliced socket to socket by the kernel
    backend = storescp_backend
    if big_pdu:
        backend = request.getfixturevalue("storescp_big_pdu_server")
        for f in _received(backend):
            f.unlink()
    if tls:
        raw_config["listen"] = [{"address": GATEWAY_HOST, "port": 0, "tls": True}]
        raw_config["tls"] = {"cert": str(pki["server"].cert), "key": str(pki["server"].key)}
    gw = gateway_factory(_route_to(raw_config, backend))
    host, port = gw.address()
    sent = []
    for i in range(3):
        ds = ct_instance(200 + i, rows=512, columns=512)
        ds.PixelData = bytes((j * 7 + i) % 251 for j in range(512 * 512 * 2))
        path = tmp_path / f"big{i}.dcm"
        dcmwrite(path, ds, enforce_file_format=True)
        sent.append(ds)
    tls_args = ["+tla", "+cf", str(pki["ca"])] if tls else []
    done = _run([STORESCU, *tls_args, "-pdu", "131072", "-aet", "CT01", "-aec", "PACS", host,
                 str(port), *(str(tmp_path / f"big{i}.dcm") for i in range(3))])
    assert done.returncode == 0, done.stderr
    got = {ds.SOPInstanceUID: ds.PixelData for ds in map(dcmread, _received(backend))}
    assert got == {ds.SOPInstanceUID: ds.PixelData for ds in sent}


def test_storescu_tls_with_passcode(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_backend: Any, tmp_path: Path,
    pki: dict[str, Any],
) -> None:
    raw_config["listen"] = [{"address": GATEWAY_HOST, "port": 0, "tls": True}]
    raw_config["tls"] = {"cert": str(pki["server"].cert), "key": str(pki["server"].key)}
    raw_config["auth"] = {"require_tls": True}
    raw_config["identity"]["viewer"]["operations"].append("STORE")
    gw = gateway_factory(_route_to(raw_config, storescp_backend))
    host, port = gw.address()
    tls = ["+tla", "+cf", str(pki["ca"])]
    # ROAMING has no identity of its own: only the passcode lets it in
    done = _run([STORESCU, *tls, "-aet", "ROAMING", "-aec", "PACS", "--user", "alice",
                 "--password", PASSCODE, host, str(port), *_files(tmp_path, 2)])
    assert done.returncode == 0, done.stderr
    assert len(_received(storescp_backend)) == 2
    wrong = _run([STORESCU, *tls, "-aet", "ROAMING", "-aec", "PACS", "--user", "alice",
                  "--password", "guess", host, str(port), *_files(tmp_path, 1)])
    assert wrong.returncode != 0
    assert "Association Rejected" in wrong.stderr + wrong.stdout


def test_echoscu_refusals_name_the_reason(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_backend: Any
) -> None:
    gw = gateway_factory(_route_to(raw_config, storescp_backend))
    host, port = gw.address()
    ok = _run([ECHOSCU, "-aet", "CT01", "-aec", "PACS", host, str(port)])
    assert ok.returncode == 0, ok.stderr
    called = _run([ECHOSCU, "-aet", "CT01", "-aec", "GUESSME", host, str(port)])
    assert "Called AE Title Not Recognized" in called.stderr + called.stdout
    calling = _run([ECHOSCU, "-aet", "NOBODY", "-aec", "PACS", host, str(port)])
    assert "Calling AE Title Not Recognized" in calling.stderr + calling.stdout


@pytest.fixture(scope="module")
def orthanc() -> Any:
    from dicomguard.testing.base import find_binary
    from dicomguard.testing.loopback import lab_address

    if find_binary("Orthanc") is None:
        pytest.skip("Orthanc not installed")
    # its own address: the session-wide orthanc_open may have data stored by other tests
    with OrthancServer(lab_address(31), preset="open") as server:
        yield server


def _pending(output: str) -> int:
    return len(re.findall(r"Find Response: \d+ \(Pending\)", output))


def test_findscu_to_orthanc_is_capped(
    raw_config: dict[str, Any], gateway_factory: Any, orthanc: Any
) -> None:
    raw_config["identity"]["viewer"]["find_max_results"] = 5
    gw = gateway_factory(_route_to(raw_config, orthanc))
    host, port = gw.address()
    done = _run([FINDSCU, "-v", "-P", "-aet", "VIEWER1", "-aec", "PACS",
                 "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=*", "-k", "PatientName",
                 host, str(port)])
    text = done.stdout + done.stderr
    assert len(orthanc.patients) > 5
    assert _pending(text) == 5, text
    assert "Refused: OutOfResources" in text or "a700" in text.lower(), text


def test_findscu_to_orthanc_uncapped_sees_everything(
    raw_config: dict[str, Any], gateway_factory: Any, orthanc: Any
) -> None:
    raw_config["identity"]["viewer"]["find_max_results"] = 0
    gw = gateway_factory(_route_to(raw_config, orthanc))
    host, port = gw.address()
    done = _run([FINDSCU, "-v", "-P", "-aet", "VIEWER1", "-aec", "PACS",
                 "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=*", host, str(port)])
    assert done.returncode == 0, done.stderr
    assert _pending(done.stdout + done.stderr) == len(orthanc.patients)


def test_findscu_as_modality_is_refused(
    raw_config: dict[str, Any], gateway_factory: Any, orthanc: Any
) -> None:
    gw = gateway_factory(_route_to(raw_config, orthanc))
    host, port = gw.address()
    done = _run([FINDSCU, "-v", "-P", "-aet", "CT01", "-aec", "PACS",
                 "-k", "QueryRetrieveLevel=PATIENT", "-k", "PatientID=*", host, str(port)])
    text = done.stdout + done.stderr
    assert _pending(text) == 0
    assert "Refused: OutOfResources" in text, text


def test_movescu_destination_allow_list_against_orthanc(
    raw_config: dict[str, Any], gateway_factory: Any, orthanc: Any
) -> None:
    gw = gateway_factory(_route_to(raw_config, orthanc))
    host, port = gw.address()
    base = [MOVESCU, "-v", "-P", "-aet", "VIEWER1", "-aec", "PACS",
            "-k", "QueryRetrieveLevel=PATIENT", "-k", f"PatientID={orthanc.patients[0].patient_id}"]
    refused = _run([*base, "-aem", "HARVESTER", host, str(port)])
    assert "MoveDestinationUnknown" in refused.stdout + refused.stderr
    ops = gw.gateway.metrics.operations
    assert ops.value(operation="MOVE", result="refused") == 1
    # An allowed destination reaches Orthanc (which does not know it: its own failure status)
    _run([*base, "-aem", "VIEWER1", host, str(port)])
    assert ops.value(operation="MOVE", result="failed") + ops.value(
        operation="MOVE", result="ok") == 1


def test_storescu_to_orthanc(
    raw_config: dict[str, Any], gateway_factory: Any, orthanc: Any, tmp_path: Path
) -> None:
    gw = gateway_factory(_route_to(raw_config, orthanc))
    host, port = gw.address()
    before = len(orthanc.rest("/instances"))
    done = _run([STORESCU, "-aet", "CT01", "-aec", "PACS", host, str(port),
                 *_files(tmp_path, 2)])
    assert done.returncode == 0, done.stderr
    assert len(orthanc.rest("/instances")) == before + 2
