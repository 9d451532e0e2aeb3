"""Reports of a scan of a real Orthanc 1.10.1 (DICOM port and REST API), checked with DCMTK.

* The called AE verdict is "any" in every format; DCMTK's echoscu with a random called title
  is the independent proof that any title is accepted.
* The REST port is listed as a DICOM web API in the terminal summary, never under "did not
  speak DICOM".
* The per-IP headline counts the archive once: the DICOM port and the REST API front one
  archive, so the studies exposed equal what DCMTK's findscu lists, not twice that.
"""

from __future__ import annotations

import contextlib
import io
import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.knowledge.synthetic import make_patients
from dicomguard.report import render
from dicomguard.report.html import context
from dicomguard.report.stats import aggregate
from dicomguard.store.read import load_scan
from dicomguard.testing.base import find_binary
from dicomguard.testing.orthanc import OrthancServer
from dicomguard.testing.servers import lab_address

ECHOSCU = "/usr/bin/echoscu"
FINDSCU = "/usr/bin/findscu"


@pytest.fixture(scope="module")
def orthanc() -> Iterator[OrthancServer]:
    if find_binary("Orthanc") is None or not Path(FINDSCU).exists():
        pytest.skip("Orthanc or DCMTK missing: run scripts/bootstrap")
    with OrthancServer(lab_address(57), preset="open", patients=make_patients(57, 6)) as s:
        yield s


@pytest.fixture(scope="module")
def scan(orthanc: OrthancServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    db = tmp_path_factory.mktemp("orthanc") / "o.db"
    argv = ["scan", orthanc.host, "-p", str(orthanc.port), "--web-ports", str(orthanc.http_port)]
    argv += ["--rate", "0", "--no-progress", "--db", str(db)]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the terminal summary
        assert main(argv) == 0
    return db, out.getvalue()


def _dcmtk(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def test_any_called_title_everywhere(orthanc: OrthancServer, scan: tuple[Path, str]) -> None:
    db, summary = scan
    title = "X" + secrets.token_hex(6).upper()
    echo = _dcmtk([ECHOSCU, "-v", "-aec", title, orthanc.host, str(orthanc.port)])
    assert "Received Echo Response (Success)" in echo, echo  # DCMTK: any title gets in
    data = context(load_scan(db))["endpoint_data"]
    row = next(r for r in data["rows"] if r[1] == orthanc.port)
    assert data["strings"][row[6]] == "any"
    line = next(ln for ln in summary.splitlines() if f"{orthanc.host}:{orthanc.port}" in ln)
    assert " any " in line and "guessed" not in line
    assert "guessed" not in render(db, "csv")


def test_rest_port_is_a_web_api_not_a_silent_port(
    orthanc: OrthancServer, scan: tuple[Path, str]
) -> None:
    _, summary = scan
    rest = f"{orthanc.host}:{orthanc.http_port}"
    assert "did not speak DICOM" not in summary
    web_line = next(ln for ln in summary.splitlines() if "DICOM web API" in ln)
    assert rest in web_line and "Orthanc 1.10.1" in web_line and "REST open" in web_line


def test_per_ip_studies_equal_findscu_once(orthanc: OrthancServer, scan: tuple[Path, str]) -> None:
    db, _ = scan
    listing = _dcmtk(
        [FINDSCU, "-v", "-S", "-aec", orthanc.aet, "-k", "QueryRetrieveLevel=STUDY",
         "-k", "StudyInstanceUID", orthanc.host, str(orthanc.port)]
    )  # fmt: skip
    studies = len(re.findall(r"Find Response: \d+ \(Pending\)", listing))
    assert studies == orthanc.ground_truth.studies > 0
    d = aggregate(load_scan(db))
    h = d["headline"]
    assert h["servers"] == 1  # one IP address, two services
    assert d["endpoints"]["dicom_services"] == 1 and d["endpoints"]["web_services"] == 1
    assert h["studies_exposed"] == studies  # not DICOM + REST summed
    assert h["leaking"]["n"] == 1
