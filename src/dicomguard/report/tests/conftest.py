"""A real scan of a small lab fleet, stored in a database once per session, for the report tests."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.lab.fleet import FleetThread

NETWORK = "127.77.5.0/29"  # .1-.6 are lab hosts, .0 and .7 closed
PERSONAS = {"open": 2, "echo-only": 1, "called-aet-guessable": 1, "capped": 1, "store-only": 1}


def scan_lab(db: Path, network: str, personas: dict[str, int]) -> Path:
    """Start a lab of ``personas`` on ``network`` (port 11112), scan it into ``db``."""
    with FleetThread(network, personas, ports=(11112,), max_patients=30):
        argv = ["scan", network, "-p", "11112", "--rate", "0", "--timeout", "2"]
        argv += ["--query-budget", "8", "--no-progress", "-q", "--db", str(db)]
        assert main(argv) == 0
    return db


@pytest.fixture(scope="session")
def scan_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield scan_lab(tmp_path_factory.mktemp("report") / "lab.db", NETWORK, PERSONAS)


def db_figures(db: Path) -> dict[str, int]:
    """The headline figures straight from SQL, independent of the report code."""
    c = sqlite3.connect(db)
    try:
        return {
            "probed": c.execute("SELECT sum(n) FROM states").fetchone()[0],
            "dicom": c.execute("SELECT count(*) FROM endpoints WHERE dicom = 1").fetchone()[0],
            "patients": c.execute(
                "SELECT coalesce(sum(patients), 0) FROM endpoints WHERE dicom = 1"
            ).fetchone()[0],
            "studies": c.execute(
                "SELECT coalesce(sum(studies), 0) FROM endpoints WHERE dicom = 1"
            ).fetchone()[0],
            "endpoints": c.execute("SELECT count(*) FROM endpoints").fetchone()[0],
            "findings": c.execute("SELECT count(*) FROM findings").fetchone()[0],
        }
    finally:
        c.close()
