"""JSON Lines output of a scan, one contract record per endpoint, flushed as it is produced."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import IO, Any

from .result import EndpointResult


class JsonlWriter:
    """Writes records to a file (``-`` = stdout); each line is flushed so a crash loses none."""

    def __init__(self, target: str | Path) -> None:
        self._own = str(target) != "-"
        self._fh: IO[str] = (
            open(target, "a", encoding="utf-8") if self._own else sys.stdout  # noqa: SIM115
        )

    def write(self, result: EndpointResult | dict[str, Any]) -> None:
        record = result.to_dict() if isinstance(result, EndpointResult) else result
        self._fh.write(json.dumps(record, sort_keys=False, separators=(",", ":")) + "\n")
        self._fh.flush()

    def write_lines(self, texts: list[str]) -> None:
        """Records already encoded as compact JSON (a store commit's batch), flushed once."""
        if texts:
            self._fh.write("\n".join(texts) + "\n")
            self._fh.flush()

    def close(self) -> None:
        if self._own:
            self._fh.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
