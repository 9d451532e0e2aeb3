"""A scan database that sqlite cannot open (no read permission) and an unfinished scan whose
stored options are not JSON are each one line and exit 2, never a traceback; an output folder
for the demo that cannot be made likewise (found by review r16)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.report.tests.synthetic import _base, write_db
from dicomguard.store import StoreError
from dicomguard.store import read as store_read


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dicomguard: error:"), err
    return err[0]


def _unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = write_db(tmp_path / "s.db", [_base("127.0.0.1", 104, 0)])
    db.chmod(0)
    if os.access(db, os.R_OK):  # root reads anyway: make sqlite fail as it would for others
        def refuse(*_a: object, **_k: object) -> sqlite3.Connection:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(store_read.sqlite3, "connect", refuse)
    return db


@pytest.mark.parametrize("command", [["report"], ["diff"], ["merge"]])
def test_unreadable_database_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    command: list[str],
) -> None:
    db = _unreadable(tmp_path, monkeypatch)
    with pytest.raises(StoreError, match="cannot open"):
        store_read.open_read_only(db)
    argv = {"report": ["report", str(db), "--format", "json", "-o", "-"],
            "diff": ["diff", str(db), str(db)],
            "merge": ["merge", str(db), "-o", str(tmp_path / "m.db")]}[command[0]]
    capsys.readouterr()
    assert main(argv) == 2
    assert "cannot open" in _one_error_line(capsys)


def test_resume_with_damaged_stored_options_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = write_db(tmp_path / "s.db", [_base("127.0.0.1", 104, 0)])
    conn = sqlite3.connect(db)
    conn.execute("UPDATE scan SET finished_at = NULL, options = 'not json'")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["scan", "--resume", str(db), "--no-progress", "-q"]) == 2
    assert "metadata damaged" in _one_error_line(capsys)


def test_demo_output_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    capsys.readouterr()
    assert main(["demo", "--out", str(blocker / "out")]) == 2
    assert "--out" in _one_error_line(capsys)
