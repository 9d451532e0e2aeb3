"""ScanRequest.validate() names what is wrong: one error class per kind of mistake, one line that
names the flag; the same bounds as the command line's (a request built in code, or read back
from a database, is held to what ``dicomguard scan`` accepts)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dicomguard.cli import main
from dicomguard.scan.request import (
    InvalidAETitle,
    InvalidChoice,
    InvalidPortList,
    NoTargets,
    OptionOutOfRange,
    ScanRequest,
    ScanRequestError,
)
from dicomguard.store import ScanStore

GOOD = ScanRequest(targets=("127.0.0.1",))

CASES = [
    ({"targets": ()}, NoTargets, "no targets"),
    ({"targets": ("",)}, NoTargets, "no targets"),
    ({"targets": (" ", "\t")}, NoTargets, "no targets"),
    ({"ports": "104,x"}, InvalidPortList, "port"),
    ({"web_ports": "70000"}, InvalidPortList, "port"),
    ({"timeout": 0.0}, OptionOutOfRange, "--timeout"),
    ({"timeout": float("nan")}, OptionOutOfRange, "--timeout"),
    ({"rate": -1.0}, OptionOutOfRange, "--rate"),
    ({"concurrency": 0}, OptionOutOfRange, "--concurrency"),
    ({"per_host": 2.5}, OptionOutOfRange, "--per-host"),
    ({"retries": 11}, OptionOutOfRange, "--retries"),
    ({"endpoint_budget": 86_401.0}, OptionOutOfRange, "--endpoint-budget"),
    ({"slow_greeting": -1.0}, OptionOutOfRange, "--slow-greeting"),
    ({"max_aet_guesses": -1}, OptionOutOfRange, "--max-aet-guesses"),
    ({"sweep": "stealth"}, InvalidChoice, "--sweep"),
    ({"order": "random"}, InvalidChoice, "--order"),
    ({"workers": 0}, InvalidChoice, "--workers"),
    ({"workers": 65}, InvalidChoice, "--workers"),
    ({"calling_aet": ""}, InvalidAETitle, "--calling-aet"),
    ({"calling_aet": "A" * 17}, InvalidAETitle, "--calling-aet"),
    ({"calling_aet": "A\\B"}, InvalidAETitle, "--calling-aet"),
]


@pytest.mark.parametrize(("change", "error", "says"), CASES, ids=lambda v: str(v)[:30])
def test_each_mistake_is_its_named_error_in_one_line(
    change: dict, error: type[ScanRequestError], says: str
) -> None:
    with pytest.raises(error) as info:
        dataclasses.replace(GOOD, **change).validate()
    assert says in str(info.value) and "\n" not in str(info.value)


def test_defaults_and_values_at_the_bounds_are_valid() -> None:
    assert GOOD.validate() is GOOD
    dataclasses.replace(
        GOOD, rate=0.0, retries=0, max_aet_guesses=0, slow_greeting=0.0, workers=64,
        timeout=3600.0, input_files=("-",), targets=(),
    ).validate()


def test_damaged_stored_options_resume_as_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database whose stored request is of the wrong shape is refused before any probe."""
    db = tmp_path / "scan.db"
    ScanStore.create(db, argv=["scan"], options={"rate": "fast"}, targets_total=1).close()
    assert main(["scan", "--resume", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dicomguard: error:") and "rate" in err, err
    assert "Traceback" not in err


def test_out_of_range_stored_options_resume_as_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "scan.db"
    options = dataclasses.replace(GOOD, timeout=0.0).to_dict()
    ScanStore.create(db, argv=["scan"], options=options, targets_total=1).close()
    assert main(["scan", "--resume", str(db)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--timeout" in err, err
