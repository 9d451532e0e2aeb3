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
"""

from __future__ import annotations

import csv
import gzip
import io
import ipaddress
import json
import re
import sys
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

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
    if "," in first or "\t" in first:
        fields = _header_fields(first.replace("\t", ","))
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


def _read_bytes(path: Path | str) -> bytes:
    if str(path) == STDIN:
        if sys.stdin is None or sys.stdin.isatty():
            # a resumed "-iL -" scan, or a forgotten pipe: never wait on a terminal
            raise TargetError(
                "-iL -: standard input is a terminal, not a list; pipe the targets in "
                "(zmap ... | dicomguard scan -iL -), the same list again to resume"
            )
        return sys.stdin.buffer.read()
    return Path(path).read_bytes()


def _decode(path: Path | str, data: bytes) -> str:
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise TargetError(f"{_origin_name(path)}: gzip data is damaged ({exc})") from None
    return data.decode("utf-8", errors="replace")


def read_input_file(path: Path | str) -> list[FileTarget]:
    """Read targets from ``path`` (``"-"``: standard input), autodetecting format and gzip.

    Returns one :class:`FileTarget` per spec or per host: ``ports`` None means "use -p",
    a tuple means the ports the file found open for that host (sorted). Raises
    :class:`TargetError` naming the file and line for anything it cannot read, and when the
    file holds no target at all (with the format it looked like). OSError when it cannot be
    opened.
    """
    name = _origin_name(path)
    text = _decode(path, _read_bytes(path))
    fmt = detect_input_format(text[:65536])
    if fmt == "empty":
        raise TargetError(f"{name}: no target in it (the file is empty)")
    looked_like = FORMAT_NAMES[fmt]
    if fmt == "nmap-xml":
        found = _read_nmap_xml(name, text)
    elif fmt == "json":
        looked_like, found = _read_json(name, text)
    elif fmt == "masscan-list":
        found = _read_masscan_list(name, text)
    elif fmt == "grepable":
        found = _read_grepable(name, text)
    elif fmt in ("zmap-csv", "csv"):
        found = _read_csv(name, text, zmap=fmt == "zmap-csv")
    elif fmt == "ip-port":
        found = _read_ip_port(name, text)
    else:
        found = _read_list(name, text)
    if not found:
        raise TargetError(
            f"{name}: looks like {looked_like} but no target was recognised in it"
            " (no open TCP port, no address)"
        )
    return found


class _PortCollector:
    """Aggregates host:port pairs per host, in first-seen host order, validating as it goes.

    ``add(host, None)`` records a host with no port named (it takes -p).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.hosts: dict[str, tuple[dict[int, None], str]] = {}
        self.plain: dict[str, str] = {}

    def add(self, host: str, port: object, where: str, *, names: bool = False) -> None:
        origin = f"{self.name}:{where}"
        h = host.strip()
        if h.startswith("[") and h.endswith("]"):
            h = h[1:-1]
        try:
            h = str(ipaddress.ip_address(h))
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
        entry = self.hosts.setdefault(h, ({}, origin))
        entry[0].setdefault(p)

    def result(self) -> list[FileTarget]:
        out = [FileTarget(h, tuple(sorted(ports)), o) for h, (ports, o) in self.hosts.items()]
        out.extend(FileTarget(h, None, o) for h, o in self.plain.items())
        return out


# ---------------------------------------------------------------------------- line formats


def _data_lines(text: str) -> Iterator[tuple[int, str]]:
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if line:
            yield lineno, line


def _read_list(name: str, text: str) -> list[FileTarget]:
    """Plain specs and ``host:port`` items, mixed freely."""
    out: list[FileTarget] = []
    ported = _PortCollector(name)
    for lineno, line in _data_lines(text):
        for spec in line.split():
            if _HOST_PORT.fullmatch(spec):
                host, _, port = spec.rpartition(":")
                ported.add(host, port, str(lineno), names=True)
                continue
            out.extend(FileTarget(s, None, f"{name}:{lineno}") for s in split_specs(spec))
    return out + ported.result()


def _read_ip_port(name: str, text: str) -> list[FileTarget]:
    found = _PortCollector(name)
    for lineno, line in _data_lines(text):
        m = _IP_PORT_LINE.fullmatch(line)
        if not m:
            if lineno == 1 or not found.hosts:
                continue  # a header row
            raise TargetError(f"{name}:{lineno}: not an 'address,port' line: {line[:80]!r}")
        found.add(m.group(1), m.group(2), str(lineno))
    return found.result()


def _read_masscan_list(name: str, text: str) -> list[FileTarget]:
    found = _PortCollector(name)
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _MASSCAN_LINE.fullmatch(line)
        if not m:
            raise TargetError(f"{name}:{lineno}: not a masscan -oL line: {line[:80]!r}")
        state, proto, port, ip = m.groups()
        if state == "open" and proto == "tcp":
            found.add(ip, port, str(lineno))
    return found.result()


def _read_grepable(name: str, text: str) -> list[FileTarget]:
    found = _PortCollector(name)
    for lineno, line in enumerate(text.splitlines(), 1):
        host = re.search(r"Host:\s+(\S+)", line)
        ports = re.search(r"Ports:\s+([^\t]*)", line)
        if not host or not ports:
            continue  # comments, "Status: Up" lines
        for entry in ports.group(1).split(","):
            fields = entry.strip().split("/")
            if len(fields) >= 3 and fields[1] == "open" and fields[2] == "tcp":
                found.add(host.group(1), fields[0], str(lineno))
    return found.result()


def _pick(fields: list[str], candidates: Iterable[str]) -> str | None:
    for c in candidates:
        if c in fields:
            return c
    return None


def _ports_in(cell: str) -> list[str]:
    """A port cell: one number, or several (``"104;11112"``, ``[104, 11112]``) from exports."""
    cell = cell.strip()
    return [cell] if cell.isdigit() or not cell else re.findall(r"\d+", cell)


def _read_csv(name: str, text: str, *, zmap: bool) -> list[FileTarget]:
    """CSV with a header row; zmap's (``saddr``, ``sport``, ``success``) or any export's."""
    body = text.lstrip("\ufeff")
    lines = body.splitlines()
    skip = 0
    while skip < len(lines) and (not lines[skip].strip() or lines[skip].startswith("#")):
        skip += 1
    reader = csv.DictReader(io.StringIO("\n".join(lines[skip:])), skipinitialspace=True)
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
