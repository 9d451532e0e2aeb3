"""DICOMweb and admin web exposure: Orthanc's REST API and QIDO-RS study search, unauthenticated.

Read-only and privacy-preserving like the C-FIND count: QIDO-RS is asked only for
StudyInstanceUID and StudyDate (``includefield``); whatever else a server adds to its answer
(names, IDs) is parsed past and dropped, and the study UIDs are kept in memory only to count
each study once across pages. Orthanc's ``/statistics`` gives counts, never identities.

HTTP is spoken by a small HTTP/1.1 client over asyncio streams (:func:`http_get`) rather than a
library: no asyncio HTTP client is among the project's dependencies (aiohttp and httpx would
each bring several packages for four GET requests), ``urllib`` blocks a thread per request,
and the scanner needs what the DICOM client already has: the same connect with port-scanner
states, a timeout on every step and a bound on every length a hostile server announces.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

from ..dul.errors import ConnectFailed, DulError
from ..dul.scu import close_writer, open_stream, scanner_tls_context
from .probe import Need, ProbeResult, Session, Stage, Target
from .result import EndpointResult, Finding, WebExposure, finding

Pace = Callable[[], Awaitable[None]]

#: Orthanc 8042, dcm4chee-arc 8080/8443, generic 80/443, OHIF/Grafana-style dashboards 3000
DEFAULT_WEB_PORTS: tuple[int, ...] = (8042, 8080, 80, 443, 3000, 8443)
#: ports where TLS is tried first
TLS_FIRST_PORTS = frozenset({443, 8443})
#: QIDO-RS study search roots: Orthanc's DICOMweb plugin, dcm4chee-arc's default AE, others
QIDO_PATHS: tuple[str, ...] = (
    "/dicom-web/studies",
    "/dcm4chee-arc/aets/DCM4CHEE/rs/studies",
    "/dicomweb/studies",
    "/wado-rs/studies",
)
STUDY_UID_TAG = "0020000D"
STUDY_DATE_TAG = "00080020"
ORTHANC_REALM = "Orthanc Secure Area"


class NotHttp(DulError):
    """The peer answered, but not with HTTP/1.x (a DulError: decoders raise only those)."""

    kind = "not-http"


async def _no_pace() -> None:
    return None


@dataclass(frozen=True)
class WebOptions:
    ports: tuple[int, ...] = DEFAULT_WEB_PORTS
    #: HTTP requests allowed per endpoint (probing and QIDO paging together)
    request_budget: int = 40
    #: QIDO-RS ``limit`` per page
    page_size: int = 500
    timeout: float = 5.0
    #: answers above this are cut (and a QIDO count made from them flagged incomplete)
    max_body: int = 16 << 20
    qido_paths: tuple[str, ...] = QIDO_PATHS


@dataclass
class HttpResponse:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes
    truncated: bool = False

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError):
            return None


async def http_get(
    host: str,
    port: int,
    path: str,
    *,
    ssl_context: ssl.SSLContext | None = None,
    timeout: float = 5.0,
    max_body: int = 16 << 20,
    accept: str = "application/json",
) -> HttpResponse:
    """One ``GET`` with ``Connection: close``; ConnectFailed / DulError / NotHttp on failure."""
    reader, writer = await open_stream(host, port, timeout=timeout, ssl_context=ssl_context)
    host_header = f"[{host}]" if ":" in host else host
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\nAccept: {accept}\r\n"
        "User-Agent: dicomguard-scan\r\nConnection: close\r\n\r\n"
    )
    try:
        async with asyncio.timeout(timeout):
            writer.write(request.encode("ascii"))
            await writer.drain()
            status_line = await reader.readline()
            if not status_line.startswith(b"HTTP/1."):
                raise NotHttp(repr(status_line[:40]))
            parts = status_line.decode("latin-1").split(" ", 2)
            try:
                status = int(parts[1])
            except (IndexError, ValueError):
                raise NotHttp(repr(status_line[:40])) from None
            reason = parts[2].strip() if len(parts) > 2 else ""
            headers: dict[str, str] = {}
            for _ in range(200):  # a bound on header lines
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _sep, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body, truncated = await _read_body(reader, headers, max_body)
    except TimeoutError:
        raise DulError(f"HTTP answer not complete within {timeout:g}s") from None
    except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError) as exc:
        raise DulError(f"HTTP connection failed: {exc}") from None
    except ValueError as exc:  # a header line over the stream limit
        raise NotHttp(str(exc)) from None
    finally:
        await close_writer(writer)
    return HttpResponse(status, reason, headers, body, truncated)


async def _read_body(
    reader: asyncio.StreamReader, headers: dict[str, str], max_body: int
) -> tuple[bytes, bool]:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readline()
            try:
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            except ValueError:
                raise NotHttp("bad chunk size") from None
            if size == 0:
                return bytes(out), False
            if len(out) + size > max_body:
                return bytes(out), True
            out += await reader.readexactly(size)
            await reader.readline()
    length = headers.get("content-length")
    if length is not None and length.isdigit():
        n = int(length)
        data = await reader.readexactly(min(n, max_body))
        return data, n > max_body
    data = await reader.read(max_body + 1)
    buf = bytearray(data)
    while data and len(buf) <= max_body:
        data = await reader.read(max_body + 1 - len(buf))
        buf += data
    return bytes(buf[:max_body]), len(buf) > max_body


class _Client:
    """Requests against one endpoint within the request budget, over the scheme that works."""

    def __init__(self, host: str, port: int, opts: WebOptions, pace: Pace) -> None:
        self.host, self.port, self.opts, self.pace = host, port, opts, pace
        self.ssl: ssl.SSLContext | None = None
        self.requests = 0

    @property
    def left(self) -> int:
        return self.opts.request_budget - self.requests

    async def get(self, path: str, accept: str = "application/json") -> HttpResponse | None:
        if self.left <= 0:
            return None
        await self.pace()
        self.requests += 1
        return await http_get(
            self.host,
            self.port,
            path,
            ssl_context=self.ssl,
            timeout=self.opts.timeout,
            max_body=self.opts.max_body,
            accept=accept,
        )

    async def first_contact(self, path: str) -> HttpResponse | None:
        """The first request, over HTTP or HTTPS (whichever the port speaks), or None."""
        schemes: list[ssl.SSLContext | None] = [None, scanner_tls_context()]
        if self.port in TLS_FIRST_PORTS:
            schemes.reverse()
        for ctx in schemes:
            self.ssl = ctx
            try:
                return await self.get(path)
            except ConnectFailed as exc:
                if exc.state in ("closed", "filtered", "unreachable"):
                    raise
            except (DulError, NotHttp):
                continue
        self.ssl = None
        return None


async def probe_web(
    host: str, port: int, opts: WebOptions | None = None, *, pace: Pace = _no_pace
) -> dict[str, Any] | None:
    """The ``web`` record of one HTTP(S) endpoint, or None if it does not speak HTTP.

    Raises :class:`ConnectFailed` when the port is closed or filtered.
    """
    opts = opts or WebOptions()
    c = _Client(host, port, opts, pace)
    first = await c.first_contact("/system")
    if first is None:
        return None
    out: dict[str, Any] = {
        "scheme": "https" if c.ssl is not None else "http",
        "server": (first.headers.get("server") or None),
        "product": None,
        "product_version": None,
        "orthanc": None,
        "qido": None,
    }
    if out["server"]:
        out["server"] = out["server"][:100]
    try:
        out["orthanc"] = await _orthanc(c, first)
        if out["orthanc"] is not None:
            out["product"] = "Orthanc"
            out["product_version"] = out["orthanc"].get("version")
        out["qido"] = await _qido(c)
        if out["product"] is None and out["qido"] and "dcm4chee" in out["qido"]["path"]:
            out["product"] = "dcm4chee-arc"
    except (DulError, NotHttp) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["requests"] = c.requests
    return out


async def _orthanc(c: _Client, system: HttpResponse) -> dict[str, Any] | None:
    """Orthanc's REST API: ``/system`` identifies it, ``/statistics`` says how much it holds."""
    realm = system.headers.get("www-authenticate", "")
    if system.status == 401 and ORTHANC_REALM in realm:
        return {"auth_required": True, "version": None}
    info = system.json() if system.status == 200 else None
    if not isinstance(info, dict) or "Version" not in info or "ApiVersion" not in info:
        return None
    out: dict[str, Any] = {
        "auth_required": False,
        "version": str(info.get("Version")),
        "api_version": info.get("ApiVersion"),
        "name": info.get("Name"),
        "dicom_aet": info.get("DicomAet"),
        "dicom_port": info.get("DicomPort"),
        "plugins_enabled": info.get("PluginsEnabled"),
        "counts": None,
    }
    stats = await c.get("/statistics")
    data = stats.json() if stats is not None and stats.status == 200 else None
    if isinstance(data, dict) and "CountStudies" in data:
        out["counts"] = {
            "patients": data.get("CountPatients"),
            "studies": data.get("CountStudies"),
            "series": data.get("CountSeries"),
            "instances": data.get("CountInstances"),
            "disk_size_mb": data.get("TotalDiskSizeMB"),
        }
    return out


