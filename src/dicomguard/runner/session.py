"""One scan run from a :class:`~dicomguard.scan.request.ScanRequest`: the scan use case.

A session turns a validated request into the engine's :class:`~dicomguard.scan.engine.ScanConfig`
(targets expanded and sharded, probe options, identity, evidence), opens the scan database (new,
or an interrupted one to resume with the request it stored), runs the workers
(:mod:`dicomguard.scan.parallel`), keeps the JSON Lines file equal to the database, and shows
progress and the summary when asked. ``dicomguard scan`` is flags -> request -> session; other
front ends (the demo, tests, a service) build the request themselves.

Errors before the first probe are one line each (the command turns them into exit status 2):
:class:`~dicomguard.scan.request.ScanRequestError` for values, :class:`ScanSetupError` for what
the values point at (unreadable target files, names, unwritable outputs, a database that is not
a scan, a changed target space on resume, raw sockets missing for ``--sweep syn``). Ctrl-C,
SIGTERM and a failed worker raise :class:`ScanInterrupted` after everything finished is stored.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scan.request import ScanRequest

__all__ = [
    "ScanInterrupted",
    "ScanOutcome",
    "ScanSession",
    "ScanSetupError",
    "build_config",
    "check_output_paths",
]


class ScanSetupError(Exception):
    """What a request points at cannot be used (files, names, outputs, the database); one
    line, raised before the first probe."""


class ScanInterrupted(Exception):
    """Ctrl-C, SIGTERM (or a failed worker process) during a scan: everything finished is
    stored; the message says how to go on."""

    def __init__(self, db: str, failure: str | None = None) -> None:
        super().__init__(db)
        self.db = db
        #: None for Ctrl-C; what went wrong when a worker process failed
        self.failure = failure

    def resume_command(self) -> str:
        return f"dicomguard scan --resume {shlex.quote(self.db)}"


@dataclass(frozen=True)
class ScanOutcome:
    """What a finished run left: its database and the engine's statistics of this run."""

    db: str
    #: {"endpoints", "states", "dicom", "elapsed" (seconds), "rate" (endpoints/second)}
    stats: dict[str, Any]


