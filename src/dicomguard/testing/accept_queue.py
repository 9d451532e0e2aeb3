"""A server with a small accept queue, and the kernel's count of what overran it.

pynetdicom's ``echoscp`` app is one process with a socketserver accept queue of 5 and 10
association slots (a bare connection holds one for its 30 s ACSE timeout): the peer the scan's
congestion tests put behind many loopback addresses. ``listen_overflows()`` reads TcpExt
ListenOverflows from ``/proc/net/netstat`` (of the test's namespace): connections a full accept
queue dropped, each costing its sender a SYN retransmission. ``full_accept_queue()`` is the
extreme: a listener whose queue is full for good, so the kernel drops every SYN it gets.
"""

from __future__ import annotations

import contextlib
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from .guard import assert_loopback
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


@contextlib.contextmanager
def full_accept_queue(host: str, port: int) -> Iterator[None]:
    """A listener on ``host:port`` whose accept queue is full and never drained: ``listen(0)``
    holds one connection (Linux calls the queue full once it holds more than the backlog), made
    here and never accepted. The kernel then drops every SYN (TcpExt ListenOverflows, no
    SYN-ACK, no RST): to a port scanner the port looks filtered. Yields once the queue is full.
    Raises AssertionError if the queued connection does not show within 10 s."""
    assert_loopback(host)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    filler: socket.socket | None = None
    try:
        listener.bind((host, port))
        listener.listen(0)
        filler = socket.create_connection((host, port), timeout=10)
        # connect() returns once our side is established; the listener's side is queued when
        # the kernel has handled our ACK: readable then (a condition, not a delay)
        readable, _, _ = select.select([listener], [], [], 10)
        assert readable, "the filler connection never reached the accept queue"
        yield
    finally:
        if filler is not None:
            filler.close()
        listener.close()
