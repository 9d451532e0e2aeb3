"""What every ``dicomguard`` command shares: the one-line error, the parser, shared flags.

Every command module of this package has the same shape: ``HELP`` is its line in
``dicomguard -h``, ``add_arguments(parser)`` declares its flags, ``run(args, argv) -> int`` turns
them into a request for the part that does the work and returns the exit status. Bad input
raises :class:`UsageError` (or a named error the command converts to it);
:func:`dicomguard.cli.main` prints it as one line and exits 2. Exit statuses: 0 ok, 1 findings
at or above ``--fail-on`` (or a runtime failure), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2, never a traceback."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``dicomguard: error: ...`` and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"dicomguard: error: {message} (see {self.prog} -h)", file=sys.stderr)
        raise SystemExit(2)


def add_fail_on(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fail-on",
        choices=("info", "low", "medium", "high", "critical"),
        metavar="SEVERITY",
        help="exit 1 when a finding of SEVERITY or worse exists (info, low, medium, high, "
        "critical); exit statuses: 0 ok, 1 findings, 2 usage error, 130 interrupted",
    )


def fail_on_status(fail_on: str | None, db: Any) -> int:
    """The exit status ``--fail-on`` asks for (report/gate.py), with one line on stderr."""
    from ..report.gate import exit_status

    code, message = exit_status(db, fail_on)
    if message:
        print(f"dicomguard: {message}", file=sys.stderr)
    return code


def add_geoip_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--geoip",
        action="append",
        default=[],
        type=Path,
        metavar="FILE.mmdb",
        help="add country/asn/as_org to each record from a MaxMind-format database "
        "(repeat for a country and an ASN database)",
    )
