"""The files a scan writes: checked writable before the first probe; truncated for a rewrite."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ScanSetupError

__all__ = ["check_output_paths", "truncate"]


def _same_file(a: str, b: str) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one does not exist (yet)
        pass
    return Path(a).resolve() == Path(b).resolve()


def check_output_paths(
    outputs: dict[str, str | None],
    evidence: str | None = None,
    inputs: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """Files a command will write must be writable before it starts (issue 12: a --jsonl into a
    missing folder used to end the scan with a traceback), and none may be another output or
    an input file: a new scan empties its ``--jsonl`` file, so ``-iL hits.txt --jsonl
    hits.txt`` destroyed the target list, and ``--jsonl scan.db --db scan.db`` wrote the
    JSON lines into the database file.

    ``outputs`` maps the option (``--jsonl``, ``--db``) to its value (None or ``-``: skipped);
    ``evidence`` is a folder; ``inputs`` maps an option (``-iL``, ``--exclude-file``) to the
    files it names (``-`` = stdin: skipped). Raises :class:`ScanSetupError` naming the option.
    """
    named = [(o, v) for o, v in outputs.items() if v and v != "-"]
    others = named + [(o, f) for o, files in (inputs or {}).items() for f in files if f != "-"]
    for i, (option, value) in enumerate(named):
        for other, path in others[i + 1:]:
            if _same_file(value, path):
                raise ScanSetupError(f"{option} {value}: is also the {other} file")
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
