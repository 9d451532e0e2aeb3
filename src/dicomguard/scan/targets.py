"""What ``dicomguard scan`` may touch: nmap-style target specs, scanner-output import, excludes.

A scan of a /8 times five ports is 84 million endpoints, so nothing here ever lists addresses.
Every address spec becomes a few integer intervals; excludes are subtracted as intervals; the
endpoint space is numbered ``0 .. N-1`` (blocks in first-seen order, host-major, ports inner), and
iteration, resume (``start=``) and the "spread" permutation are arithmetic on that numbering.

Why hand-written: :mod:`ipaddress` parses single addresses and CIDRs (and is used for that), but
neither it nor any well-kept package offers nmap octet ranges, interval exclusion that does not
materialise networks (``ip_network.address_exclude`` yields one network per bit and needs both
sides as networks), O(1) resume, or masscan/zmap/nmap output import.
"""

from __future__ import annotations

import bisect
import hashlib
import ipaddress
import itertools
import math
import re
import socket
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NamedTuple

__all__ = [
    "DEFAULT_PORTS",
    "FileTarget",
    "TargetError",
    "TargetSet",
    "Unresolved",
    "build_targets",
    "detect_input_format",
    "is_loopback",
    "only_loopback",
    "parse_ports",
    "read_input_file",
    "resolve_names",
]

#: DICOM's well-known port, the common unprivileged one, Orthanc's, and DICOM-TLS (2762) / ISCL.
DEFAULT_PORTS: tuple[int, ...] = (104, 11112, 4242, 2761, 2762)

#: One octet-range spec may expand to at most this many disjoint intervals. ``10.0-255.0-255.1-254``
#: (65 536 intervals, ~8 MB) is fine; ``1-254.1-254.1-254.1-254`` (16 M intervals) would cost
#: gigabytes, and is better written as a CIDR plus ``--exclude``.
MAX_INTERVALS_PER_SPEC = 1 << 16

Order = Literal["sequential", "spread"]


class TargetError(ValueError):
    """A target, port or exclude spec, or an input file, could not be understood."""


def _bad(spec: str, why: str) -> TargetError:
    return TargetError(f"bad target {spec!r}: {why}")


# --------------------------------------------------------------------------------------- ports


_PORT_ITEM = re.compile(r"(\d*)(-)(\d*)|(\d+)")
_PROTO_PREFIX = re.compile(r"([A-Za-z]):(.*)")


def parse_ports(text: str) -> tuple[int, ...]:
    """Parse an nmap-style ``-p`` value: ``104,11112``, ``100-110``, ``-1024``, ``T:104``.

    Order of first appearance is kept (users list the likeliest port first) and duplicates are
    dropped. Only TCP exists here, so ``T:`` is tolerated and ``U:``/``S:`` are refused rather
    than silently scanned over TCP.
    """
    items = [i for i in re.split(r"[,\s]+", text.strip()) if i]
    if not items:
        raise TargetError(f"bad port list {text!r}: no ports given")
    ports: dict[int, None] = {}
    for raw in items:
        item = raw
        proto = _PROTO_PREFIX.fullmatch(item)
        if proto:
            if proto.group(1).upper() != "T":
                raise TargetError(
                    f"bad port {raw!r}: only TCP is scanned (drop the prefix or use T:)"
                )
            item = proto.group(2)
        m = _PORT_ITEM.fullmatch(item)
        if not m:
            raise TargetError(f"bad port {raw!r}: expected a number or a range like 100-110")
        if m.group(4) is not None:
            lo = hi = int(m.group(4))
        else:
            lo = int(m.group(1)) if m.group(1) else 1
            hi = int(m.group(3)) if m.group(3) else 65535
        for value in (lo, hi):
            if not 1 <= value <= 65535:
                raise TargetError(f"bad port {raw!r}: {value} is outside 1-65535")
        if lo > hi:
            raise TargetError(f"bad port {raw!r}: range start is greater than its end")
        for p in range(lo, hi + 1):
            ports.setdefault(p)
    return tuple(ports)


def _check_ports(ports: Sequence[int]) -> tuple[int, ...]:
    checked: dict[int, None] = {}
    for p in ports:
        if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 65535:
            raise TargetError(f"bad port {p!r}: ports are integers in 1-65535")
        checked.setdefault(p)
    if not checked:
        raise TargetError("no ports to scan")
    return tuple(checked)


# ----------------------------------------------------------------------------------- intervals


