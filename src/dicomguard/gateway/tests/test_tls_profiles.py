"""TLS on the gateway, checked with an independent client (``openssl s_client``): the PS3.15
profiles of ``tls.profile`` accept their suites and refuse the others with a TLS alert, and a
refused client certificate (untrusted CA, expired, not yet valid, missing) is audited
(Security Alert, Node Authentication), counted and logged, and answered with a proper alert."""

from __future__ import annotations

import base64
import contextlib
import logging
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from dicomguard.gateway.config import ConfigError, parse_config
from dicomguard.gateway.tls import server_context

from .conftest import GATEWAY_HOST, RecordingBackend
from .scu import associate

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"

pytestmark = [pytest.mark.skipif(not Path(OPENSSL).exists(), reason="openssl is not installed"),
              pytest.mark.usefixtures("no_tracebacks")]


def _tls_config(raw: dict[str, Any], pki: dict[str, Any], **tls: Any) -> dict[str, Any]:
    raw["listen"] = [{"address": GATEWAY_HOST, "port": 0, "tls": True}]
    server = pki["server_rsa"]
    raw["tls"] = {"cert": str(server.cert), "key": str(server.key), **tls}
    return raw


def s_client(address: tuple[str, int], pki: dict[str, Any], *args: str,
             cert: str | None = None, wait: bool = False) -> subprocess.CompletedProcess[str]:
    """One handshake; output in stdout. ``wait``: then read until the server closes
    (``-ign_eof``), to see an alert sent after a TLS 1.3 client has finished its handshake."""
    argv = [OPENSSL, "s_client", "-connect", f"{address[0]}:{address[1]}",
            "-CAfile", str(pki["ca"]), "-verify_return_error", *args]
    if wait:
        argv.append("-ign_eof")
    if cert is not None:
        argv += ["-cert", str(pki[cert].cert), "-key", str(pki[cert].key)]
    done = subprocess.run(argv, input="", capture_output=True, text=True, timeout=30,
                          check=False)
    return subprocess.CompletedProcess(argv, done.returncode, done.stdout + done.stderr, "")


def _negotiated(done: subprocess.CompletedProcess[str]) -> str | None:
    """The cipher suite the server agreed to, or None when the handshake failed."""
    for line in done.stdout.splitlines():
        if "Cipher is " in line and "(NONE)" not in line:
            return line.rsplit("Cipher is ", 1)[1].strip()
    return None


PROFILE_CASES = {
    # profile: (suites that must be accepted over TLS 1.2, suites that must be refused)
    "bcp195": (
        ["ECDHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384",
         "ECDHE-RSA-CHACHA20-POLY1305"],
        ["AES128-SHA", "AES256-GCM-SHA384"],  # static RSA: no forward secrecy
    ),
    "bcp195-non-downgrading": (
        ["DHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
         "DHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"],
        ["AES128-SHA", "AES128-GCM-SHA256"],
    ),
    "bcp195-extended": (
        ["DHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
         "DHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384"],
        ["ECDHE-RSA-AES128-SHA256", "ECDHE-RSA-CHACHA20-POLY1305", "DHE-RSA-AES128-SHA",
         "AES128-SHA"],
    ),
    "aes": (
        ["AES128-SHA", "ECDHE-RSA-AES128-GCM-SHA256"],
        ["AES256-GCM-SHA384"],
    ),
}


