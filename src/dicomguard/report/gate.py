"""``--fail-on SEVERITY``: a non-zero exit status when a finding at or above it exists.

For CI jobs and cron: ``dicomguard scan ... --fail-on high`` or ``dicomguard report scan.db
--fail-on critical`` exits with :data:`EXIT_FINDINGS` (1) when any open endpoint of the scan
carries a finding of that severity or worse, like nuclei's and trivy's severity gates. Exit
statuses of the ``dicomguard`` command: 0 success (and no finding at or above the threshold),
1 such a finding exists, 2 usage error or unreadable input, 130 interrupted.

The check reads the scan database's ``findings`` table (every stored endpoint, not just the
records the terminal summary holds), read-only. Endpoints flagged as honeypots count too: on
one's own network a decoy answering strangers is still something to look at, and the gate must
not depend on a heuristic.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from ..knowledge.findings import SEVERITIES, severity_rank

#: exit status when a finding at or above the threshold exists
EXIT_FINDINGS = 1


def at_or_above(severity: str) -> tuple[str, ...]:
    """The severities counted by ``--fail-on severity`` (it and every worse one)."""
    if severity not in SEVERITIES:
        raise ValueError(f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)}")
    return tuple(s for s in SEVERITIES if severity_rank(s) >= severity_rank(severity))


def count_findings(db: str | Path, severity: str) -> int:
    """Findings of ``severity`` or worse on open endpoints of the scan in ``db``."""
    wanted = at_or_above(severity)
    conn = sqlite3.connect(f"{Path(db).resolve().as_uri()}?mode=ro", uri=True)
    try:
        marks = ",".join("?" * len(wanted))
        row = conn.execute(
            "SELECT count(*) FROM findings f JOIN endpoints e ON e.id = f.endpoint_id"
            f" WHERE e.state = 'open' AND f.severity IN ({marks})",
            wanted,
        ).fetchone()
    finally:
        conn.close()
    return int(row[0])


def exit_status(db: str | Path, severity: str | None) -> tuple[int, str | None]:
    """(exit status, message for stderr) for ``--fail-on severity`` (None: no gate)."""
    if severity is None:
        return 0, None
    n = count_findings(db, severity)
    if n:
        return EXIT_FINDINGS, f"{n} finding(s) at or above {severity}: exit {EXIT_FINDINGS}"
    return 0, None
