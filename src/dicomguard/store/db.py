"""Crash-safe scan database: batched writes, resume bookkeeping, scan metadata.

A research-scale scan runs for hours; a crash (or SIGKILL, or a reboot) must cost at most the
endpoints that were in flight. Two mechanisms give that:

* WAL journal with ``synchronous=NORMAL``: a transaction is either wholly in the file or not at
  all after the process dies, and commits do not wait for fsync (only power loss can drop the
  last few transactions, never corrupt the file). That makes frequent small commits cheap.
* resume bookkeeping in the same transactions as the results: a *watermark* (every target index
  below it is done) plus the set of done indices above it. The engine hands out indices in order,
  so that set never holds more than about ``concurrency`` entries. An index's results are staged
  in memory until the engine reports the index finished, then written together with the index's
  "done" mark - so the database never holds half an index, and a resumed scan neither loses an
  endpoint nor stores (or probes) a finished one twice.

A resume writes nothing until it is known to start (:meth:`ScanStore.start`): a refused one
(damaged, finished, options refused, targets changed) leaves the file as it was.

Commits happen every ``batch_size`` results, every ``batch_seconds`` seconds, and when the
watermark moves while results are waiting, whichever comes first; watermark commits are at
least ``watermark_seconds`` apart (50 ms). Without that spacing a scan where every endpoint
answers (a zmap list of DICOM servers) committed every one or two endpoints, and a SQLite
commit (~0.4 ms of CPU) cost more than the association it recorded.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import __version__
from ..knowledge.findings import severity_rank
from .schema import DDL, DDL_STATEMENTS, SCHEMA_VERSION

Record = dict[str, Any]
#: called after each commit with the records it made durable (JSONL is written from these)
CommitListener = Callable[[list[Record]], None]
#: the same, with each record as the compact JSON text stored in the database
JsonListener = Callable[[list[str]], None]


class StoreError(Exception):
    """The database cannot be used as asked (exists already, not a dicomguard scan, finished)."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating if needed) with the pragmas every writer and reader relies on.

    Raises StoreError (one line) when the file cannot be opened or is not an SQLite database
    (a text file, a damaged or truncated database): sqlite3 only notices at the first
    statement, and its exception used to reach the user as a traceback.
    """
    conn = sqlite3.connect(str(path), isolation_level=None)  # we issue BEGIN/COMMIT ourselves
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
    except sqlite3.OperationalError as exc:
        conn.close()
        raise StoreError(f"{path}: cannot open as a scan database ({exc})") from None
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"{path}: not a dicomguard scan database ({exc})") from None
    return conn


def lock_writer(path: str | Path) -> int:
    """Take the scan database's writer lock: an exclusive ``flock`` on the file, held by the
    scanning process (and its forked workers) until :meth:`ScanStore.close` or its end, kill -9
    included. Returns the descriptor holding it.

    Two writers of one scan would probe its endpoints twice and count them twice (a
    ``--resume`` of a database another dicomguard was still scanning into was accepted when
    the watermark had not moved between the resume's read and its start: 69 endpoints
    scanned of 64, and the first scan ended in a traceback). SQLite's own locks are POSIX
    record locks on the same file and do not interact with ``flock``; readers (report,
    merge) take no lock. Raises StoreError (one line) when another process holds it.
    """
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise StoreError(f"{path}: cannot open ({exc.strerror})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(
            f"{path}: another dicomguard is scanning into it; resume it once that scan has"
            " stopped"
        ) from None
    except OSError:
        # a file system without flock (some FUSE mounts): no lock, the resume's watermark
        # check (ScanStore.start) still catches most second writers
        pass
    return fd


def worst_severity(findings: Iterable[dict[str, Any]]) -> str | None:
    sev = [f.get("severity") for f in findings if f.get("severity")]
    return max(sev, key=lambda s: severity_rank(str(s))) if sev else None


class ScanStore:
    """The writer side of one scan database. Not thread-safe: use it from the event loop only."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        path: str | Path,
        *,
        store_all: bool = False,
        batch_size: int = 200,
        batch_seconds: float = 1.0,
        watermark_seconds: float = 0.05,
    ) -> None:
        self.conn = conn
        self.path = str(path)
        #: the descriptor holding :func:`lock_writer`'s lock (None: not taken)
        self._lock_fd: int | None = None
        self.store_all = store_all
        self.batch_size = batch_size
        self.batch_seconds = batch_seconds
        self.watermark_seconds = watermark_seconds
        self.listeners: list[CommitListener] = []
        #: JSON Lines writers: the text the database stores, not encoded a second time
        self.json_listeners: list[JsonListener] = []
        row = conn.execute("SELECT watermark FROM scan WHERE id = 1").fetchone()
        self.watermark: int = row[0]
        self._opened_at_watermark = self.watermark  # what start() checks is still stored
        self._done: set[int] = {r[0] for r in conn.execute("SELECT seq FROM done")}
        self._pending: dict[int, list[Record]] = {}  # results of indices still in flight
        self._batch: list[Record] = []  # results of finished indices, not yet committed
        #: id(record) -> its JSON text, for records staged with their text (add)
        self._texts: dict[int, str] = {}
        #: archive cache entries (add_archive) of indices in flight / finished, not committed
        self._pending_archives: dict[int, list[Record]] = {}
        self._archive_batch: list[Record] = []
        self._states: dict[str, int] = {}
        self._new_done: set[int] = set()
        self._moved = False
        self._last_commit = time.monotonic()
        self.commits = 0
        #: True from :meth:`resume` to :meth:`start`: the connection is read-only till then
        self._resuming = False
        #: the scan's id, written into every record (``scan_id``); kept across resumes
        self.scan_id, self._new_scan_id = read_scan_id(conn)
        #: what the JSON listeners were given: records so far, strictly in target order
        #: ((seq, host, port) increasing) so far, the last key; and whether the end of the
        #: scan changed any stored record. A stream in order with one line per stored row
        #: and no change at the end IS the file :meth:`record_texts` gives (issue 13: the
        #: rewrite at the end cost a decode and an encode per record)
        self.streamed = 0
        self.streamed_in_order = True
        self._streamed_last: tuple[int, str, int] | None = None
        self.changed_at_finish = False
        #: (host, port) -> the fields of each open record this store wrote that the
        #: end-of-scan joins read (:data:`JOIN_FIELDS`), so that they need not decode every
        #: stored record (issue 13: ~27 us per endpoint); None when the table held records
        #: before (a resumed scan): the joins then read them all
        self._summaries: dict[tuple[str, int], Record] | None = (
            None if conn.execute("SELECT 1 FROM endpoints LIMIT 1").fetchone() else {}
        )

    # --- opening -------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        argv: list[str],
        options: dict[str, Any],
        targets_total: int | None,
        **kw: Any,
    ) -> ScanStore:
        """A new scan database; refuses a file that already holds a scan (use resume for it)."""
        conn = connect(path)
        lock = None
        try:
            lock = lock_writer(path)
            conn.executescript(DDL)
            if conn.execute("SELECT 1 FROM scan").fetchone():
                raise StoreError(f"{path} already holds a scan: resume it or choose another --db")
            conn.execute("BEGIN")
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
            conn.execute("INSERT OR REPLACE INTO meta VALUES ('scan_id', ?)", (str(uuid.uuid4()),))
            conn.execute(
                "INSERT INTO scan (id, version, argv, options, targets_total, started_at)"
                " VALUES (1, ?, ?, ?, ?, ?)",
                (__version__, json.dumps(argv), json.dumps(options), targets_total, utc_now()),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.close()
            if lock is not None:
                os.close(lock)
            raise
        store = cls(conn, path, **kw)
        store._lock_fd = lock
        return store

    @classmethod
    def resume(cls, path: str | Path, **kw: Any) -> ScanStore:
        """Reopen an unfinished scan to continue it where its last commit left off.

        Nothing is written until :meth:`start` (the session calls it once every check of the
        resume passed; else the first :meth:`commit` does): until then the database is open
        read-only, so a resume refused on the way (damaged, finished, options refused, targets
        changed, archive cache damaged...) leaves its file byte for byte as it was, and its
        ``resumed`` count too. Raises StoreError (one line).
        """
        from .read import open_read_only

        conn = open_read_only(path)
        lock = None
        try:
            check_schema(conn, path)
            try:
                row = conn.execute("SELECT finished_at FROM scan WHERE id = 1").fetchone()
                if row[0] is not None:
                    raise StoreError(f"{path}: this scan finished at {row[0]}; nothing to resume")
                lock = lock_writer(path)  # before reading the resume point
                store = cls(conn, path, **kw)
            except sqlite3.DatabaseError as exc:
                raise StoreError(f"{path}: cannot read: {exc}") from None
        except BaseException:
            conn.close()
            if lock is not None:
                os.close(lock)
            raise
        store._lock_fd = lock
        store._resuming = True
        return store

    def start(self, meta: dict[str, str] | None = None) -> None:
        """Store ``meta`` rows (the session's target space and shard), in one transaction with,
        on a resumed scan, the writes a resume makes: tables added since the database was made
        (``archives``), a scan id for a database from before scan ids, ``resumed + 1``.

        The session calls it once the run is known to start (every check passed); on a
        resumed store the first :meth:`commit` calls it otherwise. Raises StoreError when the
        database changed since :meth:`resume` read it (another process resumed it).
        """
        rows = list((meta or {}).items())
        if not self._resuming:
            if rows:
                self.conn.execute("BEGIN IMMEDIATE")
                self._write_meta(rows)
                self.conn.execute("COMMIT")
            return
        read_only, self.conn = self.conn, connect(self.path)  # read-write, WAL
        read_only.close()
        c = self.conn
        try:
            c.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # locked by another writer past busy_timeout
            raise StoreError(f"{self.path}: cannot resume: {exc}") from None
        try:
            now = c.execute("SELECT watermark, finished_at FROM scan WHERE id = 1").fetchone()
            if now != (self._opened_at_watermark, None):
                raise StoreError(
                    f"{self.path}: changed since it was opened for resume (another dicomguard "
                    "is writing to it?)"
                )
            for statement in DDL_STATEMENTS:  # IF NOT EXISTS: tables added since
                c.execute(statement)
            if self._new_scan_id:
                c.execute("INSERT INTO meta VALUES ('scan_id', ?)", (self.scan_id,))
            c.execute("UPDATE scan SET resumed = resumed + 1 WHERE id = 1")
            self._write_meta(rows)
            c.execute("COMMIT")
        except BaseException as exc:
            c.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise StoreError(f"{self.path}: cannot resume: {exc}") from None
            raise
        self._resuming = False
        self._new_scan_id = False

    def _write_meta(self, rows: list[tuple[str, str]]) -> None:
        self.conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", rows)

    # --- metadata ------------------------------------------------------------------------------

    def metadata(self) -> dict[str, Any]:
        """The scan's metadata; StoreError when a JSON column of it is damaged."""
        try:
            return read_metadata(self.conn)
        except (ValueError, TypeError) as exc:  # argv / options / stats not JSON
            raise StoreError(f"{self.path}: cannot read: scan metadata damaged ({exc})") from None

    def resume_point(self) -> tuple[int, frozenset[int]]:
        """(first index to scan, indices past it already done): ScanConfig.start and .skip."""
        return self.watermark, frozenset(self._done)

    # --- the engine's callbacks ----------------------------------------------------------------

    def add(self, record: Record, text: str | None = None) -> None:
        """Sink for every assessed endpoint: counted always, kept if open (or ``store_all``).

        ``text``: the record's compact JSON (``json.dumps(full, separators=(",", ":"))``),
        encoded already (a parallel scan's worker does it); ``record`` then needs only the
        fields the store reads besides the text: seq, host, port, state, dicom, tls,
        product, product_version, exposure, findings and :data:`JOIN_FIELDS`.
        """
        seq = record.get("seq")
        if seq is None:
            raise ValueError("records need the target index 'seq' for resume bookkeeping")
        # stage even unstored ones so their state count lands in the same commit as their index
        self._pending.setdefault(seq, []).append(record)
        if text is not None:
            self._texts[id(record)] = text

    def add_archive(self, seq: int, entry: Record) -> None:
        """Engine hook ``on_archive``: index ``seq``'s measurement joined the archive cache
        (``{"host", "key", "signature", "exposure"}``, see scan.engine.Archived). Written in
        the commit that stores the index's record, so a resumed scan has one iff the other."""
        self._pending_archives.setdefault(seq, []).append(entry)

    def archives(self) -> list[tuple[str, tuple[Any, ...], tuple[Any, ...], Record]]:
        """The archive cache entries of the stored records, as ``ArchiveCache.remember`` takes
        them (ScanConfig.archives of a resumed scan): first those rebuilt from a measured
        record without an ``archives`` row (:func:`rebuilt_archive`: a database written before
        that table existed), then the stored rows whose origin record is stored.
        Raises StoreError (one line) for a damaged row or record."""
        has_table = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archives'"
        ).fetchone()
        out = []
        try:
            with_rows: set[tuple[str, int]] = set()
            if has_table:
                with_rows = set(self.conn.execute("SELECT host, port FROM archives"))
            measured = self.conn.execute(
                "SELECT id, host, port FROM endpoints WHERE dicom = 1 AND studies IS NOT NULL"
                " ORDER BY seq, port, host"
            ).fetchall()
            for endpoint_id, host, port in measured:
                if (host, port) in with_rows:
                    continue
                (text,) = self.conn.execute(
                    "SELECT record FROM endpoints WHERE id = ?", (endpoint_id,)
                ).fetchone()
                try:
                    entry = rebuilt_archive(json.loads(text))
                except (ValueError, TypeError, AttributeError) as exc:
                    raise StoreError(
                        f"{self.path}: cannot read: record of {host}:{port} damaged ({exc})"
                    ) from None
                if entry is not None:
                    out.append(entry)
            rows = self.conn.execute(
                "SELECT a.host, a.key, a.signature, a.exposure FROM archives a"
                " JOIN endpoints e ON e.host = a.host AND e.port = a.port ORDER BY a.rowid"
            ) if has_table else ()
            for host, key, signature, exposure in rows:
                impl, version, contexts = json.loads(key)
                sig = tuple(json.loads(signature))
                exp = json.loads(exposure)
                # the shapes exposure.measure relies on (first/last day, their study counts)
                if len(sig) != 4 or not all(isinstance(d, str) for d in sig[::2]):
                    raise ValueError(f"signature {signature[:80]!r}")
                if not all(isinstance(n, int) for n in sig[1::2]):
                    raise ValueError(f"signature {signature[:80]!r}")
                if not isinstance(exp, dict) or not isinstance(contexts, list):
                    raise ValueError(f"key/exposure {key[:80]!r} {exposure[:80]!r}")
                out.append((host, (impl, version, tuple(contexts)), sig, exp))
        except (ValueError, TypeError) as exc:  # a damaged row: not JSON, not a triple
            raise StoreError(f"{self.path}: cannot read: archive cache damaged ({exc})") from None
        return out

    def add_closed(self, seq: int, state: str) -> None:
        """Sink for an endpoint that did not accept: only its state is counted."""
        self._pending.setdefault(seq, []).append({"state": state})

    def closed_done(self, state: str, seqs: list[int]) -> None:
        """Many finished indices that did not accept (a parallel scan's batches): the same
        bookkeeping as ``add_closed`` + ``mark_done`` for each, in one tight loop."""
        self._states[state] = self._states.get(state, 0) + len(seqs)
        done, new_done = self._done, self._new_done
        watermark = self.watermark
        for seq in seqs:
            if seq < watermark or seq in done:
                continue
            if seq == watermark:
                watermark += 1
                while watermark in done:
                    done.discard(watermark)
                    new_done.discard(watermark)
                    watermark += 1
                self._moved = True
            else:
                done.add(seq)
                new_done.add(seq)
        self.watermark = watermark
        self._maybe_commit()

    def mark_done(self, seq: int) -> None:
        """The engine finished target index ``seq``: its results join the next commit."""
        for rec in self._pending.pop(seq, ()):
            state = rec.get("state", "open")
            self._states[state] = self._states.get(state, 0) + 1
            if state == "open" or self.store_all:
                self._batch.append(rec)
            elif self._texts:
                self._texts.pop(id(rec), None)  # not kept: its id may be reused
        if self._pending_archives:
            self._archive_batch.extend(self._pending_archives.pop(seq, ()))
        if seq < self.watermark or seq in self._done:
            return  # cannot happen with a correct engine; never count an index twice
        if seq == self.watermark:
            self.watermark += 1
            while self.watermark in self._done:
                self._done.discard(self.watermark)
                self._new_done.discard(self.watermark)
                self.watermark += 1
            self._moved = True
        else:
            self._done.add(seq)
            self._new_done.add(seq)
        self._maybe_commit()

    def _maybe_commit(self) -> None:
        waited = time.monotonic() - self._last_commit
        if (
            len(self._batch) >= self.batch_size
            or (self._moved and self._batch and waited >= self.watermark_seconds)
            or waited >= self.batch_seconds
        ):
            self.commit()

    # --- writing -------------------------------------------------------------------------------

    def commit(self) -> list[Record]:
        """Write staged results and bookkeeping in one transaction; tell listeners after."""
        if self._resuming:
            self.start()
        batch, self._batch = self._batch, []
        states, self._states = self._states, {}
        new_done, self._new_done = self._new_done, set()
        archives, self._archive_batch = self._archive_batch, []
        c = self.conn
        dumps = json.dumps
        encoded = self._texts
        texts = [
            encoded.pop(id(rec), None) or dumps(rec, separators=(",", ":")) for rec in batch
        ]
        summaries = self._summaries
        if summaries is not None:
            for rec in batch:
                key = (rec["host"], rec["port"])
                if rec.get("state", "open") == "open":
                    summaries[key] = {k: rec[k] for k in JOIN_FIELDS if k in rec}
                else:
                    summaries.pop(key, None)
        c.execute("BEGIN IMMEDIATE")
        try:
            # the batch in three statements (issue 13: a statement per record cost ~20 us of
            # CPU each); an endpoint stored twice in one batch (a name and its address) is
            # upserted twice and keeps its latest record's findings, as before
            c.executemany(_UPSERT_ENDPOINT, map(_endpoint_row, batch, texts))
            findings: dict[tuple[str, int], list[tuple[Any, ...]]] = {}
            for rec in batch:
                findings[(rec["host"], rec["port"])] = [
                    (
                        f["id"],
                        f["severity"],
                        f.get("title", ""),
                        f.get("confidence"),
                        f.get("detail"),
                    )
                    for f in rec.get("findings") or []
                ]
            c.executemany(
                "DELETE FROM findings WHERE endpoint_id ="
                " (SELECT id FROM endpoints WHERE host = ? AND port = ?)",
                findings,
            )
            c.executemany(
                "INSERT INTO findings (endpoint_id, finding, severity, title, confidence, detail)"
                " SELECT id, ?, ?, ?, ?, ? FROM endpoints WHERE host = ? AND port = ?",
                (row + key for key, rows in findings.items() for row in rows),
            )
            if archives:
                c.executemany(
                    "INSERT INTO archives (host, port, key, signature, exposure)"
                    " VALUES (?,?,?,?,?)",
                    [_archive_row(a) for a in archives],
                )
            c.executemany(
                "INSERT INTO states (state, n) VALUES (?, ?)"
                " ON CONFLICT (state) DO UPDATE SET n = n + excluded.n",
                states.items(),
            )
            c.executemany(
                "INSERT OR IGNORE INTO done (seq) VALUES (?)",
                ((s,) for s in new_done if s >= self.watermark),
            )
            c.execute("DELETE FROM done WHERE seq < ?", (self.watermark,))
            c.execute("UPDATE scan SET watermark = ? WHERE id = 1", (self.watermark,))
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise
        self._moved = False
        self._last_commit = time.monotonic()
        self.commits += 1
        for listener in self.listeners:
            listener(batch)
        if self.json_listeners:
            self._note_stream(batch)
            for json_listener in self.json_listeners:
                json_listener(texts)
        return batch

    def _note_stream(self, batch: list[Record]) -> None:
        self.streamed += len(batch)
        if not self.streamed_in_order:
            return
        last = self._streamed_last
        for rec in batch:
            key = (rec["seq"], rec["host"], rec["port"])
            if last is not None and key <= last:
                self.streamed_in_order = False
                return
            last = key
        self._streamed_last = last

    def stream_is_final(self) -> bool:
        """Do the lines given to the JSON listeners since this store was opened equal
        :meth:`record_texts` (in target order, one per stored endpoint, none changed by
        :meth:`finish`)? Call after :meth:`finish`."""
        if not self.streamed_in_order or self.changed_at_finish:
            return False
        (rows,) = self.conn.execute("SELECT COUNT(*) FROM endpoints").fetchone()
        return int(rows) == self.streamed

    def finish(self, stats: dict[str, Any] | None = None) -> None:
        """The scan ran to its end: last commit, cross-endpoint signals, end time, statistics.

        Signals only the whole scan can see (identical data on several hosts, see
        :func:`dicomguard.knowledge.honeypot.annotate`) are written into each member's record.
        """
        self.commit()
        self._cross_record_signals()
        self.conn.execute(
            "UPDATE scan SET finished_at = ?, stats = ? WHERE id = 1",
            (utc_now(), json.dumps(stats or {})),
        )
        # a finished scan is one self-contained file (no -wal/-shm beside it) to copy or archive
        # another connection open on the file (a report read while the scan runs, a sqlite3
        # shell) keeps it in WAL: leaving WAL needs the file alone, and the scan is committed
        # already (the -wal is folded back by the last connection to close)
        with contextlib.suppress(sqlite3.OperationalError):
            self.conn.execute("PRAGMA journal_mode=DELETE")

    def _cross_record_signals(self) -> None:
        """Write into the stored records what only several records together show: identical
        data on several hosts (honeypot clusters) and one host's DICOM ports named from its
        Orthanc REST record (Orthanc's AC says DCMTK). Runs once, when the scan ends."""
        from ..knowledge.honeypot import annotate
        from ..knowledge.host_identity import join_host_identity

        summaries = self._summaries
        if summaries is not None:
            (stored,) = self.conn.execute(
                "SELECT COUNT(*) FROM endpoints WHERE state = 'open'"
            ).fetchone()
            if stored != len(summaries):  # rows written another way: read them all
                summaries = None
        texts: list[str] = []
        records: list[Record] = []
        if summaries is None:
            rows = self.conn.execute("SELECT record FROM endpoints WHERE state = 'open'")
            texts = [r[0] for r in rows]
            records = [json.loads(t) for t in texts]
        views = records if summaries is None else list(summaries.values())
        # the honeypot clusters span hosts: judged on every record (or its summary)
        honeypots = {
            (r["host"], r["port"]): r["honeypot"]
            for r in annotate([r for r in views if r.get("dicom")])  # copies of the changed
        }
        # join_host_identity changes only DICOM records named "DCMTK" without a toolkit, on a
        # host with a web record of an Orthanc, and reads only the records of that host
        orthanc_hosts = {
            str(r.get("host")) for r in views
            if (r.get("web") or {}).get("product") == "Orthanc"
        }
        join_hosts = {
            str(r.get("host")) for r in views
            if r.get("dicom") and r.get("product") == "DCMTK" and not r.get("toolkit")
            and str(r.get("host")) in orthanc_hosts
        }
        if summaries is not None:
            if not honeypots and not join_hosts:
                return
            # the whole records of what may change, in the order a full read gives them
            for host, port, text in self.conn.execute(
                "SELECT host, port, record FROM endpoints WHERE state = 'open' ORDER BY id"
            ):
                if (host, port) in honeypots or str(host) in join_hosts:
                    texts.append(text)
                    records.append(json.loads(text))
        by_endpoint = {(r["host"], r["port"]): r for r in records}
        #: the records the joins may have changed (by id): only these are encoded again
        touched: set[int] = set()
        for key, honeypot in honeypots.items():
            record = by_endpoint[key]
            record["honeypot"] = honeypot
            touched.add(id(record))
        touched.update(
            id(r) for r in records
            if r.get("dicom") and r.get("product") == "DCMTK" and not r.get("toolkit")
            and str(r.get("host")) in join_hosts
        )
        join_host_identity(records)
        # a record is stored as json.dumps(rec, separators) and json.loads keeps key order, so
        # an unchanged record encodes to its stored text again; only the touched ones are
        # encoded to compare (issue 13: an encoding per record cost ~25 us per endpoint)
        dumps = json.dumps
        changed = [
            r for r, text in zip(records, texts, strict=True)
            if id(r) in touched and dumps(r, separators=(",", ":")) != text
        ]
        if not changed:
            return
        self.changed_at_finish = True
        self.conn.execute("BEGIN IMMEDIATE")
        self.conn.executemany(
            "UPDATE endpoints SET record = ? WHERE host = ? AND port = ?",
            [(json.dumps(r, separators=(",", ":")), r["host"], r["port"]) for r in changed],
        )
        self.conn.execute("COMMIT")

    def records(self) -> list[Record]:
        """Every stored record in target order (what the JSONL holds)."""
        return [
            json.loads(r[0])
            for r in self.conn.execute("SELECT record FROM endpoints ORDER BY seq, host, port")
        ]

    def record_texts(self) -> Iterator[str]:
        """Every stored record in target order as the JSONL line it is (without the newline):
        the stored text, which is ``json.dumps(record, separators=(",", ":"))`` and encodes
        to itself after ``json.loads`` (keys keep their order), so no decode and encode."""
        for (text,) in self.conn.execute(
            "SELECT record FROM endpoints ORDER BY seq, host, port"
        ):
            yield text

    def summary_records(self, others: int = 10_000) -> list[Record]:
        """Every DICOM record plus at most ``others`` non-DICOM ones: bounded for huge scans."""
        rows = self.conn.execute(
            "SELECT record FROM (SELECT seq, host, port, record FROM endpoints WHERE dicom = 1"
            " UNION ALL SELECT * FROM (SELECT seq, host, port, record FROM endpoints"
            " WHERE dicom = 0 ORDER BY seq LIMIT ?)) ORDER BY seq, host, port",
            (others,),
        )
        return [json.loads(r[0]) for r in rows]

    def close(self) -> None:
        self.conn.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # the writer lock goes with it
            self._lock_fd = None

    def __enter__(self) -> ScanStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the record fields knowledge.honeypot.annotate and knowledge.host_identity read
