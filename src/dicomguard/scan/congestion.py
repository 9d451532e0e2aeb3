"""Congestion control of the assessment stage: how many endpoints of one server group at once.

Issue 13: one server often answers many addresses (an Orthanc bound to every interface, a
load balancer, a NAT). Its accept queue is short (Orthanc: 50, pynetdicom's socketserver: 5,
``ss -ltn``); with 256 associations in flight the kernel drops the SYNs it cannot queue (TcpExt
ListenOverflows) and each dropped connection waits for its SYN retransmission, one second later.
nmap avoids it by congestion control of its probes (a window that shrinks when probes are lost
and grows back as they are answered, RFC 5681 style); this does the same for assessments.

Endpoints are grouped by port and address block (IPv4 /16, IPv6 /48): "probably the same
listening process" when many addresses of a block answer one port. Each group has a window of
assessments in flight (:class:`Window`), shared with the connect sweep's connects toward the
group (:mod:`.sweep`: its connects fill the same accept queue):

* it starts at :data:`INITIAL_WINDOW` and grows by one per assessment finished without loss
  while below its threshold (slow start), then by ``1/window`` (additive increase);
* a **loss** halves it (multiplicative decrease), once per round: losses of assessments that
  started before the last decrease belong to the same event. A loss is any of: a connect still
  pending after :meth:`Window.slow_connect` seconds (a SYN the peer dropped: the answer would
  otherwise take one round trip), a connection that needed a TCP retransmission (``TCP_INFO``
  ``tcpi_total_retrans``: the SYN or the first request was resent), a connect the peer reset
  right after the handshake (the connect sweep's), or an endpoint the sweep found open that
  refused, reset or ignored the assessment's connection;
* it never exceeds ``ceiling`` (``--concurrency``) nor falls below 1.

Distinct servers never lose, so their windows open to the full concurrency within a few
rounds; the cost for them is the slow start of each group.

A window halves on a loss, but AIMD finds a server's limit only by overshooting it: against a
server that takes two connections at a time and closes the rest, about one assessment in six
of a single process is lost, and with ``--workers N`` each process has its own window, at least
one slot each, so three workers hold three or more connections to a two-connection server for
the whole scan (512 addresses: ~17% of the assessments lost with one worker, ~55% with three,
testing.connection_limit). An endpoint whose assessment is lost this way is
retried, and :class:`Answers` says when a retry is worth it: the engine retries an endpoint lost
to congestion (refused, reset, closed or silent after the sweep saw it open, or a transient
A-ASSOCIATE-RJ: a server at its association limit) each time its group
answered another endpoint since the lost assessment began, without counting it against
``--retries``, at most
:data:`CONGESTION_RETRIES` times (engine.Engine._park). A port that refuses every time gets those
only while the rest of its group answers, then the counted ``--retries`` with their backoff.

Why not share one window between the workers: the windows' state changes at every connect, and
a slot freed in one process would have to wake the others (a poll, or a pipe per group), for a
problem that retrying alone solves; and one window still loses by design, so the retries are
needed in any case. Why not divide the ceiling and initial window by the number of workers:
the floor of one slot per worker stays, and it is the floor that overruns a small server.
The retries cost the all-DICOM workload of issue 13 nothing (no assessment is lost there;
counting answers is ~2 µs per association, against ~1.4 ms), and the windows, hence what
``--workers`` gains there, are unchanged.
"""

from __future__ import annotations

import socket
import zlib
from collections.abc import MutableSequence
from typing import Any

#: assessments in flight toward a new group before anything is known about it
INITIAL_WINDOW = 8
#: a connect pending longer than this plus four smoothed round trips is taken as a dropped SYN
#: (the kernel resends it only after one second); a false alarm (a far peer before the first
#: round-trip sample) costs one halving, and the sample it then gives sets the estimate
MIN_SLOW_CONNECT = 0.05
#: retries of one endpoint lost to congestion, each after its group answered another endpoint,
#: beyond ``--retries``. Measured (a two-connection server behind 512 addresses, 45 scans with
#: 1, 2 and 3 workers): at most 7 retries with them spaced (engine.CONGESTION_WAIT_MAX), 23
#: before they were; an endpoint that refuses every time costs at most this many more
#: connections, and only while its group answers
CONGESTION_RETRIES = 24


def group_of(host: str, port: int) -> tuple[int, str]:
    """The congestion group of an endpoint: (port, /16 or /48 block); a host name (resolved
    later) is its own group. String and ``inet_pton`` work, not :mod:`ipaddress` (~10 µs a
    call, twice per association)."""
    if ":" not in host:
        a, _, rest = host.partition(".")
        b, _, rest = rest.partition(".")
        if rest.count(".") == 1 and (a + b).isdigit():
            return port, f"{a}.{b}"
        return port, host
    try:
        packed = socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        return port, host
    return port, packed[:6].hex()


