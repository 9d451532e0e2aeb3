"""The ``dicomguard`` command: scan, lab, demo.

argparse rather than click because the nmap-style options (``-iL``, ``-p``) are single-dash
multi-letter flags that argparse handles natively.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from . import __version__


class UsageError(Exception):
    """A user mistake: printed as one line, exit status 2, never a traceback."""


def _workers_arg(text: str) -> str:
    if text == "auto" or (text.isdigit() and 1 <= int(text) <= 64):
        return text
    raise argparse.ArgumentTypeError("--workers takes 'auto' or a number from 1 to 64")


def _add_scan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", help="addresses, CIDRs, ranges (127.0.0.1-50), names")
    p.add_argument(
        "-iL",
        dest="input_files",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="read targets (or masscan/zmap/nmap output) from FILE",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="SPECS",
        help="comma-separated targets never to touch",
    )
    p.add_argument("--exclude-file", action="append", default=[], type=Path, metavar="FILE")
    p.add_argument("-p", "--ports", default=None, help="ports (default 104,11112,4242,2761,2762)")
    p.add_argument(
        "--jsonl", metavar="FILE", help="write one JSON record per endpoint (- = stdout)"
    )
    p.add_argument("--all", action="store_true", help="also write closed/filtered endpoints")
    p.add_argument(
        "--db",
        metavar="FILE",
        help="scan database (default ./dicomguard-<UTC time>.db)",
    )
    p.add_argument(
        "--resume",
        metavar="FILE",
        help="continue the killed scan in FILE with its stored options",
    )
    p.add_argument(
        "--rate",
        type=float,
        default=300.0,
        help="new connections per second, 0 = unlimited (default 300)",
    )
    p.add_argument("--concurrency", type=int, default=256, help="endpoints in flight (256)")
    p.add_argument("--per-host", type=int, default=2, help="endpoints per host at once (2)")
    p.add_argument(
        "--timeout", type=float, default=5.0, help="seconds allowed for each protocol step (5)"
    )
    p.add_argument("--connect-timeout", type=float, default=3.0)
    p.add_argument(
        "--slow-greeting",
        type=float,
        default=20.0,
        metavar="SECONDS",
        help="a port silent through --timeout is asked once more with this longer wait before"
        " TLS (slow A-ASSOCIATE-AC, e.g. reverse DNS); 0 = no retry (20)",
    )
    p.add_argument("--calling-aet", default="DICOMGUARD", help="our calling AE title")
    p.add_argument(
        "--impersonate",
        metavar="PRODUCT",
        help="announce a product's implementation class UID/version name from fingerprints.toml"
        " instead of dicomguard's own (default: dicomguard's own identity)",
    )
    p.add_argument(
        "--evidence",
        type=Path,
        metavar="DIR",
        help="keep the PDUs exchanged with each endpoint in DIR/<host>_<port>.jsonl"
        " (patient identifiers redacted)",
    )
    p.add_argument("--wordlist", type=Path, help="called AE titles to try when one is enforced")
    p.add_argument("--max-aet-guesses", type=int, default=30)
    p.add_argument("--no-tls", action="store_true", help="do not try DICOM inside TLS")
    p.add_argument(
        "--discovery",
        action="store_true",
        help="only find DICOM services and fingerprint them (one association each)",
    )
    p.add_argument(
        "--no-exposure",
        action="store_true",
        help="do not count the patients/studies a stranger can list",
    )
    p.add_argument(
        "--query-budget",
        type=int,
        default=100,
        help="C-FIND operations allowed per endpoint for counting (100)",
    )
    p.add_argument(
        "--collect-identifiers",
        action="store_true",
        help="store salted hashes of patient IDs seen (never the IDs themselves)",
    )
    p.add_argument(
        "--web-ports",
        default=None,
        metavar="PORTS",
        help="HTTP(S) ports of the same hosts checked for an open Orthanc REST API and "
        "QIDO-RS (default without -p: 8042,8080,80,443,3000,8443; with -p: none unless "
        "named here); --query-budget bounds their requests",
    )
    p.add_argument("--no-web", action="store_true", help="skip the web/DICOMweb checks")
    p.add_argument(
        "--intrusive",
        action="store_true",
        help="also C-STORE a labelled synthetic test object and C-MOVE a nonexistent study to "
        "a random AE title (changes the server: only with the owner's permission)",
    )
    p.add_argument(
        "--workers",
        default="auto",
        type=_workers_arg,
        help="processes sharing the scan (default auto: one per core from 2,048 endpoints)",
    )
    p.add_argument(
        "--sweep",
        choices=("auto", "syn", "connect"),
        default="auto",
        help="how open ports are found: raw SYN probes (root) or full connects (default: auto)",
    )
    p.add_argument("--order", choices=("sequential", "spread"), default="sequential")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    _add_fail_on(p)


def _add_fail_on(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--fail-on",
        choices=("info", "low", "medium", "high", "critical"),
        metavar="SEVERITY",
        help="exit 1 when a finding of SEVERITY or worse exists (info, low, medium, high, "
        "critical); exit statuses: 0 ok, 1 findings, 2 usage error, 130 interrupted",
    )


def _fail_on(args: argparse.Namespace, db: Any) -> int:
    """The exit status ``--fail-on`` asks for (report/gate.py), with one line on stderr."""
    from .report.gate import exit_status

    code, message = exit_status(db, getattr(args, "fail_on", None))
    if message:
        print(f"dicomguard: {message}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dicomguard",
        description="Find exposed DICOM services, measure what they leak, guard legacy devices.",
    )
    parser.add_argument("--version", action="version", version=f"dicomguard {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    scan = sub.add_parser("scan", help="scan targets for DICOM services")
    _add_scan_args(scan)
    sub.add_parser(
        "lab", help="run the simulated DICOM fleet (options: dicomguard lab -h)", add_help=False
    )
    sub.add_parser(
        "gateway",
        help="run the secure gateway in front of a legacy device (dicomguard gateway -h)",
        add_help=False,
    )
    demo = sub.add_parser("demo", help="start the lab, scan it, print the summary")
    demo.add_argument("--out", type=Path, default=Path("out"), help="output folder (out/)")
    demo.add_argument("--size", type=int, default=32, help="lab servers (32)")
    report = sub.add_parser("report", help="turn a scan database into HTML, CSV, SARIF or JSON")
    report.add_argument("db", type=Path, metavar="DB")
    report.add_argument(
        "--format", choices=("html", "csv", "sarif", "json", "defectdojo"), default="html"
    )
    report.add_argument(
        "-o", "--output", metavar="FILE", help="output file (default DB name + format; - = stdout)"
    )
    _add_fail_on(report)
    diff = sub.add_parser("diff", help="what appeared, disappeared or changed between two scans")
    diff.add_argument("old", type=Path, metavar="OLD.db")
    diff.add_argument("new", type=Path, metavar="NEW.db")
    diff.add_argument("--format", choices=("text", "json"), default="text")
    return parser


def scan_config_from_args(args: argparse.Namespace) -> Any:
    """Turn parsed options into a ScanConfig, with clear errors for bad values."""
    from .dul.client import Timeouts
    from .scan.assess import ProbeOptions, load_wordlist
    from .scan.engine import ScanConfig
    from .scan.targets import DEFAULT_PORTS, TargetError, build_targets, parse_ports
    from .scan.tls_probe import TlsProbeOptions
    from .scan.web import DEFAULT_WEB_PORTS, WebOptions

    try:
        ports = parse_ports(args.ports) if args.ports else DEFAULT_PORTS
        web_ports: tuple[int, ...] = ()
        given = getattr(args, "web_ports", None)
        if not getattr(args, "no_web", False) and not args.discovery:
            # an explicit -p is all the user wants probed, unless web ports are named too
            if given:
                web_ports = parse_ports(given)
            elif not args.ports:
                web_ports = DEFAULT_WEB_PORTS
        ports = tuple(dict.fromkeys([*ports, *web_ports]))  # the same hosts, web ports too
        targets = build_targets(
            args.targets,
            ports=ports,
            input_files=args.input_files,
            excludes=args.exclude,
            exclude_files=args.exclude_file,
        )
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if not args.targets and not args.input_files:
        raise UsageError("no targets: name addresses, CIDRs or ranges, or use -iL FILE")
    for name in ("rate", "timeout", "connect_timeout"):
        if getattr(args, name) < 0:
            raise UsageError(f"--{name.replace('_', '-')} must not be negative")
    for name in ("concurrency", "per_host"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name.replace('_', '-')} must be at least 1")
    wordlist = None
    if args.wordlist:
        try:
            wordlist = load_wordlist(args.wordlist.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read wordlist {args.wordlist}: {exc.strerror}") from None
    if not 1 <= len(args.calling_aet.strip()) <= 16:
        raise UsageError("--calling-aet must be 1 to 16 characters")
    if args.query_budget < 1:
        raise UsageError("--query-budget must be at least 1")
    exposure = None
    if not args.no_exposure:
        import secrets

        from .scan.exposure import ExposureOptions

        exposure = ExposureOptions(
            query_budget=args.query_budget,
            collect_identifiers=args.collect_identifiers,
            salt=secrets.token_bytes(16),  # per scan: hashes link within a scan, not across
        )
    extra: dict[str, Any] = {}
    if getattr(args, "impersonate", None):
        from .scan.identity import ImpersonationError, impersonation

        try:
            extra["identity"] = impersonation(args.impersonate)
        except ImpersonationError as exc:
            raise UsageError(str(exc)) from None
    if getattr(args, "evidence", None):
        extra["evidence_dir"] = str(Path(args.evidence).resolve())
    t = args.timeout
    probe = ProbeOptions(
        exposure=exposure,
        calling_aet=args.calling_aet.strip(),
        max_aet_guesses=args.max_aet_guesses,
        timeouts=Timeouts(
            connect=args.connect_timeout, associate=t, dimse=t * 2, release=min(t, 2.0)
        ),
        slow_greeting_timeout=args.slow_greeting,
        try_tls=not args.no_tls,
        discovery=args.discovery,
        tls_probe=TlsProbeOptions(timeout=max(args.connect_timeout, t)),
        web=WebOptions(ports=web_ports, request_budget=args.query_budget, timeout=t)
        if web_ports
        else None,
        intrusive=bool(getattr(args, "intrusive", False)),
        **({"wordlist": wordlist} if wordlist is not None else {}),
        **extra,
    )
    if getattr(args, "sweep", "auto") == "syn":
        from .scan.synsweep import raw_sockets_available

        if not raw_sockets_available():
            raise UsageError("--sweep syn needs raw sockets (root or CAP_NET_RAW)")
    return ScanConfig(
        sweep=getattr(args, "sweep", "auto"),
        targets=targets,
        probe=probe,
        concurrency=args.concurrency,
        per_host=args.per_host,
        rate=args.rate,
        order=args.order,
    )


#: options that only change what this run shows, not what it scans: not stored, not restored
_DISPLAY_OPTIONS = ("no_progress", "quiet", "fail_on")
_PATH_OPTIONS = ("input_files", "exclude_file", "wordlist", "evidence")


def _options_to_json(args: argparse.Namespace) -> dict[str, Any]:
    """The scan's options as stored in its database, paths absolute so resume finds them."""
    out: dict[str, Any] = {}
    for key, value in vars(args).items():
        if key in ("command", "verbose", "db", "resume", *_DISPLAY_OPTIONS):
            continue
        if isinstance(value, Path):
            value = str(value.resolve())
        elif isinstance(value, list):
            value = [str(v.resolve()) if isinstance(v, Path) else v for v in value]
        out[key] = value
    return out