JOIN_FIELDS = (
    "host", "port", "state", "dicom", "max_pdu", "canary_result", "implementation_class_uid",
    "implementation_version_name", "services", "exposure", "honeypot", "product",
    "product_version", "toolkit", "web",
)

#: one endpoint row; an endpoint listed twice in the targets (a name and its address) is kept
#: once, latest
_UPSERT_ENDPOINT = (
    "INSERT INTO endpoints (seq, host, port, state, dicom, tls, product, product_version,"
    " patients, studies, worst_severity, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (host, port) DO UPDATE SET seq=excluded.seq, state=excluded.state,"
    " dicom=excluded.dicom, tls=excluded.tls, product=excluded.product,"
    " product_version=excluded.product_version, patients=excluded.patients,"
    " studies=excluded.studies, worst_severity=excluded.worst_severity,"
    " record=excluded.record"
)


def _endpoint_row(rec: Record, text: str) -> tuple[Any, ...]:
    """The endpoints row of a record (``text``: its compact JSON)."""
    exposure = rec.get("exposure") or {}
    if exposure.get("same_archive_as"):
        # another port of this host fronts the same archive: its counts are that port's,
        # so the columns stay empty and sums over endpoints count each archive once
        exposure = {}
    return (
        rec["seq"],
        rec["host"],
        rec["port"],
        rec.get("state", "open"),
        int(bool(rec.get("dicom"))),
        int(bool(rec.get("tls"))),
        rec.get("product"),
        rec.get("product_version"),
        exposure.get("patients"),
        exposure.get("studies"),
        worst_severity(rec.get("findings") or []),
        text,
    )