#: Orthanc's REST port is tried first when a DICOM port of the same host shows DCMTK's identity
ORTHANC_HTTP_PORT = 8042


async def orthanc_rest_identity(
    host: str,
    dicom_port: int,
    opts: WebOptions | None = None,
    *,
    pace: Pace = _no_pace,
    max_ports: int = 3,
) -> dict[str, Any] | None:
    """Is the DICOM service on ``host:dicom_port`` an Orthanc? Ask its REST API on the host.

    Orthanc sends DCMTK's Implementation Class UID and Version Name in its A-ASSOCIATE-AC
    (measured on Debian's 1.10.1: ``1.2.276.0.7230010.3.0.3.6.7`` / ``OFFIS_DCMTK_367``), so the
    AC alone says "DCMTK". Its REST API answers ``GET /system`` with ``Version``, ``DicomAet``
    and ``DicomPort`` (Orthanc REST API reference, /system). Up to ``max_ports`` of the scan's
    web ports are tried (8042 first), one request each.

    Returns ``{"port", "version" (None when authentication hides it), "dicom_port",
    "dicom_aet", "auth_required", "same_instance"}`` (``same_instance``: its DicomPort is the
    scanned port; None when unknown), or None when no Orthanc answered.
    """
    opts = opts or WebOptions()
    ordered = sorted(set(opts.ports) - {dicom_port}, key=lambda p: p != ORTHANC_HTTP_PORT)
    for port in ordered[:max_ports]:
        c = _Client(host, port, replace(opts, request_budget=1), pace)
        try:
            first = await c.first_contact("/system")
        except (ConnectFailed, DulError, NotHttp):
            continue
        if first is None:
            continue
        if first.status == 401 and ORTHANC_REALM in first.headers.get("www-authenticate", ""):
            return {"port": port, "version": None, "dicom_port": None, "dicom_aet": None,
                    "auth_required": True, "same_instance": None}
        info = first.json() if first.status == 200 else None
        if isinstance(info, dict) and "Version" in info and "ApiVersion" in info:
            listed = info.get("DicomPort")
            return {
                "port": port,
                "version": str(info["Version"]),
                "dicom_port": listed,
                "dicom_aet": info.get("DicomAet"),
                "auth_required": False,
                "same_instance": (listed == dicom_port) if isinstance(listed, int) else None,
            }
    return None


