"""Make the fixtures of what dicomguard stored before ScanRequest (request version 0).

Run ONCE against the code of commit 5574342 (the last one whose ``cli.py`` stored the argparse
namespace), never against today's, which no longer has ``_options_to_json``::

    git archive 5574342 src | tar -x -C /tmp/old
    cd src/dicomguard/scan/tests/data
    PYTHONPATH=/tmp/old/src ../../../../../.venv/bin/python make_namespace_fixtures.py

It writes, beside this file:

* ``namespace-options.json``: for each argv, the options that version stored, and the folder
  its relative paths were resolved against;
* ``namespace-scan.db``: a scan database that version created for a lab network and that was
  "killed" before its first endpoint (targets and their digest recorded, nothing done), to be
  resumed by today's code.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import dicomguard
from dicomguard import cli  # the old module (cli.py), not today's package
from dicomguard.store import ScanStore

HERE = Path(__file__).resolve().parent

#: argvs whose stored options today's code must read as the same request
ARGVS = [
    ["scan", "127.0.0.1"],
    ["scan", "127.0.0.1-5", "127.0.9.0/30", "-p", "104,11112", "--rate", "0", "--timeout", "2"],
    ["scan", "127.0.0.1", "--workers", "4", "--sweep", "connect", "--order", "spread"],
    ["scan", "127.0.0.1", "--no-tls", "--no-web", "--discovery", "--all", "--no-exposure"],
    ["scan", "127.0.0.1", "--intrusive", "--collect-identifiers", "--calling-aet", "AUDIT"],
    ["scan", "127.0.0.1", "--web-ports", "8042", "--query-budget", "7", "--retries", "0"],
    ["scan", "127.0.0.1", "--slow-greeting", "0", "--endpoint-budget", "30",
     "--endpoint-connections", "9", "--per-host", "1", "--concurrency", "8",
     "--connect-timeout", "1.5", "--max-aet-guesses", "0"],
    ["scan", "127.0.0.1", "--exclude", "127.0.0.2,127.0.0.3", "--shard", "1/3",
     "--resolve-names", "--impersonate", "orthanc"],
    ["scan", "127.0.0.1", "--jsonl", "out.jsonl", "--evidence", "pdus",
     "--wordlist", "aets.txt", "--exclude-file", "never.txt", "--geoip", "country.mmdb"],
    ["scan", "-iL", "-"],
]

#: the killed scan: a lab network of 8 addresses, one port, small budgets
DB_ARGV = ["scan", "127.77.9.0/29", "-p", "11112", "--rate", "0", "--timeout", "2",
           "--query-budget", "8", "--no-web", "--workers", "1", "--shard", "0/1",
           "--jsonl", "resumed.jsonl"]


def main() -> None:
    assert (Path(dicomguard.__file__).parent / "cli.py").is_file(), "run with the old code"
    parser = cli.build_parser()
    out = []
    with tempfile.TemporaryDirectory() as cwd:
        os.chdir(cwd)
        for argv in ARGVS:
            args = parser.parse_args(argv)
            if args.shard:
                args.shard = "1/3"  # what _survey_targets stored (resolved K/N)
            out.append({"argv": argv, "cwd": cwd, "options": cli._options_to_json(args)})
        os.chdir(HERE)
    (HERE / "namespace-options.json").write_text(json.dumps(out, indent=1) + "\n")

    db = HERE / "namespace-scan.db"
    db.unlink(missing_ok=True)
    args = parser.parse_args(DB_ARGV)
    config = cli.scan_config_from_args(args)
    store = ScanStore.create(db, argv=DB_ARGV, options=cli._options_to_json(args),
                             targets_total=config.targets.count(), store_all=args.all)
    cli._survey_store(args, config, store)
    store.commit()
    store.conn.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    store.close()
    print(f"wrote {HERE / 'namespace-options.json'} and {db}", file=sys.stderr)


if __name__ == "__main__":
    main()
