"""``dicomguard scan``: find DICOM services in targets, measure what they expose, store it.

Flags, their bounds, the scan database (new or resumed), workers, JSON Lines and the summary.
"""

from __future__ import annotations

import argparse
import math
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from .common import UsageError, add_fail_on, add_geoip_arg, check_output_paths, fail_on_status


class ScanInterrupted(Exception):
    """Ctrl-C (or a failed worker process) during a scan: everything finished is stored; the
    message says how to go on."""

    def __init__(self, db: str, failure: str | None = None) -> None:
        super().__init__(db)
        self.db = db
        #: None for Ctrl-C; what went wrong when a worker process failed
        self.failure = failure

    def resume_command(self) -> str:
        return f"dicomguard scan --resume {shlex.quote(self.db)}"


def bounded(kind: type, low: float, high: float, *, low_open: bool = False, what: str = ""):
    """An argparse ``type`` accepting a number in [low, high] ((low, high] if ``low_open``)."""

    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            value = None
        ok = (
            value is not None
            and math.isfinite(value)
            and (value > low if low_open else value >= low)
            and value <= high
        )
        if not ok:
            side = "above" if low_open else "at least"
            noun = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(
                f"{noun}{' of ' + what if what else ''} {side} {low:g} and at most {high:g} "
                f"is needed, not {text!r}"
            )
        return value  # type: ignore[return-value]

    return parse


#: bounds of every numeric scan option (issue 12: --timeout 0 made every server look silent)
SECONDS = bounded(float, 0, 3600, low_open=True, what="seconds")
RATE = bounded(float, 0, 10_000_000, what="connections per second (0 = unlimited)")
COUNT = bounded(int, 1, 1_000_000)
GUESSES = bounded(int, 0, 100_000)
BUDGET = bounded(float, 0, 86_400, low_open=True, what="seconds")
RETRIES = bounded(int, 0, 10)
GREETING = bounded(float, 0, 3600, what="seconds (0 = no retry)")


def _workers_arg(text: str) -> str:
    if text == "auto" or (text.isdigit() and 1 <= int(text) <= 64):
        return text
    raise argparse.ArgumentTypeError("--workers takes 'auto' or a number from 1 to 64")


def add_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser("scan", help="scan targets for DICOM services")
    _add_scan_args(p)
    _add_survey_args(p)
    return p