def _qido_query(limit: int, offset: int) -> str:
    return urlencode(
        [
            ("includefield", STUDY_UID_TAG),
            ("includefield", STUDY_DATE_TAG),
            ("limit", str(limit)),
            ("offset", str(offset)),
        ]
    )


def _first_value(item: Any, tag: str) -> str | None:
    if not isinstance(item, dict):
        return None
    element = item.get(tag)
    if not isinstance(element, dict):
        return None
    values = element.get("Value")
    if isinstance(values, list) and values and isinstance(values[0], str):
        return values[0]
    return None


@dataclass
class _Count:
    uids: set[str] = field(default_factory=set)
    dates: list[str] = field(default_factory=list)
    complete: bool = True
    pages: int = 0

    def add(self, page: list[Any]) -> int:
        """Add a page of QIDO results; return how many studies were new."""
        new = 0
        for item in page:
            uid = _first_value(item, STUDY_UID_TAG)
            if uid is None or uid in self.uids:
                continue
            self.uids.add(uid)
            new += 1
            d = _first_value(item, STUDY_DATE_TAG)
            if d and len(d) >= 8 and d[:8].isdigit():
                self.dates.append(d[:8])
        return new


async def _qido(c: _Client) -> dict[str, Any] | None:
    """Find an open QIDO-RS study search and count the studies it lists, page by page."""
    accept = "application/dicom+json, application/json"
    locked: dict[str, Any] | None = None
    for path in c.opts.qido_paths:
        resp = await c.get(f"{path}?{_qido_query(1, 0)}", accept)
        if resp is None:
            break
        if resp.status in (401, 403):
            locked = locked or {"path": path, "auth_required": True, "status": resp.status}
            continue
        if resp.status == 204 or (resp.status == 200 and isinstance(resp.json(), list)):
            return await _count_studies(c, path, accept)
    return locked