@pytest.mark.parametrize("profile", list(PROFILE_CASES))
def test_profile_accepts_its_suites_and_refuses_others_with_an_alert(
    profile: str, raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any],
    backend: RecordingBackend,
) -> None:
    gw = gateway_factory(_tls_config(raw_config, pki, profile=profile))
    address = gw.address()
    accepted, refused = PROFILE_CASES[profile]
    for suite in accepted:
        done = s_client(address, pki, "-tls1_2", "-cipher", suite)
        assert _negotiated(done) == suite, done.stdout[-600:]
    for suite in refused:
        done = s_client(address, pki, "-tls1_2", "-cipher", suite)
        assert _negotiated(done) is None, f"{suite} accepted under {profile}"
        assert "alert handshake failure" in done.stdout, done.stdout[-600:]
    # never below TLS 1.2, whatever the profile; the refusal is an alert, not a reset
    old = s_client(address, pki, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0")
    assert _negotiated(old) is None
    assert "alert protocol version" in old.stdout, old.stdout[-600:]
    # TLS 1.3 is offered by every profile
    assert _negotiated(s_client(address, pki, "-tls1_3")) is not None
    assert gw.gateway.metrics.tls_failures.value(reason="no-shared-cipher") == len(refused)


def test_dhe_rsa_profiles_need_an_rsa_key(raw_config: dict[str, Any], pki: dict[str, Any]
                                          ) -> None:
    raw = _tls_config(raw_config, pki, profile="bcp195-non-downgrading")
    raw["tls"].update(cert=str(pki["server"].cert), key=str(pki["server"].key))  # EC key
    with pytest.raises(ConfigError, match=r"tls\.profile: .*needs an RSA certificate"):
        server_context(parse_config(raw).tls)  # type: ignore[arg-type]


def test_retired_basic_profile_is_refused_with_the_reason(
    raw_config: dict[str, Any], pki: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match=r"tls\.profile: .*3DES"):
        parse_config(_tls_config(raw_config, pki, profile="basic"))


def _alerts(path: Path) -> list[ET.Element]:
    out = []
    for line in path.read_text().splitlines():
        root = ET.fromstring(line)
        code = root.find("EventIdentification/EventTypeCode")
        if code is not None and code.get("csd-code") == "110126":
            out.append(root)
    return out


def _details(message: ET.Element) -> dict[str, str]:
    return {d.get("type", ""): base64.b64decode(d.get("value", "")).decode()
            for d in message.iter("ParticipantObjectDetail")}


def _wait(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


REFUSED_CERTS = [
    # (client certificate, TLS version, metric reason, verify error, alert the client reads)
    ("rogue", "-tls1_2", "untrusted", "unable to get local issuer certificate", "unknown ca"),
    ("rogue", "-tls1_3", "untrusted", "unable to get local issuer certificate", "unknown ca"),
    ("expired", "-tls1_2", "expired", "certificate has expired", "certificate expired"),
    ("not_yet_valid", "-tls1_3", "not-yet-valid", "certificate is not yet valid",
     "bad certificate"),
    (None, "-tls1_3", "no-certificate", "peer did not return a certificate",
     "certificate required"),
    (None, "-tls1_2", "no-certificate", "peer did not return a certificate",
     "handshake failure"),
]


@pytest.mark.parametrize(("cert", "version", "reason", "error", "alert"), REFUSED_CERTS,
                         ids=[f"{c or 'none'}{v}" for c, v, *_ in REFUSED_CERTS])
def test_refused_client_certificate_is_audited_counted_logged_and_alerted(
    cert: str | None, version: str, reason: str, error: str, alert: str,
    raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any], tmp_path: Path,
    backend: RecordingBackend, caplog: pytest.LogCaptureFixture,
) -> None:
    raw = _tls_config(raw_config, pki, client_ca=str(pki["ca"]), require_client_cert=True)
    raw["audit"] = {"file": str(tmp_path / "audit.xml")}
    gw = gateway_factory(raw)
    with caplog.at_level(logging.INFO, logger="dicomguard.gateway"):
        done = s_client(gw.address(), pki, version, cert=cert, wait=True)
        _wait(lambda: gw.gateway.metrics.tls_failures.value(reason=reason) == 1)
    assert f"alert {alert}" in done.stdout, done.stdout[-800:]
    assert backend.record.associations == []
    gw.stop()
    (message,) = _alerts(tmp_path / "audit.xml")
    assert message.find("EventIdentification/EventID").get("csd-code") == "110113"  # type: ignore[union-attr]
    assert message.find("EventIdentification").get("EventOutcomeIndicator") == "4"  # type: ignore[union-attr]
    peer = message.find("ActiveParticipant[@UserIsRequestor='true']")
    assert peer is not None and peer.get("NetworkAccessPointID") == "127.0.0.1"
    details = _details(message)
    assert error in details["Alert Description"]
    if cert is not None:
        cn = {"rogue": "ct-scanner-1", "expired": "ct-expired", "not_yet_valid": "ct-future"}
        assert details["Certificate Subject"] == f"CN={cn[cert]}"
        issuer = "rogue CA" if cert == "rogue" else "dicomguard test CA"
        assert details["Certificate Issuer"] == f"CN={issuer}"
    lines = [r.getMessage() for r in caplog.records if "TLS handshake refused" in r.getMessage()]
    assert len(lines) == 1 and error in lines[0]


def test_trusted_client_certificate_still_gets_in(
    raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any],
    backend: RecordingBackend,
) -> None:
    raw = _tls_config(raw_config, pki, client_ca=str(pki["ca"]), require_client_cert=True,
                      profile="bcp195-non-downgrading")
    gw = gateway_factory(raw)
    import ssl

    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pki["modality"].cert), str(pki["modality"].key))
    assoc = associate(gw.address(), calling="CT01", tls=ctx)
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert gw.gateway.metrics.tls_failures.value(reason="untrusted") == 0


