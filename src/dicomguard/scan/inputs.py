"""``-iL`` files: what researchers start from, autodetected, gzip or not, file or stdin.

Formats (each checked against the tool's own writer, not a description of it):

=================  ==========================================================================
list               one or more specs per line (addresses, CIDRs, nmap ranges); zmap's default
                   output (one ``saddr`` per line) is one of these
host-port          ``127.0.0.1:104`` / ``[::1]:104`` lines (plain specs may be mixed in)
ip-port CSV        ``127.0.0.1,104`` lines, with or without a header row
CSV with header    a header naming an address column (``ip``, ``ip_str``, ``saddr``, ``host``,
                   ``host.ip`` ...) and optionally a port column (``port``, ``sport``,
                   ``services.port`` ...) and a transport column: zmap ``-O csv -f saddr,sport``
                   (zmap writes ``", "`` between header names), Censys CSV exports, spreadsheets
masscan -oL        ``open tcp 104 127.0.0.1 1690000000``
masscan -oJ        a JSON array of ``{"ip", "ports": [{"port", "proto", "status"}]}`` (masscan
                   src/out-json.c); ``--output-format ndjson`` puts ``port``/``proto`` at the top
                   level with ``rec_type`` and ``data.status`` (src/out-ndjson.c)
zmap JSON          ``-O json``: one object per line with ``saddr`` and, for TCP SYN scans,
                   ``sport`` (the port that answered) and ``success`` (zmap's json module keeps
                   RSTs, ``success: 0``, which are dropped here)
Shodan             ``shodan download`` banners: JSON lines (``.json.gz``) with ``ip_str``,
                   ``port`` and ``transport``
Censys             host records (``ip`` + ``services[].port`` / ``transport_protocol``), as
                   JSON lines, a JSON array (``censys search -o x.json``) or nested under
                   ``host`` / ``resource`` (Platform exports)
nmap -oX / -oG     open TCP ports of each host
=================  ==========================================================================

Where the file names a port, that port is scanned on that host (it replaces ``-p`` for it);
where it does not, ``-p`` applies. Gzip is recognised by its magic bytes (1f 8b), whatever the
file is called. A file in which no target is recognised is a :class:`TargetError` naming the
format it looked like: an empty scan is never silent. Host names are returned as they are;
:func:`~dicomguard.scan.targets.build_targets` decides whether names from files are resolved.

Memory: line formats (lists, host:port, ip,port, masscan -oL, nmap -oG) are read a buffer at
a time and gzip is decompressed as it is read; IPv4 host:port pairs are held packed
(``address << 16 | port`` in an ``array('Q')``), deduplicated when the result is read. A line
longer than :data:`MAX_LINE` and a JSON/XML/CSV file (read whole) over
:data:`MAX_WHOLE_BYTES` decompressed are :class:`TargetError` (a gzip bomb is never inflated
whole). Measured with ``bench/bench_inputs.py`` (1,000,000 ``127.x.y.z:port`` lines, ports
104-106, read into a TargetSet by ``build_targets``, nothing scanned; 2 shared cores): before,
780 MB peak RSS and 17.8 s; after, 226 MB and 11.4 s.
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import sys
import xml.etree.ElementTree as ET
import zlib
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Literal

from .targets import _HOST_PORT, FileTarget, TargetError, split_specs

__all__ = ["STDIN", "InputFormat", "detect_input_format", "read_input_file"]

#: the name that means standard input for -iL
STDIN = "-"

InputFormat = Literal[
    "nmap-xml",
    "json",
    "masscan-list",
    "grepable",
    "zmap-csv",
    "csv",
    "ip-port",
    "host-port",
    "list",
    "empty",
]

#: how each format is named in messages
FORMAT_NAMES: dict[str, str] = {
    "nmap-xml": "nmap -oX output",
    "json": "JSON",
    "masscan-list": "masscan -oL output",
    "grepable": "nmap -oG output",
    "zmap-csv": "zmap CSV output",
    "csv": "CSV with a header row",
    "ip-port": "ip,port CSV",
    "host-port": "host:port lines",
    "list": "a target list",
    "empty": "an empty file",
    "masscan-json": "masscan -oJ output",
    "masscan-ndjson": "masscan ndjson output",
    "zmap-json": "zmap JSON output",
    "shodan": "Shodan banners (shodan download)",
    "censys": "Censys host records",
}

_MASSCAN_LINE = re.compile(r"(open|closed|banner)\s+(\w+)\s+(\d+)\s+(\S+)(?:\s+.*)?")
_PLAIN_IP = re.compile(r"[0-9.]+|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")
_IP_PORT_LINE = re.compile(r"\s*([0-9A-Fa-f:.]+)\s*[,;\t]\s*(\d{1,5})\s*")

#: header names (lower case) of the address column, the port column and the transport column
ADDRESS_COLUMNS = (
    "saddr",
    "ip",
    "ip_str",
    "host.ip",
    "ip_address",
    "ipaddress",
    "address",
    "addr",
    "host",
    "ipv4",
    "ipv6",
)
PORT_COLUMNS = ("sport", "port", "ports", "services.port", "host.services.port", "service.port")
TRANSPORT_COLUMNS = (
    "transport",
    "transport_protocol",
    "services.transport_protocol",
    "host.services.transport_protocol",
    "proto",
)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return False
    return True


def _header_fields(line: str) -> list[str]:
    return [f.strip().strip('"').lower() for f in next(csv.reader([line]))]


def detect_input_format(head: str) -> InputFormat:
    """Guess a file's format from its first few KB (what -iL needs to autodetect)."""
    stripped = head.lstrip("\ufeff \t\r\n")
    if not stripped:
        return "empty"
    if stripped.startswith("<"):
        return "nmap-xml"
    if stripped.startswith(("[", "{")):
        return "json"
    if stripped.startswith("#masscan"):
        return "masscan-list"
    lines = [ln.strip() for ln in stripped.splitlines() if ln.strip() and not ln.startswith("#")][
        :50
    ]
    if not lines:
        return "empty"
    first = lines[0]
    if _MASSCAN_LINE.fullmatch(first):
        return "masscan-list"
    if first.startswith(("Host:", "Timestamp:")):
        return "grepable"
    if "," in first or "\t" in first or ";" in first:
        fields = _header_fields(first.replace("\t", ",").replace(";", ","))
        if "saddr" in fields:
            return "zmap-csv"
        if any(f in ADDRESS_COLUMNS for f in fields):
            return "csv"
        data = lines[1:] if not _IP_PORT_LINE.fullmatch(first) else lines
        if data and all((m := _IP_PORT_LINE.fullmatch(ln)) and _is_ip(m.group(1)) for ln in data):
            return "ip-port"
        if len(fields) > 1 and not any(_is_ip(f) or "." in f or "/" in f for f in fields):
            # words only, with commas: a header row of columns this reader does not know
            return "csv"
    if _HOST_PORT.fullmatch(first.split("#", 1)[0].strip()):
        return "host-port"
    return "list"