class _Intervals:
    """Sorted, disjoint, non-adjacent closed integer intervals, with prefix counts.

    Prefix counts make ``nth`` a bisect, which is what gives O(log n) resume and the spread
    order; three flat lists keep a 65 536-interval set to a few MB.
    """

    __slots__ = ("_cum", "ends", "size", "starts")

    def __init__(self, pairs: Iterable[tuple[int, int]] = ()) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for s, e in sorted(pairs):
            if self.ends and s <= self.ends[-1] + 1:
                if e > self.ends[-1]:
                    self.ends[-1] = e
            else:
                self.starts.append(s)
                self.ends.append(e)
        self._cum: list[int] = list(
            itertools.accumulate(
                (e - s + 1 for s, e in zip(self.starts, self.ends, strict=True)), initial=0
            )
        )
        self.size: int = self._cum[-1]

    def __bool__(self) -> bool:
        return bool(self.starts)

    def contains(self, x: int) -> bool:
        i = bisect.bisect_right(self.starts, x) - 1
        return i >= 0 and x <= self.ends[i]

    def nth(self, k: int) -> int:
        """The ``k``-th member (0-based) in ascending order."""
        i = bisect.bisect_right(self._cum, k) - 1
        return self.starts[i] + (k - self._cum[i])

    def iter_from(self, k: int) -> Iterator[int]:
        """Members in ascending order, starting with the ``k``-th, without a walk to it."""
        if k >= self.size:
            return
        i = bisect.bisect_right(self._cum, k) - 1
        first = self.starts[i] + (k - self._cum[i])
        yield from range(first, self.ends[i] + 1)
        for j in range(i + 1, len(self.starts)):
            yield from range(self.starts[j], self.ends[j] + 1)

    def subtract(self, other: _Intervals) -> _Intervals:
        """Self minus other in one merge sweep: O(len(self) + len(other)), no expansion."""
        out: list[tuple[int, int]] = []
        j, nb = 0, len(other.starts)
        for s, e in zip(self.starts, self.ends, strict=True):
            while j < nb and other.ends[j] < s:
                j += 1
            cur, k = s, j
            while k < nb and other.starts[k] <= e:
                if other.starts[k] > cur:
                    out.append((cur, other.starts[k] - 1))
                cur = max(cur, other.ends[k] + 1)
                if cur > e:
                    break
                k += 1
            if cur <= e:
                out.append((cur, e))
        return _Intervals(out)

    def within(self, lo: int, hi: int) -> bool:
        return not self.starts or (self.starts[0] >= lo and self.ends[-1] <= hi)


# ------------------------------------------------------------------------------- spec parsing


class _Addr(NamedTuple):
    family: int  # 4 or 6
    intervals: list[tuple[int, int]]


class _Name(NamedTuple):
    name: str


_IPV4ISH = re.compile(r"[\d.,*\-]+")
#: A plain dotted quad without leading zeros: the common case of big -iL / zmap lists, parsed
#: with inet_aton instead of the octet-range machinery (a 1M-line list builds ~3x faster).
_PLAIN_V4 = re.compile(r"(?:(?:0|[1-9]\d{0,2})\.){3}(?:0|[1-9]\d{0,2})")
_OCTET_ITEM = re.compile(r"(\d*)-(\d*)|(\d+)|\*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")
_HOST_PORT = re.compile(r"[^:\[\]]+:\d+|\[[^\]]+\]:\d+")


def _parse_spec(spec: str) -> _Addr | _Name:
    """One target spec → address intervals or an (unresolved) hostname."""
    s = spec.strip()
    if not s:
        raise _bad(spec, "empty target")
    if _HOST_PORT.fullmatch(s):
        raise _bad(spec, "host:port is not accepted here; give ports with -p")
    if s.startswith("[") and s.endswith("]"):
        s = s[1:-1]
    if "/" in s:
        return _parse_cidr(spec, s)
    if ":" in s:
        return _Addr(6, [(_parse_ipv6(spec, s),) * 2])
    if _PLAIN_V4.fullmatch(s) and max(map(int, s.split("."))) <= 255:
        n = int.from_bytes(socket.inet_aton(s), "big")
        return _Addr(4, [(n, n)])
    if _IPV4ISH.fullmatch(s):
        return _Addr(4, _octets_to_intervals(spec, _parse_octets(spec, s)))
    return _Name(_parse_hostname(spec, s))


def _parse_ipv6(spec: str, s: str) -> int:
    if "%" in s:
        raise _bad(spec, "scoped IPv6 addresses (%zone) are not supported")
    try:
        return int(ipaddress.IPv6Address(s))
    except ValueError as exc:
        raise _bad(spec, f"not a valid IPv6 address ({exc})") from None


