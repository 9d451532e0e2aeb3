"""Every command has the same shape and fails the same way: bad input is one line on stderr,
``dicomguard: error: ...``, exit status 2, never a traceback; the ``python -m`` entry points of
the gateway and the lab are the same commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dicomguard
from dicomguard.cli import COMMANDS, main

SRC = str(Path(dicomguard.__file__).resolve().parents[1])

BAD = {
    "scan-bad-number": ["scan", "127.0.0.1", "--rate", "fast"],
    "scan-no-targets": ["scan", "--db", "{tmp}/x.db"],
    "lab-not-loopback": ["lab", "--network", "10.0.0.0/24", "--duration", "0"],
    "lab-bad-number": ["lab", "--size", "many"],
    "gateway-no-config": ["gateway", "--check"],
    "gateway-missing-config": ["gateway", "--config", "{tmp}/none.toml", "--check"],
    "gateway-bad-method": ["gateway", "--hash-passcode", "--method", "md5"],
    "demo-bad-size": ["demo", "--size", "0", "--out", "{tmp}/demo"],
    "report-missing-db": ["report", "{tmp}/none.db"],
    "merge-missing-shard": ["merge", "{tmp}/none.db", "-o", "{tmp}/all.db"],
    "diff-missing-db": ["diff", "{tmp}/a.db", "{tmp}/b.db"],
    "unknown-command": ["survey"],
    "no-command": [],
    "after-top-level-option": ["-v", "scan", "127.0.0.1", "--timeout", "0"],
}


def test_every_command_module_has_the_same_shape() -> None:
    for name, module in COMMANDS.items():
        assert isinstance(module.HELP, str) and module.HELP, name
        assert callable(module.add_arguments) and callable(module.run), name


def test_one_command_does_not_load_the_others() -> None:
    """Start-up: ``dicomguard scan`` does not import the gateway or the lab (pynetdicom, JWT)."""
    code = (
        "import sys, dicomguard.cli as c; c.build_parser('scan').parse_args(['scan', 'x']);"
        "print(sorted(m for m in sys.modules if m.startswith(('dicomguard.gateway',"
        " 'dicomguard.lab', 'pynetdicom', 'jwt'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": SRC},
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("argv", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_status_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's path
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dicomguard: error:"), err
    assert not list(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize(
    ("module", "argv", "says"),
    [
        ("dicomguard.gateway", ["--config", "none.toml", "--check"], "dicomguard: error:"),
        ("dicomguard.lab", ["--network", "10.0.0.0/24"], "dicomguard: error:"),
        ("dicomguard.lab", ["--list-personas"], ""),
        ("dicomguard", ["gateway", "-h"], ""),
    ],
    ids=["gateway-bad", "lab-bad", "lab-list", "gateway-help"],
)
def test_python_dash_m_entry_points_are_the_same_commands(
    module: str, argv: list[str], says: str, tmp_path: Path
) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in proc.stderr
    if says:
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(says)
    else:
        assert proc.returncode == 0 and proc.stdout, proc.stderr