class Window:
    """The AIMD window of one group (see the module docstring). Not thread-safe: one event
    loop. ``ceiling`` is the most assessments in flight it may allow."""

    def __init__(self, ceiling: int, initial: int = INITIAL_WINDOW) -> None:
        self.ceiling = max(1, ceiling)
        self.cwnd = float(min(max(1, initial), self.ceiling))
        self.ssthresh = float(self.ceiling)
        self.in_flight = 0
        #: assessments started so far (a ticket clock), and the ticket of the last decrease
        self.started = 0
        self._recover = 0
        #: multiplicative decreases so far (loss events)
        self.decreases = 0
        #: smoothed connect time, seconds (RFC 6298's alpha = 1/8)
        self.srtt = 0.0
        self._samples = 0
        #: a connect of the group was answered open (the connect sweep: something listens
        #: here, so a pending connect may be a SYN its queue dropped; scan.sweep)
        self.listening = False

    def may_start(self) -> bool:
        return self.in_flight < int(self.cwnd)

    def start(self) -> int:
        """One assessment starts; returns its ticket (for :meth:`loss`)."""
        self.in_flight += 1
        self.started += 1
        return self.started

    def finish(self, ticket: int, lost: bool) -> None:
        """The assessment of ``ticket`` ended; ``lost``: a loss was seen (see :meth:`loss`)."""
        self.in_flight -= 1
        if lost:
            self.loss(ticket)
        elif ticket > self._recover:
            if self.cwnd < self.ssthresh:
                self.cwnd += 1.0
            else:
                self.cwnd += 1.0 / self.cwnd
            self.cwnd = min(self.cwnd, float(self.ceiling))

    def loss(self, ticket: int) -> bool:
        """A loss seen by the assessment of ``ticket``; halves the window unless it belongs to
        the current event (the assessment started before the last decrease). Returns whether it
        halved."""
        if ticket <= self._recover:
            return False
        self.ssthresh = max(self.cwnd / 2.0, 1.0)
        self.cwnd = self.ssthresh
        self._recover = self.started
        self.decreases += 1
        return True

    def connected(self, seconds: float) -> None:
        """A connect of the group completed after ``seconds`` without retransmission: the
        round-trip estimate (RFC 6298: the first sample is taken as it is)."""
        if self._samples == 0:
            self.srtt = seconds
        else:
            self.srtt += (seconds - self.srtt) / 8.0
        self._samples += 1

    def slow_connect(self) -> float:
        """Seconds after which a pending connect counts as a dropped SYN."""
        return MIN_SLOW_CONNECT + 4.0 * self.srtt


class Answers:
    """How many assessments each congestion group answered so far (an A-ASSOCIATE-AC or -RJ
    that was not a loss), counted by every worker of the scan: the evidence that a loss was the
    server busy with others, not the endpoint refusing (see the module docstring).

    Groups are hashed (CRC-32) into :data:`SLOTS` counters: two groups sharing one only see
    each other's answers (a free retry more, within :data:`CONGESTION_RETRIES`). Made with
    :meth:`shared` before ``fork``, the counters are in shared memory, without a lock: an
    increment lost to a race between two workers still changes the count, which is all a
    reader asks (:meth:`moved`); a worker killed mid-way cannot leave a lock held.
    """

    SLOTS = 1 << 14

    def __init__(self, counts: MutableSequence[int] | None = None) -> None:
        self._counts: MutableSequence[int] = counts if counts is not None else [0] * self.SLOTS

    @classmethod
    def shared(cls, ctx: Any = None) -> Answers:
        """Counters in shared memory (128 KiB), for the workers forked after this call
        (``ctx``: a multiprocessing context, "fork" by default)."""
        import ctypes  # here: the CLI reads CONGESTION_RETRIES without multiprocessing
        import multiprocessing

        ctx = ctx or multiprocessing.get_context("fork")
        return cls(ctx.RawArray(ctypes.c_uint64, cls.SLOTS))

    @classmethod
    def slot(cls, group: tuple[int, str]) -> int:
        """The counter of ``group`` (:func:`group_of`); the same in every process."""
        port, block = group
        return zlib.crc32(f"{port}/{block}".encode("utf-8", "replace")) % cls.SLOTS

    def answered(self, slot: int) -> None:
        self._counts[slot] += 1

    def count(self, slot: int) -> int:
        return int(self._counts[slot])

    def moved(self, slot: int, mark: int) -> bool:
        """Did the group answer since its count was ``mark``? (Unequal, not greater: a racing
        increment of another worker may write a count back.)"""
        return int(self._counts[slot]) != mark
