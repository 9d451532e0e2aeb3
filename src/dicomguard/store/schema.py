"""The SQLite layout of one scan database: one scan per file, its endpoints and their findings.

One file per scan (rather than many scans in one file) because a scan is the unit people copy,
archive, hand to an auditor and compare with ``dicomguard diff``. The full contract record is kept
as JSON beside a few extracted columns: the columns serve reports and SQL users, the JSON keeps
every field (present and future) so the JSONL can be reproduced exactly from the database.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

DDL = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- exactly one row: what was asked, when, by which version, and how far it got
CREATE TABLE IF NOT EXISTS scan (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    version       TEXT NOT NULL,
    argv          TEXT NOT NULL,      -- JSON list, as typed
    options       TEXT NOT NULL,      -- JSON object: parsed options, paths made absolute
    targets_total INTEGER,            -- endpoints to scan (NULL when names make it unknown)
    started_at    TEXT NOT NULL,      -- ISO 8601 UTC
    finished_at   TEXT,               -- NULL until the scan ran to its end
    resumed       INTEGER NOT NULL DEFAULT 0,   -- how many times it was resumed
    watermark     INTEGER NOT NULL DEFAULT 0,   -- every target index below this is done
    stats         TEXT                -- JSON: engine statistics of the final run
);

-- target indices at or above the watermark that are done (at most about the concurrency)
CREATE TABLE IF NOT EXISTS done (
    seq INTEGER PRIMARY KEY
);

-- how many endpoints ended in each state (open, closed, filtered...), stored or not
CREATE TABLE IF NOT EXISTS states (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS endpoints (
    id              INTEGER PRIMARY KEY,
    seq             INTEGER NOT NULL,
    host            TEXT NOT NULL,
    port            INTEGER NOT NULL,
    state           TEXT NOT NULL,
    dicom           INTEGER NOT NULL,
    tls             INTEGER NOT NULL,
    product         TEXT,
    product_version TEXT,
    patients        INTEGER,
    studies         INTEGER,
    worst_severity  TEXT,
    record          TEXT NOT NULL,     -- the full JSON contract record
    UNIQUE (host, port)
);
CREATE INDEX IF NOT EXISTS endpoints_seq ON endpoints (seq);

-- the scan's archive cache (scan.exposure.ArchiveCache): a port whose measurement later ports
-- of its host are compared with (same_archive_as). Written in the commit of that port's record,
-- read back on resume so a killed scan does not count one archive twice. Counts and study days
-- only: key = [implementation class UID, version name, [accepted abstract syntax UIDs]],
-- signature = [earliest study day, studies on it, latest study day, studies on it].
-- A database from before this table gets it when a resume starts; until then, and for its
-- records without a row, the entries are rebuilt from the records (db.rebuilt_archive).
CREATE TABLE IF NOT EXISTS archives (
    host      TEXT NOT NULL,
    port      INTEGER NOT NULL,   -- the port measured in full (its record is in endpoints)
    key       TEXT NOT NULL,      -- JSON
    signature TEXT NOT NULL,      -- JSON
    exposure  TEXT NOT NULL       -- JSON: the exposure later ports reuse (same_archive_as set)
);

CREATE TABLE IF NOT EXISTS findings (
    endpoint_id INTEGER NOT NULL REFERENCES endpoints (id) ON DELETE CASCADE,
    finding     TEXT NOT NULL,
    severity    TEXT NOT NULL,
    title       TEXT NOT NULL,
    confidence  TEXT,
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS findings_endpoint ON findings (endpoint_id);
CREATE INDEX IF NOT EXISTS findings_id ON findings (finding);
"""


def _statements(script: str) -> tuple[str, ...]:
    """``script`` one statement each (sqlite3's executescript commits first, so a resume runs
    them one by one inside its own transaction)."""
    import sqlite3

    out, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            out.append(current.strip())
            current = ""
    return tuple(out)


#: DDL as single statements
DDL_STATEMENTS = _statements(DDL)
