"""``dicomguard scan``: flags -> :class:`~dicomguard.scan.request.ScanRequest` -> session.

This module only declares the flags (their defaults and bounds are the request's) and builds
the request; :mod:`dicomguard.runner.session` runs it. ``--resume DB`` runs the request stored in
DB. Bad values are one line and exit status 2: argparse's for a flag's own syntax, the
request's named errors (:mod:`dicomguard.scan.request`) and the session's setup errors for the
rest.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..scan.congestion import CONGESTION_RETRIES
from ..scan.request import (
    BUDGET,
    COUNT,
    GREETING,
    GUESSES,
    MAX_WORKERS,
    RATE,
    RETRIES,
    SECONDS,
    Bound,
    ScanRequest,
    ScanRequestError,
)
from .common import UsageError, add_fail_on, add_geoip_arg, fail_on_status

#: the request's defaults are the flags' defaults
DEFAULTS = ScanRequest()


def bounded(
    kind: type, low: float, high: float, *, low_open: bool = False, what: str = ""
) -> Callable[[str], float | int]:
    """An argparse ``type`` accepting a number in [low, high] ((low, high] if ``low_open``)."""
    return _arg(Bound(kind, low, high, low_open=low_open, what=what))


def _arg(bound: Bound) -> Callable[[str], float | int]:
    """``bound`` as an argparse ``type``: its message as argparse's one-line error."""

    def parse(text: str) -> float | int:
        try:
            return bound.parse(text)
        except ScanRequestError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return parse


def _workers_arg(text: str) -> str:
    if text == "auto" or (text.isdigit() and 1 <= int(text) <= MAX_WORKERS):
        return text
    raise argparse.ArgumentTypeError(
        f"--workers takes 'auto' or a number from 1 to {MAX_WORKERS}"
    )


def _input_file_arg(text: str) -> Path | str:
    """-iL value: a path, or "-" (stdin) kept as a string so it is never made absolute."""
    return "-" if text == "-" else Path(text)


HELP = "scan targets for DICOM services"


def add_arguments(p: argparse.ArgumentParser) -> None:
    _add_scan_args(p)
    _add_survey_args(p)


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
        type=_arg(RATE),
        default=DEFAULTS.rate,
        help="new connections per second, at most this many in every second, 0 = unlimited"
        f" (default {DEFAULTS.rate:g})",
    )
    p.add_argument(
        "--concurrency",
        type=_arg(COUNT),
        default=DEFAULTS.concurrency,
        help=f"endpoints in flight ({DEFAULTS.concurrency})",
    )
    p.add_argument(
        "--per-host",
        type=_arg(COUNT),
        default=DEFAULTS.per_host,
        help=f"endpoints per host at once, across all workers ({DEFAULTS.per_host})",
    )
    p.add_argument(
        "--timeout",
        type=_arg(SECONDS),
        default=DEFAULTS.timeout,
        help=f"seconds allowed for each protocol step ({DEFAULTS.timeout:g})",
    )
    p.add_argument("--connect-timeout", type=_arg(SECONDS), default=DEFAULTS.connect_timeout)
    p.add_argument(
        "--endpoint-budget",
        type=_arg(BUDGET),
        default=DEFAULTS.endpoint_budget,
        metavar="SECONDS",
        help="most seconds one endpoint's assessment may take, waits for --rate excluded;"
        f" then it is cut off and recorded with what was learned ({DEFAULTS.endpoint_budget:g})",
    )
    p.add_argument(
        "--endpoint-connections",
        type=_arg(COUNT),
        default=DEFAULTS.endpoint_connections,
        metavar="N",
        help="most connections (associations, TLS handshakes, HTTP requests) per endpoint"
        f" ({DEFAULTS.endpoint_connections})",
    )
    p.add_argument(
        "--retries",
        type=_arg(RETRIES),
        default=DEFAULTS.retries,
        help="re-assessments of an endpoint that answered 'busy, try later' (A-ASSOCIATE-RJ"
        f" transient, congestion or local limit) or dropped its connection, 5 s then 10 s ..."
        f" later in the scan ({DEFAULTS.retries}); a drop or 'busy' while the same server"
        f" answers other addresses is retried beyond these (at most {CONGESTION_RETRIES} times)",
    )
    p.add_argument(
        "--slow-greeting",
        type=_arg(GREETING),
        default=DEFAULTS.slow_greeting,
        metavar="SECONDS",
        help="a port silent through --timeout is asked once more with this longer wait before"
        f" TLS (slow A-ASSOCIATE-AC, e.g. reverse DNS); 0 = no retry ({DEFAULTS.slow_greeting:g})",
    )
    p.add_argument("--calling-aet", default=DEFAULTS.calling_aet, help="our calling AE title")
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
    p.add_argument("--max-aet-guesses", type=_arg(GUESSES), default=DEFAULTS.max_aet_guesses)
    p.add_argument("--no-tls", action="store_true", help="do not try DICOM inside TLS")
    p.add_argument(
        "--discovery",
        action="store_true",
        help="only find DICOM services and fingerprint them (one association each; a TLS-only"
        " port also gets its TLS handshakes, a peer that drops the pipelined A-RELEASE-RQ a"
        " second association)",
    )
    p.add_argument(
        "--no-exposure",
        action="store_true",
        help="do not count the patients/studies a stranger can list",
    )
    p.add_argument(
        "--query-budget",
        type=_arg(COUNT),
        default=DEFAULTS.query_budget,
        help=f"C-FIND operations allowed per endpoint for counting ({DEFAULTS.query_budget})",
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
        default=DEFAULTS.workers,
        type=_workers_arg,
        help="processes sharing the scan (default auto: one per core from 2,048 endpoints)",
    )
    p.add_argument(
        "--sweep",
        choices=ScanRequest.CHOICES["sweep"],
        default=DEFAULTS.sweep,
        help="how open ports are found: raw SYN probes (root) or full connects (default: auto)",
    )
    p.add_argument("--order", choices=ScanRequest.CHOICES["order"], default=DEFAULTS.order)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("-q", "--quiet", action="store_true", help="no summary")
    add_fail_on(p)


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


