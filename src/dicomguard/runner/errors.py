"""What a scan run raises besides the request's own errors (:mod:`dicomguard.scan.request`).

::

    ScanSetupError      what the request points at cannot be used; one line, before any probe
    ScanInterrupted     Ctrl-C, SIGTERM or a failed worker; finished endpoints are stored
"""

from __future__ import annotations

import shlex

__all__ = ["ScanInterrupted", "ScanSetupError"]


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
