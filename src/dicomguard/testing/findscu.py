"""DCMTK findscu as the independent check of what a C-FIND really returns.

Tests compare the scanner's counts with what findscu 3.6.7 reads from the same server. The
output of findscu holds the synthetic identifiers of the matches; it is parsed in memory here
and never written anywhere. Only loopback addresses are accepted.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from dicomguard.testing.base import find_binary
from dicomguard.testing.guard import assert_loopback

#: findscu's information-model options
PATIENT_ROOT, STUDY_ROOT, WORKLIST = "-P", "-S", "-W"

_RESPONSE = re.compile(r"Find Response: (\d+) \((\w+)\)")
_FINAL = re.compile(r"Received Final Find Response \(([^)]*)\)")
_ELEMENT = re.compile(r"^I: \(([0-9a-f]{4}),([0-9a-f]{4})\) \w\w \[([^\]]*)\]", re.MULTILINE)


@dataclass
class FindscuResult:
    """What findscu saw: the pending matches (element values by tag) and the final status."""

    matches: list[dict[str, str]] = field(default_factory=list)
    final: str = ""
    returncode: int = 0

    def distinct(self, tag: str) -> set[str]:
        """Distinct non-empty values of ``tag`` ("gggg,eeee") over the matches."""
        return {m[tag].strip() for m in self.matches if m.get(tag, "").strip()}


def findscu(
    host: str,
    port: int,
    keys: Sequence[str],
    *,
    model: str = STUDY_ROOT,
    called_aet: str = "ANY-SCP",
    calling_aet: str = "FINDSCU",
    timeout: float = 60.0,
) -> FindscuResult:
    """Run findscu once (``keys`` as its ``-k`` arguments) and parse its verbose output.

    Raises FileNotFoundError when DCMTK is missing; ``returncode`` is findscu's exit status.
    """
    binary = find_binary("findscu")
    if binary is None:
        raise FileNotFoundError("findscu is not installed (apt-get install dcmtk)")
    argv = [binary, "-v", model, "-aec", called_aet, "-aet", calling_aet]
    for k in keys:
        argv += ["-k", k]
    argv += [assert_loopback(host), str(port)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    text = done.stdout + done.stderr
    out = FindscuResult(returncode=done.returncode)
    blocks = _RESPONSE.split(text)
    # split() gives [head, n, status, body, n, status, body, ...]
    for i in range(1, len(blocks) - 2, 3):
        if blocks[i + 1] == "Pending":
            body = blocks[i + 2]
            out.matches.append({f"{g},{e}": v for g, e, v in _ELEMENT.findall(body)})
    final = _FINAL.search(text)
    out.final = final.group(1) if final else ""
    return out