def request_from_args(args: argparse.Namespace) -> ScanRequest:
    """The scan request the flags describe (not validated yet: the session does that)."""

    def text(value: object) -> str | None:
        return None if value is None else str(value)

    workers = args.workers
    return ScanRequest(
        targets=tuple(args.targets),
        input_files=tuple(str(v) for v in args.input_files),
        exclude=tuple(args.exclude),
        exclude_file=tuple(str(v) for v in args.exclude_file),
        ports=args.ports,
        jsonl=args.jsonl,
        all=args.all,
        rate=args.rate,
        concurrency=args.concurrency,
        per_host=args.per_host,
        timeout=args.timeout,
        connect_timeout=args.connect_timeout,
        endpoint_budget=args.endpoint_budget,
        endpoint_connections=args.endpoint_connections,
        retries=args.retries,
        slow_greeting=args.slow_greeting,
        calling_aet=args.calling_aet,
        impersonate=args.impersonate,
        evidence=text(args.evidence),
        wordlist=text(args.wordlist),
        max_aet_guesses=args.max_aet_guesses,
        no_tls=args.no_tls,
        discovery=args.discovery,
        no_exposure=args.no_exposure,
        query_budget=args.query_budget,
        collect_identifiers=args.collect_identifiers,
        web_ports=args.web_ports,
        no_web=args.no_web,
        intrusive=args.intrusive,
        workers=workers if workers == "auto" else int(workers),
        sweep=args.sweep,
        order=args.order,
        shard=args.shard,
        resolve_names=args.resolve_names,
        geoip=tuple(str(v) for v in args.geoip),
    )


def scan_config_from_args(args: argparse.Namespace) -> Any:
    """The engine configuration the flags describe (tests and tools; ``run`` uses the
    session). Raises UsageError (one line)."""
    from ..runner.config import build_config
    from ..runner.errors import ScanSetupError

    try:
        return build_config(request_from_args(args), db=args.db)
    except (ScanRequestError, ScanSetupError) as exc:
        raise UsageError(str(exc)) from None


def run(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    """New scan (flags -> request -> session) or ``--resume``; the exit status (``--fail-on``
    decides between 0 and 1). Raises UsageError, or ScanInterrupted with the resume command."""
    from ..runner.session import ScanSession, ScanSetupError

    progress, summary = not args.no_progress, not args.quiet
    try:
        if args.resume:
            if args.targets or args.input_files:
                raise UsageError("--resume takes its targets from the database; name none")
            session = ScanSession.resume(args.resume, progress=progress, summary=summary)
        else:
            session = ScanSession.start(
                request_from_args(args),
                db=args.db,
                argv=argv or [],
                progress=progress,
                summary=summary,
            )
    except (ScanRequestError, ScanSetupError) as exc:
        raise UsageError(str(exc)) from None
    outcome = session.run()
    return fail_on_status(args.fail_on, outcome.db)
