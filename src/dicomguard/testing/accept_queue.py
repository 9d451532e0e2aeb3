"""A server with a small accept queue, and the kernel's count of what overran it.

pynetdicom's ``echoscp`` app is one process with a socketserver accept queue of 5 and 10
association slots (a bare connection holds one for its 30 s ACSE timeout): the peer the scan's
congestion tests put behind many loopback addresses. ``listen_overflows()`` reads TcpExt
ListenOverflows from ``/proc/net/netstat`` (of the test's namespace): connections a full accept
queue dropped, each costing its sender a SYN retransmission.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .loopback import free_port, wait_until_accepting


def listen_overflows() -> int:
    """TcpExt ListenOverflows so far. Raises AssertionError if the kernel does not report it."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for head, values in zip(lines[::2], lines[1::2], strict=False):
        if head.startswith("TcpExt:"):
            fields = dict(zip(head.split()[1:], values.split()[1:], strict=False))
            return int(fields["ListenOverflows"])
    raise AssertionError("no TcpExt line in /proc/net/netstat")


@contextlib.contextmanager
def echoscp_app(probe_host: str = "127.0.0.1") -> Iterator[int]:
    """``python -m pynetdicom echoscp PORT`` on every interface; yields the port once
    ``probe_host`` accepts. Stopped on exit."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pynetdicom", "echoscp", str(port), "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_accepting(probe_host, port, timeout=30)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
