"""What a scan database stores for resume is the ScanRequest's JSON (versioned, paths absolute),
not the command line's namespace: display options and the database's own path stay out."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from dicomguard.cli import build_parser, main
from dicomguard.cli.scan import request_from_args
from dicomguard.scan.request import ScanRequest


def test_a_new_scan_stores_its_request_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("aets.txt").write_text("PACS\n")
    argv = ["scan", "127.0.0.1", "-p", "9", "--no-web", "--timeout", "1", "--wordlist",
            "aets.txt", "--workers", "1", "--db", "s.db", "--no-progress", "-q",
            "--fail-on", "high"]
    assert main(argv) == 0  # nothing listens on port 9: no finding
    stored = json.loads(sqlite3.connect("s.db").execute("SELECT options FROM scan").fetchone()[0])
    assert stored["request_version"] == 1
    assert stored["wordlist"] == str(tmp_path.resolve() / "aets.txt")
    assert not {"db", "resume", "quiet", "no_progress", "fail_on", "command"} & set(stored)
    expected = request_from_args(build_parser().parse_args(argv)).resolved()
    assert ScanRequest.from_dict(stored) == expected
