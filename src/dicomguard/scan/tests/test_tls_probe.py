"""The TLS probe against real TLS servers on loopback (OpenSSL via asyncio, certificates made here).

Each server is configured the way a real installation can be (old versions on, anonymous suites
on, client certificates required, expired certificate), and the probe must report exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import subprocess
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from dicomguard.knowledge.findings import catalog
from dicomguard.scan.tls_probe import certificate_facts, probe_tls, tls_findings
from dicomguard.testing.base import find_binary
from dicomguard.testing.loopback import free_port, wait_until_accepting
from dicomguard.testing.pki import self_signed

HOST = "127.0.10.51"


async def _serve(ctx: ssl.SSLContext) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # like a DICOM acceptor: wait for a request that never comes
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(1), 5)
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


@pytest.fixture
async def legacy_server(tmp_path: Path) -> AsyncIterator[int]:
    """TLS 1.0-1.3, every suite OpenSSL has at level 0 (anonymous, static RSA), self-signed."""
    cert, key, _ = self_signed(tmp_path, "legacy")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    server, port = await _serve(ctx)
    async with server:
        yield port


@pytest.fixture
async def strict_server(tmp_path: Path) -> AsyncIterator[int]:
    """TLS 1.2+ with ECDHE-RSA AES-GCM only, client certificate required, expired cert."""
    cert, key, _ = self_signed(tmp_path, "strict", days=(-60, -2))
    client_ca, _ck, _ = self_signed(tmp_path, "client-ca")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384")
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(client_ca)
    server, port = await _serve(ctx)
    async with server:
        yield port


@pytest.fixture
async def tls13_client_cert_server(tmp_path: Path) -> AsyncIterator[int]:
    """TLS 1.3 only, client certificate required: refusal comes after the client's handshake."""
    cert, key, _ = self_signed(tmp_path, "tls13")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cert)
    server, port = await _serve(ctx)
    async with server:
        yield port


def _ids(details: dict) -> set[str]:
    return {f["id"] for f in tls_findings(details)}


async def test_legacy_server_reports_old_versions_weak_suites_and_self_signed(legacy_server):
    d = await probe_tls(HOST, legacy_server)
    assert d is not None
    assert {v: e["accepted"] for v, e in d["versions"].items()} == {
        "TLSv1.0": True,
        "TLSv1.1": True,
        "TLSv1.2": True,
        "TLSv1.3": True,
    }
    assert d["versions"]["TLSv1.3"]["cipher"].startswith("TLS_")
    assert d["client_cert"] == {"requested": False, "required": False}
    weak = d["weak_ciphers"]
    assert weak["null_or_anonymous"]["accepted"] is True
    assert weak["no_forward_secrecy"]["accepted"] is True
    # RC4/3DES/export are not in this OpenSSL: reported as untestable, never as "refused"
    assert weak["rc4"]["accepted"] is None and weak["under_128_bit"]["accepted"] is None
    cert = d["certificate"]
    assert cert["self_signed"] is True and cert["expired"] is False
    assert (cert["key_type"], cert["key_size"]) == ("RSA", 2048)
    assert cert["signature_algorithm"] == "sha256WithRSAEncryption"
    for profile in d["profiles"].values():
        assert profile["conformant"] is False
    nd = d["profiles"]["B.10 Non-Downgrading BCP 195"]["reasons"]
    assert any("TLSv1.0, TLSv1.1" in r for r in nd)
    assert _ids(d) == {"DG-020", "DG-021", "DG-022", "DG-023", "DG-026", "DG-027"}
    assert any("SECLEVEL=0" in n for n in d["notes"])


async def test_strict_server_client_cert_required_and_expired_cert(strict_server):
    d = await probe_tls(HOST, strict_server)
    assert d is not None
    accepted = {v for v, e in d["versions"].items() if e["accepted"]}
    assert accepted == {"TLSv1.2", "TLSv1.3"}
    # the handshake fails without a client certificate, yet the ServerHello told the cipher
    assert d["versions"]["TLSv1.2"]["cipher"].startswith("ECDHE-RSA-AES")
    assert d["client_cert"] == {"requested": True, "required": True}
    assert d["certificate"]["expired"] is True and d["certificate"]["days_left"] < 0
    assert d["weak_ciphers"]["null_or_anonymous"]["accepted"] is False
    assert d["weak_ciphers"]["no_forward_secrecy"]["accepted"] is False
    suites = d["bcp195_suites"]
    assert suites["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"] is True
    assert suites["TLS_DHE_RSA_WITH_AES_128_GCM_SHA256"] is False
    assert d["suite_outside_extended_profile"]["accepted"] is False
    rfc8996 = d["profiles"]["B.12 BCP 195 RFC 8996"]
    assert rfc8996["conformant"] is True and rfc8996["confidence"] == "inferred"  # RC4 untested
    assert d["profiles"]["B.10 Non-Downgrading BCP 195"]["conformant"] is False  # no DHE
    ids = _ids(d)
    assert "DG-024" in ids and "DG-023" in ids
    assert not ids & {"DG-020", "DG-021", "DG-022", "DG-026"}