async def _count_studies(c: _Client, path: str, accept: str) -> dict[str, Any]:
    size = c.opts.page_size
    count = _Count()
    offset = 0
    while True:
        resp = await c.get(f"{path}?{_qido_query(size, offset)}", accept)
        if resp is None:  # budget spent
            count.complete = False
            break
        count.pages += 1
        if resp.status == 204:
            break
        page = resp.json() if resp.status == 200 else None
        if not isinstance(page, list):
            count.complete = False
            break
        new = count.add(page)
        if resp.truncated or "299" in resp.headers.get("warning", ""):
            count.complete = False  # cut by us, or the server says it returned a subset
        if len(page) < size or len(page) > size:  # last page, or the server ignores limit
            break
        if new == 0:  # a full page of studies already seen: offset is ignored
            count.complete = False
            break
        offset += len(page)
    dates = sorted(count.dates)
    by_year: dict[str, int] = {}
    for d in dates:
        by_year[d[:4]] = by_year.get(d[:4], 0) + 1
    return {
        "path": path,
        "auth_required": False,
        "studies": len(count.uids),
        "complete": count.complete,
        "earliest_study_date": dates[0] if dates else None,
        "latest_study_date": dates[-1] if dates else None,
        "studies_by_year": by_year,
        "pages": count.pages,
    }


def web_findings(web: WebExposure | dict[str, Any] | None) -> list[Finding]:
    """Findings (catalog IDs with remediation) from a ``web`` record."""
    if not web:
        return []
    out: list[Finding] = []
    orthanc = web.get("orthanc") or {}
    if orthanc and not orthanc.get("auth_required"):
        counts = orthanc.get("counts")
        if counts:
            out.append(
                finding(
                    "DG-030",
                    detail=f"{counts.get('patients')} patients / {counts.get('studies')} studies "
                    "in /statistics",
                )
            )
        else:
            out.append(finding("DG-031"))
    qido = web.get("qido") or {}
    if qido and not qido.get("auth_required"):
        plus = "" if qido.get("complete") else "+"
        out.append(
            finding("DG-032", detail=f"{qido.get('studies')}{plus} studies at {qido['path']}")
        )
    exposes = (orthanc and not orthanc.get("auth_required")) or (
        qido and not qido.get("auth_required")
    )
    if exposes and web.get("scheme") == "http":
        out.append(finding("DG-034"))
    if web.get("product"):
        detail = " ".join(x for x in (web["product"], web.get("product_version")) if x)
        out.append(finding("DG-033", detail=detail))
    return out


class WebProbe:
    """The web checks as a probe (scan.probe): on the HTTP ports of ``WebOptions.ports``,
    Orthanc REST and QIDO-RS exposure into the record's ``web``. An endpoint that answers
    HTTP gets no DICOM checks (the association probe does not apply then)."""

    name = "web"
    stage = Stage.NETWORK
    needs = frozenset({Need.HTTP, Need.TLS})
    field = "web"
    result_type = WebExposure

    def applies(self, session: Session) -> bool:
        web = session.opts.web
        return web is not None and not session.opts.discovery and session.port in web.ports

    async def run(self, target: Target, session: Session) -> ProbeResult[WebExposure]:
        """Raises ConnectFailed when the port is closed or filtered."""
        web = await probe_web(target.host, target.port, session.opts.web, pace=session.pace)
        if web is None:
            return ProbeResult.ok(None)
        session.record.product = web.get("product")
        session.record.product_version = web.get("product_version")
        return ProbeResult.ok(WebExposure(**web))

    def findings(self, record: EndpointResult) -> list[Finding]:
        return web_findings(record.web)


PROBE = WebProbe()
