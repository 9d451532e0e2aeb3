"""Issue 12: the TLS and HTTP decoders of the scan raise only documented error types.

* HTTP: ``web.http_get`` reads a status line, headers and a body (length, chunked or to the
  close) from a loopback peer answering with fuzzed bytes; ``web.probe_web`` interprets fuzzed
  JSON as Orthanc / QIDO-RS answers. Only DulError (NotHttp is one) may come out, never a hang.
* TLS: ``tls_probe.certificate_facts`` reads mutated certificates (a valid one with bytes
  changed): ValueError (cryptography's "not a certificate") or a facts dict, nothing else;
  ``_first_certificate`` reads fuzzed Certificate handshake messages: bytes or None.

Bounded for CI: max_examples and a per-example deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import json

from cryptography.hazmat.primitives import serialization
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dicomguard.dul.errors import DulError
from dicomguard.scan import tls_probe, web
from dicomguard.testing import pki

HOST = "127.0.0.1"
FUZZ = settings(
    max_examples=120,
    deadline=5000,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)


def _serve_once(answer: bytes, call):  # type: ignore[no-untyped-def]
    """Run ``call(port)`` against a loopback server that answers every request with
    ``answer`` and closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        writer.close()

    async def go():  # type: ignore[no-untyped-def]
        server = await asyncio.start_server(handler, HOST, 0)
        try:
            return await call(server.sockets[0].getsockname()[1])
        finally:
            server.close()

    return asyncio.run(go())


http_heads = st.sampled_from(
    [
        b"HTTP/1.1 200 OK\r\n",
        b"HTTP/1.1 2x0 OK\r\n",
        b"HTTP/1.0 404\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n",
        b"SSH-2.0-x\r\n",
        b"",
    ]
)


@FUZZ
@given(http_heads, st.binary(max_size=300))
def test_http_get_raises_only_typed_errors(head: bytes, rest: bytes) -> None:
    async def call(port: int) -> None:
        with contextlib.suppress(DulError):
            await web.http_get(HOST, port, "/system", timeout=2.0, max_body=4096)

    _serve_once(head + rest, call)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["Version", "Name", "00100020", "00201208", "Value", "vr", "x"]),
        children,
        max_size=4,
    ),
    max_leaves=12,
)


@FUZZ
@given(json_values)
def test_probe_web_interprets_any_json_without_untyped_errors(value: object) -> None:
    body = json.dumps(value).encode()
    answer = (
        b"HTTP/1.1 200 OK\r\nServer: ORTHANC\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )

    async def call(port: int) -> None:
        opts = web.WebOptions(ports=(port,), request_budget=6, timeout=2.0)
        with contextlib.suppress(DulError):
            await web.probe_web(HOST, port, opts)

    _serve_once(answer, call)


def _certificate() -> bytes:
    now = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
    cert = pki.certificate(pki.common_name("dicomguard fuzz"), pki.new_key(), serial=7,
                           not_before=now, not_after=now + datetime.timedelta(days=30))
    return cert.public_bytes(serialization.Encoding.DER)


CERT = _certificate()


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(CERT) - 1), st.integers(0, 255)), max_size=6))
def test_certificate_facts_of_mutated_certificates(changes: list[tuple[int, int]]) -> None:
    der = bytearray(CERT)
    for pos, value in changes:
        der[pos] = value
    with contextlib.suppress(ValueError):  # cryptography: "not a certificate"
        facts = tls_probe.certificate_facts(bytes(der))
        assert isinstance(facts, dict)


@FUZZ
@given(st.binary(max_size=60), st.booleans())
def test_first_certificate_reads_any_handshake_message(data: bytes, tls13: bool) -> None:
    out = tls_probe._first_certificate(data, tls13=tls13)
    assert out is None or isinstance(out, bytes)
