"""Web exposure: a real Orthanc with its DICOMweb plugin, and a small HTTP server for odd servers.

Orthanc (Debian's 1.10.1 plus orthanc-dicomweb 1.7) is the real thing: the REST counts and the
QIDO-RS study count must equal the synthetic ground truth, paging included. Behaviours Orthanc
does not have (a password prompt, a QIDO server ignoring ``offset``, chunked answers, a port
that is not HTTP) come from a tiny asyncio HTTP server serving synthetic studies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from dicomguard.knowledge.findings import catalog
from dicomguard.knowledge.synthetic import ID_PREFIX, NAME_PREFIX, make_patients
from dicomguard.scan.web import WebOptions, probe_web, web_findings
from dicomguard.testing.orthanc import DicomWebOrthanc
from dicomguard.testing.servers import lab_address

HTTP_HOST = "127.0.10.52"


@pytest.fixture(scope="module")
def dicomweb_orthanc() -> Iterator[DicomWebOrthanc]:
    if not DicomWebOrthanc.installed():
        pytest.skip("Orthanc or orthanc-dicomweb missing: run scripts/bootstrap")
    with DicomWebOrthanc(lab_address(43), preset="open", patients=make_patients(43, 25)) as s:
        yield s


def _no_phi(record: Any) -> None:
    text = json.dumps(record)
    assert NAME_PREFIX not in text and ID_PREFIX not in text


async def test_orthanc_rest_and_qido_counts_equal_ground_truth(dicomweb_orthanc):
    s = dicomweb_orthanc
    truth = s.ground_truth
    web = await probe_web(s.host, s.http_port, WebOptions(page_size=7))
    assert web is not None
    assert web["scheme"] == "http"
    assert (web["product"], web["product_version"]) == ("Orthanc", "1.10.1")
    o = web["orthanc"]
    assert o["auth_required"] is False and o["dicom_aet"] == s.aet
    assert o["counts"]["patients"] == truth.patients
    assert o["counts"]["studies"] == truth.studies
    q = web["qido"]
    assert q["path"] == "/dicom-web/studies" and q["auth_required"] is False
    assert q["studies"] == truth.studies and q["complete"] is True
    assert q["pages"] >= truth.studies // 7  # really paged with limit/offset
    assert q["earliest_study_date"] == truth.earliest_study_date
    assert q["latest_study_date"] == truth.latest_study_date
    _no_phi(web)
    ids = [f["id"] for f in web_findings(web)]
    assert ids == ["DG-030", "DG-032", "DG-034", "DG-033"]
    assert all(len(catalog()[i].remediation) > 40 for i in ids)


async def test_qido_budget_gives_a_flagged_lower_bound(dicomweb_orthanc):
    s = dicomweb_orthanc
    web = await probe_web(s.host, s.http_port, WebOptions(page_size=3, request_budget=6))
    assert web is not None and web["requests"] == 6
    q = web["qido"]
    assert q["complete"] is False and 0 < q["studies"] < s.ground_truth.studies
    assert "+ studies" in next(f["detail"] for f in web_findings(web) if f["id"] == "DG-032")


# --- a small HTTP server for behaviours Orthanc does not have ----------------------------------

Route = Callable[[str, dict[str, list[str]]], tuple[int, dict[str, str], bytes]]


def _studies(n: int) -> list[dict[str, Any]]:
    """QIDO-RS JSON with the identifying attributes a careless server adds anyway."""
    out = []
    for p in make_patients(52, n):
        for st in p.studies:
            out.append(
                {
                    "0020000D": {"vr": "UI", "Value": [st.study_instance_uid]},
                    "00080020": {"vr": "DA", "Value": [st.study_date]},
                    "00100010": {"vr": "PN", "Value": [{"Alphabetic": p.patient_name}]},
                    "00100020": {"vr": "LO", "Value": [p.patient_id]},
                }
            )
    return out


async def _http_server(route: Route, *, chunked: bool = False) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        target = request.split()[1].decode()
        url = urlsplit(target)
        status, headers, body = route(url.path, parse_qs(url.query))
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        if chunked:
            chunks = [body[i : i + 100] for i in range(0, len(body), 100)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            head += "Transfer-Encoding: chunked\r\n"
        else:
            payload = body
            head += f"Content-Length: {len(body)}\r\n"
        writer.write(head.encode() + b"Connection: close\r\n\r\n" + payload)
        await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, HTTP_HOST, 0)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Any]]:
    servers: list[asyncio.Server] = []

    async def start(route: Route, **kw: Any) -> int:
        server = await _http_server(route, **kw)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_locked_orthanc_is_identified_by_its_realm_and_not_flagged(serve):
    def route(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        return 401, {"WWW-Authenticate": 'Basic realm="Orthanc Secure Area"'}, b""

    port = await serve(route)
    web = await probe_web(HTTP_HOST, port)
    assert web is not None
    assert web["product"] == "Orthanc" and web["orthanc"]["auth_required"] is True
    assert web["qido"] == {"path": "/dicom-web/studies", "auth_required": True, "status": 401}
    assert [f["id"] for f in web_findings(web)] == ["DG-033"]


async def test_qido_ignoring_offset_is_a_lower_bound_and_names_are_dropped(serve):
    studies = _studies(30)

    def route(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if path != "/dcm4chee-arc/aets/DCM4CHEE/rs/studies":
            return 404, {}, b""
        assert query["includefield"] == ["0020000D", "00080020"]
        limit = int(query["limit"][0])
        return 200, {"Content-Type": "application/dicom+json"}, json.dumps(studies[:limit]).encode()

    port = await serve(route, chunked=True)
    web = await probe_web(HTTP_HOST, port, WebOptions(page_size=10))
    assert web is not None
    q = web["qido"]
    assert q["studies"] == 10 and q["complete"] is False  # the second page repeated the first
    assert web["product"] == "dcm4chee-arc"
    _no_phi(web)


async def test_full_listing_in_one_answer_and_warning_header(serve):
    studies = _studies(20)

    def route(path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, str], bytes]:
        if path != "/dicomweb/studies":
            return 404, {}, b""
        headers = {"Warning": '299 dcm4chee: "There are more than 50 results"'}
        return 200, headers, json.dumps(studies).encode()  # ignores limit

    port = await serve(route)
    web = await probe_web(HTTP_HOST, port, WebOptions(page_size=5))
    assert web is not None
    assert web["qido"]["studies"] == len(studies) and web["qido"]["complete"] is False
    assert web["orthanc"] is None and web["product"] is None


async def test_a_port_that_does_not_speak_http_gives_none():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, HTTP_HOST, 0)
    async with server:
        assert await probe_web(HTTP_HOST, server.sockets[0].getsockname()[1]) is None
