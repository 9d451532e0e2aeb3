"""``--fail-on SEVERITY`` on report and scan: exit 1 when a finding at or above it exists."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.lab.fleet import FleetThread
from dicomguard.report.gate import at_or_above, count_findings

from .synthetic import _base, write_db


def test_severities_at_or_above() -> None:
    assert at_or_above("high") == ("high", "critical")
    assert at_or_above("info")[0] == "info"
    with pytest.raises(ValueError):
        at_or_above("severe")


def test_report_exit_status(scan_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = ["-o", "/dev/null"]
    # the lab has open archives: critical C-FIND exposure
    assert count_findings(scan_db, "critical") > 0
    assert main(["report", str(scan_db), "--format", "csv", *out, "--fail-on", "critical"]) == 1
    assert "at or above critical: exit 1" in capsys.readouterr().err
    assert main(["report", str(scan_db), "--format", "csv", *out]) == 0


def test_report_passes_below_threshold(tmp_path: Path) -> None:
    rec = _base("127.0.17.1", 104, 0)
    rec["findings"] = [{"id": "DG-010", "severity": "info", "title": "DICOM service identified"}]
    db = write_db(tmp_path / "info.db", [rec])
    assert main(["report", str(db), "--format", "json", "-o", "/dev/null", "--fail-on", "low"]) == 0
    assert (
        main(["report", str(db), "--format", "json", "-o", "/dev/null", "--fail-on", "info"]) == 1
    )


def test_bad_severity_is_a_usage_error(scan_db: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["report", str(scan_db), "--fail-on", "severe"])
    assert e.value.code == 2


def test_scan_exit_status(tmp_path: Path) -> None:
    """An echo-only server: high findings (any AE title), nothing critical."""
    net = "127.77.7.0/30"
    with FleetThread(net, {"echo-only": 1}, ports=(11112,), max_patients=5):
        base = ["scan", net, "-p", "11112", "--rate", "0", "--timeout", "2", "-q"]
        base += ["--no-progress"]
        assert main([*base, "--db", str(tmp_path / "a.db"), "--fail-on", "critical"]) == 0
        assert main([*base, "--db", str(tmp_path / "b.db"), "--fail-on", "high"]) == 1
        assert main([*base, "--db", str(tmp_path / "c.db")]) == 0
