"""``--jsonl`` naming the ``-iL`` target list, an ``--exclude-file`` or the ``--db`` is a usage
error (exit 2, nothing written): a new scan empties its JSON Lines file, so since it does,
``scan -iL hits.txt --jsonl hits.txt`` left hits.txt empty after the scan (found by review),
and ``--jsonl x.db --db x.db`` wrote JSON lines into the SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def _scan(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "dicomguard", "scan", "-p", "1", "--rate", "0", "--no-progress",
         "-q", *args],
        cwd=cwd, capture_output=True, timeout=120,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-iL", "hits.txt", "--jsonl", "hits.txt", "--db", "a.db"],
         b"--jsonl hits.txt: is also the -iL file"),
        (["-iL", "hits.txt", "--jsonl", "./hits.txt", "--db", "a.db"], b"is also the -iL file"),
        (["127.0.0.1", "--exclude-file", "never.txt", "--jsonl", "never.txt", "--db", "a.db"],
         b"is also the --exclude-file file"),
        (["127.0.0.1", "--jsonl", "a.db", "--db", "a.db"], b"--jsonl a.db: is also the --db file"),
    ],
)
def test_jsonl_over_an_input_or_the_database_exits_2(
    tmp_path: Path, args: list[str], message: bytes
) -> None:
    hits = tmp_path / "hits.txt"
    hits.write_text("127.0.0.1\n127.0.0.2\n")
    never = tmp_path / "never.txt"
    never.write_text("127.0.0.9\n")
    done = _scan(tmp_path, *args)
    assert done.returncode == 2, done.stderr.decode()
    assert message in done.stderr
    assert b"Traceback" not in done.stderr
    assert hits.read_text() == "127.0.0.1\n127.0.0.2\n"
    assert never.read_text() == "127.0.0.9\n"
    assert not (tmp_path / "a.db").exists()


def test_distinct_files_still_scan(tmp_path: Path) -> None:
    (tmp_path / "hits.txt").write_text("127.0.0.1\n")
    done = _scan(tmp_path, "-iL", "hits.txt", "--jsonl", "out.jsonl", "--db", "a.db")
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "hits.txt").read_text() == "127.0.0.1\n"
