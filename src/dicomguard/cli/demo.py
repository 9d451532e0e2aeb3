"""``dicomguard demo``: start the lab in-process, scan it, leave JSONL, database, HTML report
and ground truth in ``--out``.

The scan is a :class:`~dicomguard.scan.request.ScanRequest` run by a
:class:`~dicomguard.runner.session.ScanSession`, as ``dicomguard scan`` runs its flags, so the demo
shows what a user's scan does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..scan.request import ScanRequest, ScanRequestError
from .common import UsageError
from .scan import bounded

HELP = "start the lab, scan it, print the summary"


def add_arguments(demo: argparse.ArgumentParser) -> None:
    demo.add_argument("--out", type=Path, default=Path("out"), help="output folder (out/)")
    demo.add_argument("--size", type=bounded(int, 1, 254), default=32, help="lab servers (32)")


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Lab, scan, report; exit status 0 (findings are the point of the demo)."""
    from ..lab.fleet import FleetThread
    from ..runner.session import ScanSession, ScanSetupError

    out: Path = args.out
    jsonl = out / "scan.jsonl"
    db = out / "scan.db"
    try:
        out.mkdir(parents=True, exist_ok=True)
        jsonl.unlink(missing_ok=True)
        for stale in (db, db.with_name("scan.db-wal"), db.with_name("scan.db-shm")):
            stale.unlink(missing_ok=True)
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot use as the output folder ({exc.strerror})") from None
    truth = out / "lab-truth.json"
    with FleetThread(size=args.size) as lab:
        fleet = lab.fleet
        fleet.write_truth(truth)
        print(f"lab: {args.size} simulated servers on {fleet.network}; truth in {truth}")
        ports = ",".join(map(str, fleet.ports))
        request = ScanRequest(
            targets=(fleet.network,),
            ports=ports,
            jsonl=str(jsonl),
            rate=0.0,
            timeout=2.0,
        )
        # the database keeps the command line of the same scan, as `dicomguard scan` stores it
        scan_argv = ["scan", fleet.network, "-p", ports, "--jsonl", str(jsonl), "--db", str(db),
                "--rate", "0", "--timeout", "2"]
        try:
            session = ScanSession.start(request, db=str(db), argv=scan_argv)
        except (ScanRequestError, ScanSetupError) as exc:
            raise UsageError(str(exc)) from None
        session.run()
    from ..report.html import write_html

    html = write_html(db, out / "report.html")
    print(f"\nresults: {jsonl}, {db}; report: {html}")
    return 0
