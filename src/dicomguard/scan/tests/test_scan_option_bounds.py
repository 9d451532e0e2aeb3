"""Issue 12 item 4: every bad scan option gets one clear line and exit status 2.

In-process (``cli.main``): no network is touched, every case ends before the first probe.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomguard.cli import main

#: option -> values that must be refused (bounds, zero where zero means nothing, junk)
BAD = {
    "--rate": ["-1", "nan", "inf", "1e9", "fast"],
    "--concurrency": ["0", "-5", "2.5", "1000001", "x"],
    "--per-host": ["0", "-1", "many"],
    "--timeout": ["0", "-1", "nan", "inf", "3601", "soon"],
    "--connect-timeout": ["0", "-0.5", "nan", "99999"],
    "--endpoint-budget": ["0", "-1", "inf", "86401"],
    "--endpoint-connections": ["0", "-1", "1.5"],
    "--retries": ["-1", "11", "2.0"],
    "--max-aet-guesses": ["-1", "1e3"],
    "--query-budget": ["0", "-3"],
    "--workers": ["0", "65", "-1", "two"],
}
GOOD = {
    "--rate": "0",  # 0 = unlimited
    "--timeout": "0.5",
    "--retries": "0",
    "--max-aet-guesses": "0",
    "--endpoint-budget": "30",
}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(["scan", *argv])
    except SystemExit as exc:  # argparse's path
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize(("option", "value"), [(o, v) for o, values in BAD.items() for v in values])
def test_bad_numeric_option_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str
) -> None:
    code, err = _run(capsys, "127.0.0.1", "--db", str(tmp_path / "x.db"), f"{option}={value}")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dicomguard: error:"), err
    assert option in lines[0] and "Traceback" not in err
    assert not (tmp_path / "x.db").exists()  # refused before anything was created


@pytest.mark.parametrize(
    "argv",
    [
        ["--jsonl", "{tmp}/no/such/folder/out.jsonl"],
        ["--db", "{tmp}/missing/scan.db"],
        ["--jsonl", "{tmp}"],  # a folder, not a file
        # found by a fresh tester (as root, where os.access says yes to everything)
        ["--jsonl", "/proc/version"],
        ["--db", "/proc/version"],
        ["--db", "{tmp}/text.db"],  # an existing file that is not a database
    ],
    ids=[
        "jsonl-missing-folder",
        "db-missing-folder",
        "jsonl-is-a-folder",
        "jsonl-unwritable-file",
        "db-unwritable-file",
        "db-not-a-database",
    ],
)
def test_unwritable_output_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str]
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    (tmp_path / "text.db").write_text("not a database\n")
    if "--db" not in argv:
        argv += ["--db", str(tmp_path / "x.db")]
    code, err = _run(capsys, "127.0.0.1", *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dicomguard: error:"), err
    assert not (tmp_path / "x.db").exists()


def test_good_values_at_the_bounds_are_accepted() -> None:
    from dicomguard.cli import build_parser
    from dicomguard.cli.scan import scan_config_from_args

    argv = ["scan", "127.0.0.1"]
    for option, value in GOOD.items():
        argv += [option, value]
    config = scan_config_from_args(build_parser().parse_args(argv))
    assert config.rate == 0 and config.transient_retries == 0
    assert config.endpoint_budget == 30 and config.probe.timeouts.associate == 0.5


@pytest.mark.parametrize(
    "content",
    [b"not a database\n", b"SQLite format 3\x00" + b"\x00" * 100],
    ids=["text-file", "truncated-sqlite"],
)
def test_resume_of_a_file_that_is_not_a_scan_database_is_one_line_and_status_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes
) -> None:
    """Found by a fresh tester: --resume of a text file or a damaged database was a
    sqlite3.DatabaseError traceback."""
    bad = tmp_path / "scan.db"
    bad.write_bytes(content)
    code, err = _run(capsys, "--resume", str(bad))
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dicomguard: error:"), err
    assert bad.read_bytes() == content  # never rewritten


@pytest.mark.parametrize(
    "aet", ["A\\B", "\\", "ÄRZTE", "AE\tX"], ids=["backslash", "only-bs", "non-ascii", "tab"]
)
def test_a_calling_aet_outside_the_ae_repertoire_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, aet: str
) -> None:
    """PS3.5 6.2: an AE title has no backslash or control characters (found by a fresh
    tester: --calling-aet '\\' was sent as is)."""
    code, err = _run(capsys, "127.0.0.1", "--db", str(tmp_path / "x.db"), "--calling-aet", aet)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "--calling-aet" in lines[0], err
    assert not (tmp_path / "x.db").exists()
