"""dicomguard scan -iL end to end: no silent DNS, no silent empty scan, stdin from a pipe.

Targets are loopback ports nothing listens on (closed: quick). Name lookups are observed by
wrapping ``socket.getaddrinfo`` in this process, which is what every lookup goes through.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dicomguard.cli import main
from dicomguard.testing.loopback import free_port


@pytest.fixture
def lookups(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every name looked up; names ending .invalid fail as a resolver would say."""
    seen: list[str] = []
    real = socket.getaddrinfo

    def spy(host: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(str(host))
        if str(host).endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", spy)
    return seen


def scan(tmp_path: Path, *args: str) -> int:
    argv = ["scan", *args, "--rate", "0", "--timeout", "1", "--connect-timeout", "1"]
    argv += ["--workers", "1", "--no-progress", "-q", "--db", str(tmp_path / "s.db")]
    return main(argv)


def meta(db: Path) -> tuple[dict[str, str], dict[str, int]]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT key, value FROM meta")), dict(
            conn.execute("SELECT state, n FROM states")
        )
    finally:
        conn.close()


def test_csv_header_sends_no_dns_query(tmp_path: Path, lookups: list[str]) -> None:
    port = free_port()
    hosts = tmp_path / "hosts.csv"
    hosts.write_text(f"ip,port\n127.0.0.1,{port}\n127.0.0.2,{port}\n")
    assert scan(tmp_path, "-iL", str(hosts)) == 0
    assert lookups == []
    assert sum(meta(tmp_path / "s.db")[1].values()) == 2


def test_a_name_in_a_file_needs_resolve_names(
    tmp_path: Path, lookups: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    names = tmp_path / "names.txt"
    names.write_text("127.0.0.1\nlocalhost\n")
    assert scan(tmp_path, "-iL", str(names), "-p", str(free_port())) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"dicomguard: error: {names}:2: 'localhost' is a host name; names read from files are "
        "looked up only with --resolve-names"
    ]
    assert lookups == []


def test_every_unresolvable_name_is_reported_and_counted(
    tmp_path: Path, lookups: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    names = tmp_path / "names.txt"
    names.write_text(f"localhost\nnope.invalid\ngone.invalid:{port}\n")
    assert scan(tmp_path, "-iL", str(names), "-p", str(port), "--resolve-names") == 0
    err = capsys.readouterr().err
    assert (
        f"dicomguard: cannot resolve 'nope.invalid' ({names}:2): Name or service not known" in err
    )
    assert f"dicomguard: cannot resolve 'gone.invalid' ({names}:3)" in err
    assert "2 name(s) could not be resolved and are not scanned" in err
    assert sorted(set(lookups)) == ["gone.invalid", "localhost", "nope.invalid"]
    stored, states = meta(tmp_path / "s.db")
    assert stored["unresolved_names"] == "2"
    assert sum(states.values()) >= 1  # localhost's address(es) were scanned


def test_a_typed_name_that_does_not_resolve_is_reported(
    tmp_path: Path, lookups: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert scan(tmp_path, "127.0.0.1", "nope.invalid", "-p", str(free_port())) == 0
    err = capsys.readouterr().err
    assert "cannot resolve 'nope.invalid' (command line)" in err
    assert "1 name(s) could not be resolved" in err


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.txt", "", "no target in it (the file is empty)"),
        ("rst.json", '{"saddr":"127.0.0.1","sport":104,"success":0}\n', "zmap JSON output"),
        ("shodan.json", '{"ip_str":"127.0.0.1","port":161,"transport":"udp"}\n', "Shodan"),
    ],
)
def test_no_target_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert scan(tmp_path, "-iL", str(path)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "s.db").exists()


def test_zmap_pipes_into_scan_through_stdin(tmp_path: Path) -> None:
    port = free_port()
    zmap_json = "".join(
        json.dumps({"saddr": f"127.0.0.{i}", "sport": port, "success": 1}) + "\n" for i in (1, 2, 3)
    )
    db = tmp_path / "pipe.db"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "dicomguard", "scan", "-iL", "-", "--rate", "0"),
            *("--timeout", "1", "--workers", "1", "--no-progress", "-q", "--db", str(db)),
        ],
        input=zmap_json,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    states = meta(db)[1]
    assert sum(states.values()) == 3
    conn = sqlite3.connect(db)
    try:
        options = json.loads(conn.execute("SELECT options FROM scan").fetchone()[0])
    finally:
        conn.close()
    assert options["input_files"] == ["-"]  # stdin stays stdin for resume, not a path
