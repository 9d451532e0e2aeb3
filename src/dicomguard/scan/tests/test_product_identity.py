"""Orthanc is named Orthanc, though its A-ASSOCIATE-AC says DCMTK.

Truth, with independent tools: ``echoscu -d`` against Orthanc 1.10.1 prints "Their
Implementation Class UID: 1.2.276.0.7230010.3.0.3.6.7" and "Their Implementation Version Name:
OFFIS_DCMTK_367" (the AC says DCMTK); ``dpkg-query -W orthanc`` says 1.10.1+dfsg-2+deb12u1 (the
product is Orthanc 1.10.1); against storescp the same AC comes from DCMTK itself.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.web import WebOptions
from dicomguard.testing.base import find_binary

T = Timeouts(2.0, 5.0, 10.0, 1.0)


def _echoscu_identity(host: str, port: int) -> str:
    """The peer's identity as echoscu -d prints it from the A-ASSOCIATE-AC ("Their ...")."""
    binary = find_binary("echoscu")
    if binary is None:
        pytest.skip("echoscu (dcmtk) not installed")
    out = subprocess.run([binary, "-d", host, str(port)], capture_output=True, text=True,
                         timeout=30, check=False)
    text = out.stdout + out.stderr
    lines = [ln for ln in text.splitlines() if "Their Implementation" in ln and ln.split(":")[-1]]
    return "\n".join(ln for ln in lines if ln.split(":", 2)[-1].strip())


def _debian_orthanc_version() -> str:
    if shutil.which("dpkg-query") is None:
        pytest.skip("not a Debian system")
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "orthanc"], capture_output=True,
                         text=True, check=False)
    return out.stdout.split("+", 1)[0]


async def test_orthanc_named_from_its_rest_api_on_the_same_host(orthanc_open) -> None:
    server = orthanc_open
    ac = _echoscu_identity(server.host, server.port)
    assert "OFFIS_DCMTK_367" in ac and "1.2.276.0.7230010.3.0.3.6.7" in ac
    opts = ProbeOptions(timeouts=T, web=WebOptions(ports=(server.http_port,)))
    r = await assess(server.host, server.port, opts)
    assert r.product == "Orthanc" and r.product_version == _debian_orthanc_version()
    assert r.toolkit == "DCMTK 3.6.7"
    assert r.product_evidence["confidence"] == "observed"  # /system's DicomPort is this port
    assert r.product_evidence["rest"]["same_instance"] is True
    assert r.confidence["product"] == "observed"
    dg010 = next(f for f in r.findings if f["id"] == "DG-010")
    assert dg010["detail"] == f"Orthanc {r.product_version}"


async def test_orthanc_named_from_its_behaviour_without_rest(orthanc_default) -> None:
    r = await assess(orthanc_default.host, orthanc_default.port, ProbeOptions(timeouts=T,
                                                                              web=None))
    assert r.product == "Orthanc" and r.product_version is None
    assert r.toolkit == "DCMTK 3.6.7" and r.confidence["product"] == "inferred"
    assert "A-ABORT" in r.product_evidence["source"]


async def test_plain_dcmtk_stays_dcmtk(storescp_server) -> None:
    ac = _echoscu_identity(storescp_server.host, storescp_server.port)
    assert "OFFIS_DCMTK_367" in ac
    r = await assess(storescp_server.host, storescp_server.port, ProbeOptions(timeouts=T))
    assert r.product == "DCMTK" and r.product_version == "3.6.7"
    assert r.product_evidence is None


async def test_dicom_and_web_records_of_one_host_are_joined_in_the_stored_scan(
    orthanc_open, tmp_path
) -> None:
    """A scan that reached Orthanc's REST API on a port the DICOM check did not try: the
    report's view of the scan names the DICOM record Orthanc (its /system DicomPort matches)."""
    from dicomguard.store.db import ScanStore
    from dicomguard.store.read import load_scan

    server = orthanc_open
    dicom = await assess(server.host, server.port, ProbeOptions(timeouts=T, web=None))
    web = await assess(server.host, server.http_port,
                       ProbeOptions(timeouts=T, web=WebOptions(ports=(server.http_port,))))
    assert dicom.product == "DCMTK" and web.web["product"] == "Orthanc"
    store = ScanStore.create(tmp_path / "scan.db", argv=["scan"], options={}, targets_total=2)
    for seq, r in enumerate((dicom, web)):
        r.seq = seq
        store.add(r.to_dict())
        store.mark_done(seq)
    store.finish({})
    rec = next(x for x in load_scan(tmp_path / "scan.db").records if x.get("dicom"))
    assert rec["product"] == "Orthanc" and rec["product_version"] == _debian_orthanc_version()
    assert rec["toolkit"] == "DCMTK 3.6.7"
    assert rec["product_evidence"]["confidence"] == "observed"
