"""A ``scan --resume`` that is refused (exit 2, one line) leaves the database as it was: its
file byte for byte (and its WAL, as a killed scan leaves one), every row, ``resumed`` too.

It used to count the resume (``resumed + 1``), create the tables added since and store a scan
id and the target space before the checks that refused it. Now ``ScanStore.resume`` reads
through a read-only connection and ``ScanStore.start`` writes everything a resume writes in one
transaction, after the last check (``runner.session.ScanSession._record_target_space``).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.store import ScanStore, StoreError, load_scan

HOST = "127.77.19.1"  # nothing listens: a fast scan whose closed record is stored (--all)
OTHER = "127.77.19.2"
OLD = Path(__file__).parent / "data" / "before-archives-killed.db"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished scan of HOST:104 read from a targets file (-iL), its closed record stored."""
    folder = tmp_path_factory.mktemp("base")
    (folder / "targets.txt").write_text(f"{HOST}\n")
    db = folder / "s.db"
    args = (f"-iL {folder / 'targets.txt'} -p 104 --all --rate 0 --timeout 1 --no-tls"
            f" --no-progress -q --db {db}")
    assert main(["scan", *args.split()]) in (0, 1)
    return db


def _options(conn: sqlite3.Connection, **changes: object) -> None:
    options = json.loads(conn.execute("SELECT options FROM scan").fetchone()[0])
    options.update(changes)
    conn.execute("UPDATE scan SET options = ?", (json.dumps(options),))


def _sql(*statements: str) -> Callable[[sqlite3.Connection, Path], None]:
    def damage(conn: sqlite3.Connection, folder: Path) -> None:
        for s in statements:
            conn.execute(s)

    return damage


#: each way a resume is refused: (what the last line says, the damage to an unfinished scan)
REFUSALS: dict[str, tuple[str, Callable[[sqlite3.Connection, Path], None]]] = {
    "schema version": ("schema version", _sql("UPDATE meta SET value = '99'"
                                              " WHERE key = 'schema_version'")),
    "not a scan": ("not a dicomguard scan", _sql("DELETE FROM scan")),
    "metadata damaged": ("metadata damaged", _sql("UPDATE scan SET options = 'not json'")),
    "options refused": ("rate", lambda c, f: _options(c, rate=-5)),
    "options of a newer dicomguard": ("newer", lambda c, f: _options(c, request_version=99)),
    "targets file gone": ("targets.txt", lambda c, f: (f / "targets.txt").unlink()),
    "targets file changed": (
        "targets changed", lambda c, f: (f / "targets.txt").write_text(f"{OTHER}\n")
    ),
    "targets count changed": ("targets changed", _sql("UPDATE scan SET targets_total = 9")),
    "target digest changed": (
        "targets changed", _sql("UPDATE meta SET value = 'x' WHERE key = 'targets_digest'")
    ),
    "archive cache damaged": (
        "archive cache damaged",
        _sql(f"INSERT INTO archives VALUES ('{HOST}', 104, 'nope', '[]', '{{}}')"),
    ),
    "record damaged": (
        "damaged",
        _sql("UPDATE endpoints SET dicom = 1, studies = 3, record = '{not json'"),
    ),
    "geoip database missing": (
        "nowhere.mmdb", lambda c, f: _options(c, geoip=[str(f / "nowhere.mmdb")])
    ),
    "jsonl not writable": (
        "--jsonl", lambda c, f: _options(c, jsonl=str(f / "no-such-folder" / "x.jsonl"))
    ),
}


def _snapshot(db: Path) -> dict[str, bytes]:
    """The database and its WAL (the -shm file is SQLite's index of the WAL, rebuilt by any
    reader: not the database's content)."""
    return {p.name: p.read_bytes() for p in db.parent.glob(db.name + "*")
            if not p.name.endswith("-shm")}


