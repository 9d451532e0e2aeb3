"""``dicomguard lab`` bounds its numbers and checks ``--truth`` before any server starts, and
``scan --wordlist`` of a file that is not text is a setup error: each one line on stderr and
exit status 2, never a traceback or a silently odd lab (found by review r16)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dicomguard.cli import main

BAD_LAB = {
    "negative-duration": ["--duration", "-1"],
    "negative-slow-delay": ["--slow-delay", "-5"],
    "nan-slow-greeting": ["--slow-greeting", "nan"],
    "find-cap-below-one": ["--find-cap", "-1"],
    "max-patients-below-one": ["--max-patients", "0"],
    "truth-in-missing-folder": ["--truth", "{tmp}/none/truth.json"],
    "truth-is-a-folder": ["--truth", "{tmp}"],
}


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dicomguard: error:"), err
    assert "Traceback" not in captured.out
    return err[0]


@pytest.mark.parametrize("flags", BAD_LAB.values(), ids=BAD_LAB.keys())
def test_lab_bad_input_is_one_line_and_status_2(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flags = [f.replace("{tmp}", str(tmp_path)) for f in flags]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        # --duration: a regression starts a lab for 3 s at most instead of hanging the test
        status = main(["lab", "--size", "1", "--network", "127.42.9.0/30", "--duration", "3",
                       *flags])
        raise SystemExit(status)
    assert exited.value.code == 2
    _one_error_line(capsys)


def test_wordlist_that_is_not_text_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    words = tmp_path / "words.bin"
    words.write_bytes(b"PACS\n\x9a\xff\xfe\x00ORTHANC\n")
    capsys.readouterr()
    status = main(["scan", "127.0.0.1", "-p", "1", "--wordlist", str(words), "--no-progress",
                   "-q", "--db", str(tmp_path / "s.db")])
    assert status == 2
    assert "not UTF-8" in _one_error_line(capsys)
