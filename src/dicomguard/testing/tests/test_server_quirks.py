"""Server behaviours the scanner must know about, pinned with fresh servers.

Fresh (function-scoped) servers are used where the behaviour depends on history: dcmqrscp
rejects cleanly only until its first accepted association (see DcmqrscpServer).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomguard.knowledge.synthetic import instance_dataset, make_patients
from dicomguard.testing.reference import scu_association
from dicomguard.testing.require import need_binaries
from dicomguard.testing.servers import (
    REASON_CALLED_AET,
    REASON_CALLING_AET,
    DcmqrscpServer,
    LoopbackServer,
    OrthancServer,
    PynetdicomFindServer,
    accepts,
    lab_address,
)
from dicomguard.testing.tests.scu import associate, find, study_query


def live_group_members(pgid: int) -> list[int]:
    """PIDs in process group ``pgid`` that are not zombies.

    Zombies are left out: a forked child whose parent we killed is re-parented to PID 1, and
    reaping it is PID 1's job (a container's init may not do it); it holds no port or file.
    """
    live = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            live.append(int(stat.parent.name))
    return live


def test_orthanc_locked_reason_codes(orthanc_locked: LoopbackServer) -> None:
    s = orthanc_locked
    called = associate(s.host, s.port, "DGNOSUCHAE", "DGVIEWER", retries_on_abort=5)
    calling = associate(s.host, s.port, s.aet, "DGSTRANGER", retries_on_abort=5)
    both = associate(s.host, s.port, "DGNOSUCHAE", "DGSTRANGER", retries_on_abort=5)
    assert (called.rejected, called.reject_source, called.reject_reason) == (
        True, 1, REASON_CALLED_AET)
    assert (calling.rejected, calling.reject_source, calling.reject_reason) == (
        True, 1, REASON_CALLING_AET)
    assert both.reject_reason == REASON_CALLED_AET  # the called AE is checked first


def test_orthanc_open_answers_any_titles(orthanc_open: LoopbackServer) -> None:
    s = orthanc_open
    studies, status = find(s.host, s.port, "ANYTHING", "ANYONE", study_query())
    assert status == 0 and len(studies) == s.ground_truth.studies


def test_orthanc_limit_find_results_ends_with_cancel_status() -> None:
    """With LimitFindResults=N Orthanc sends N matches, then status 0xFE00 (not Success)."""
    need_binaries("Orthanc")
    with OrthancServer(lab_address(6), limit_find_results=5) as s:
        studies, status = find(s.host, s.port, s.aet, "DGSCANNER", study_query())
    assert len(studies) == 5 < s.ground_truth.studies
    assert status == 0xFE00


def test_dcmqrscp_uses_reason_7_for_both_checks() -> None:
    """dcmqrscp rejects with reason 7 for both checks (when its reject does not fail)."""
    need_binaries("dcmqrscp", "dcmqridx")
    with DcmqrscpServer(lab_address(7), patients=[]) as s:
        called = associate(s.host, s.port, "DGNOSUCHAE", "DGVIEWER", retries_on_abort=5)
        calling = associate(s.host, s.port, s.aet, "DGSTRANGER", retries_on_abort=5)
    assert (called.rejected, called.reject_source, called.reject_reason) == (
        True, 1, REASON_CALLED_AET)
    assert (calling.rejected, calling.reject_source, calling.reject_reason) == (
        True, 1, REASON_CALLED_AET)
    assert s.reject_reasons == {"called_aet": 7, "calling_aet": 7}


def test_storescp_stores_from_any_titles(storescp_server: LoopbackServer) -> None:
    s = storescp_server
    p = make_patients(99, 1)[0]
    ds = instance_dataset(p, p.studies[0])
    with scu_association(s.host, s.port, (ds.SOPClassUID,), calling="DGANYONE",
                         called="NOTDGSTORE") as assoc:
        assert assoc.is_established
        status = assoc.send_c_store(ds)
    assert status.Status == 0x0000
    received = list(Path(s.output_dir).iterdir())  # type: ignore[attr-defined]
    assert received


@pytest.mark.parametrize("kind", ["orthanc", "dcmqrscp", "storescp", "pynetdicom"])
def test_stop_leaves_nothing_behind(kind: str) -> None:
    host = lab_address(8)
    server: LoopbackServer
    if kind == "orthanc":
        need_binaries("Orthanc")
        server = OrthancServer(host, patients=[])
    elif kind == "dcmqrscp":
        need_binaries("dcmqrscp")
        server = DcmqrscpServer(host, patients=[])
    elif kind == "storescp":
        need_binaries("storescp")
        from dicomguard.testing.servers import StorescpServer

        server = StorescpServer(host)
    else:
        server = PynetdicomFindServer(host, patients=[])
    with server:
        proc = getattr(server, "_proc", None)
        workdir = getattr(server, "workdir", None)
        assert associate(server.host, server.port, server.aet, "DGVIEWER").established
    assert not accepts(server.host, server.port)
    if proc is not None:
        assert proc.poll() is not None
        assert live_group_members(proc.pid) == []  # no forked child of the group survives
    if workdir is not None:
        assert not workdir.exists()
