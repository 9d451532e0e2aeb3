"""wlmscpfs really serves its synthetic worklist to any caller that names its AE title.

Checked with DCMTK findscu -W (calling AE STRANGER): called AE OFFIS (its example title) gets
one "Find Response" per item and "Received Final Find Response (Success)"; called AE WRONG
gets "Association Rejected ... Rejected Permanent, Source: Service User".
"""

from __future__ import annotations

import subprocess

import pytest

from dicomguard.testing.base import find_binary


def _findscu_worklist(server, called: str) -> str:
    binary = find_binary("findscu")
    if binary is None:
        pytest.skip("findscu (dcmtk) not installed")
    done = subprocess.run(
        [binary, "-v", "-W", "-aet", "STRANGER", "-aec", called, "-k", "AccessionNumber",
         "-k", "ScheduledProcedureStepSequence[0].Modality", server.host, str(server.port)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    return done.stdout + done.stderr


def test_worklist_answers_any_calling_ae_with_every_item(wlmscpfs_server) -> None:
    out = _findscu_worklist(wlmscpfs_server, wlmscpfs_server.aet)
    items = sum(len(p.studies) for p in wlmscpfs_server.patients)  # one item per study
    assert out.count("Find Response:") == items
    assert "Received Final Find Response (Success)" in out


def test_unknown_called_ae_is_rejected(wlmscpfs_server) -> None:
    out = _findscu_worklist(wlmscpfs_server, "WRONG")
    assert "Association Rejected" in out and "Source: Service User" in out
