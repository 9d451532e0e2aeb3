"""``dicomguard diff OLD NEW``: appeared, disappeared and changed endpoints between two scans.

A database that cannot be read is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError

HELP = "what appeared, disappeared or changed between two scans"


def add_arguments(diff: argparse.ArgumentParser) -> None:
    diff.add_argument("old", type=Path, metavar="OLD.db")
    diff.add_argument("new", type=Path, metavar="NEW.db")
    diff.add_argument("--format", choices=("text", "json"), default="text")


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Print the difference of ``args.old`` and ``args.new``; exit status 0."""
    import json

    from ..report.diff import diff_scans, format_diff
    from ..store import StoreError, load_scan

    try:
        result = diff_scans(load_scan(args.old), load_scan(args.new))
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(format_diff(result))
    return 0