def _parse_octets(spec: str, s: str) -> list[list[tuple[int, int]]]:
    """``127.42.0-3.1-254`` → per-octet merged ranges; ``*`` and ``1,3,5-7`` as in nmap."""
    parts = s.split(".")
    if len(parts) != 4:
        raise _bad(spec, f"expected 4 dot-separated octets, got {len(parts)}")
    octets: list[list[tuple[int, int]]] = []
    for part in parts:
        if not part:
            raise _bad(spec, "empty octet")
        ranges: list[tuple[int, int]] = []
        for item in part.split(","):
            m = _OCTET_ITEM.fullmatch(item)
            if not m:
                raise _bad(spec, f"octet {item!r} is not a number, range or *")
            if item == "*":
                lo, hi = 0, 255
            elif m.group(3) is not None:
                lo = hi = _octet_value(spec, m.group(3))
            else:
                lo = _octet_value(spec, m.group(1)) if m.group(1) else 0
                hi = _octet_value(spec, m.group(2)) if m.group(2) else 255
                if lo > hi:
                    raise _bad(spec, f"octet range {item!r} runs backwards")
            ranges.append((lo, hi))
        merged = _Intervals(ranges)
        octets.append(list(zip(merged.starts, merged.ends, strict=True)))
    return octets


def _octet_value(spec: str, digits: str) -> int:
    if len(digits) > 1 and digits[0] == "0":
        # inet_aton would read 010 as octal 8; refusing beats scanning a surprising host
        raise _bad(spec, f"octet {digits!r} has a leading zero (octal or decimal?)")
    value = int(digits)
    if value > 255:
        raise _bad(spec, "octet out of range")
    return value


def _octets_to_intervals(spec: str, octets: list[list[tuple[int, int]]]) -> list[tuple[int, int]]:
    # Trailing full octets (0-255) fold into the interval width; the octets before the last
    # partial one are enumerated. 127.42.0-3.1-254 → 4 intervals, 10.0.0.0-255 → 1.
    k = 3
    while k > 0 and octets[k] == [(0, 255)]:
        k -= 1
    values = [[v for lo, hi in octets[i] for v in range(lo, hi + 1)] for i in range(k)]
    n = math.prod(len(v) for v in values) * len(octets[k])
    if n > MAX_INTERVALS_PER_SPEC:
        raise _bad(
            spec,
            f"expands to {n} separate ranges (limit {MAX_INTERVALS_PER_SPEC}); "
            "use a CIDR with --exclude instead",
        )
    unit = 1 << (8 * (3 - k))
    out: list[tuple[int, int]] = []
    for prefix in itertools.product(*values):
        base = sum(v << (8 * (3 - i)) for i, v in enumerate(prefix))
        out.extend((base + lo * unit, base + (hi + 1) * unit - 1) for lo, hi in octets[k])
    return out


def _parse_cidr(spec: str, s: str) -> _Addr:
    addr, _, prefix = s.partition("/")
    if not prefix.isdigit():
        raise _bad(spec, f"prefix length {prefix!r} is not a number")
    if ":" in addr:
        family, bits, base = 6, 128, _parse_ipv6(spec, addr)
    elif _IPV4ISH.fullmatch(addr):
        octets = _parse_octets(spec, addr)
        if any(len(o) != 1 or o[0][0] != o[0][1] for o in octets):
            raise _bad(spec, "ranges cannot be combined with a /prefix")
        family, bits = 4, 32
        base = sum(o[0][0] << (8 * (3 - i)) for i, o in enumerate(octets))
    else:
        raise _bad(spec, "a /prefix needs an IP address (names are not resolved while parsing)")
    plen = int(prefix)
    if plen > bits:
        raise _bad(spec, f"prefix length /{plen} is longer than /{bits}")
    host_bits = bits - plen
    start = (base >> host_bits) << host_bits  # host bits set are cleared, as nmap does
    return _Addr(family, [(start, start + (1 << host_bits) - 1)])


def _parse_hostname(spec: str, s: str) -> str:
    name = s[:-1] if s.endswith(".") else s
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            raise _bad(spec, "not a valid internationalised hostname") from None
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise _bad(spec, "not an IP address, CIDR, nmap range or valid hostname")
    if labels[-1].isdigit():
        raise _bad(spec, "looks numeric but is not a valid IPv4 address")
    return name


def _name_key(name: str) -> str:
    return name.strip().rstrip(".").lower()