def _add_scan_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("targets", nargs="*", help="addresses, CIDRs, ranges (127.0.0.1-50), names")
    p.add_argument(
        "-iL",
        dest="input_files",
        action="append",
        default=[],
        type=_input_file_arg,
        metavar="FILE",
        help="read targets from FILE (- = stdin; gzip too): lists, host:port, ip,port CSV, "
        "masscan, zmap, nmap, Shodan and Censys output",
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
        type=RATE,
        default=300.0,
        help="new connections per second, at most this many in every second, 0 = unlimited"
        " (default 300)",
    )
    p.add_argument("--concurrency", type=COUNT, default=256, help="endpoints in flight (256)")
    p.add_argument(
        "--per-host",
        type=COUNT,
        default=2,
        help="endpoints per host at once, across all workers (2)",
    )
    p.add_argument(
        "--timeout", type=SECONDS, default=5.0, help="seconds allowed for each protocol step (5)"
    )
    p.add_argument("--connect-timeout", type=SECONDS, default=3.0)
    p.add_argument(
        "--endpoint-budget",
        type=BUDGET,
        default=120.0,
        metavar="SECONDS",
        help="most seconds one endpoint's assessment may take, waits for --rate excluded;"
        " then it is cut off and recorded with what was learned (120)",
    )
    p.add_argument(
        "--endpoint-connections",
        type=COUNT,
        default=200,
        metavar="N",
        help="most connections (associations, TLS handshakes, HTTP requests) per endpoint (200)",
    )
    p.add_argument(
        "--retries",
        type=RETRIES,
        default=2,
        help="re-assessments of an endpoint that answered 'busy, try later' (A-ASSOCIATE-RJ"
        " transient, congestion or local limit), 5 s then 10 s ... later in the scan (2)",
    )
    p.add_argument(
        "--slow-greeting",
        type=GREETING,
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
    p.add_argument("--max-aet-guesses", type=GUESSES, default=30)
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
        type=COUNT,
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
    add_fail_on(p)


def _input_file_arg(text: str) -> Path | str:
    """-iL value: a path, or "-" (stdin) kept as a string so it is never made absolute."""
    return "-" if text == "-" else Path(text)


def _add_survey_args(p: argparse.ArgumentParser) -> None:
    """Options for surveys: shards across machines, names from files, geo enrichment."""
    p.add_argument(
        "--shard",
        metavar="K/N|auto",
        help="scan only part K of N (K from 0) of the targets, whole hosts, as zmap's --shard;"
        " auto: from a Kubernetes Indexed Job (JOB_COMPLETION_INDEX, DICOMGUARD_SHARDS) or a "
        "Slurm array (SLURM_ARRAY_TASK_ID/_MIN/_COUNT); join the parts with dicomguard merge",
    )
    p.add_argument(
        "--resolve-names",
        action="store_true",
        help="look up host names read from -iL files (off: a word in a file is an error)",
    )
    add_geoip_arg(p)


def _names_policy(args: argparse.Namespace) -> dict[str, Any]:
    """Names typed on the command line are looked up up front (each failure reported); names
    read from files only with --resolve-names."""
    from ..scan.targets import resolve_names

    return {
        "resolve_file_names": bool(getattr(args, "resolve_names", False)),
        "resolver": resolve_names,
    }


def _survey_targets(args: argparse.Namespace, targets: Any) -> Any:
    """Report unresolvable names (one line each, then a count) and cut this run's shard."""
    from ..scan.shard import ShardError, parse_shard

    for u in targets.unresolved:
        print(f"dicomguard: cannot resolve {u.name!r} ({u.origin}): {u.reason}", file=sys.stderr)
    if targets.unresolved:
        print(
            f"dicomguard: {len(targets.unresolved)} name(s) could not be resolved and are not "
            "scanned",
            file=sys.stderr,
        )
    never = getattr(targets, "never_servers", 0)
    if never:
        print(
            f"dicomguard: {never:,} address(es) left out: never a server's (0.0.0.0/8, "
            "multicast 224.0.0.0/4, reserved 240.0.0.0/4; RFC 6890)",
            file=sys.stderr,
        )
        if targets.count() == 0:
            # nothing else was asked for: an empty scan with exit 0 would hide the mistake
            raise UsageError(
                f"no targets left: all {never:,} address(es) asked for are never a server's "
                "(0.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4)"
            )
    if getattr(args, "geoip", None):  # a bad database fails before the scan database exists
        from ..geoip import GeoIP, GeoIPError

        try:
            GeoIP(args.geoip).close()
        except GeoIPError as exc:
            raise UsageError(str(exc)) from None
    shard = getattr(args, "shard", None)
    if not shard:
        return targets
    try:
        k, n = parse_shard(shard)
    except ShardError as exc:
        raise UsageError(str(exc)) from None
    args.shard = f"{k}/{n}"  # stored resolved: a resumed shard stays the same shard
    return targets.shard(k, n)


def _survey_store(args: argparse.Namespace, config: Any, store: Any) -> None:
    """Record the target space and shard in the database (what merge checks); on resume,
    refuse a changed target space; with --geoip, enrich every record before it is stored."""
    targets = config.targets
    digest = targets.space_digest()
    stored = dict(store.conn.execute("SELECT key, value FROM meta"))
    if args.resume and stored.get("targets_digest") not in (None, digest):
        store.close()
        raise UsageError(
            "the targets changed since the scan started (input files or name lookups differ):"
            " resume would skip the wrong ones"
        )
    k, n = targets.shard_of
    store.conn.executemany(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
        [
            ("targets_digest", digest),
            ("shard", f"{k}/{n}"),
            ("unresolved_names", str(len(targets.unresolved))),
        ],
    )
    if getattr(args, "geoip", None):
        from ..geoip import GeoIP, GeoIPError

        try:
            geo = GeoIP(args.geoip)
        except GeoIPError as exc:
            store.close()
            raise UsageError(str(exc)) from None
        add = store.add

        def add_enriched(record: dict[str, Any]) -> None:
            add(geo.enrich(record) if record.get("state", "open") == "open" else record)

        store.add = add_enriched


def scan_config_from_args(args: argparse.Namespace) -> Any:
    """Turn parsed options into a ScanConfig, with clear errors for bad values."""
    from ..dul.client import Timeouts
    from ..scan.assess import ProbeOptions, load_wordlist
    from ..scan.engine import ScanConfig
    from ..scan.targets import DEFAULT_PORTS, TargetError, build_targets, parse_ports
    from ..scan.tls_probe import TlsProbeOptions
    from ..scan.web import DEFAULT_WEB_PORTS, WebOptions

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
            **_names_policy(args),
        )
        targets = _survey_targets(args, targets)
    except TargetError as exc:
        raise UsageError(str(exc)) from None
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename}: {exc.strerror}") from None
    if not args.targets and not args.input_files:
        raise UsageError("no targets: name addresses, CIDRs or ranges, or use -iL FILE")
    # bounds are checked by argparse (SECONDS, COUNT...); a stored scan's options again here
    for name, check in _NUMERIC.items():
        value = getattr(args, name, None)
        if value is not None:
            try:
                check(str(value))
            except argparse.ArgumentTypeError as exc:
                raise UsageError(f"--{name.replace('_', '-')}: {exc}") from None
    check_output_paths(
        {"--jsonl": args.jsonl, "--db": getattr(args, "db", None)},
        getattr(args, "evidence", None),
    )
    wordlist = None
    if args.wordlist:
        try:
            wordlist = load_wordlist(args.wordlist.read_text())
        except OSError as exc:
            raise UsageError(f"cannot read wordlist {args.wordlist}: {exc.strerror}") from None
    if not 1 <= len(args.calling_aet.strip()) <= 16:
        raise UsageError("--calling-aet must be 1 to 16 characters")
    if any(not (" " <= c <= "~") or c == "\\" for c in args.calling_aet):
        # PS3.5 6.2 (AE): default character repertoire without backslash or control characters
        raise UsageError(
            f"--calling-aet {args.calling_aet!r}: an AE title is printable ASCII without '\\'"
        )
    exposure = None
    if not args.no_exposure:
        import secrets

        from ..scan.exposure import ExposureOptions

        exposure = ExposureOptions(
            query_budget=args.query_budget,
            # half the endpoint's budget: the count ends as a flagged lower bound before the
            # engine would cut the whole endpoint off (and with it the partial count)
            time_budget=min(ExposureOptions.time_budget, args.endpoint_budget / 2),
            collect_identifiers=args.collect_identifiers,
            salt=secrets.token_bytes(16),  # per scan: hashes link within a scan, not across
        )
    extra: dict[str, Any] = {}
    if getattr(args, "impersonate", None):
        from ..scan.identity import ImpersonationError, impersonation

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
        from ..scan.synsweep import raw_sockets_available

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
        endpoint_budget=args.endpoint_budget,
        endpoint_connections=args.endpoint_connections,
        transient_retries=args.retries,
    )


