"""SYN sweep: half-open TCP probes from a raw socket, like nmap -sS and masscan.

With root (CAP_NET_RAW) this is how port scanners find open ports: one SYN out, a SYN-ACK
(open) or RST (closed) back, and the kernel itself resets the half-open connection. No socket,
no file descriptor and no handshake per endpoint, so the sweep runs at tens of thousands of
endpoints per second in Python where full connects manage about twelve. IPv4 only; IPv6
endpoints and machines without raw sockets use the connect sweep (:class:`.sweep.Sweep`).

Hand-written because no maintained Python library sends raw SYNs without pulling in a packet
framework (scapy) whose per-packet cost is a hundred times this one's.
"""

from __future__ import annotations

import array
import ctypes
import errno
import random
import socket
import struct
import time
from collections.abc import Callable, Iterator

from .ratelimit import RateLimiter
from .sweep import Sweep, Verdict

_TCP = struct.Struct("!HHLLBBHHH")
_SO_ATTACH_FILTER = 26
_SO_RCVBUFFORCE = 33


def _port_filter(port: int) -> bytes:
    """Classic BPF: keep only TCP segments to ``port`` (the kernel drops the rest for us)."""
    prog = [
        (0xB1, 0, 0, 0),  # ldxb 4*([0]&0xf): IP header length
        (0x48, 0, 0, 2),  # ldh [x+2]: TCP destination port
        (0x15, 0, 1, port),  # jeq #port
        (0x06, 0, 0, 0xFFFF),  # ret keep
        (0x06, 0, 0, 0),  # ret drop
    ]
    return b"".join(struct.pack("HBBI", *ins) for ins in prog)


def raw_sockets_available() -> bool:
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP).close()
    except OSError:
        return False
    return True


class SynSweep(Sweep):
    """A :class:`Sweep` whose IPv4 probes are raw SYNs; one retry before 'filtered'."""

    def __init__(
        self,
        endpoints: Iterator[tuple[int, str, int] | None],
        verdict: Verdict,
        *,
        limit: int = 4096,
        timeout: float = 1.0,
        limiter: RateLimiter | None = None,
        may_start: Callable[[], bool] = lambda: True,
        retries: int = 1,
    ) -> None:
        super().__init__(
            endpoints, verdict, limit=limit, timeout=timeout, limiter=limiter, may_start=may_start
        )
        self.retries = retries
        # a source port reserved with a bound (never listening) socket, so no outgoing
        # connection of this machine can share it while the sweep runs
        self._reserve = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._reserve.bind(("0.0.0.0", 0))
        self.sport = int(self._reserve.getsockname()[1])
        self.seq = random.getrandbits(32)
        self._tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self._tx.setblocking(False)
        # (a sender thread for sendto() was measured slower: GIL hand-offs cost more than the
        # overlap of the kernel's work gains on two cores)
        self._bases: dict[bytes, int] = {}
        self._rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
        self._rx.setblocking(False)
        try:
            self._rx.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, 1 << 25)
        except OSError:
            self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 25)
        code = ctypes.create_string_buffer(_port_filter(self.sport))
        fprog = struct.pack("HL", 5, ctypes.addressof(code))
        self._bpf = code  # keep the program alive while the socket uses it
        self._rx.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
        self._loop.add_reader(self._rx.fileno(), self._on_packets)
        #: (ip, port) -> (seq, host, deadline, tries)
        self._probes: dict[tuple[str, int], tuple[int, str, float, int]] = {}
        self._sources: dict[str, bytes] = {}

    def outstanding(self) -> int:
        return len(self._inflight) + len(self._probes)

    def _source_for(self, ip: str) -> bytes:
        """The address the kernel will send from (a UDP connect sends no packet)."""
        net = ip.rpartition(".")[0]  # one route lookup per /24 is plenty
        src = self._sources.get(net)
        if src is None:
            if len(self._sources) > 4096:
                self._sources.clear()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((ip, 9))
                src = socket.inet_aton(probe.getsockname()[0])
            self._sources[net] = src
        return src

    def _send(self, ip: str, port: int) -> None:
        dst = socket.inet_aton(ip)
        # checksum = constant part (precomputed per source) + destination address + port
        src = self._source_for(ip)
        base = self._bases.get(src)
        if base is None:
            header = _TCP.pack(self.sport, 0, self.seq, 0, 5 << 4, 0x02, 65535, 0, 0)
            base = self._bases[src] = sum(array.array("H", src + b"\x00\x06\x00\x14" + header))
        total = base + sum(array.array("H", dst)) + socket.htons(port)
        total = (total >> 16) + (total & 0xFFFF)
        total += total >> 16
        packet = _TCP.pack(self.sport, port, self.seq, 0, 5 << 4, 0x02, 65535, 0, 0)
        packet = packet[:16] + struct.pack("H", ~total & 0xFFFF) + packet[18:]
        try:
            self._tx.sendto(packet, (ip, 0))
        except BlockingIOError:
            pass  # send buffer full: the retry (or the timeout) covers it
        except OSError as exc:
            if exc.errno not in (errno.ENOBUFS, errno.EPERM, errno.EACCES):
                raise

    def _start(self, seq: int, host: str, port: int) -> None:
        if ":" in host:
            super()._start(seq, host, port)  # IPv6: connect sweep
            return
        self._probes[(host, port)] = (seq, host, time.monotonic() + self.timeout, 0)
        self._send_or_unreachable(seq, host, port)

    def _send_or_unreachable(self, seq: int, host: str, port: int) -> None:
        """Send a probe; a destination with no route (ENETUNREACH, EHOSTUNREACH from the route
        lookup or sendto) is "unreachable" at once, as the connect sweep reports it, instead of
        an exception out of an event-loop callback that would end the sweep."""
        try:
            self._send(host, port)
        except OSError:
            if self._probes.pop((host, port), None) is not None:
                self.verdict(seq, host, port, "unreachable")

    def _on_packets(self) -> None:
        answered = False
        while True:
            try:
                packet = self._rx.recv(128)
            except (BlockingIOError, InterruptedError):
                break
            ihl = (packet[0] & 0x0F) * 4
            if len(packet) < ihl + 14:
                continue
            sport, dport, _seq, ack, _off, flags = struct.unpack_from("!HHLLBB", packet, ihl)
            if dport != self.sport or ack != (self.seq + 1) & 0xFFFFFFFF:
                continue
            key = (socket.inet_ntoa(packet[12:16]), sport)
            probe = self._probes.pop(key, None)
            if probe is None:
                continue
            if flags & 0x12 == 0x12:
                state = "open"
            elif flags & 0x04:
                state = "closed"
            else:
                self._probes[key] = probe
                continue
            answered = True
            self.verdict(probe[0], probe[1], key[1], state)
        if answered:
            self.refill()

    def _expire(self, now: float) -> None:
        super()._expire(now)
        expired = [k for k, p in self._probes.items() if p[2] <= now]
        for key in expired:
            seq, host, _deadline, tries = self._probes[key]
            if tries < self.retries:
                self._probes[key] = (seq, host, now + self.timeout, tries + 1)
                self._send_or_unreachable(seq, *key)
            else:
                del self._probes[key]
                self.verdict(seq, host, key[1], "filtered")
        if expired:
            self.refill()

    def close(self) -> None:
        if self._rx.fileno() >= 0:
            self._loop.remove_reader(self._rx.fileno())
        self._probes.clear()
        for sock in (self._rx, self._tx, self._reserve):
            sock.close()
        super().close()
