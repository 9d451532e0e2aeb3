"""Loopback addresses, free ports and "is it accepting yet?" for the test servers.

Kept apart from the launchers because the scanner's own tests need the same three things
(a distinct 127.x address per target, a free port, a wait until a listener is up).
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Callable

from dicomguard.testing.guard import assert_loopback

#: The block the test servers live in; 127.0.0.0/8 is all loopback on Linux without any setup.
LAB_NET = "127.0.10.0/24"


def lab_address(index: int) -> str:
    """The ``index``-th address of :data:`LAB_NET` (1-based), e.g. 1 → ``127.0.10.1``."""
    net = ipaddress.ip_network(LAB_NET)
    if not 1 <= index < net.num_addresses - 1:
        raise ValueError(f"lab address index {index} out of range")
    return str(net[index])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on at ``host`` right now.

    There is a race between closing this socket and the server binding; launchers retry on a
    bind failure instead of pretending the race does not exist.
    """
    assert_loopback(host)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def accepts(host: str, port: int, timeout: float = 0.25) -> bool:
    """True when a TCP connect to ``host:port`` succeeds (the connection is closed at once)."""
    assert_loopback(host)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_until_accepting(
    host: str,
    port: int,
    *,
    timeout: float = 20.0,
    alive: Callable[[], bool] = lambda: True,
) -> None:
    """Block until ``host:port`` accepts, ``alive()`` turns false, or ``timeout`` runs out.

    ``alive`` lets a launcher stop waiting as soon as its process died (bad config, port taken),
    so a broken server fails in milliseconds with its log instead of after the full timeout.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accepts(host, port):
            return
        if not alive():
            raise RuntimeError(f"server for {host}:{port} exited before accepting")
        time.sleep(0.05)
    raise TimeoutError(f"{host}:{port} did not accept within {timeout:.0f}s")