_NUMERIC = {
    "rate": RATE,
    "concurrency": COUNT,
    "per_host": COUNT,
    "timeout": SECONDS,
    "connect_timeout": SECONDS,
    "endpoint_budget": BUDGET,
    "endpoint_connections": COUNT,
    "retries": RETRIES,
    "max_aet_guesses": GUESSES,
    "query_budget": COUNT,
}


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
    from . import build_parser

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
    from ..store import ScanStore, StoreError

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
                config.scan_id = store.scan_id
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
        config.scan_id = store.scan_id
        return args, config, store
    except StoreError as exc:
        raise UsageError(str(exc)) from None


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; returns the previous handler
    (None when not on the main thread, where handlers cannot be set)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        return None


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """Scan into the database; JSONL and the summary are written from what it stored."""
    from ..scan import parallel
    from ..scan.output import JsonlWriter

    args, config, store = _open_store(args, argv)
    _survey_store(args, config, store)
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
    # SIGTERM is how Kubernetes evicts a pod and Slurm ends a job at its time limit: stop as
    # Ctrl-C does (commit, print the --resume command) instead of dying without a word
    previous_sigterm = _sigterm_as_interrupt()
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
        if writer and args.jsonl != "-":
            # finish() wrote signals only the whole scan shows into some records (honeypot
            # clusters, Orthanc named from its REST port): the file gets the final records
            writer.close()
            writer = None
            with JsonlWriter(_truncate(args.jsonl)) as rewrite:
                for rec in store.records():
                    rewrite.write(rec)
        if not args.quiet:  # read back only for the summary (thousands of records in JSON)
            records = store.summary_records()
            meta = store.metadata()
    except KeyboardInterrupt:
        store.commit()  # interrupted: keep every finished index, resume does the rest
        raise ScanInterrupted(args.db) from None
    except parallel.WorkerFailed as exc:
        store.commit()
        raise ScanInterrupted(args.db, str(exc)) from None
    finally:
        if previous_sigterm is not None:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if not finished:
            store.commit()
        store.close()
        if writer:
            writer.close()
    if not args.quiet:
        # imported here: rich and the report cost ~0.1 s of start-up a quiet scan need not pay
        from rich.console import Console

        from ..report.summary import render_summary

        summary_console = Console(stderr=args.jsonl == "-")
        summary = _stats_dict(stats)
        summary.update(
            endpoints=sum(meta["states"].values()),
            states=meta["states"],
            dicom=sum(1 for r in records if r.get("dicom")),
        )
        render_summary(records, summary, summary_console)
        print(f"scan database: {args.db}", file=sys.stderr)
    return fail_on_status(args.fail_on, args.db)


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
