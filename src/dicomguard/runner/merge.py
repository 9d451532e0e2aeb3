"""``dicomguard merge A.db B.db ... -o ALL.db``: the shard databases of one scan, as one scan.

Each shard of a ``--shard K/N`` scan writes its own database (its own resume). Merging checks
that they really are parts of one scan before it writes anything:

* the same target space: the digest of the whole target set (``targets_digest`` in each
  database's ``meta`` table) is equal, so different target lists, input files or ports are
  refused even when the command lines look alike;
* the same options, except those that do not change what is measured: where output goes
  (``--db``, ``--jsonl``, ``--evidence``), pacing and processes (``--rate``, ``--concurrency``,
  ``--per-host``, ``--workers``), display, and the shard itself (:data:`IGNORED_OPTIONS`);
* the same N, each K at most once, all N present and every shard finished, unless
  ``partial=True`` (then the merged scan says which shards it holds).

The merged database is an ordinary, finished scan database: reports and ``diff`` read it.
Endpoints are copied with their full records (shard-local ``seq`` renumbered ``seq * N + K``,
which interleaves shards the way their hosts were interleaved), findings follow them, state
counts are summed. Every refusal is a :class:`~dicomguard.store.db.StoreError` whose message
is one line.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..store.db import ScanStore, StoreError, check_schema, read_metadata
from ..store.read import open_read_only

__all__ = ["IGNORED_OPTIONS", "MergeResult", "merge_scans"]

#: options that may differ between shards of one scan
IGNORED_OPTIONS = frozenset(
    {
        "db",
        "jsonl",
        "evidence",
        "rate",
        "concurrency",
        "per_host",
        "workers",
        "shard",
        "resume",
        "no_progress",
        "quiet",
        "verbose",
        "geoip",
    }
)


@dataclass
class MergeResult:
    path: str
    shards: list[int]
    of: int
    endpoints: int
    missing: list[int]


@dataclass
class _Part:
    path: str
    meta: dict[str, Any]
    digest: str | None
    shard: tuple[int, int]


def _read_part(path: str | Path) -> _Part:
    conn = open_read_only(path)
    try:
        check_schema(conn, path)
        meta = read_metadata(conn)
        extra = dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read: {exc}") from None
    finally:
        conn.close()
    shard_text = str(extra.get("shard") or (meta["options"] or {}).get("shard") or "0/1")
    k, _, n = shard_text.partition("/")
    if not (k.isdigit() and n.isdigit()):
        raise StoreError(f"{path}: shard {shard_text!r} is not K/N (a merged or partial scan?)")
    return _Part(str(path), meta, extra.get("targets_digest"), (int(k), int(n)))


def _options(meta: dict[str, Any]) -> dict[str, Any]:
    """A shard's stored scan request in today's shape (older databases stored the argparse
    namespace: :meth:`ScanRequest.from_dict` migrates it), so shards scanned by different
    dicomguard versions compare option by option; unreadable options are compared as stored."""
    from ..scan.request import ScanRequest, ScanRequestError

    stored = meta["options"] or {}
    try:
        return ScanRequest.from_dict(stored).to_dict()
    except ScanRequestError:
        return dict(stored)


def _option_diff(a: dict[str, Any], b: dict[str, Any]) -> str | None:
    for key in sorted(set(a) | set(b)):
        if key in IGNORED_OPTIONS:
            continue
        if a.get(key) != b.get(key):
            return f"--{key.replace('_', '-')}: {a.get(key)!r} vs {b.get(key)!r}"
    return None


def merge_scans(
    paths: list[str | Path], output: str | Path, *, partial: bool = False, argv: list[str]
) -> MergeResult:
    """Merge shard databases into a new database ``output``. Raises StoreError (one line)."""
    try:
        return _merge(paths, output, partial=partial, argv=argv)
    except sqlite3.Error as exc:
        raise StoreError(f"merge into {output}: {exc}") from None


def _merge(
    paths: list[str | Path], output: str | Path, *, partial: bool, argv: list[str]
) -> MergeResult:
    if not paths:
        raise StoreError("merge: name the shard databases to merge")
    parts = [_read_part(p) for p in paths]
    first = parts[0]
    n = first.shard[1]
    seen: dict[int, str] = {}
    for part in parts:
        if part.digest is None:
            raise StoreError(
                f"refusing to merge: {part.path} does not record its target space "
                "(made by an older dicomguard); rescan it"
            )
        if part.digest != first.digest:
            raise StoreError(
                f"refusing to merge: {first.path} and {part.path} scanned different targets"
            )
        diff = _option_diff(_options(first.meta), _options(part.meta))
        if diff:
            raise StoreError(
                f"refusing to merge: {first.path} and {part.path} were scanned with different "
                f"options ({diff})"
            )
        k, pn = part.shard
        if pn != n:
            raise StoreError(
                f"refusing to merge: {first.path} is a shard of {n}, {part.path} of {pn}"
            )
        if k in seen:
            raise StoreError(f"refusing to merge: {seen[k]} and {part.path} are both shard {k}/{n}")
        seen[k] = part.path
        if part.meta["finished_at"] is None and not partial:
            raise StoreError(
                f"refusing to merge: {part.path} did not finish (resume it with "
                f"'dicomguard scan --resume {part.path}', or merge with --partial)"
            )
    missing = [k for k in range(n) if k not in seen]
    if missing and not partial:
        listed = ", ".join(f"{k}/{n}" for k in missing)
        raise StoreError(f"refusing to merge: shard(s) {listed} missing (or merge with --partial)")
    if Path(output).exists():
        raise StoreError(f"{output} exists: choose another -o (merge never overwrites)")

    options = _options(first.meta)
    options["shard"] = None
    totals = [p.meta["targets_total"] for p in parts]
    store = ScanStore.create(
        output,
        argv=argv,
        options=options,
        targets_total=None if any(t is None for t in totals) else sum(totals),
    )
    conn = store.conn
    try:
        endpoints = _copy(conn, parts, n)
        states: dict[str, int] = {}
        for part in parts:
            for state, count in part.meta["states"].items():
                states[state] = states.get(state, 0) + count
        started = min(p.meta["started_at"] for p in parts)
        ends = [p.meta["finished_at"] for p in parts]
        finished = None if None in ends else max(ends)
        stats = {
            "merged_from": [p.path for p in parts],
            "shards": sorted(seen),
            "of": n,
            "endpoints": sum(states.values()),
            "states": states,
            "dicom": conn.execute("SELECT count(*) FROM endpoints WHERE dicom = 1").fetchone()[0],
        }
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO states (state, n) VALUES (?, ?)", states.items())
        conn.execute(
            "UPDATE scan SET started_at = ?, finished_at = ?, watermark = ?, stats = ?"
            " WHERE id = 1",
            (started, finished, sum(t or 0 for t in totals), json.dumps(stats)),
        )
        conn.executemany(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
            [
                ("targets_digest", first.digest),
                (
                    "shard",
                    "0/1" if not missing else f"partial:{','.join(map(str, sorted(seen)))}/{n}",
                ),
                ("merged_from", json.dumps([p.path for p in parts])),
            ],
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA journal_mode=DELETE")
    except BaseException:
        store.close()
        Path(output).unlink(missing_ok=True)
        raise
    store.close()
    return MergeResult(str(output), sorted(seen), n, endpoints, missing)


def _copy(conn: sqlite3.Connection, parts: list[_Part], n: int) -> int:
    """Copy endpoints and findings of each part, renumbering seq; returns endpoints copied."""
    copied = 0
    for part in parts:
        k = part.shard[0]
        conn.execute("ATTACH DATABASE ? AS part", (str(Path(part.path).resolve()),))
        try:
            conn.execute("BEGIN IMMEDIATE")
            cur = conn.execute(
                "INSERT INTO endpoints (seq, host, port, state, dicom, tls, product,"
                " product_version, patients, studies, worst_severity, record)"
                " SELECT seq * ? + ?, host, port, state, dicom, tls, product, product_version,"
                " patients, studies, worst_severity, json_set(record, '$.seq', seq * ? + ?)"
                " FROM part.endpoints WHERE true ORDER BY seq"
                " ON CONFLICT (host, port) DO NOTHING",
                (n, k, n, k),
            )
            copied += cur.rowcount
            conn.execute(
                "INSERT INTO findings (endpoint_id, finding, severity, title, confidence, detail)"
                " SELECT e.id, f.finding, f.severity, f.title, f.confidence, f.detail"
                " FROM part.findings f JOIN part.endpoints pe ON pe.id = f.endpoint_id"
                " JOIN main.endpoints e ON e.host = pe.host AND e.port = pe.port"
                " AND e.seq = pe.seq * ? + ?",
                (n, k),
            )
            conn.execute("COMMIT")
        finally:
            conn.execute("DETACH DATABASE part")
    return copied
