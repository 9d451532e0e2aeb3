"""Fingerprints checked against real servers on loopback: DCMTK storescp and dcmqrscp, Orthanc,
and a pynetdicom SCP. A pynetdicom SCU reads the A-ASSOCIATE-AC and the database must name the
product and the version that is installed here.

DCMTK 3.6.7 and Orthanc's DICOM port cannot be bound to one address, so they listen on all
interfaces of a random port for a few seconds; nothing here sends a packet anywhere but 127.0.0.1.
Tests skip (with the reason) only when the binary is not installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import pynetdicom
import pytest
from pynetdicom.sop_class import Verification

from dicomguard.knowledge.fingerprint import load_database
from dicomguard.testing.loopback import free_port, wait_until_accepting
from dicomguard.testing.reference import running_scp, scu_association

LOOPBACK = "127.0.0.1"


class AcceptorIdentity(NamedTuple):
    class_uid: str | None
    version_name: str | None
    max_pdu: int | None


def _read_acceptor(port: int, called_aet: str = "ANY-SCP") -> AcceptorIdentity:
    """Associate with pynetdicom as SCU and return what the acceptor announced."""
    with scu_association(LOOPBACK, port, (Verification,), calling="DGFPTEST",
                         called=called_aet, timeout=10) as assoc:
        # Without an AC pynetdicom leaves its *own* defaults in assoc.acceptor: never read those.
        assert assoc.is_established, "association was not accepted"
        acc = assoc.acceptor
        return AcceptorIdentity(
            acc.implementation_class_uid, acc.implementation_version_name, acc.maximum_length
        )


def _dcmtk_binary(name: str) -> tuple[str, str] | None:
    """Path and version of a DCMTK tool. pynetdicom installs its own ``storescp`` script too,
    so a candidate counts only if its --version banner is DCMTK's."""
    for candidate in (f"/usr/bin/{name}", shutil.which(name)):
        if not candidate or not Path(candidate).exists():
            continue
        out = subprocess.run(
            [candidate, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
        m = re.search(r"\$dcmtk: \S+ v(\d+\.\d+\.\d+)", out)
        if m:
            return candidate, m.group(1)
    return None


@contextmanager
def _running(cmd: list[str], port: int, cwd: Path | None = None) -> Iterator[None]:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_accepting(LOOPBACK, port, alive=lambda: proc.poll() is None)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


STORESCP = _dcmtk_binary("storescp")
DCMQRSCP = _dcmtk_binary("dcmqrscp")
ORTHANC = shutil.which("Orthanc")


@pytest.mark.skipif(STORESCP is None, reason="DCMTK storescp not installed (apt-get install dcmtk)")
@pytest.mark.parametrize("max_pdu", [None, 65536])
def test_real_storescp_is_dcmtk_with_installed_version(tmp_path: Path, max_pdu: int | None):
    assert STORESCP is not None
    binary, version = STORESCP
    port = free_port(LOOPBACK)
    cmd = [binary, "--aetitle", "STORESCP", "--output-directory", str(tmp_path)]
    if max_pdu is not None:
        cmd += ["--max-pdu", str(max_pdu)]
    with _running([*cmd, str(port)], port):
        seen = _read_acceptor(port, "STORESCP")
    # Measured on Debian DCMTK 3.6.7: 1.2.276.0.7230010.3.0.3.6.7 / OFFIS_DCMTK_367 / 16384.
    assert seen.class_uid == f"1.2.276.0.7230010.3.0.{version}"
    assert seen.version_name == "OFFIS_DCMTK_" + version.replace(".", "")
    assert seen.max_pdu == (max_pdu or 16384)
    fp = load_database().match(*seen)
    assert (fp.product, fp.product_version, fp.confidence, fp.rule_id) == (
        "DCMTK",
        version,
        "exact",
        "dcmtk",
    )


@pytest.mark.skipif(DCMQRSCP is None, reason="DCMTK dcmqrscp not installed (apt-get install dcmtk)")
def test_real_dcmqrscp_is_dcmtk_with_installed_version(tmp_path: Path):
    assert DCMQRSCP is not None
    binary, version = DCMQRSCP
    port = free_port(LOOPBACK)
    (tmp_path / "db").mkdir()
    config = tmp_path / "dcmqrscp.cfg"
    config.write_text(
        f"NetworkTCPPort = {port}\nMaxPDUSize = 16384\nMaxAssociations = 4\n"
        "HostTable BEGIN\nHostTable END\nVendorTable BEGIN\nVendorTable END\n"
        f"AETable BEGIN\nQRSCP {tmp_path / 'db'} RW (10, 1024mb) ANY\nAETable END\n"
    )
    with _running([binary, "-c", str(config)], port):
        seen = _read_acceptor(port, "QRSCP")
    fp = load_database().match(*seen)
    assert (fp.product, fp.product_version, fp.confidence) == ("DCMTK", version, "exact")


@pytest.mark.skipif(ORTHANC is None, reason="Orthanc not installed (apt-get install orthanc)")
def test_real_orthanc_announces_its_dcmtk(tmp_path: Path):
    """Orthanc has no Implementation Class UID of its own: it answers with DCMTK's values
    (measured: Debian Orthanc 1.10.1 -> 1.2.276.0.7230010.3.0.3.6.7 / OFFIS_DCMTK_367)."""
    assert ORTHANC is not None
    dicom_port, http_port = free_port(LOOPBACK), free_port(LOOPBACK)
    config = tmp_path / "orthanc.json"
    config.write_text(
        json.dumps(
            {
                "Name": "DGFPTEST",
                "DicomAet": "ORTHANC",
                "DicomPort": dicom_port,
                "HttpPort": http_port,
                "RemoteAccessAllowed": False,
                "StorageDirectory": str(tmp_path / "storage"),
                "IndexDirectory": str(tmp_path / "index"),
                "Plugins": [],
                "MaximumPduLength": 32768,
            }
        )
    )
    with _running([ORTHANC, str(config)], dicom_port, cwd=tmp_path):
        seen = _read_acceptor(dicom_port, "ORTHANC")
    assert seen.class_uid is not None and seen.class_uid.startswith("1.2.276.0.7230010.3.0.")
    assert seen.version_name is not None and seen.version_name.startswith("OFFIS_DCMTK_")
    assert seen.max_pdu == 32768  # Orthanc's MaximumPduLength reaches the AC
    fp = load_database().match(*seen)
    assert fp.product == "DCMTK"
    assert fp.confidence == "exact"
    assert "Orthanc" in fp.embedded_in
    if STORESCP is not None:  # Debian's Orthanc links Debian's libdcmtk: same release
        assert fp.product_version == STORESCP[1]


def test_real_pynetdicom_scp_is_pynetdicom_with_installed_version():
    with running_scp(LOOPBACK, ae_title="PYSCP") as port:
        seen = _read_acceptor(port, "PYSCP")
    installed = ".".join(pynetdicom.__version__.split(".")[:3])
    # Measured with pynetdicom 3.0.4: 1.2.826.0.1.3680043.9.3811.3.0.4 / PYNETDICOM_304 / 16382.
    assert seen.class_uid == f"1.2.826.0.1.3680043.9.3811.{installed}"
    assert seen.max_pdu == 16382
    fp = load_database().match(*seen)
    assert (fp.product, fp.product_version, fp.confidence) == ("pynetdicom", installed, "exact")
