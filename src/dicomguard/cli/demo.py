"""``dicomguard demo``: start the lab in-process, scan it, leave JSONL, database, HTML report
and ground truth in ``--out``.

The scan is the same request ``dicomguard scan`` builds from its flags, so the demo shows what a
user's scan does.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from .scan import bounded


def add_parser(sub: Any) -> argparse.ArgumentParser:
    demo: argparse.ArgumentParser = sub.add_parser(
        "demo", help="start the lab, scan it, print the summary"
    )
    demo.add_argument("--out", type=Path, default=Path("out"), help="output folder (out/)")
    demo.add_argument("--size", type=bounded(int, 1, 254), default=32, help="lab servers (32)")
    return demo


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Lab, scan, report; the scan's exit status."""
    from ..lab.fleet import FleetThread
    from . import build_parser
    from . import scan as scan_command

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    jsonl = out / "scan.jsonl"
    jsonl.unlink(missing_ok=True)
    db = out / "scan.db"
    for stale in (db, db.with_name("scan.db-wal"), db.with_name("scan.db-shm")):
        stale.unlink(missing_ok=True)
    truth = out / "lab-truth.json"
    with FleetThread(size=args.size) as lab:
        fleet = lab.fleet
        fleet.write_truth(truth)
        print(f"lab: {args.size} simulated servers on {fleet.network}; truth in {truth}")
        scan_argv = [
            "scan",
            fleet.network,
            "-p",
            ",".join(map(str, fleet.ports)),
            "--jsonl",
            str(jsonl),
            "--db",
            str(db),
            "--rate",
            "0",
            "--timeout",
            "2",
        ]
        code = scan_command.run(build_parser().parse_args(scan_argv), scan_argv)
    from ..report.html import write_html

    html = write_html(db, out / "report.html")
    print(f"\nresults: {jsonl}, {db}; report: {html}")
    return code
