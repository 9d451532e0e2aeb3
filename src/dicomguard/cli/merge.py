"""``dicomguard merge A.db B.db ... -o ALL.db``: the shard databases of one scan into one.

Shards that do not belong together (different targets or options, duplicates, missing or
unfinished shards without ``--partial``) and unwritable outputs are one line and exit status 2
(:class:`~dicomguard.store.StoreError` from :mod:`dicomguard.runner.merge`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import UsageError

HELP = "join the databases of a sharded scan (--shard) into one scan database"


def add_arguments(merge: argparse.ArgumentParser) -> None:
    merge.add_argument("dbs", nargs="+", type=Path, metavar="SHARD.db")
    merge.add_argument("-o", "--output", required=True, type=Path, metavar="ALL.db")
    merge.add_argument(
        "--jsonl", metavar="FILE", help="also write the merged records as JSON Lines (- = stdout)"
    )
    merge.add_argument(
        "--partial",
        action="store_true",
        help="merge even when shards are missing or unfinished (the result says which)",
    )


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Merge ``args.dbs`` into ``args.output`` (and ``--jsonl``); exit status 0."""
    from ..runner.errors import ScanSetupError
    from ..runner.merge import merge_scans
    from ..runner.outputs import check_output_paths
    from ..store import StoreError

    try:
        check_output_paths({"--jsonl": args.jsonl})  # fails before all.db is written
    except ScanSetupError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = merge_scans(
            list(args.dbs), args.output, partial=args.partial, argv=list(argv or [])
        )
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if args.jsonl:
        from ..scan.output import JsonlWriter
        from ..store import load_scan

        if args.jsonl != "-":
            Path(args.jsonl).write_text("", encoding="utf-8")
        with JsonlWriter(args.jsonl) as writer:
            for rec in load_scan(result.path).records:
                writer.write(rec)
    note = f"; missing shard(s) {result.missing}" if result.missing else ""
    print(
        f"merged {len(result.shards)} of {result.of} shard(s), {result.endpoints} endpoint(s)"
        f" -> {result.path}{note}",
        file=sys.stderr,
    )
    return 0
