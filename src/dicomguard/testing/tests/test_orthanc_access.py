"""The truth about Orthanc's per-operation access checks, measured with DCMTK's own SCUs.

The scanner's verdicts on the ``default``, ``modalities`` and ``worklist`` presets are compared
with :attr:`OrthancServer.open_to_stranger`; these tests make sure that dict is what DCMTK 3.6.7
(an independent implementation) sees. Measured on Orthanc 1.10.1 (Debian), calling AE STRANGER:

* ``echoscu``: exit 0 (Success) on every preset;
* ``findscu -S`` / ``-P`` at defaults: "0006:0317 Peer aborted Association"; Orthanc's log says
  "DICOM authorization rejected for AET STRANGER ... not listed in DicomModalities";
* ``movescu`` / ``getscu`` of a nonexistent study at defaults: "Peer aborted Association";
  with DicomAlwaysAllowMove/Get: "Failed: UnableToProcess" (0xC000: processed, no match);
* ``findscu -W`` with the worklist plugin and DicomAlwaysAllowFindWorklist false: aborted,
  while ``findscu -S`` on the same server gets its answers.
"""

from __future__ import annotations

import subprocess

import pytest

from dicomguard.testing.base import find_binary
from dicomguard.testing.orthanc import KNOWN_VIEWER_AET, OrthancServer

STRANGER = "STRANGER"
ABORTED = "Peer aborted Association"


def _run(tool: str, server: OrthancServer, *args: str, calling: str = STRANGER) -> str:
    binary = find_binary(tool)
    if binary is None:
        pytest.skip(f"{tool} (dcmtk) not installed")
    done = subprocess.run(
        [binary, "-v", "-aet", calling, "-aec", server.aet, *args, server.host, str(server.port)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return done.stdout + done.stderr


def _find(server: OrthancServer, model: str, calling: str = STRANGER) -> str:
    level = {"-S": "STUDY", "-P": "PATIENT", "-W": None}[model]
    keys = ["-k", "AccessionNumber"] if level is None else [
        "-k", f"QueryRetrieveLevel={level}", "-k",
        "StudyInstanceUID" if level == "STUDY" else "PatientID",
    ]
    return _run("findscu", server, model, *keys, calling=calling)


def _retrieve(tool: str, server: OrthancServer) -> str:
    keys = ["-S", "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID=2.25.1234567"]
    if tool == "movescu":
        keys += ["-aem", "DGNOWHERE"]
    return _run(tool, server, *keys)


@pytest.mark.parametrize("fixture", ["orthanc_default", "orthanc_modalities"])
def test_a_strangers_find_move_get_are_aborted_but_echo_answered(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server: OrthancServer = request.getfixturevalue(fixture)
    assert "Received Echo Response (Success)" in _run("echoscu", server)
    for model in ("-S", "-P"):
        assert ABORTED in _find(server, model)
    for tool in ("movescu", "getscu"):
        assert ABORTED in _retrieve(tool, server)
    truth = server.open_to_stranger
    assert truth["verification"] and not truth["find_study_root"] and not truth["move"]


def test_the_declared_modality_gets_its_find_answered(orthanc_modalities: OrthancServer) -> None:
    out = _find(orthanc_modalities, "-S", calling=KNOWN_VIEWER_AET)
    assert ABORTED not in out
    assert out.count("Find Response:") == orthanc_modalities.ground_truth.studies
    assert "Received Final Find Response (Success)" in out


def test_worklist_refused_while_query_retrieve_is_answered(orthanc_worklist: OrthancServer) -> None:
    server = orthanc_worklist
    assert ABORTED in _find(server, "-W")
    out = _find(server, "-S")
    assert ABORTED not in out and out.count("Find Response:") == server.ground_truth.studies
    assert "Received Final Find Response (Success)" in out
    assert "UnableToProcess" in _retrieve("movescu", server)
    assert "UnableToProcess" in _retrieve("getscu", server)
    truth = server.open_to_stranger
    assert truth["find_study_root"] and not truth["worklist"]
