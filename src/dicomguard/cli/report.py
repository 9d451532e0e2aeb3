"""``dicomguard report DB``: one of the report formats of a scan database, to a file or stdout.

A database that cannot be read, a damaged GeoIP database or an unwritable output is one line
and exit status 2; ``--fail-on`` gives exit status 1 when findings reach its severity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError, add_fail_on, add_geoip_arg, fail_on_status

HELP = "turn a scan database into HTML, CSV, SARIF or JSON"


def add_arguments(report: argparse.ArgumentParser) -> None:
    report.add_argument("db", type=Path, metavar="DB")
    report.add_argument(
        "--format",
        choices=("html", "csv", "sarif", "json", "defectdojo", "parquet"),
        default="html",
    )
    add_geoip_arg(report)
    report.add_argument(
        "-o", "--output", metavar="FILE", help="output file (default DB name + format; - = stdout)"
    )
    add_fail_on(report)


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Render ``args.db`` as ``args.format`` into ``args.output``; the exit status."""
    from ..geoip import GeoIPError
    from ..report import EXTENSIONS, render
    from ..store import StoreError

    try:
        text = render(args.db, args.format, geoip=args.geoip or ())
    except (StoreError, GeoIPError) as exc:
        raise UsageError(str(exc)) from None
    out = args.output or str(args.db.with_suffix(EXTENSIONS[args.format]))
    try:
        if isinstance(text, bytes):
            if out == "-":
                sys.stdout.buffer.write(text)
            else:
                Path(out).write_bytes(text)
        elif out == "-":
            sys.stdout.write(text)
        else:
            Path(out).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror}") from None
    if out != "-":
        print(f"{args.format} report: {out}", file=sys.stderr)
    return fail_on_status(args.fail_on, args.db)
