"""CSV cells a stranger controls cannot become spreadsheet formulas.

A server picks its implementation version name, product string, accepted AE title, and its
network's AS organisation; a cell that starts with ``=``, ``+``, ``-``, ``@``, tab or carriage
return is run as a formula by Excel/LibreOffice (OWASP "CSV Injection": prefix such cells with
a single quote). Bidi overrides, NULs and very long values stay data in one cell.
"""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import pytest

from dicomguard.cli import main

from .synthetic import record, write_db

PAYLOADS = (
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    '=HYPERLINK("javascript:alert(1)","x")',
)
TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def _hostile(tmp_path: Path) -> Path:
    rng = random.Random(7)
    recs = []
    for i, p in enumerate(PAYLOADS * 3):
        r = record(i, rng)
        r["product"] = p
        r["product_version"] = p
        r["implementation_version_name"] = p + "\u202e\x00" + "A" * 5000
        r["implementation_class_uid"] = p
        r["called_aet"] = {"enforced": True, "accepted": p, "verified": True}
        r["as_org"] = p
        r["country"] = p
        recs.append(r)
    return write_db(tmp_path / "hostile.db", recs)


def test_no_csv_cell_starts_a_formula(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = _hostile(tmp_path)
    capsys.readouterr()
    assert main(["report", str(db), "--format", "csv", "-o", "-"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1 + len(PAYLOADS) * 3
    width = len(rows[0])
    seen = 0
    for row in rows[1:]:
        assert len(row) == width  # NULs, CRs and bidi overrides did not split a cell
        for cell in row:
            assert not cell.startswith(TRIGGERS), cell[:40]
            if cell.startswith("'") and cell[1:] in PAYLOADS:
                seen += 1
    assert seen >= len(PAYLOADS) * 3  # the payloads are there, neutralised, not dropped
