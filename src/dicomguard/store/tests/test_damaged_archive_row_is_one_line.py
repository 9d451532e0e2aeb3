"""A damaged row of the archives table (the resumed scan's archive cache) is one line and exit 2
on ``scan --resume``, never a StoreError traceback (exit 1), and a row of the wrong shape (a
signature that is not four items, an exposure that is not an object) is refused before the scan
starts, not a TypeError in the middle of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from dicomguard.cli import main

HOST = "127.77.6.1"  # nothing listens: a fast scan whose closed records are stored (--all)


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("arch") / "s.db"
    args = f"{HOST}/32 -p 104 --all --rate 0 --timeout 1 --no-tls --no-progress -q --db {db}"
    assert main(["scan", *args.split()]) in (0, 1)
    return db


@pytest.mark.parametrize(
    "damage",
    [
        "key = 'nope'",
        "key = '5'",
        "signature = '5'",
        "signature = '[1]'",
        "signature = '[\"a\", 1, \"b\"]'",
        "exposure = '5'",
        "exposure = '[]'",
    ],
)
def test_damaged_archive_row_is_one_line(
    scanned: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    db = tmp_path / "d.db"
    db.write_bytes(scanned.read_bytes())
    conn = sqlite3.connect(db)
    conn.execute("UPDATE scan SET finished_at = NULL WHERE id = 1")
    conn.execute(
        "INSERT INTO archives (host, port, key, signature, exposure) VALUES (?, 104, ?, ?, ?)",
        (HOST, '["1.2.3", "V1", ["1.2.840.10008.5.1.4.1.2.2.1"]]', '["20200101", 1, "20210101", 2]',
         '{"patients": 1}'),
    )
    conn.execute(f"UPDATE archives SET {damage}")
    conn.commit()
    conn.close()
    capsys.readouterr()
    assert main(["scan", "--resume", str(db), "--no-progress", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "archive cache damaged" in err[0], err