def _refused(db: Path, says: str, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["scan", "--resume", str(db), "--no-progress", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dicomguard: error:"), err
    assert says in err[0], err


def _unchanged(before: dict[str, bytes], db: Path) -> None:
    after = _snapshot(db)
    # a WAL-mode database read without a WAL file left an empty one; nothing else may change
    assert {k: v for k, v in after.items() if k in before or v} == before


@pytest.mark.parametrize("refusal", list(REFUSALS))
def test_refused_resume_changes_nothing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], refusal: str
) -> None:
    says, damage = REFUSALS[refusal]
    shutil.copy(finished.parent / "targets.txt", tmp_path / "targets.txt")
    db = tmp_path / "s.db"
    shutil.copyfile(finished, db)
    # an unfinished scan as a kill leaves it: WAL mode, its last commits still in the WAL
    # (this connection stays open, so nothing folds them into the file)
    killed = sqlite3.connect(db, isolation_level=None)
    killed.execute("PRAGMA journal_mode=WAL")
    killed.execute("PRAGMA wal_autocheckpoint=0")
    options = killed.execute("SELECT options FROM scan").fetchone()[0]
    killed.execute(  # the stored options name the targets file of this test's folder
        "UPDATE scan SET finished_at = NULL, resumed = 3, options = ?",
        (options.replace(str(finished.parent), str(tmp_path)),),
    )
    damage(killed, tmp_path)
    rows = list(killed.iterdump())
    before = _snapshot(db)
    assert db.name + "-wal" in before and before[db.name + "-wal"]
    try:
        _refused(db, says, capsys)
        _unchanged(before, db)
        assert list(killed.iterdump()) == rows
    finally:
        killed.close()


def test_refused_resume_of_a_finished_scan_changes_nothing(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "s.db"
    shutil.copyfile(finished, db)
    before = _snapshot(db)
    _refused(db, "finished", capsys)
    assert _snapshot(db) == before  # rollback journal mode as finish() left it: still so


@pytest.mark.parametrize(
    ("content", "says"),
    [(None, "no such scan database"), (b"not sqlite" * 200, "not a dicomguard scan")],
)
def test_refused_resume_of_what_is_no_database_changes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes | None, says: str
) -> None:
    db = tmp_path / "s.db"
    if content is not None:
        db.write_bytes(content)
    _refused(db, says, capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["s.db"] if content else [])
    if content is not None:
        assert db.read_bytes() == content


def test_refused_resume_of_a_database_from_before_archives_adds_no_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "old.db"
    shutil.copyfile(OLD, db)
    conn = sqlite3.connect(db)
    conn.execute("UPDATE scan SET targets_total = 99")
    conn.commit()
    conn.close()
    before = _snapshot(db)
    _refused(db, "targets changed", capsys)
    _unchanged(before, db)
    tables = {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}
    assert "archives" not in tables and load_scan(db).meta["resumed"] == 0


def test_a_resume_is_counted_once_it_starts(tmp_path: Path) -> None:
    """The count moves to ScanStore.start: once per resume that started, none before."""
    db = tmp_path / "old.db"
    shutil.copyfile(OLD, db)
    store = ScanStore.resume(db)
    assert load_scan(db).meta["resumed"] == 0  # opened, checked: nothing written yet
    store.start({"shard": "0/1"})
    store.close()
    assert load_scan(db).meta["resumed"] == 1
    with ScanStore.resume(db) as again:
        again.commit()  # a store used without start() (tests, tools) counts at its first commit
        again.commit()
    assert load_scan(db).meta["resumed"] == 2


def test_a_database_written_meanwhile_is_not_resumed_over(tmp_path: Path) -> None:
    """Two resumes of one database at once: the second is refused by the writer lock at
    once; a writer that does not take it (an older dicomguard) is caught by the second line:
    the second to start finds the watermark moved since it read it and refuses (StoreError,
    one line), writing nothing."""
    db = tmp_path / "old.db"
    shutil.copyfile(OLD, db)
    late = ScanStore.resume(db)
    before = db.read_bytes()
    with pytest.raises(StoreError, match="another dicomguard is scanning into it"):
        ScanStore.resume(db)
    assert db.read_bytes() == before
    os.close(late._lock_fd)  # as if ``late`` were a dicomguard from before the lock
    late._lock_fd = None
    with ScanStore.resume(db) as first:
        first.start()
        first.add({"seq": first.watermark, "host": "127.77.19.1", "port": 104, "state": "open"})
        first.mark_done(first.watermark)
        first.commit()
    rows = list(sqlite3.connect(db).iterdump())
    with pytest.raises(StoreError, match="changed since it was opened"):
        late.start()
    late.close()  # (its read-write connection was the last: SQLite folds the WAL in)
    assert list(sqlite3.connect(db).iterdump()) == rows  # row for row
    assert load_scan(db).meta["resumed"] == 1