_OCTET_TAIL = re.compile(r"\*|\d*-\d*|\d+")


def split_specs(text: str) -> list[str]:
    """Split a line of specs on whitespace and commas, keeping nmap octet lists together.

    ``127.0.0.1,127.0.0.2`` is two specs but ``127.0.0.1,3`` is one (last octet 1 or 3), and
    ``127.0,2.0.1`` is one (second octet 0 or 2): a piece that cannot stand alone rejoins its
    predecessor when that is an IPv4 spec still missing octets or ending in an octet list.
    """
    out: list[str] = []
    for token in text.split():
        joinable = False
        for piece in token.split(","):
            if not piece:
                joinable = False
                continue
            prev = out[-1] if joinable else ""
            if prev and _IPV4ISH.fullmatch(prev) and _IPV4ISH.fullmatch(piece):
                dots = prev.count(".")
                if dots < 3 or (dots == 3 and _OCTET_TAIL.fullmatch(piece)):
                    out[-1] = f"{prev},{piece}"
                    continue
            out.append(piece)
            joinable = True
    return out


# --------------------------------------------------------------------------------- input files


class FileTarget(NamedTuple):
    """One target read from a file: a spec, the ports found for it (None: use -p), its origin."""

    spec: str
    ports: tuple[int, ...] | None
    origin: str


def read_input_file(path: Path | str) -> list[FileTarget]:
    """Read an -iL file (``"-"`` = stdin): see :func:`dicomguard.scan.inputs.read_input_file`."""
    from .inputs import read_input_file as read

    return read(path)


def detect_input_format(head: str) -> str:
    """Guess an -iL file's format: see :func:`dicomguard.scan.inputs.detect_input_format`."""
    from .inputs import detect_input_format as detect

    return detect(head)


