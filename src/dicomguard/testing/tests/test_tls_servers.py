"""The TLS launchers really serve DICOM inside TLS, and mutual TLS really refuses strangers.

Checked with independent tools (OpenSSL 3.0 s_client, DCMTK 3.6.7 echoscu) against
storescp ``+tls key crt +cf ca -rc`` and Orthanc 1.10.1 ``DicomTlsRemoteCertificateRequired``:

* ``openssl s_client -brief`` without a certificate: TLS 1.3 "CONNECTION ESTABLISHED", then
  "tlsv13 alert certificate required ... SSL alert number 116"; with ``-tls1_2``: "sslv3 alert
  handshake failure ... SSL alert number 40";
* ``echoscu +tls client.key client.pem +cf ca.pem``: "Received Echo Response (Success)";
* plain ``echoscu``: "Peer aborted Association (or never connected)".
"""

from __future__ import annotations

import subprocess
import threading

import pytest

from dicomguard.testing.base import LoopbackServer, find_binary


def _s_client(server: LoopbackServer, *args: str) -> str:
    openssl = find_binary("openssl")
    if openssl is None:
        pytest.skip("openssl not installed")
    # stdin stays open: s_client must still be reading when the server's alert arrives (it
    # follows the TLS 1.3 handshake), so it exits because the server closed, not because we did
    proc = subprocess.Popen(
        [openssl, "s_client", "-connect", f"{server.host}:{server.port}", "-brief", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    watchdog = threading.Timer(30, proc.kill)  # a server that never closes fails, never hangs
    watchdog.start()
    try:
        proc.stdin.write(b"\n")
        proc.stdin.flush()
        out = proc.stdout.read()  # until the server ends the connection
        proc.wait(timeout=30)
    finally:
        watchdog.cancel()
        proc.stdin.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.decode(errors="replace")


def _echoscu(server: LoopbackServer, *tls: str) -> str:
    binary = find_binary("echoscu")
    if binary is None:
        pytest.skip("echoscu (dcmtk) not installed")
    done = subprocess.run(
        [binary, "-v", *tls, server.host, str(server.port)],
        capture_output=True, timeout=30, check=False, text=True,
    )
    return done.stdout + done.stderr


@pytest.mark.parametrize("fixture", ["storescp_mutual_tls", "orthanc_mutual_tls"])
def test_mutual_tls_requires_a_client_certificate(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    server = request.getfixturevalue(fixture)
    certs = server.certs
    assert certs is not None and certs.client_cert is not None and certs.client_key is not None
    # s_client reads the alert only after the handshake: give it a line to send
    out = _s_client(server, "-tls1_3")
    assert "certificate required" in out and "alert number 116" in out
    assert "alert number 40" in _s_client(server, "-tls1_2")
    ok = _echoscu(
        server, "+tls", str(certs.client_key), str(certs.client_cert), "+cf", str(certs.ca_cert)
    )
    assert "Received Echo Response (Success)" in ok
    assert "Peer aborted Association" in _echoscu(server)


def test_tls_only_storescp_answers_echo_inside_tls(storescp_tls) -> None:
    certs = storescp_tls.certs
    out = _echoscu(storescp_tls, "+tls", str(certs.client_key), str(certs.client_cert), "-ic")
    assert "Received Echo Response (Success)" in out


def test_tls12_mutual_storescp_fails_the_handshake_itself(storescp_mutual_tls12) -> None:
    out = _s_client(storescp_mutual_tls12, "-tls1_2")
    assert "alert handshake failure" in out and "alert number 40" in out
    assert "alert number 70" in _s_client(storescp_mutual_tls12, "-tls1_3")  # no TLS 1.3
