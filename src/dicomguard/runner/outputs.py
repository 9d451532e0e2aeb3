"""The files a scan writes: checked writable before the first probe; truncated for a rewrite."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ScanSetupError

__all__ = ["check_output_paths", "truncate"]


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


def truncate(path: str) -> str:
    """Empty the file at ``path`` (it is about to be rewritten from the database); ``path``."""
    Path(path).write_text("", encoding="utf-8")
    return path
