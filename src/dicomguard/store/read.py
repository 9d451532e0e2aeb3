"""Reading a scan database back: metadata and records, for reports, diff and the summary."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .db import StoreError, check_schema, read_metadata


@dataclass
class StoredScan:
    """One scan as the reports see it: metadata (argv, times, states...) and open endpoints."""

    path: str
    meta: dict[str, Any]
    records: list[dict[str, Any]]

    @property
    def probed(self) -> int:
        """Endpoints assessed (every state), stored or not."""
        return sum(self.meta["states"].values())


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """A read-only connection to the scan database at ``path`` (a report or a merge must never
    modify the evidence it reads). Raises StoreError when there is no such file."""
    p = Path(path)
    if not p.is_file():
        raise StoreError(f"{path}: no such scan database")
    try:
        return sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:  # unreadable (permissions), a directory's lock, ...
        raise StoreError(f"{path}: cannot open as a scan database ({exc})") from None


def load_scan(path: str | Path) -> StoredScan:
    """Read a scan database without changing it (works while a scan is still writing to it)."""
    conn = open_read_only(path)
    try:
        check_schema(conn, path)
        try:
            meta = read_metadata(conn)
        except (ValueError, TypeError) as exc:  # a scan-metadata column that is not JSON
            raise StoreError(f"{path}: cannot read: scan metadata damaged ({exc})") from None
        records = []
        for host, port, rec in conn.execute(
            "SELECT host, port, record FROM endpoints ORDER BY seq, host, port"
        ):
            try:
                records.append(json.loads(rec))
            except (ValueError, TypeError) as exc:
                raise StoreError(
                    f"{path}: cannot read: record of {host}:{port} damaged ({exc})"
                ) from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: cannot read: {exc}") from None
    finally:
        conn.close()
    # one host's DICOM and web records name one product (Orthanc's AC says DCMTK)
    from ..knowledge.host_identity import join_host_identity

    join_host_identity(records)
    return StoredScan(str(path), meta, records)
