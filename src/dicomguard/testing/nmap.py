"""nmap's SYN scan as the independent check of the scanner's TCP verdicts (open, closed, filtered).

A raw SYN answered by a SYN-ACK is open whatever the listener does with the connection next
(accept and reset it, close it, never read it), no SYN-ACK is filtered, a RST is closed: what
the sweeps' records are compared with. nmap's connect scan (``-sT``) is a weaker check: a
connect that completes and is reset before nmap reads SO_ERROR is a "Strange read error ...
Connection reset by peer" to it (scan_engine_connect.cc, ``handleConnectResult``: ECONNRESET
has no port state) and the probe is sent again, the very race the scanner had (seen here once
in five ``-sT`` runs against an accept-and-reset listener; "open" in the end each time).
``-sS`` needs raw sockets (root; the tests' namespace as root). Only loopback addresses.
"""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

from dicomguard.testing.base import find_binary
from dicomguard.testing.guard import assert_loopback
from dicomguard.testing.require import unavailable


def syn_scan_state(host: str, port: int, *, timeout: float = 60.0) -> str:
    """nmap's state of TCP ``host:port`` from a SYN scan: "open", "closed", "filtered"...

    One retry (``--max-retries 1``), no host discovery, no name lookups. Skips the test (fails
    it under CI) when nmap is not installed; raises CalledProcessError when nmap fails (no raw
    sockets) and AssertionError when its XML names no such port.
    """
    assert_loopback(host)
    nmap = find_binary("nmap")
    if nmap is None:
        unavailable("nmap is not installed: run scripts/bootstrap")
    out = subprocess.run(
        [nmap, "-n", "-Pn", "-sS", "--max-retries", "1", "-p", str(port), "-oX", "-", host],
        check=True, capture_output=True, text=True, timeout=timeout,
    ).stdout
    for elem in ET.fromstring(out).iter("port"):
        state = elem.find("state")
        if elem.get("portid") == str(port) and state is not None:
            return str(state.get("state"))
    raise AssertionError(f"nmap's XML has no port {port}: {out[-400:]}")
