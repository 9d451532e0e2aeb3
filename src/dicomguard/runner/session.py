"""One scan run from a :class:`~dicomguard.scan.request.ScanRequest`: the scan use case.

A session turns a validated request into the engine's :class:`~dicomguard.scan.engine.ScanConfig`
(:mod:`.config`, with the targets expanded and sharded by :mod:`.targets` and the outputs checked
by :mod:`.outputs`), opens the scan database (new, or an interrupted one to resume with the
request it stored), runs the workers
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
import signal
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..scan.request import ScanRequest
from .config import build_config
from .errors import ScanInterrupted, ScanSetupError
from .outputs import check_output_paths, truncate
from .targets import resolve_shard

__all__ = [
    "ScanInterrupted",
    "ScanOutcome",
    "ScanSession",
    "ScanSetupError",
    "build_config",
    "check_output_paths",
]


@dataclass(frozen=True)
class ScanOutcome:
    """What a finished run left: its database and the engine's statistics of this run."""

    db: str
    #: {"endpoints", "states", "dicom", "elapsed" (seconds), "rate" (endpoints/second)}
    stats: dict[str, Any]


# --- the run ----------------------------------------------------------------------------------


def default_db() -> str:
    """``dicomguard-<UTC time>.db`` in the current folder."""
    from datetime import UTC, datetime

    return f"dicomguard-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.db"


@dataclass
class ScanSession:
    """One run of a scan into its database. Use :meth:`start` (a new scan) or :meth:`resume`
    (an interrupted one), then :meth:`run` once.

    ``progress``: a progress bar on stderr when it is a terminal. ``summary``: the terminal
    summary after the scan (on stdout, or stderr when the JSON Lines go to stdout), then the
    database's name on stderr.
    """

    #: what is scanned (shard resolved to K/N)
    request: ScanRequest
    #: the engine's ScanConfig built from it (start/skip set on resume)
    config: Any
    #: the open ScanStore; closed by :meth:`run`
    store: Any
    #: path of the scan database
    db: str
    _: dataclasses.KW_ONLY
    #: True when continuing an interrupted scan
    resumed: bool
    progress: bool = True
    summary: bool = True

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
            try:
                meta = store.metadata()
            except StoreError as exc:
                raise ScanSetupError(str(exc)) from None
            request = ScanRequest.from_dict(meta["options"])
            store.store_all = request.all
            config = build_config(request, db=db)
            if config.targets.count() != meta["targets_total"]:
                raise ScanSetupError(
                    f"the targets changed since the scan started ({meta['targets_total']} "
                    f"then, {config.targets.count()} now): resume would skip the wrong ones"
                )
            config.start, config.skip = store.resume_point()
            # the archive cache as it was: a later port of a host already counted is marked
            # same_archive_as, not counted a second time (as in an uninterrupted scan)
            try:
                config.archives = tuple(store.archives())
            except StoreError as exc:  # a damaged archives row: one line, exit 2
                raise ScanSetupError(str(exc)) from None
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
        refuse a changed target space; with geoip, enrich every record before it is stored.

        The last step of opening: the database is first written here (``ScanStore.start``:
        on resume with the resume's own writes, ``resumed + 1`` among them), after every
        check, so a resume refused by any of them leaves the database unchanged."""
        from ..store import StoreError

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
        try:
            store.start(
                {
                    "targets_digest": digest,
                    "shard": f"{k}/{n}",
                    "unresolved_names": str(len(targets.unresolved)),
                }
            )
        except StoreError as exc:
            store.close()
            raise ScanSetupError(str(exc)) from None

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
                _write_texts(truncate(request.jsonl), store.record_texts())
            elif request.jsonl != "-":
                # a new scan's file holds that scan only, as nmap -oN / zgrab2 -o overwrite
                # theirs (the writer appends, for the resume above)
                truncate(request.jsonl)
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

        def encoded_sink(fields: dict[str, Any], text: str) -> None:
            """A worker's record, encoded already: stored without decoding it."""
            if fields.get("state", "open") == "open" or request.all:
                store.add(fields, text)
            else:
                store.add({k: fields[k] for k in ("seq", "state", "host", "port")})

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
            "on_archive": store.add_archive,
        }
        if not request.geoip:  # (geoip adds fields to each record before it is stored)
            run_kw["encoded_sink"] = encoded_sink
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
                if not store.stream_is_final():  # else the file holds these lines already
                    _write_texts(truncate(request.jsonl), store.record_texts())
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


def _stats_dict(stats: Any) -> dict[str, Any]:
    elapsed = max(stats.elapsed, 1e-9)
    return {
        "endpoints": stats.endpoints,
        "states": dict(stats.states),
        "dicom": stats.dicom,
        "elapsed": stats.elapsed,
        "rate": stats.endpoints / elapsed,
    }


def _write_texts(path: str | Path, texts: Iterable[str], chunk: int = 4096) -> None:
    """Write stored records (``ScanStore.record_texts``) as JSON Lines, appending to
    ``path``; the texts are the lines already, no decode and encode each."""
    from ..scan.output import JsonlWriter

    with JsonlWriter(path) as out:
        lines: list[str] = []
        for text in texts:
            lines.append(text)
            if len(lines) >= chunk:
                out.write_lines(lines)
                lines = []
        out.write_lines(lines)
