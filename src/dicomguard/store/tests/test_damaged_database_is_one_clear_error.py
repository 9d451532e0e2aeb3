"""A damaged scan database is one clear StoreError (the CLI's one line and exit 2), never a
ValueError/JSONDecodeError traceback: a non-numeric schema version, a record or metadata
column that is not JSON."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.report.tests.synthetic import _base, write_db
from dicomguard.store import StoreError, load_scan


def _db(tmp_path: Path, sql: str, *args: object) -> Path:
    db = write_db(tmp_path / "s.db", [_base("127.0.0.1", 104, 0), _base("127.0.0.2", 104, 1)])
    conn = sqlite3.connect(db)
    conn.execute(sql, args)
    conn.commit()
    conn.close()
    return db


@pytest.mark.parametrize(
    ("sql", "args", "says"),
    [
        ("UPDATE meta SET value = ? WHERE key = 'schema_version'", ("abc",), "schema version"),
        ("UPDATE endpoints SET record = ? WHERE id = 2", ("{not json",), "record"),
        ("UPDATE scan SET stats = ?", ("{not json",), "cannot read"),
        ("UPDATE scan SET argv = ?", ("[",), "cannot read"),
    ],
)
def test_damage_is_one_store_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], sql: str, args: tuple, says: str
) -> None:
    db = _db(tmp_path, sql, *args)
    with pytest.raises(StoreError, match=says):
        load_scan(db)
    capsys.readouterr()
    assert main(["report", str(db), "--format", "json", "-o", "-"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dicomguard: error:"), err
