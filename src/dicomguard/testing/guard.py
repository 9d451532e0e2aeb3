"""The loopback-only guard: every check that keeps tests, benchmarks and demos on ``lo``.

The project's rule is that nothing it runs talks to, or is reachable from, any address but
loopback (127.0.0.0/8, ::1). Three layers hold it, all defined here:

1. **The namespace** (strongest, for everything including child processes): ``scripts/test``
   runs pytest in a private network namespace whose only interface is ``lo``
   (:mod:`dicomguard.testing.netns` makes it). :func:`is_isolated` tells whether the process
   is in one; :func:`assert_isolated` refuses to go on elsewhere (Orthanc and DCMTK launchers
   call it: they bind every interface).
2. **Addresses given to launchers**: :func:`assert_loopback` refuses a host that is not a
   loopback IP literal before anything binds or connects.
3. **Every socket of the test process** (:func:`install_socket_guard`, installed by the pytest
   plugin :mod:`dicomguard.testing.plugin`): a :func:`sys.addaudithook` hook sees each
   ``socket.connect``, ``socket.sendto``, ``socket.sendmsg`` and ``socket.bind`` of an
   AF_INET/AF_INET6 socket (CPython raises these audit events, PEP 578) and refuses one aimed
   off loopback with :class:`OffLoopbackError` (an ``OSError``, as the namespace's
   ``ENETUNREACH`` would be, so code under test takes its ordinary error path) and records it,
   so the plugin fails the test that tried. Binding every interface (``0.0.0.0``, ``::``) is
   allowed only inside the namespace, where every interface is ``lo``.

Layer 3 also protects a plain ``pytest`` run outside ``scripts/test``; child processes are
covered by layer 1 only.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import sys
from pathlib import Path
from typing import Any


class NotIsolatedError(RuntimeError):
    """The process is not in a loopback-only network namespace."""


class OffLoopbackError(OSError):
    """A socket in the test process was aimed at an address that is not loopback."""


def interfaces() -> list[str]:
    """Names of the network interfaces of this process's namespace (``/proc/self/net/dev``).

    Not ``/sys/class/net``: sysfs shows the namespace of whoever mounted it.
    """
    try:
        lines = Path("/proc/self/net/dev").read_text().splitlines()[2:]
    except OSError:
        return []
    return sorted(line.split(":", 1)[0].strip() for line in lines if ":" in line)


def is_isolated() -> bool:
    """True when the only interface in this network namespace is ``lo``."""
    return interfaces() == ["lo"]


def assert_isolated(what: str) -> None:
    """Raise :class:`NotIsolatedError` unless only loopback exists here.

    ``what`` names the server that needs it, for the message.
    """
    if not is_isolated():
        raise NotIsolatedError(
            f"{what} binds every interface; run it in a loopback-only network namespace "
            f"(scripts/test does; or: python -m dicomguard.testing.netns CMD). "
            f"Interfaces here: {', '.join(interfaces()) or 'none'}"
        )


def is_loopback_ip(host: str) -> bool:
    """True for an IP literal in 127.0.0.0/8, ``::1`` or IPv4-mapped loopback; False for
    anything else, names included (a name could resolve anywhere)."""
    try:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def assert_loopback(host: str) -> str:
    """Return ``host`` if it is a loopback IP literal, else raise ValueError: the project never
    leaves lo."""
    if not is_loopback_ip(host):
        raise ValueError(f"{host} is not a loopback address; test servers stay on loopback")
    return host


#: Socket audit events (PEP 578) whose second argument is the peer or local address.
_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg", "socket.bind"})
_INET = (socket.AF_INET, socket.AF_INET6)
#: Addresses that mean "every interface" for a bind.
_ANY = frozenset({"", "0.0.0.0", "::"})

#: What the hook refused, oldest first; the plugin reads and clears it around each test.
violations: list[str] = []
_installed = False


def _allowed(event: str, address: Any, isolated: bool) -> bool:
    if not isinstance(address, tuple) or not address or not isinstance(address[0], str):
        return True  # sendmsg without an address (connected socket): checked at connect
    host = address[0]
    if is_loopback_ip(host) or host == "localhost":
        return True
    return event == "socket.bind" and host in _ANY and isolated


def install_socket_guard() -> None:
    """Refuse, in this process, every AF_INET/AF_INET6 connect, send or bind off loopback.

    Idempotent (audit hooks cannot be removed, so it is installed once per process). A refused
    call raises :class:`OffLoopbackError` (errno ``ENETUNREACH``) and appends a line to
    :data:`violations`. Whether the process is isolated is read once, here.
    """
    global _installed
    if _installed:
        return
    _installed = True
    isolated = is_isolated()

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event not in _ADDRESS_EVENTS:
            return
        sock, address = args[0], args[1]
        if getattr(sock, "family", None) not in _INET or _allowed(event, address, isolated):
            return
        message = f"{event} to {address!r}: not loopback (dicomguard.testing.guard)"
        violations.append(message)
        raise OffLoopbackError(errno.ENETUNREACH, message)

    sys.addaudithook(hook)
