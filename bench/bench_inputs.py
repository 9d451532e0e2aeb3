"""Peak RSS and seconds to read an N-line ``host:port`` -iL list into a TargetSet.

Usage: ``python bench/bench_inputs.py [N]`` (default 1,000,000). The list holds loopback
addresses only (127.x.y.z) and is written to a temporary file; nothing is scanned: only
:func:`dicomguard.scan.targets.build_targets` runs, in a child process so that its peak RSS
(``ru_maxrss`` of the child) is its own.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time

CHILD = """
import sys, time
from pathlib import Path
from dicomguard.scan.targets import build_targets
t = time.monotonic()
ts = build_targets([], ports=(104,), input_files=[Path(sys.argv[1])])
print(f"{time.monotonic() - t:.2f} {ts.count()}")
"""


def write_list(path: str, n: int) -> None:
    """``n`` lines ``127.a.b.c:port`` (ports 104-106), loopback only."""
    with open(path, "w") as f:
        for i in range(n):
            f.write(f"127.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}:{104 + i % 3}\n")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "targets.txt")
        write_list(path, n)
        t = time.monotonic()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, path], check=True, capture_output=True, text=True
        ).stdout.split()
        wall = time.monotonic() - t
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"lines={n} endpoints={out[1]} read_s={out[0]} wall_s={wall:.2f}", end=" ")
    print(f"peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