def check_output_paths(outputs: dict[str, str | None], evidence: str | None = None) -> None:
    """Files a command will write must be writable before it starts (issue 12: a --jsonl into a
    missing folder used to end the scan with a traceback).

    ``outputs`` maps the option (``--jsonl``, ``--db``) to its value (None or ``-``: skipped);
    ``evidence`` is a folder. Raises :class:`ScanSetupError` naming the option.
    """
    for option, value in outputs.items():
        if not value or value == "-":
            continue
        path = Path(value)
        folder = path.parent if str(path.parent) else Path(".")
        if path.is_dir():
            raise ScanSetupError(f"{option} {value}: is a folder, not a file")
        if not folder.is_dir():
            raise ScanSetupError(f"{option} {value}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ScanSetupError(f"{option} {value}: folder {folder} is not writable")
        if path.exists() and not os.access(path, os.W_OK):
            raise ScanSetupError(f"{option} {value}: not writable")
        if option == "--jsonl" and path.exists():
            # os.access says yes to root for everything: open it (append, nothing written)
            try:
                path.open("a", encoding="utf-8").close()
            except OSError as exc:
                raise ScanSetupError(f"{option} {value}: cannot write ({exc.strerror})") from None
    if evidence is not None and Path(evidence).exists() and not Path(evidence).is_dir():
        raise ScanSetupError(f"--evidence {evidence}: not a folder")


# --- request -> engine configuration ------------------------------------------------------------


def resolve_shard(request: ScanRequest) -> ScanRequest:
    """``shard`` "auto" (or any K/N spelling) as "K/N": a resumed shard stays the same shard.
    Raises ScanSetupError for a spec or environment that names no shard."""
    if not request.shard:
        return request
    from ..scan.shard import ShardError, parse_shard

    try:
        k, n = parse_shard(request.shard)
    except ShardError as exc:
        raise ScanSetupError(str(exc)) from None
    return dataclasses.replace(request, shard=f"{k}/{n}")


def _targets(request: ScanRequest) -> tuple[Any, tuple[int, ...]]:
    """(TargetSet of this shard, web ports); unresolvable names and left-out addresses are
    reported on stderr, one line each."""
    from ..scan.targets import DEFAULT_PORTS, TargetError, build_targets, parse_ports, resolve_names
    from ..scan.web import DEFAULT_WEB_PORTS

    try:
        ports = parse_ports(request.ports) if request.ports else DEFAULT_PORTS
        web_ports: tuple[int, ...] = ()
        if not request.no_web and not request.discovery:
            # an explicit -p is all the user wants probed, unless web ports are named too
            if request.web_ports:
                web_ports = parse_ports(request.web_ports)
            elif not request.ports:
                web_ports = DEFAULT_WEB_PORTS
        ports = tuple(dict.fromkeys([*ports, *web_ports]))  # the same hosts, web ports too
        targets = build_targets(
            request.targets,
            ports=ports,
            input_files=[v if v == "-" else Path(v) for v in request.input_files],
            excludes=request.exclude,
            exclude_files=[Path(v) for v in request.exclude_file],
            # names typed on the command line are looked up up front (each failure
            # reported); names read from files only with resolve_names
            resolve_file_names=request.resolve_names,
            resolver=resolve_names,
        )
    except TargetError as exc:
        raise ScanSetupError(str(exc)) from None
    except OSError as exc:
        raise ScanSetupError(f"cannot read {exc.filename}: {exc.strerror}") from None
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
            raise ScanSetupError(
                f"no targets left: all {never:,} address(es) asked for are never a server's "
                "(0.0.0.0/8, 224.0.0.0/4, 240.0.0.0/4)"
            )
    if request.geoip:  # a bad database fails before the scan database exists
        from ..geoip import GeoIP, GeoIPError

        try:
            GeoIP([Path(g) for g in request.geoip]).close()
        except GeoIPError as exc:
            raise ScanSetupError(str(exc)) from None
    if request.shard:
        from ..scan.shard import ShardError, parse_shard

        try:
            k, n = parse_shard(request.shard)
        except ShardError as exc:
            raise ScanSetupError(str(exc)) from None
        targets = targets.shard(k, n)
    return targets, web_ports


def build_config(request: ScanRequest, *, db: str | None = None) -> Any:
    """The engine's ScanConfig for ``request`` (validated here), with targets expanded and
    files read; ``db`` is checked writable with the other outputs.

    Raises ScanRequestError (values) or ScanSetupError (what they point at).
    """
    from ..dul.scu import Timeouts
    from ..knowledge.aedefaults import load_wordlist
    from ..scan.assess import ProbeOptions
    from ..scan.engine import ScanConfig
    from ..scan.tls_probe import TlsProbeOptions
    from ..scan.web import WebOptions

    request.validate()
    targets, web_ports = _targets(request)
    check_output_paths({"--jsonl": request.jsonl, "--db": db}, request.evidence)
    wordlist = None
    if request.wordlist:
        try:
            wordlist = load_wordlist(Path(request.wordlist).read_text())
        except OSError as exc:
            raise ScanSetupError(
                f"cannot read wordlist {request.wordlist}: {exc.strerror}"
            ) from None
    exposure = None
    if not request.no_exposure:
        import secrets

        from ..scan.exposure import ExposureOptions

        exposure = ExposureOptions(
            query_budget=request.query_budget,
            # half the endpoint's budget: the count ends as a flagged lower bound before the
            # engine would cut the whole endpoint off (and with it the partial count)
            time_budget=min(ExposureOptions.time_budget, request.endpoint_budget / 2),
            collect_identifiers=request.collect_identifiers,
            salt=secrets.token_bytes(16),  # per scan: hashes link within a scan, not across
        )
    extra: dict[str, Any] = {}
    if request.impersonate:
        from ..scan.identity import ImpersonationError, impersonation

        try:
            extra["identity"] = impersonation(request.impersonate)
        except ImpersonationError as exc:
            raise ScanSetupError(str(exc)) from None
    if request.evidence:
        extra["evidence_dir"] = str(Path(request.evidence).resolve())
    t = request.timeout
    probe = ProbeOptions(
        exposure=exposure,
        calling_aet=request.calling_aet.strip(),
        max_aet_guesses=request.max_aet_guesses,
        timeouts=Timeouts(
            connect=request.connect_timeout, associate=t, dimse=t * 2, release=min(t, 2.0)
        ),
        slow_greeting_timeout=request.slow_greeting,
        try_tls=not request.no_tls,
        discovery=request.discovery,
        tls_probe=TlsProbeOptions(timeout=max(request.connect_timeout, t)),
        web=WebOptions(ports=web_ports, request_budget=request.query_budget, timeout=t)
        if web_ports
        else None,
        intrusive=request.intrusive,
        **({"wordlist": wordlist} if wordlist is not None else {}),
        **extra,
    )
    if request.sweep == "syn":
        from ..scan.synsweep import raw_sockets_available

        if not raw_sockets_available():
            raise ScanSetupError("--sweep syn needs raw sockets (root or CAP_NET_RAW)")
    return ScanConfig(
        sweep=request.sweep,
        targets=targets,
        probe=probe,
        concurrency=request.concurrency,
        per_host=request.per_host,
        rate=request.rate,
        order=request.order,
        endpoint_budget=request.endpoint_budget,
        endpoint_connections=request.endpoint_connections,
        transient_retries=request.retries,
    )


# --- the run ----------------------------------------------------------------------------------


def default_db() -> str:
    """``dicomguard-<UTC time>.db`` in the current folder."""
    from datetime import UTC, datetime

    return f"dicomguard-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.db"


class ScanSession:
    """One run of a scan into its database. Use :meth:`start` (a new scan) or :meth:`resume`
    (an interrupted one), then :meth:`run` once.

    ``progress``: a progress bar on stderr when it is a terminal. ``summary``: the terminal
    summary after the scan (on stdout, or stderr when the JSON Lines go to stdout), then the
    database's name on stderr.
    """

    def __init__(
        self,
        request: ScanRequest,
        config: Any,
        store: Any,
        db: str,
        *,
        resumed: bool,
        progress: bool = True,
        summary: bool = True,
    ) -> None:
        self.request = request
        self.config = config
        self.store = store
        self.db = db
        self.resumed = resumed
        self.progress = progress
        self.summary = summary

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        request: ScanRequest,
        *,
        db: str | None = None,
        argv: Sequence[str] = (),
        progress: bool = True,
        summary: bool = True,
    ) -> ScanSession:
        """A new scan database for ``request`` (``db`` None: :func:`default_db`); ``argv`` is
        stored as typed. Raises ScanRequestError or ScanSetupError, before anything is
        written."""
        from ..store import ScanStore, StoreError

        request = resolve_shard(request)
        config = build_config(request, db=db)
        db = db or default_db()
        try:
            store = ScanStore.create(
                db,
                argv=list(argv),
                options=request.resolved().to_dict(),
                targets_total=config.targets.count(),
                store_all=request.all,
            )
        except StoreError as exc:
            raise ScanSetupError(str(exc)) from None
        config.scan_id = store.scan_id
        session = cls(request, config, store, db, resumed=False, progress=progress,
                      summary=summary)
        session._record_target_space()
        return session

    @classmethod
    def resume(cls, db: str, *, progress: bool = True, summary: bool = True) -> ScanSession:
        """Continue the interrupted scan in ``db`` with the request it stored (any stored
        version, see :mod:`dicomguard.scan.request`). Raises ScanSetupError (not a scan,
        finished, targets changed since) or ScanRequestError (stored options damaged)."""
        from ..store import ScanStore, StoreError

        try:
            store = ScanStore.resume(db)
        except StoreError as exc:
            raise ScanSetupError(str(exc)) from None
        try:
            meta = store.metadata()
            request = ScanRequest.from_dict(meta["options"])
            store.store_all = request.all
            config = build_config(request, db=db)
            if config.targets.count() != meta["targets_total"]:
                raise ScanSetupError(
                    f"the targets changed since the scan started ({meta['targets_total']} "
                    f"then, {config.targets.count()} now): resume would skip the wrong ones"
                )
            config.start, config.skip = store.resume_point()
            config.scan_id = store.scan_id
            session = cls(request, config, store, db, resumed=True, progress=progress,
                          summary=summary)
            session._record_target_space()
        except BaseException:
            store.close()
            raise
        return session

    def _record_target_space(self) -> None:
        """Record the target space and shard in the database (what merge checks); on resume,
        refuse a changed target space; with geoip, enrich every record before it is stored."""
        store, targets = self.store, self.config.targets
        digest = targets.space_digest()
        stored = dict(store.conn.execute("SELECT key, value FROM meta"))
        if self.resumed and stored.get("targets_digest") not in (None, digest):
            store.close()
            raise ScanSetupError(
                "the targets changed since the scan started (input files or name lookups "
                "differ): resume would skip the wrong ones"
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
        if self.request.geoip:
            from ..geoip import GeoIP, GeoIPError

            try:
                geo = GeoIP([Path(g) for g in self.request.geoip])
            except GeoIPError as exc:
                store.close()
                raise ScanSetupError(str(exc)) from None
            add = store.add

            def add_enriched(record: dict[str, Any]) -> None:
                add(geo.enrich(record) if record.get("state", "open") == "open" else record)

            store.add = add_enriched

    # --- running -------------------------------------------------------------------------

    def run(self) -> ScanOutcome:
        """Scan into the database; JSONL and the summary are written from what it stored.

        Raises ScanInterrupted on Ctrl-C/SIGTERM or a failed worker (everything finished is
        committed; the database is closed either way)."""
        from ..scan import parallel
        from ..scan.output import JsonlWriter

        request, config, store = self.request, self.config, self.store
        writer = None
        if request.jsonl:
            if self.resumed and request.jsonl != "-":
                # the file may hold records the database lost (killed between the two):
                # rebuild it from the database, the one source of truth, then append
                with JsonlWriter(_truncate(request.jsonl)) as rewrite:
                    for rec in store.records():
                        rewrite.write(rec)
            writer = JsonlWriter(request.jsonl)
            store.json_listeners.append(writer.write_lines)

        def sink(result: Any) -> None:
            if result.state == "open" or request.all:
                store.add(result.to_dict())
            else:  # only counted: skip building the full record for each closed port
                store.add(
                    {
                        "seq": result.seq,
                        "state": result.state,
                        "host": result.host,
                        "port": result.port,
                    }
                )

        total = config.targets.count()
        # SIGTERM is how Kubernetes evicts a pod and Slurm ends a job at its time limit: stop
        # as Ctrl-C does (commit, print the --resume command) instead of dying without a word
        previous_sigterm = _sigterm_as_interrupt()
        show_progress = self.progress and sys.stderr.isatty()
        wanted = request.workers
        workers = parallel.auto_workers(config) if wanted == "auto" else int(wanted)
        finished = False
        run_kw: dict[str, Any] = {
            "workers": workers,
            "report_closed": request.all,
            "on_done": store.mark_done,
            "on_closed": store.add_closed,
            "closed_batch": store.closed_done,
        }
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

                    stats = parallel.run(config, sink, progress=progress, **run_kw)
            else:
                stats = parallel.run(config, sink, **run_kw)
            store.finish(_stats_dict(stats))
            finished = True
            if writer and request.jsonl != "-":
                # finish() wrote signals only the whole scan shows into some records (honeypot
                # clusters, Orthanc named from its REST port): the file gets the final records
                writer.close()
                writer = None
                with JsonlWriter(_truncate(request.jsonl)) as rewrite:
                    for rec in store.records():
                        rewrite.write(rec)
            if self.summary:  # read back only for the summary (thousands of records in JSON)
                records = store.summary_records()
                meta = store.metadata()
        except KeyboardInterrupt:
            store.commit()  # interrupted: keep every finished index, resume does the rest
            raise ScanInterrupted(self.db) from None
        except parallel.WorkerFailed as exc:
            store.commit()
            raise ScanInterrupted(self.db, str(exc)) from None
        finally:
            if previous_sigterm is not None:
                signal.signal(signal.SIGTERM, previous_sigterm)
            if not finished:
                store.commit()
            store.close()
            if writer:
                writer.close()
        summary = _stats_dict(stats)
        if self.summary:
            # imported here: rich and the report cost ~0.1 s of start-up a quiet scan need not
            # pay
            from rich.console import Console

            from ..report.summary import render_summary

            summary_console = Console(stderr=request.jsonl == "-")
            shown = dict(summary)
            shown.update(
                endpoints=sum(meta["states"].values()),
                states=meta["states"],
                dicom=sum(1 for r in records if r.get("dicom")),
            )
            render_summary(records, shown, summary_console)
            print(f"scan database: {self.db}", file=sys.stderr)
        return ScanOutcome(db=self.db, stats=summary)


def _sigterm_as_interrupt() -> Any:
    """Make SIGTERM raise KeyboardInterrupt in the main thread; returns the previous handler
    (None when not on the main thread, where handlers cannot be set)."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:
        return None


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