#: query services whose contexts a refused probe operation hides before counting
#: (scan.operations.hide_refused_contexts)
_HIDDEN_WHEN_REFUSED = ("find_study_root", "find_patient_root", "worklist")


def rebuilt_archive(record: Record) -> tuple[str, tuple[Any, ...], tuple[Any, ...], Record] | None:
    """The archive cache entry an uninterrupted scan made for ``record``'s measurement,
    rebuilt from the record alone, or None when the record cannot give one.

    A database written before the ``archives`` table (by dicomguard before commit 203aff2,
    e.g. 5574342's code) has the records but not their entries, so a port of the
    same archive measured after a kill and ``--resume`` was counted a second time. The record
    lacks two things the entry holds:

    * the studies on the first and last study day (the signature): a complete count's
      ``studies_by_year`` gives the studies from the first day to the end of its year, and
      from the start of the last day's year to that day, exactly (no study is earlier than
      the first day or later than the last). The signature holds those two date ranges
      ("YYYYMMDD-YYYYMMDD", a PS3.4 C.2.2.2.5 range matching StudyDate) with their counts,
      and the later port is asked for them as for two days (two C-FINDs); an incomplete
      count (lower bounds, ``complete`` false) gives no entry: that port is measured in full,
      as before;
    * the accepted abstract syntaxes of the key: only the services they prove are recorded,
      so the key is ``(implementation class UID, version name, None, service names)``
      (``services_negotiated`` less the query services whose probe operation was refused,
      plus ``"canary"`` when the canary context was accepted), which
      ``scan.exposure.ArchiveCache.lookup`` compares with a port's contexts mapped the same way.

    Shape: ``(host, key, signature, exposure)``, exposure with ``same_archive_as`` set to the
    record's endpoint. Raises TypeError/AttributeError/ValueError for a record of the wrong
    shape.
    """
    exposure = record.get("exposure")
    if not record.get("dicom") or not isinstance(exposure, dict):
        return None
    if exposure.get("same_archive_as") or exposure.get("complete") is not True:
        return None
    first, last = exposure.get("earliest_study_date"), exposure.get("latest_study_date")
    by_year = exposure.get("studies_by_year")
    if not (isinstance(first, str) and isinstance(last, str) and isinstance(by_year, dict)):
        return None
    if len(first) != 8 or len(last) != 8 or not (first + last).isdigit():
        return None
    n_first, n_last = by_year.get(first[:4]), by_year.get(last[:4])
    if not (isinstance(n_first, int) and isinstance(n_last, int) and n_first and n_last):
        return None
    operations = record.get("operations") or {}
    hidden = {
        name for name in _HIDDEN_WHEN_REFUSED
        if (operations.get(name) or {}).get("state") == "refused"
    }
    services = {name for name, on in (record.get("services_negotiated") or {}).items() if on}
    services -= hidden
    if record.get("canary_result") == 0:
        services.add("canary")
    host, port = str(record["host"]), int(record["port"])
    key = (
        record.get("implementation_class_uid"),
        record.get("implementation_version_name"),
        None,
        tuple(sorted(services)),
    )
    signature = (f"{first}-{first[:4]}1231", n_first, f"{last[:4]}0101-{last}", n_last)
    return host, key, signature, {**exposure, "same_archive_as": f"{host}:{port}"}