def _origin_name(path: Path | str) -> str:
    return "stdin" if str(path) == STDIN else str(path)


#: decompressed bytes a gzip -iL file may hold when its format is read whole (JSON, XML,
#: CSV); line formats are streamed and only their line length is bounded. A gzip bomb is a
#: TargetError, never memory exhaustion.
MAX_WHOLE_BYTES = 1 << 30
#: longest line of a streamed line format (characters)
MAX_LINE = 1 << 20
_LINE_FORMATS = ("masscan-list", "grepable", "ip-port", "host-port", "list")


def _open_binary(path: Path | str) -> BinaryIO:
    if str(path) == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            # a resumed "-iL -" scan, or a forgotten pipe: never wait on a terminal
            raise TargetError(
                "-iL -: standard input is a terminal, not a list; pipe the targets in "
                "(zmap ... | dicomguard scan -iL -), the same list again to resume"
            )
        return sys.stdin.buffer
    return open(path, "rb")


class _Gunzip(io.RawIOBase):
    """Incremental gunzip of a byte stream (concatenated members too, as ``gzip.decompress``):
    the compressed file is never held whole, damaged data is a :class:`TargetError`."""

    def __init__(self, name: str, raw: BinaryIO) -> None:
        self.name_, self.raw, self.buf = name, raw, b""
        self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        try:
            while not self.buf:
                if self.d.unconsumed_tail:
                    chunk = self.d.unconsumed_tail
                elif self.d.eof:
                    rest = self.d.unused_data
                    if not rest.strip(b"\0"):  # trailing zero padding, as gzip allows
                        rest = self.raw.read(65536)
                        if not rest.strip(b"\0"):
                            return 0
                    self.d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    chunk = rest
                else:
                    chunk = self.raw.read(65536)
                    if not chunk:
                        raise EOFError("compressed file ended before the end-of-stream marker")
                self.buf = self.d.decompress(chunk, len(b))
        except (OSError, EOFError, zlib.error) as exc:
            raise TargetError(f"{self.name_}: gzip data is damaged ({exc})") from None
        n = min(len(b), len(self.buf))
        b[:n] = self.buf[:n]
        self.buf = self.buf[n:]
        return n