def _options_from_json(options: dict[str, Any], current: argparse.Namespace) -> argparse.Namespace:
    """Rebuild the stored scan's options over today's defaults (new options get defaults)."""
    args = build_parser().parse_args(["scan"])
    for key, value in options.items():
        if key in _PATH_OPTIONS and value is not None:
            value = [Path(v) for v in value] if isinstance(value, list) else Path(value)
        setattr(args, key, value)
    for key in _DISPLAY_OPTIONS:
        setattr(args, key, getattr(current, key))
    args.resume = current.resume
    args.db = current.resume
    return args


def _default_db() -> str:
    from datetime import UTC, datetime

    return f"dicomguard-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.db"


def _open_store(args: argparse.Namespace, argv: list[str] | None) -> tuple[Any, Any, Any]:
    """(args, config, store): a new scan database, or the stored one with its resume point."""
    from .store import ScanStore, StoreError

    try:
        if args.resume:
            if args.targets or args.input_files:
                raise UsageError("--resume takes its targets from the database; name none")
            store = ScanStore.resume(args.resume)
            try:
                meta = store.metadata()
                args = _options_from_json(meta["options"], args)
                store.store_all = bool(args.all)
                config = scan_config_from_args(args)
                if config.targets.count() != meta["targets_total"]:
                    raise UsageError(
                        f"the targets changed since the scan started ({meta['targets_total']} "
                        f"then, {config.targets.count()} now): resume would skip the wrong ones"
                    )
                config.start, config.skip = store.resume_point()
            except BaseException:
                store.close()
                raise
            return args, config, store
        config = scan_config_from_args(args)
        args.db = args.db or _default_db()
        store = ScanStore.create(
            args.db,
            argv=list(argv or []),
            options=_options_to_json(args),
            targets_total=config.targets.count(),
            store_all=args.all,
        )
        return args, config, store
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def run_scan(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Scan into the database; JSONL and the summary are written from what it stored."""
    from .scan import parallel
    from .scan.output import JsonlWriter

    args, config, store = _open_store(args, argv)
    writer = None
    if args.jsonl:
        if args.resume and args.jsonl != "-":
            # the file may hold records the database lost (killed between the two): rebuild it
            # from the database, the one source of truth, then append as the scan goes on
            with JsonlWriter(_truncate(args.jsonl)) as rewrite:
                for rec in store.records():
                    rewrite.write(rec)
        writer = JsonlWriter(args.jsonl)
        store.json_listeners.append(writer.write_lines)

    def sink(result: Any) -> None:
        if result.state == "open" or args.all:
            store.add(result.to_dict())
        else:  # only counted: skip building the full record for each closed port
            store.add(
                {"seq": result.seq, "state": result.state, "host": result.host, "port": result.port}
            )

    total = config.targets.count()
    show_progress = not args.no_progress and sys.stderr.isatty()
    wanted = str(getattr(args, "workers", "auto"))
    workers = parallel.auto_workers(config) if wanted == "auto" else int(wanted)
    finished = False
    try:
        if show_progress:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            with Progress(
                TextColumn("scanning"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[dicom]} DICOM"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            ) as bar:
                task = bar.add_task("scan", total=total, dicom=0)
                found = 0
                already = config.start + len(config.skip)

                def progress(done: int, result: Any) -> None:
                    nonlocal found
                    found += bool(result.dicom)
                    bar.update(task, completed=already + done, dicom=found)

                stats = parallel.run(
                    config,
                    sink,
                    workers=workers,
                    progress=progress,
                    report_closed=args.all,
                    on_done=store.mark_done,
                    on_closed=store.add_closed,
                    closed_batch=store.closed_done,
                )
        else:
            stats = parallel.run(
                config,
                sink,
                workers=workers,
                report_closed=args.all,
                on_done=store.mark_done,
                on_closed=store.add_closed,
                closed_batch=store.closed_done,
            )
        store.finish(_stats_dict(stats))
        finished = True
        if not args.quiet:  # read back only for the summary (thousands of records in JSON)
            records = store.summary_records()
            meta = store.metadata()
    finally:
        if not finished:
            store.commit()  # interrupted: keep every finished index, resume does the rest
        store.close()
        if writer:
            writer.close()
    if not args.quiet:
        # imported here: rich and the report cost ~0.1 s of start-up a quiet scan need not pay
        from rich.console import Console

        from .report.summary import render_summary

        summary_console = Console(stderr=args.jsonl == "-")
        summary = _stats_dict(stats)
        summary.update(
            endpoints=sum(meta["states"].values()),
            states=meta["states"],
            dicom=sum(1 for r in records if r.get("dicom")),
        )
        render_summary(records, summary, summary_console)
        print(f"scan database: {args.db}", file=sys.stderr)
    return _fail_on(args, args.db)


def _truncate(path: str) -> str:
    Path(path).write_text("", encoding="utf-8")
    return path


def _stats_dict(stats: Any) -> dict[str, Any]:
    elapsed = max(stats.elapsed, 1e-9)
    return {
        "endpoints": stats.endpoints,
        "states": dict(stats.states),
        "dicom": stats.dicom,
        "elapsed": stats.elapsed,
        "rate": stats.endpoints / elapsed,
    }


def run_demo(args: argparse.Namespace) -> int:
    """Start the lab in-process, scan it, leave JSONL and ground truth in ``--out``."""
    from .lab.fleet import FleetThread

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
        code = run_scan(build_parser().parse_args(scan_argv), scan_argv)
    from .report.html import write_html

    html = write_html(db, out / "report.html")
    print(f"\nresults: {jsonl}, {db}; report: {html}")
    return code


def run_report(args: argparse.Namespace) -> int:
    """``dicomguard report DB``: one of the report formats, to a file or stdout."""
    from .report import render
    from .store import StoreError

    try:
        text = render(args.db, args.format)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    from .report import EXTENSIONS

    out = args.output or str(args.db.with_suffix(EXTENSIONS[args.format]))
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
        print(f"{args.format} report: {out}", file=sys.stderr)
    return _fail_on(args, args.db)


def run_diff(args: argparse.Namespace) -> int:
    """``dicomguard diff OLD NEW``: appeared, disappeared and changed endpoints."""
    import json

    from .report.diff import diff_scans, format_diff
    from .store import StoreError, load_scan

    try:
        result = diff_scans(load_scan(args.old), load_scan(args.new))
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if args.format == "json":
        print(json.dumps(result, indent=2))
    else:
        sys.stdout.write(format_diff(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # silence pynetdicom's per-association log lines; our own summary says what matters
    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    if argv[:1] == ["lab"]:
        from .lab.fleet import main as lab_main

        return int(lab_main(argv[1:]) or 0)
    if argv[:1] == ["gateway"]:
        from .gateway.cli import main as gateway_main

        return int(gateway_main(argv[1:]) or 0)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG)
    try:
        if args.command == "scan":
            return run_scan(args, argv)
        if args.command == "demo":
            return run_demo(args)
        if args.command == "report":
            return run_report(args)
        if args.command == "diff":
            return run_diff(args)
    except UsageError as exc:
        print(f"dicomguard: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dicomguard: interrupted", file=sys.stderr)
        return 130
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