def _archive_row(entry: Record) -> tuple[Any, ...]:
    origin = str(entry["exposure"]["same_archive_as"])  # "host:port" of the measured port
    return (
        entry["host"],
        int(origin.rsplit(":", 1)[1]),
        json.dumps(entry["key"]),
        json.dumps(entry["signature"]),
        json.dumps(entry["exposure"], separators=(",", ":")),
    )


def read_scan_id(conn: sqlite3.Connection) -> tuple[str, bool]:
    """The scan's id (a UUID made when the database was created) and False; for a database
    from before scan ids a new one and True (:meth:`ScanStore.start` stores it)."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'scan_id'").fetchone()
    if row is not None:
        return str(row[0]), False
    return str(uuid.uuid4()), True


def check_schema(conn: sqlite3.Connection, path: str | Path) -> None:
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        has_scan = conn.execute("SELECT 1 FROM scan WHERE id = 1").fetchone()
    except sqlite3.DatabaseError:
        raise StoreError(f"{path}: not a dicomguard scan database") from None
    if row is None or not has_scan:
        raise StoreError(f"{path}: not a dicomguard scan database")
    if str(row[0]) != str(SCHEMA_VERSION):  # not int(): a damaged value is not a ValueError
        raise StoreError(f"{path}: schema version {row[0]}, this dicomguard reads {SCHEMA_VERSION}")


def read_metadata(conn: sqlite3.Connection) -> dict[str, Any]:
    row = conn.execute(
        "SELECT version, argv, options, targets_total, started_at, finished_at, resumed,"
        " watermark, stats FROM scan WHERE id = 1"
    ).fetchone()
    keys = [
        "version",
        "argv",
        "options",
        "targets_total",
        "started_at",
        "finished_at",
        "resumed",
        "watermark",
        "stats",
    ]
    meta = dict(zip(keys, row, strict=True))
    for k in ("argv", "options", "stats"):
        meta[k] = json.loads(meta[k]) if meta[k] else None
    meta["states"] = dict(conn.execute("SELECT state, n FROM states ORDER BY state"))
    row = conn.execute("SELECT value FROM meta WHERE key = 'scan_id'").fetchone()
    meta["scan_id"] = row[0] if row else None
    return meta