async def test_tls13_client_certificate_refusal_after_handshake_is_seen(
    tls13_client_cert_server,
):
    d = await probe_tls(HOST, tls13_client_cert_server)
    assert d is not None
    assert [v for v, e in d["versions"].items() if e["accepted"]] == ["TLSv1.3"]
    assert d["client_cert"] == {"requested": True, "required": True}
    assert "DG-026" not in _ids(d)
    assert any("no TLS <= 1.2" in n for n in d["notes"])


async def test_plain_tcp_port_is_not_tls():
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.0 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, HOST, 0)
    async with server:
        assert await probe_tls(HOST, server.sockets[0].getsockname()[1]) is None


def test_certificate_facts_flag_weak_keys_and_sha1(tmp_path: Path):
    """A 1024-bit RSA key signed with SHA-1, made by the openssl command (cryptography refuses
    to sign with SHA-1, as it should)."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed")
    der_path = tmp_path / "weak.der"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-sha1",
            "-newkey",
            "rsa:1024",
            "-nodes",
            "-keyout",
            str(tmp_path / "weak.key"),
            "-out",
            str(der_path),
            "-outform",
            "DER",
            "-subj",
            "/CN=dicomguard weak",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    facts = certificate_facts(der_path.read_bytes())
    assert facts["weak_key"] and facts["weak_signature"] and facts["self_signed"]
    assert (facts["key_type"], facts["key_size"]) == ("RSA", 1024)
    assert facts["signature_algorithm"] == "sha1WithRSAEncryption"
    details = {"versions": {}, "certificate": facts, "client_cert": {}}
    assert "DG-025" in _ids(details)


def test_every_tls_finding_has_remediation():
    for fid in ("DG-020", "DG-021", "DG-022", "DG-023", "DG-024", "DG-025", "DG-026", "DG-027"):
        assert len(catalog()[fid].remediation) > 40


# --- a real DICOM TLS server: DCMTK storescp ---------------------------------------------------


@pytest.fixture
def storescp_tls(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Start DCMTK storescp with TLS options; returns its port (it binds all interfaces, as
    DCMTK 3.6.7 cannot choose one; only loopback is ever contacted)."""
    binary = find_binary("storescp")
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("DCMTK storescp or openssl missing: run scripts/bootstrap")
    key, cert, dh = tmp_path / "k.pem", tmp_path / "c.pem", tmp_path / "dh.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-sha256",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=dicomguard storescp",
            "-days",
            "2",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(  # RFC 7919 group: DHE suites need parameters, and generating them is slow
        [
            "openssl",
            "genpkey",
            "-genparam",
            "-algorithm",
            "DH",
            "-pkeyopt",
            "dh_param:ffdhe2048",
            "-out",
            str(dh),
        ],
        check=True,
        capture_output=True,
    )
    procs: list[subprocess.Popen[bytes]] = []

    def start(*options: str) -> int:
        port = free_port("127.0.0.1")
        argv = [binary, "+tls", str(key), str(cert), "-pem", "+dp", str(dh), *options]
        argv += ["--output-directory", str(tmp_path), str(port)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(proc)
        wait_until_accepting("127.0.0.1", port, timeout=10)
        return port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(5)


async def test_dcmtk_non_downgrading_profile_is_recognised(storescp_tls):
    port = storescp_tls("+py", "-ic")  # B.10 profile, peer certificates ignored
    d = await probe_tls("127.0.0.1", port)
    assert d is not None
    assert {v for v, e in d["versions"].items() if e["accepted"]} == {"TLSv1.2", "TLSv1.3"}
    assert all(d["bcp195_suites"].values())
    assert d["suite_outside_extended_profile"]["accepted"] is False
    for name in ("B.9 BCP 195", "B.12 BCP 195 RFC 8996", "B.10 Non-Downgrading BCP 195"):
        assert d["profiles"][name]["conformant"] is True, name
    assert d["client_cert"] == {"requested": False, "required": False}
    assert _ids(d) == {"DG-023", "DG-026"}  # self-signed, and anyone may connect


async def test_dcmtk_require_peer_cert_is_seen(storescp_tls, tmp_path: Path):
    port = storescp_tls("+py", "-rc", "+cf", str(tmp_path / "c.pem"))
    d = await probe_tls("127.0.0.1", port)
    assert d is not None
    assert d["client_cert"] == {"requested": True, "required": True}
    assert "DG-026" not in _ids(d)