def _list_specs(path: Path, text: str) -> Iterator[tuple[str, str]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        for spec in split_specs(line.split("#", 1)[0]):
            yield f"{path}:{lineno}", spec


# ---------------------------------------------------------------------------------- target set


def _format_v4(n: int) -> str:
    return socket.inet_ntoa(n.to_bytes(4, "big"))  # ~5x faster than str(IPv4Address(n))


def _format_v6(n: int) -> str:
    return str(ipaddress.IPv6Address(n))


class _Strided:
    """Every ``step``-th member of an :class:`_Intervals`, by rank in a containing set.

    A shard ``k`` of ``n`` keeps the hosts whose rank (position in the ascending union of all
    hosts of the target set, plus ``offset``) is ``k`` modulo ``n``. Ranks are contiguous inside
    each interval, so counting, ``nth`` and iteration stay arithmetic on intervals: a /8 split
    in 10 costs no more than the /8.
    """

    __slots__ = ("_cum", "ends", "firsts", "size", "step")

    def __init__(self, hosts: _Intervals, union: _Intervals, offset: int, k: int, n: int) -> None:
        self.step = n
        self.firsts: list[int] = []
        self.ends: list[int] = []
        counts: list[int] = []
        for s, e in zip(hosts.starts, hosts.ends, strict=True):
            i = bisect.bisect_right(union.starts, s) - 1
            rank = offset + union._cum[i] + (s - union.starts[i])
            first = s + (k - rank) % n
            if first <= e:
                self.firsts.append(first)
                self.ends.append(e)
                counts.append((e - first) // n + 1)
        self._cum = list(itertools.accumulate(counts, initial=0))
        self.size = self._cum[-1]

    def nth(self, j: int) -> int:
        i = bisect.bisect_right(self._cum, j) - 1
        return self.firsts[i] + (j - self._cum[i]) * self.step

    def iter_from(self, j: int) -> Iterator[int]:
        if j >= self.size:
            return
        i = bisect.bisect_right(self._cum, j) - 1
        yield from range(self.nth(j), self.ends[i] + 1, self.step)
        for m in range(i + 1, len(self.firsts)):
            yield from range(self.firsts[m], self.ends[m] + 1, self.step)


@dataclass(frozen=True)
class _AddrBlock:
    family: int
    hosts: _Intervals | _Strided
    ports: tuple[int, ...]

    @property
    def host_count(self) -> int:
        return self.hosts.size

    def host_at(self, i: int) -> str:
        n = self.hosts.nth(i)
        return _format_v4(n) if self.family == 4 else _format_v6(n)

    def iter_hosts(self, first: int) -> Iterator[str]:
        fmt = _format_v4 if self.family == 4 else _format_v6
        return map(fmt, self.hosts.iter_from(first))


@dataclass(frozen=True)
class _NameBlock:
    names: tuple[str, ...]
    ports: tuple[int, ...]

    @property
    def host_count(self) -> int:
        return len(self.names)

    def host_at(self, i: int) -> str:
        return self.names[i]

    def iter_hosts(self, first: int) -> Iterator[str]:
        return iter(self.names[first:])


_Block = _AddrBlock | _NameBlock

_LOOP4 = (0x7F000000, 0x7FFFFFFF)
_LOOP6 = (1, 1)
_MAPPED_LOOP6 = (0xFFFF7F000000, 0xFFFF7FFFFFFF)  # ::ffff:127.0.0.0/104


def _golden_stride(n: int) -> int:
    """A stride coprime with ``n`` near n/φ: successive endpoints land far apart.

    ``i -> i*a mod n`` is a permutation whenever gcd(a, n) == 1 (zmap uses a cyclic group for
    the same job). With a ≈ n/φ the visited points stay evenly spread at every prefix length
    (three-distance theorem), so one host or /24 never gets a burst.
    """
    if n <= 2:
        return 1
    a = max(1, n * 6180339887498949 // 10**16)
    while math.gcd(a, n) != 1:
        a += 1
    return a


class TargetSet:
    """An immutable, lazily expanded set of (host, port) endpoints. Build it with build_targets.

    Endpoints are numbered 0..N-1: blocks in first-seen order (an address family with the -p
    ports, hosts whose ports came from scanner output, hostnames), hosts ascending inside a
    block, ports inner. Hostnames are yielded unresolved: whoever resolves them must drop
    resolved addresses for which :meth:`is_excluded` is true.
    """

    def __init__(
        self,
        blocks: Sequence[_Block],
        excluded: dict[int, _Intervals],
        excluded_names: frozenset[str],
    ) -> None:
        self._blocks = tuple(b for b in blocks if b.host_count)
        self._offsets = list(
            itertools.accumulate((b.host_count * len(b.ports) for b in self._blocks), initial=0)
        )
        self._total = self._offsets[-1]
        self._excluded = excluded
        self._excluded_names = excluded_names
        self._has_names = any(isinstance(b, _NameBlock) for b in self._blocks)
        self._stride = _golden_stride(self._total)
        #: the whole target space this set is a shard of (itself when unsharded)
        self._whole: TargetSet = self
        #: (k, n): this set is shard k of n of ``_whole``
        self.shard_of: tuple[int, int] = (0, 1)
        #: names that could not be resolved while building: (name, origin, reason)
        self.unresolved: tuple[Unresolved, ...] = ()

    def shard(self, k: int, n: int) -> TargetSet:
        """Shard ``k`` of ``n`` (0 <= k < n): the hosts whose rank is k modulo n, every port.

        zmap's sharding semantics: the same inputs give the same numbering on every machine,
        the n shards are disjoint and together cover the set exactly once, and each is an
        ordinary TargetSet with its own numbering (so its own database and resume). Whole
        hosts, never single endpoints, go to a shard: all ports of one machine are scanned by
        one run, so per-host politeness and "two ports front one archive" hold across shards.
        Ranks interleave (host 0 to shard 0, host 1 to shard 1...) so a dense range spreads
        evenly. Raises ValueError for k, n out of range.
        """
        if not (n >= 1 and 0 <= k < n):
            raise ValueError(f"shard {k}/{n}: need 0 <= K < N")
        if n == 1:
            return self
        unions = {
            fam: _Intervals(
                (s, e)
                for b in self._blocks
                if isinstance(b, _AddrBlock) and b.family == fam
                for s, e in zip(b.hosts.starts, b.hosts.ends, strict=True)  # type: ignore[union-attr]
            )
            for fam in (4, 6)
        }
        offsets = {4: 0, 6: unions[4].size}
        name_rank = unions[4].size + unions[6].size
        blocks: list[_Block] = []
        for b in self._blocks:
            if isinstance(b, _NameBlock):
                first = (k - name_rank) % n
                blocks.append(_NameBlock(b.names[first::n], b.ports))
                name_rank += len(b.names)
            else:
                assert isinstance(b.hosts, _Intervals)
                hosts = _Strided(b.hosts, unions[b.family], offsets[b.family], k, n)
                blocks.append(_AddrBlock(b.family, hosts, b.ports))
        part = TargetSet(blocks, self._excluded, self._excluded_names)
        part._whole = self
        part.shard_of = (k, n)
        part.unresolved = self.unresolved
        return part

    def space_digest(self) -> str:
        """SHA-256 (hex) of the whole target space: hosts, ports and order, not the shard.

        Equal for every shard of one scan; what ``dicomguard merge`` compares.
        """
        whole = self._whole
        h = hashlib.sha256()
        for b in whole._blocks:
            if isinstance(b, _NameBlock):
                h.update(b"names:" + "\n".join(b.names).encode())
            else:
                assert isinstance(b.hosts, _Intervals)
                h.update(f"v{b.family}:{b.hosts.starts}:{b.hosts.ends}".encode())
            h.update(f"ports:{b.ports};".encode())
        return h.hexdigest()

    def __repr__(self) -> str:
        hosts = sum(b.host_count for b in self._blocks)
        return f"<TargetSet {hosts} hosts, {self._total} endpoints, {len(self._blocks)} blocks>"

    def count(self) -> int | None:
        """Number of endpoints, computed not counted; None when hostnames make it unknown."""
        return None if self._has_names else self._total

    def iter_endpoints(
        self, *, start: int = 0, order: Order = "sequential"
    ) -> Iterator[tuple[str, int]]:
        """Yield (host, port) in a deterministic order, skipping the first ``start`` of them.

        ``start`` is a position in that order (e.g. how many a previous run finished), so resume
        works for either order; the skip costs a bisect, not a walk.
        """
        if start < 0:
            raise ValueError(f"start must not be negative, got {start}")
        if order == "sequential":
            return self._iter_sequential(start)
        if order == "spread":
            return self._iter_spread(start)
        raise ValueError(f"unknown order {order!r} (sequential or spread)")

    def __iter__(self) -> Iterator[tuple[str, int]]:
        return self.iter_endpoints()

    def _iter_sequential(self, start: int) -> Iterator[tuple[str, int]]:
        if start >= self._total:
            return
        bi = bisect.bisect_right(self._offsets, start) - 1
        first_host, first_port = divmod(start - self._offsets[bi], len(self._blocks[bi].ports))
        for block in self._blocks[bi:]:
            ports = block.ports
            for host in block.iter_hosts(first_host):
                for port in ports[first_port:] if first_port else ports:
                    yield host, port
                first_port = 0
            first_host = 0

    def _endpoint_at(self, idx: int) -> tuple[str, int]:
        bi = bisect.bisect_right(self._offsets, idx) - 1
        block = self._blocks[bi]
        h, p = divmod(idx - self._offsets[bi], len(block.ports))
        return block.host_at(h), block.ports[p]

    def _iter_spread(self, start: int) -> Iterator[tuple[str, int]]:
        n, a = self._total, self._stride
        pos = (start * a) % n if n else 0
        for _ in range(start, n):
            yield self._endpoint_at(pos)
            pos += a
            if pos >= n:
                pos -= n

    def is_excluded(self, ip: str) -> bool:
        """True if ``ip`` (or a hostname given verbatim) was excluded: for resolved names."""
        host = ip.strip()
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            addr = ipaddress.ip_address(host)
        except ValueError:
            return _name_key(host) in self._excluded_names
        if self._excluded[addr.version].contains(int(addr)):
            return True
        # ::ffff:a.b.c.d reaches the same machine as a.b.c.d, so an IPv4 exclude covers it
        mapped = getattr(addr, "ipv4_mapped", None)
        return mapped is not None and self._excluded[4].contains(int(mapped))

    def all_loopback(self) -> bool:
        """True if every target is loopback: 127.0.0.0/8, ::1 (or ::ffff:127/104), localhost."""
        if self._whole is not self:
            return self._whole.all_loopback()  # a shard of a loopback set is loopback
        for block in self._blocks:
            if isinstance(block, _NameBlock):
                if any(_name_key(n) != "localhost" for n in block.names):
                    return False
            elif block.family == 4:
                if not block.hosts.within(*_LOOP4):
                    return False
            elif not (
                block.hosts.within(*_LOOP6)
                or block.hosts.within(*_MAPPED_LOOP6)
                or block.hosts.subtract(_Intervals([_LOOP6, _MAPPED_LOOP6])).size == 0
            ):
                return False
        return True


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1, IPv4-mapped loopback and the name ``localhost``."""
    h = host.strip()
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    if _name_key(h) == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(h)
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped.is_loopback
    return addr.is_loopback


def only_loopback(targets: TargetSet | Iterable[str]) -> bool:
    """True if nothing outside loopback (127.0.0.0/8, ::1, ``localhost``) can be targeted.

    The guard tests and the lab use before scanning: for a TargetSet it checks block bounds
    (:meth:`TargetSet.all_loopback`), so a /8 costs nothing; for plain hosts it checks each.
    """
    if isinstance(targets, TargetSet):
        return targets.all_loopback()
    return all(is_loopback(h) for h in targets)


def _parse_located(spec: str, origin: str | None) -> _Addr | _Name:
    try:
        return _parse_spec(spec)
    except TargetError as exc:
        if origin is None:
            raise
        raise TargetError(f"{origin}: {exc}") from None


def build_targets(
    specs: Iterable[str],
    *,
    ports: Sequence[int] = DEFAULT_PORTS,
    input_files: Sequence[Path] = (),
    excludes: Iterable[str] = (),
    exclude_files: Sequence[Path] = (),
    resolve_file_names: bool = False,
    resolver: Resolver | None = None,
) -> TargetSet:
    """Parse everything up front (so a typo fails before the first packet) into a TargetSet.

    ``specs`` items may hold several specs separated by whitespace or commas. Hosts listed more
    than once are scanned once. A host that comes from scanner output with its own ports and is
    also covered by a plain spec gets the -p ports plus the extra ports from the file.

    Host names: a word in an input file is a TargetError unless ``resolve_file_names`` (a CSV
    header or a typo must never turn into DNS queries). With a ``resolver`` (e.g.
    :func:`resolve_names`) every name, typed or read, is looked up now: its addresses are
    scanned like typed ones (excludes apply) and each name that does not resolve is left out
    and listed in ``TargetSet.unresolved`` (name, where it came from, why), never dropped
    silently. Without a resolver typed names stay unresolved in the set (the engine resolves
    them as it goes).
    """
    main_ports = _check_ports(ports)
    plain: list[tuple[str, str | None]] = [(s, None) for item in specs for s in split_specs(item)]
    with_ports: list[FileTarget] = []
    for path in input_files:
        for ft in read_input_file(path):
            if ft.ports is None:
                plain.extend((s, ft.origin) for s in split_specs(ft.spec))
            else:
                with_ports.append(ft)

    excl_pairs: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
    excl_names: set[str] = set()
    excl_specs: list[tuple[str, str | None]] = [
        (s, None) for item in excludes for s in split_specs(item)
    ]
    for path in exclude_files:
        excl_specs.extend((s, o) for o, s in _list_specs(Path(path), Path(path).read_text()))
    for spec, origin in excl_specs:
        parsed = _parse_located(spec, origin)
        if isinstance(parsed, _Name):
            excl_names.add(_name_key(parsed.name))
        else:
            excl_pairs[parsed.family].extend(parsed.intervals)
    excluded = {fam: _Intervals(pairs) for fam, pairs in excl_pairs.items()}

    # Groups in first-seen order; key ("a", family, ports) or ("n", ports). Specs are parsed
    # one at a time (a million-line list is never held parsed); names are set aside.
    groups: dict[tuple[object, ...], list[object]] = {}
    names: list[tuple[str, str | None]] = []
    for spec, origin in plain:
        parsed = _parse_located(spec, origin)
        if isinstance(parsed, _Name):
            names.append((parsed.name, origin))
            if resolver is None:  # names stay a block of their own, in first-seen place
                groups.setdefault(("n", main_ports), [])
        else:
            groups.setdefault(("a", parsed.family, main_ports), []).extend(parsed.intervals)
    resolved, with_ports, unresolved = _resolve_phase(
        names, with_ports, excl_names, resolve_file_names, resolver
    )
    seen_names: set[str] = set()
    for item, _origin in resolved:
        if isinstance(item, _Name):
            key = _name_key(item.name)
            if key not in excl_names and key not in seen_names:
                seen_names.add(key)
                groups.setdefault(("n", main_ports), []).append(item.name)
        else:
            groups.setdefault(("a", item.family, main_ports), []).extend(item.intervals)

    main = {
        fam: _Intervals(groups.get(("a", fam, main_ports), ())).subtract(excluded[fam])  # type: ignore[arg-type]
        for fam in (4, 6)
    }
    # Scanner-output hosts: ports unioned per host across files; ports the -p scan of that host
    # already covers are dropped so no endpoint is probed twice.
    per_host: dict[tuple[int, int], dict[int, None]] = {}
    for ft in with_ports:
        parsed = _parse_located(ft.spec, ft.origin)
        assert isinstance(parsed, _Addr) and ft.ports is not None  # _PortCollector gives IPs
        n = parsed.intervals[0][0]
        if excluded[parsed.family].contains(n):
            continue
        entry = per_host.setdefault((parsed.family, n), {})
        for p in ft.ports:
            entry.setdefault(p)
    for (fam, n), host_ports in per_host.items():
        extra = tuple(p for p in host_ports if not (main[fam].contains(n) and p in main_ports))
        if extra:
            groups.setdefault(("a", fam, extra), []).append((n, n))

    blocks: list[_Block] = []
    for key, members in groups.items():
        if key[0] == "n":
            blocks.append(_NameBlock(tuple(members), key[1]))  # type: ignore[arg-type]
        else:
            fam, block_ports = key[1], key[2]
            hosts = main[fam] if block_ports == main_ports else _Intervals(members)  # type: ignore[arg-type]
            blocks.append(_AddrBlock(fam, hosts, block_ports))  # type: ignore[arg-type]
    result = TargetSet(blocks, excluded, frozenset(excl_names))
    result.unresolved = tuple(unresolved)
    return result


class Unresolved(NamedTuple):
    """A host name that did not resolve: the name, where it came from, the resolver's reason."""

    name: str
    origin: str
    reason: str


#: names -> {name: [addresses] or the reason it did not resolve}
Resolver = Callable[[Sequence[str]], dict[str, "list[str] | str"]]


def resolve_names(names: Sequence[str], *, threads: int = 16) -> dict[str, list[str] | str]:
    """Look names up with the system resolver (getaddrinfo), ``threads`` at a time.

    Returns each name's addresses (deduplicated, resolver order) or, for a name that does not
    resolve, the resolver's message. Never raises for a name.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> list[str] | str:
        try:
            infos = socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        addrs = list(dict.fromkeys(str(i[4][0]) for i in infos))
        return addrs or "no address"

    if not names:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(names)))) as pool:
        return dict(zip(names, pool.map(one, names), strict=True))


def _resolve_phase(
    names: list[tuple[str, str | None]],
    with_ports: list[FileTarget],
    excl_names: set[str],
    resolve_file_names: bool,
    resolver: Resolver | None,
) -> tuple[list[tuple[_Addr | _Name, str | None]], list[FileTarget], list[Unresolved]]:
    """Refuse names from files unless allowed; with a resolver, turn names into addresses.

    ``names``: (name, origin) of plain specs that are names (origin None: typed). Returns the
    plain items to add (addresses, or names left for the engine without a resolver), the
    ported targets with names replaced by their addresses, and the names that did not resolve.
    """
    ported_names = [ft for ft in with_ports if not _is_address(ft.spec)]
    file_names = [(n, o) for n, o in names if o is not None]
    file_names += [(ft.spec, ft.origin) for ft in ported_names]
    if file_names and not resolve_file_names:
        name, origin = file_names[0]
        more = f" (and {len(file_names) - 1} more)" if len(file_names) > 1 else ""
        raise TargetError(
            f"{origin}: {name!r} is a host name{more}; names read from files are looked up "
            "only with --resolve-names"
        )
    if resolver is None and ported_names:
        ft = ported_names[0]
        raise TargetError(f"{ft.origin}: {ft.spec!r} with a port needs its name looked up first")
    if resolver is None or not (names or ported_names):
        return [(_Name(n), o) for n, o in names], with_ports, []
    wanted = [n for n, _ in names] + [ft.spec for ft in ported_names]
    keys = list(dict.fromkeys(_name_key(n) for n in wanted if _name_key(n) not in excl_names))
    answers = resolver(keys)
    unresolved: dict[str, Unresolved] = {}

    def addresses(name: str, origin: str | None) -> list[str]:
        key = _name_key(name)
        if key in excl_names:
            return []
        answer = answers.get(key, "not looked up")
        if isinstance(answer, str):
            unresolved.setdefault(key, Unresolved(name, origin or "command line", answer))
            return []
        return answer

    plain_out: list[tuple[_Addr | _Name, str | None]] = [
        (_parse_spec(a), o) for n, o in names for a in addresses(n, o)
    ]
    ported_out = [ft for ft in with_ports if _is_address(ft.spec)]
    for ft in ported_names:
        ported_out.extend(FileTarget(a, ft.ports, ft.origin) for a in addresses(ft.spec, ft.origin))
    return plain_out, ported_out, list(unresolved.values())


def _is_address(text: str) -> bool:
    """An IPv4/IPv6 literal? (inet_pton: a few times cheaper than ipaddress per call.)"""
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text)
        except OSError:
            continue
        return True
    return False