def _open_decoded(name: str, raw: BinaryIO) -> tuple[BinaryIO, bytes]:
    """The file's bytes as a stream, gunzipped by magic bytes, and its first 64 KiB."""
    head = raw.read(2)
    stream: BinaryIO = io.BufferedReader(_Chain(head, raw))  # type: ignore[arg-type]
    if head == b"\x1f\x8b":
        stream = io.BufferedReader(_Gunzip(name, stream), 1 << 16)  # type: ignore[arg-type]
    first = stream.read(65536)
    return io.BufferedReader(_Chain(first, stream)), first  # type: ignore[arg-type]


class _Chain(io.RawIOBase):
    """``head`` then the rest of ``rest``: what was read to look at a file, put back."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head, self.rest = head, rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[: len(data)] = data
        return len(data)


def _encoding(first: bytes) -> str:
    """UTF-16 by its byte order mark (PowerShell's Out-File, Excel "Unicode text"); else
    UTF-8 with any BOM dropped (Excel "CSV UTF-8"), so that a BOM never glues itself to the
    first target or header name."""
    return "utf-16" if first[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


def _stream_lines(name: str, stream: BinaryIO, encoding: str) -> Iterator[str]:
    """The lines ``str.splitlines`` would give, read a buffer at a time (a long line is a
    TargetError: a gzip bomb of one line must not be held whole)."""
    text = io.TextIOWrapper(stream, encoding=encoding, errors="replace", newline=None)
    lineno = 0
    while True:
        line = text.readline(MAX_LINE)
        if not line:
            return
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            raise TargetError(f"{name}:{lineno + 1}: line longer than {MAX_LINE:,} characters")
        parts = line.splitlines()
        lineno += len(parts)
        yield from parts


def read_input_file(path: Path | str) -> list[FileTarget]:
    """Read targets from ``path`` (``"-"``: standard input), autodetecting format and gzip.

    Returns one :class:`FileTarget` per spec or per host: ``ports`` None means "use -p",
    a tuple means the ports the file found open for that host (sorted). Raises
    :class:`TargetError` naming the file and line for anything it cannot read, and when the
    file holds no target at all (with the format it looked like). OSError when it cannot be
    opened.
    """
    return list(iter_input_file(path))


def iter_input_file(path: Path | str) -> Iterator[FileTarget]:
    """:func:`read_input_file`, one target at a time: line formats are streamed and their
    host:port pairs held packed (see :class:`_PortCollector`), so a million-line list is never
    in memory as text or as objects. Errors are raised before the first target is yielded."""
    name = _origin_name(path)
    raw = _open_binary(path)
    try:
        stream, first = _open_decoded(name, raw)
        encoding = _encoding(first)
        head = first.decode(encoding, errors="replace")
        fmt = detect_input_format(head)
        if fmt == "empty":
            raise TargetError(f"{name}: no target in it (the file is empty)")
        looked_like = FORMAT_NAMES[fmt]
        found: _PortCollector | list[FileTarget]
        if fmt in _LINE_FORMATS:
            lines = _stream_lines(name, stream, encoding)
            if fmt == "masscan-list":
                found = _read_masscan_list(name, lines)
            elif fmt == "grepable":
                found = _read_grepable(name, lines)
            elif fmt == "ip-port":
                found = _read_ip_port(name, lines)
            else:
                found = _read_list(name, lines)
        else:
            data = stream.read(MAX_WHOLE_BYTES + 1)
            if len(data) > MAX_WHOLE_BYTES:
                raise TargetError(
                    f"{name}: more than {MAX_WHOLE_BYTES >> 20} MiB of {looked_like}; "
                    "split it, or give it as host:port lines (those are streamed)"
                )
            text = data.decode(encoding, errors="replace")
            del data
            if fmt == "nmap-xml":
                found = _read_nmap_xml(name, text)
            elif fmt == "json":
                looked_like, found = _read_json(name, text)
            else:
                found = _read_csv(name, text, zmap=fmt == "zmap-csv")
    finally:
        if str(path) != STDIN:
            raw.close()
    if not found:
        raise TargetError(
            f"{name}: looks like {looked_like} but no target was recognised in it"
            " (no open TCP port, no address)"
        )
    if isinstance(found, list):
        yield from found
    else:
        yield from found.iter_result()


class _PortCollector:
    """Aggregates host:port pairs per host, in first-seen host order, validating as it goes.

    ``add(host, None)`` records a host with no port named (it takes -p). ``specs`` are plain
    specs (a list's lines) that come before the hosts in the result.

    IPv4 pairs whose place is a line number are held packed: ``(address << 16 | port)`` in an
    ``array('Q')`` beside the line number and arrival order (24 bytes a pair), deduplicated
    only when the result is read. Measured on 1,000,000 ``127.x.y.z:port`` lines, the
    dict-of-dicts this replaces took ~400 bytes a host. Other hosts (IPv6, names, places that
    are not line numbers) keep a dict entry each.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.specs: list[FileTarget] = []
        self.hosts: dict[str, tuple[dict[int, None], str, int]] = {}
        self.plain: dict[str, str] = {}
        self._packed = array("Q")  # address << 16 | port
        self._line = array("Q")
        self._order = array("Q")  # arrival order, shared with the dict entries
        self._n = 0

    def __bool__(self) -> bool:
        return bool(self.specs or self.hosts or self.plain or self._packed)

    @property
    def any_port(self) -> bool:
        """Whether a host with a port was recorded (a header row can no longer follow)."""
        return bool(self.hosts or self._packed)

    def add(self, host: str, port: object, where: str, *, names: bool = False) -> None:
        origin = f"{self.name}:{where}"
        h = host.strip()
        if h.startswith("[") and h.endswith("]"):
            h = h[1:-1]
        v4: int | None = None
        try:
            addr = ipaddress.ip_address(h)
            # ::ffff:a.b.c.d reaches the IPv4 host: keep one name for one endpoint
            mapped = getattr(addr, "ipv4_mapped", None)
            addr = mapped or addr
            h = str(addr)
            if addr.version == 4:
                v4 = int(addr)
        except ValueError:
            if not names:
                raise TargetError(f"{origin}: {host!r} is not an IP address") from None
        if port is None or port == "":
            self.plain.setdefault(h, origin)
            return
        try:
            p = int(str(port).strip())
        except ValueError:
            raise TargetError(f"{origin}: port {port!r} is not a number") from None
        if not 1 <= p <= 65535:
            raise TargetError(f"{origin}: port {p} is outside 1-65535")
        self._n += 1
        if v4 is not None and where.isdigit():
            self._packed.append(v4 << 16 | p)
            self._line.append(int(where))
            self._order.append(self._n)
            return
        entry = self.hosts.setdefault(h, ({}, origin, self._n))
        entry[0].setdefault(p)

    def _packed_hosts(self) -> Iterator[tuple[int, int, str, tuple[int, ...]]]:
        """(first arrival, line, host, sorted ports) of each packed host, in arrival order.

        Held as arrays (addr, first index, port-set index) while sorted: a list of a tuple a
        host measured ~170 bytes a host more at 1,000,000 hosts."""
        if not self._packed:
            return
        addrs, firsts, sets = array("Q"), array("Q"), array("L")
        port_sets: dict[tuple[int, ...], int] = {}
        cur_addr, first, ports = -1, 0, []

        def close() -> None:
            addrs.append(cur_addr)
            firsts.append(first)
            sets.append(port_sets.setdefault(tuple(ports), len(port_sets)))

        # one sort of (pair, index) keys: equal pairs together, first arrival first
        for k in sorted(v << 32 | i for i, v in enumerate(self._packed)):
            i = k & 0xFFFFFFFF
            addr, p = k >> 48, (k >> 32) & 0xFFFF
            if addr != cur_addr:
                if ports:
                    close()
                cur_addr, first, ports = addr, i, [p]
            else:
                first = min(first, i)
                if p != ports[-1]:
                    ports.append(p)
        close()
        by_set = list(port_sets)
        for j in sorted(range(len(addrs)), key=firsts.__getitem__):
            i = firsts[j]
            yield self._order[i], self._line[i], _v4(addrs[j]), by_set[sets[j]]

    def iter_result(self) -> Iterator[FileTarget]:
        """The targets: specs, hosts with ports in first-seen order, then hosts without."""
        yield from self.specs
        others = sorted((n, h, ports, o) for h, (ports, o, n) in self.hosts.items())
        j = 0
        for n, line, host, ports in self._packed_hosts():
            while j < len(others) and others[j][0] < n:
                _n, h, ps, o = others[j]
                yield FileTarget(h, tuple(sorted(ps)), o)
                j += 1
            yield FileTarget(host, ports, f"{self.name}:{line}")
        for _n, h, ps, o in others[j:]:
            yield FileTarget(h, tuple(sorted(ps)), o)
        for h, o in self.plain.items():
            yield FileTarget(h, None, o)

    def result(self) -> list[FileTarget]:
        return list(self.iter_result())


def _v4(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


# ---------------------------------------------------------------------------- line formats


def _data_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    for lineno, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield lineno, line


def _read_list(name: str, lines: Iterable[str]) -> _PortCollector:
    """Plain specs and ``host:port`` items, mixed freely."""
    ported = _PortCollector(name)
    out = ported.specs
    for lineno, line in _data_lines(lines):
        for spec in line.split():
            if _HOST_PORT.fullmatch(spec):
                host, _, port = spec.rpartition(":")
                ported.add(host, port, str(lineno), names=True)
                continue
            out.extend(FileTarget(s, None, f"{name}:{lineno}") for s in split_specs(spec))
    return ported


def _read_ip_port(name: str, lines: Iterable[str]) -> _PortCollector:
    found = _PortCollector(name)
    for lineno, line in _data_lines(lines):
        m = _IP_PORT_LINE.fullmatch(line)
        if not m:
            if lineno == 1 or not found.any_port:
                continue  # a header row
            raise TargetError(f"{name}:{lineno}: not an 'address,port' line: {line[:80]!r}")
        found.add(m.group(1), m.group(2), str(lineno))
    return found


def _read_masscan_list(name: str, lines: Iterable[str]) -> _PortCollector:
    found = _PortCollector(name)
    for lineno, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _MASSCAN_LINE.fullmatch(line)
        if not m:
            raise TargetError(f"{name}:{lineno}: not a masscan -oL line: {line[:80]!r}")
        state, proto, port, ip = m.groups()
        if state == "open" and proto == "tcp":
            found.add(ip, port, str(lineno))
    return found


def _read_grepable(name: str, lines: Iterable[str]) -> _PortCollector:
    found = _PortCollector(name)
    for lineno, line in enumerate(lines, 1):
        host = re.search(r"Host:\s+(\S+)", line)
        ports = re.search(r"Ports:\s+([^\t]*)", line)
        if not host or not ports:
            continue  # comments, "Status: Up" lines
        for entry in ports.group(1).split(","):
            fields = entry.strip().split("/")
            if len(fields) >= 3 and fields[1] == "open" and fields[2] == "tcp":
                found.add(host.group(1), fields[0], str(lineno))
    return found


def _pick(fields: list[str], candidates: Iterable[str]) -> str | None:
    for c in candidates:
        if c in fields:
            return c
    return None


def _ports_in(cell: str) -> list[str]:
    """A port cell: one number, or several (``"104;11112"``, ``[104, 11112]``) from exports."""
    cell = cell.strip()
    if cell.isdigit() or not cell:
        return [cell]
    # list separators only; anything else ("1e3", "104.5", a NUL) stays a bad port for
    # _PortCollector to name, never silently other ports
    parts = [p for p in re.split(r"[\s,;|\[\]]+", cell) if p]
    return [p[: -len("/tcp")] if p.lower().endswith("/tcp") else p for p in parts]


def _read_csv(name: str, text: str, *, zmap: bool) -> list[FileTarget]:
    """CSV with a header row; zmap's (``saddr``, ``sport``, ``success``) or any export's."""
    body = text.lstrip("\ufeff")
    lines = body.splitlines()
    skip = 0
    while skip < len(lines) and (not lines[skip].strip() or lines[skip].startswith("#")):
        skip += 1
    header = lines[skip] if skip < len(lines) else ""
    # Excel writes ';' where ',' is the decimal mark, tab-separated exports use tabs
    delimiter = next((d for d in (",", "\t", ";") if d in header), ",")
    # a banner or certificate cell of a Censys/Shodan export easily passes the csv module's
    # default field limit (128 KiB); the whole file is in memory already, so allow its size
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, len(body) + 1))
    try:
        return _read_csv_rows(name, lines, skip, delimiter, zmap=zmap)
    except csv.Error as exc:
        raise TargetError(f"{name}: not readable as CSV ({exc})") from None
    finally:
        csv.field_size_limit(old_limit)


def _read_csv_rows(
    name: str, lines: list[str], skip: int, delimiter: str, *, zmap: bool
) -> list[FileTarget]:
    reader = csv.DictReader(
        io.StringIO("\n".join(lines[skip:])), delimiter=delimiter, skipinitialspace=True
    )
    fields = [f.strip().lower() for f in reader.fieldnames or ()]
    reader.fieldnames = fields
    addr = _pick(fields, ADDRESS_COLUMNS)
    if addr is None:
        raise TargetError(
            f"{name}: looks like CSV with the header {','.join(fields)[:80]!r} but has no "
            f"address column (one of {', '.join(ADDRESS_COLUMNS)})"
        )
    # zmap: sport is the port that answered (dport is zmap's own source port: never a target)
    port_col = _pick(fields, PORT_COLUMNS if zmap else PORT_COLUMNS[1:])
    transport = _pick(fields, TRANSPORT_COLUMNS)
    found = _PortCollector(name)
    for row in reader:
        where = str(reader.line_num + skip)
        if "success" in row and str(row["success"]).strip().lower() not in ("1", "true"):
            continue
        if transport and "tcp" not in str(row.get(transport) or "tcp").lower():
            continue
        host = (row.get(addr) or "").strip()
        if not host:
            continue
        ports = _ports_in(row.get(port_col) or "") if port_col else []
        if not ports:
            found.add(host, None, where, names=not zmap)
        for p in ports:
            found.add(host, p, where, names=not zmap)
    return found.result()


# ---------------------------------------------------------------------------------- JSON


def _json_records(name: str, text: str) -> Iterator[tuple[str, Any]]:
    """Records of a JSON document (array or object) or of JSON lines, with where they were.

    masscan -oJ writes one record per line with commas between, older versions a comma before
    the final "]" too, which makes the whole file invalid JSON: the whole document is tried
    first, then one record per line.
    """
    try:
        data = json.loads(re.sub(r",\s*\]\s*$", "]", text.strip()))
    except json.JSONDecodeError:
        pass
    except RecursionError:
        raise TargetError(f"{name}: JSON nested too deeply to be scanner output") from None
    else:
        items = data if isinstance(data, list) else [data]
        for i, rec in enumerate(items, 1):
            yield f"record {i}", rec
        return
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip().rstrip(",")
        if line in ("", "[", "]"):
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TargetError(f"{name}:{lineno}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise TargetError(f"{name}:{lineno}: JSON nested too deeply") from None
        yield str(lineno), record


def _censys_host(rec: dict[str, Any]) -> dict[str, Any] | None:
    for path in ((), ("host",), ("resource",), ("host_v1", "resource")):
        node: Any = rec
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and "ip" in node and "services" in node:
            return node
    return None


def _json_kind(rec: Any) -> str | None:
    if not isinstance(rec, dict):
        return None
    if "ip_str" in rec:
        return "shodan"
    if "saddr" in rec:
        return "zmap-json"
    if "ip" in rec and isinstance(rec.get("ports"), list):
        return "masscan-json"
    if _censys_host(rec) is not None:
        return "censys"
    if "ip" in rec and "port" in rec:
        return "masscan-ndjson"
    return None


def _is_tcp(value: Any) -> bool:
    return value is None or str(value).lower() in ("tcp", "")


def _json_targets(kind: str, rec: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(address, port or None) pairs of one record; nothing for closed, failed or non-TCP."""
    if kind == "shodan":
        if _is_tcp(rec.get("transport")):
            yield str(rec["ip_str"]), rec.get("port")
    elif kind == "zmap-json":
        if str(rec.get("success", 1)).lower() in ("1", "true"):
            yield str(rec["saddr"]), rec.get("sport")
    elif kind == "masscan-json":
        for entry in rec.get("ports") or ():
            if not isinstance(entry, dict) or "port" not in entry:
                continue
            # banner records carry no status, but a banner means the port was open
            if _is_tcp(entry.get("proto")) and entry.get("status", "open") == "open":
                yield str(rec["ip"]), entry["port"]
    elif kind == "masscan-ndjson":
        data = rec.get("data") if isinstance(rec.get("data"), dict) else {}
        status = data.get("status", rec.get("status", "open"))
        if _is_tcp(rec.get("proto")) and status == "open":
            yield str(rec["ip"]), rec["port"]
    elif kind == "censys":
        host = _censys_host(rec) or {}
        for svc in host.get("services") or ():
            if isinstance(svc, dict) and "port" in svc and _is_tcp(svc.get("transport_protocol")):
                yield str(host["ip"]), svc["port"]


def _read_json(name: str, text: str) -> tuple[str, list[FileTarget]]:
    kind: str | None = None
    found = _PortCollector(name)
    for where, rec in _json_records(name, text):
        if kind is None:
            kind = _json_kind(rec)
            if kind is None:
                keys = sorted(rec)[:8] if isinstance(rec, dict) else type(rec).__name__
                raise TargetError(
                    f"{name}:{where}: JSON, but not masscan, zmap, Shodan or Censys output "
                    f"(fields {keys}; expected ip/ip_str/saddr with a port)"
                )
        if not isinstance(rec, dict):
            raise TargetError(f"{name}:{where}: expected a JSON object, got {rec!r:.40}")
        if kind == "masscan-ndjson" and "ip" not in rec:
            continue  # masscan's closing {finished: 1} style records
        try:
            for host, port in _json_targets(kind, rec):
                found.add(host, port, where)
        except KeyError as exc:
            raise TargetError(
                f"{name}:{where}: {FORMAT_NAMES[kind]} record without {exc.args[0]!r}"
            ) from None
    return FORMAT_NAMES[kind or "json"], found.result()


# ----------------------------------------------------------------------------------- nmap XML


def _read_nmap_xml(name: str, text: str) -> list[FileTarget]:
    # ElementTree never fetches external entities, and the bundled expat (>= 2.4.1) refuses
    # billion-laughs expansion, so scanner files from elsewhere are safe to parse here.
    if "<nmaprun" not in text[:65536]:
        raise TargetError(f"{name}: XML but not nmap -oX output (no <nmaprun>)")
    found = _PortCollector(name)
    hosts = 0
    try:
        for _, elem in ET.iterparse(io.StringIO(text), events=("end",)):
            if elem.tag != "host":
                continue
            hosts += 1
            addrs = [
                a.get("addr", "")
                for a in elem.iter("address")
                if a.get("addrtype") in ("ipv4", "ipv6")
            ]
            if addrs:
                for port in elem.iter("port"):
                    state = port.find("state")
                    if (
                        port.get("protocol") == "tcp"
                        and state is not None
                        and state.get("state") == "open"
                    ):
                        found.add(addrs[0], port.get("portid", ""), f"host {hosts}")
            elem.clear()
    except ET.ParseError as exc:
        # an interrupted nmap leaves the file unterminated; the hosts written so far are good
        if "no element found" not in str(exc):
            raise TargetError(f"{name}: not valid nmap XML ({exc})") from None
    return found.result()