def test_check_reports_a_profile_the_key_cannot_meet(pki: dict[str, Any], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from dicomguard.cli.gateway import main

    config = tmp_path / "gw.toml"
    config.write_text(f"""
[[listen]]
address = "127.0.0.1"
port = 2762
tls = true

[tls]
cert = "{pki['server'].cert}"
key = "{pki['server'].key}"
profile = "bcp195-extended"

[[route]]
called_aet = "PACS"
backend_host = "127.0.0.1"
backend_port = 104

[identity.modality]
operations = ["ECHO"]
""")
    assert main(["--config", str(config), "--check"]) == 2
    assert "tls.profile: bcp195-extended (PS3.15 B.11) needs an RSA certificate" in \
        capsys.readouterr().err
    rsa = config.read_text().replace(str(pki["server"].cert), str(pki["server_rsa"].cert)) \
        .replace(str(pki["server"].key), str(pki["server_rsa"].key))
    config.write_text(rsa)
    assert main(["--config", str(config), "--check"]) == 0


def test_tls13_client_that_sends_its_request_at_once_still_reads_the_alert(
    raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any],
    backend: RecordingBackend,
) -> None:
    """In TLS 1.3 the client finishes its handshake before the server judges its certificate,
    and a DICOM client sends its A-ASSOCIATE-RQ at once: the alert must still reach it (a reset
    would destroy it)."""
    import socket
    import ssl

    from dicomguard.dul.acse import AssociateRequest

    gw = gateway_factory(_tls_config(raw_config, pki, client_ca=str(pki["ca"]),
                                     require_client_cert=True))
    rq = AssociateRequest(called_aet="PACS", calling_aet="CT01",
                          abstract_syntaxes=("1.2.840.10008.1.1",)).encode()
    for _ in range(5):
        ctx = ssl.create_default_context(cafile=str(pki["ca"]))
        ctx.check_hostname = False
        ctx.load_cert_chain(str(pki["rogue"].cert), str(pki["rogue"].key))
        with socket.create_connection(gw.address(), timeout=5) as plain, \
                ctx.wrap_socket(plain) as tls:
            assert tls.version() == "TLSv1.3"
            tls.sendall(rq)
            with pytest.raises(ssl.SSLError, match="ALERT_UNKNOWN_CA"):
                tls.recv(100)
    assert backend.record.associations == []


def _client_hello() -> bytes:
    import ssl

    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="gateway")
    with contextlib.suppress(ssl.SSLWantReadError):  # no server: the ClientHello is all we want
        obj.do_handshake()
    return outgoing.read()


@pytest.mark.parametrize("payload", [
    b"GET / HTTP/1.0\r\n\r\n",
    bytes(range(256)) * 4,
    b"\x01\x00\x00\x00\x00\x44",  # a plain A-ASSOCIATE-RQ header on the TLS port
    b"",  # connect and hang up
    "truncated-client-hello",
    "client-hello-then-garbage",
], ids=["http", "binary", "plain-dicom", "hang-up", "truncated-hello", "hello-garbage"])
def test_garbage_on_the_tls_listener_is_refused_without_a_traceback(
    payload: bytes | str, raw_config: dict[str, Any], gateway_factory: Any,
    pki: dict[str, Any], backend: RecordingBackend,
) -> None:
    import socket

    raw = _tls_config(raw_config, pki)
    raw["limits"] = {"associate_timeout": 1.0}
    gw = gateway_factory(raw)
    if payload == "truncated-client-hello":
        data = _client_hello()[:60]
    elif payload == "client-hello-then-garbage":
        data = _client_hello() + b"\x17\x03\x03\x00\x10" + b"\x00" * 16
    else:
        assert isinstance(payload, bytes)
        data = payload
    with socket.create_connection(gw.address(), timeout=5) as s:
        if data:
            s.sendall(data)
        s.settimeout(5)
        try:
            while s.recv(4096):
                pass
        except OSError:
            pass
    # the gateway still works
    assert _negotiated(s_client(gw.address(), pki, "-tls1_2")) is not None
    assert backend.record.associations == []


@pytest.mark.parametrize("payload", [
    b"\x01\x00\x00\x00\x00\x44" + b"\x00" * 68,  # a plain A-ASSOCIATE-RQ on the TLS port
    b"GET / HTTP/1.0\r\n\r\n",
], ids=["plain-dicom", "http"])
def test_plain_traffic_on_the_tls_listener_is_named_not_tls(
    payload: bytes, raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found in review: a DICOM client without TLS (echoscu with no +tls) was logged as
    "TLS handshake refused: protocol-version: wrong version number", which reads as an old
    TLS version; it is a client that does not speak TLS at all."""
    import socket

    gw = gateway_factory(_tls_config(raw_config, pki))
    with caplog.at_level(logging.INFO, logger="dicomguard.gateway"), socket.create_connection(
            gw.address(), timeout=5) as s:
        s.sendall(payload)
        with contextlib.suppress(OSError):
            while s.recv(4096):
                pass
        _wait(lambda: gw.gateway.metrics.tls_failures.value(reason="not-tls") == 1)
    assert gw.gateway.metrics.tls_failures.value(reason="protocol-version") == 0
    assert any("not-tls" in r.getMessage() for r in caplog.records)
