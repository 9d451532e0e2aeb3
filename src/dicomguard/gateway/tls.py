"""TLS for the gateway's listeners: PS3.15 profiles, the server context, refused handshakes.

Connections are accepted as plain TCP and upgraded with :func:`start_tls` using the context
current at accept time, so a reload that brings a new certificate applies to the next
association without closing the listening socket or touching live associations.

Profiles (``tls.profile``; DICOM PS3.15 Annex B, 2023-2024 editions). TLS 1.3 suites are
all AEAD with forward secrecy and are not restricted by any profile (the profiles' suite lists
are TLS 1.2 suites; Python's ``ssl`` cannot set TLS 1.3 suites anyway):

============================  ======  ======================================================
profile                       min     TLS 1.2 cipher suites
============================  ======  ======================================================
``bcp195`` (default)          1.2     B.9 / B.12 (RFC 7525, RFC 8996): AEAD and CBC suites with
                                      ECDHE or DHE key exchange; never NULL, RC4, export, 3DES
                                      or static RSA
``bcp195-rfc8996``            1.2     B.12: the same (the gateway never negotiates 1.0/1.1)
``bcp195-non-downgrading``    1.2     B.10: the four required suites first
                                      (TLS_{DHE,ECDHE}_RSA_WITH_AES_{128_GCM_SHA256,
                                      256_GCM_SHA384}), then the other ``bcp195`` suites
``bcp195-extended``           1.2     B.11: only the four required suites and the eight listed
                                      (ECDHE-ECDSA AES-GCM, Camellia-GCM)
``aes``                       1.2     B.3 (retired): ``bcp195`` plus TLS_RSA_WITH_AES_128_CBC_SHA
                                      for old devices; static RSA has no forward secrecy
============================  ======  ======================================================

The retired *Basic TLS* profile (B.1: TLS_RSA_WITH_3DES_EDE_CBC_SHA) is not offered: 3DES has
64-bit blocks (SWEET32) and BCP 195 forbids it. The DHE suites of B.10/B.11 need
Diffie-Hellman parameters (``SSLContext.load_dh_params``): ``tls.dh_params`` names a PEM file,
by default the RFC 7919 ``ffdhe2048`` group shipped in ``dicomguard/data/ffdhe2048.pem``
(B.11 asks for DHE >= 2048 bits). Their ``*_RSA_*`` suites also need an RSA certificate; a
profile that cannot be met with the configured key is a configuration error.

Refused handshakes. asyncio's TLS transport drops the alert OpenSSL writes when a handshake
fails (``SSLProtocol._fatal_error`` force-closes the socket with the alert still unsent, CPython
3.11-3.13), so the peer saw a bare reset and learned nothing. :func:`start_tls` is
``StreamWriter.start_tls`` with a protocol that sends that alert (unknown_ca,
certificate_expired, certificate_required, handshake_failure ...) before closing. What a
refused handshake was is read by :func:`handshake_failure`: the verify error OpenSSL reports and,
when the peer sent one, its certificate's subject and issuer, taken from the Certificate
handshake message with ``SSLContext._msg_callback`` (CPython's message tracing hook, also used by
``scan/tls_probe.py``): OpenSSL keeps no chain of a certificate it refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from asyncio import sslproto
from dataclasses import dataclass
from importlib import resources
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from .config import ConfigError, TlsConfig

#: PS3.15 B.10 / B.11 required suites (OpenSSL names), in preference order
BCP195_REQUIRED = (
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
)
#: PS3.15 B.11: the suites allowed besides the required ones (OpenSSL names)
EXTENDED_OPTIONAL = (
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CAMELLIA128-GCM-SHA256",  # not in every OpenSSL build: unknown names are
    "ECDHE-ECDSA-CAMELLIA256-GCM-SHA384",  # skipped by set_ciphers
    "ECDHE-RSA-CAMELLIA128-GCM-SHA256",
    "ECDHE-RSA-CAMELLIA256-GCM-SHA384",
    "DHE-RSA-CAMELLIA128-GCM-SHA256",
    "DHE-RSA-CAMELLIA256-GCM-SHA384",
)
#: BCP 195 (RFC 7525 4.1/4.2): forward secrecy, AES-GCM and ChaCha20 first, CBC last
_BCP195_SUITES = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20:ECDHE+AES:DHE+AES"
#: what no profile offers ("!" removes for good, whatever the order of the string)
_NEVER = ":!aNULL:!eNULL:!RC4:!3DES:!DES:!MD5:!PSK:!SRP:!DSS"
_BCP195 = _BCP195_SUITES + _NEVER + ":!kRSA"


@dataclass(frozen=True)
class Profile:
    """One PS3.15 Annex B profile as a server context setting."""

    name: str
    section: str
    ciphers: str
    uses_dhe_rsa: bool  # needs DH parameters and an RSA certificate


PROFILES: dict[str, Profile] = {
    "bcp195": Profile("bcp195", "B.9", _BCP195, False),
    "bcp195-rfc8996": Profile("bcp195-rfc8996", "B.12", _BCP195, False),
    "bcp195-non-downgrading": Profile(
        "bcp195-non-downgrading", "B.10", ":".join(BCP195_REQUIRED) + ":" + _BCP195, True),
    "bcp195-extended": Profile(
        "bcp195-extended", "B.11", ":".join(BCP195_REQUIRED + EXTENDED_OPTIONAL), True),
    "aes": Profile("aes", "B.3 (retired)", _BCP195_SUITES + ":AES128-SHA" + _NEVER, False),
}


def _default_dh_params() -> str:
    return str(resources.files("dicomguard") / "data" / "ffdhe2048.pem")


def _is_rsa(config: TlsConfig) -> bool:
    try:
        key = load_pem_private_key(config.key.read_bytes(), password=None)
    except (ValueError, TypeError, OSError):
        return True  # not ours to judge: load_cert_chain reports an unusable key
    return isinstance(key, rsa.RSAPrivateKey)


def server_context(config: TlsConfig) -> ssl.SSLContext:
    """A TLS 1.2+ server context for ``config.profile``; verifies client certificates when
    ``client_ca`` is set.

    With ``client_ca`` but no ``require_client_cert``, a client certificate is optional but, if
    sent, must chain to the CA (an unverifiable certificate fails the handshake rather than
    being mapped to an identity). Raises :class:`ConfigError` for a profile the key cannot
    meet, ``ssl.SSLError``/``OSError`` for files that do not load.
    """
    profile = PROFILES[config.profile]
    if profile.uses_dhe_rsa and not _is_rsa(config):
        raise ConfigError("tls.profile", f"{profile.name} (PS3.15 {profile.section}) needs an "
                          "RSA certificate: its required suites are *_RSA_*")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if config.min_version == "TLSv1.3"
                           else ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(profile.ciphers)
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    ctx.load_dh_params(str(config.dh_params) if config.dh_params else _default_dh_params())
    ctx.load_cert_chain(str(config.cert), str(config.key))
    if config.client_ca is not None:
        ctx.load_verify_locations(cafile=str(config.client_ca))
        ctx.verify_mode = ssl.CERT_REQUIRED if config.require_client_cert else ssl.CERT_OPTIONAL
        _trace_client_certificate(ctx)
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


# -- the client's certificate, even when refused -------------------------------------------------

_HANDSHAKE = 22
_CERTIFICATE = 11
_CERT_ATTR = "_dicomguard_client_cert"


def _leaf_certificate(data: bytes) -> bytes | None:
    """The first certificate's DER from a Certificate handshake message: TLS 1.3 (RFC 8446
    4.4.2, with a request context and per-entry extensions) or TLS 1.2 (RFC 5246 7.4.2)."""
    for pos in (5 + data[4] if len(data) > 4 else 0, 4):  # 1.3 layout first, then 1.2
        if pos == 0 or len(data) < pos + 6:
            continue
        total = int.from_bytes(data[pos : pos + 3], "big")
        if pos + 3 + total != len(data):
            continue
        n = int.from_bytes(data[pos + 3 : pos + 6], "big")
        der = data[pos + 6 : pos + 6 + n]
        if n and len(der) == n:
            return der
    return None


def _trace_client_certificate(ctx: ssl.SSLContext) -> None:
    def callback(conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any,
                 data: bytes) -> None:
        # called for every TLS message of every connection: return at once for the rest
        if direction != "read" or msg_type != _CERTIFICATE or content_type != _HANDSHAKE:
            return
        with contextlib.suppress(Exception):  # a hook must never break the handshake
            setattr(conn, _CERT_ATTR, _leaf_certificate(data))

    with contextlib.suppress(AttributeError):  # another Python: no subject/issuer, that is all
        ctx._msg_callback = callback  # type: ignore[attr-defined]


# -- handshake ----------------------------------------------------------------------------------


class _AlertingSSLProtocol(sslproto.SSLProtocol):
    """asyncio's TLS protocol, but a failed handshake sends OpenSSL's alert before closing."""

    _alert_sent = False

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        if isinstance(handshake_exc, ssl.SSLError) and self._transport is not None:
            with contextlib.suppress(Exception):
                alert = self._outgoing.read()
                if alert:
                    self._transport.write(alert)
                    self._alert_sent = True
        super()._on_handshake_complete(handshake_exc)

    def _fatal_error(self, exc: BaseException, message: str = "Fatal error on transport") -> None:
        if self._alert_sent and self._transport is not None:
            self._transport.close()  # graceful: what is buffered (the alert) goes out first
            return
        super()._fatal_error(exc, message)


class TlsHandshakeError(OSError):
    """The handshake failed; ``ssl_object`` is what OpenSSL knew of the peer."""

    def __init__(self, cause: BaseException, ssl_object: Any) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.ssl_object = ssl_object


async def start_tls(writer: asyncio.StreamWriter, context: ssl.SSLContext,
                    timeout: float) -> None:
    """``writer.start_tls(context)`` on the server side, with the alert of a refused handshake
    sent (see the module docstring). Raises :class:`TlsHandshakeError`."""
    loop = asyncio.get_running_loop()
    transport = writer.transport
    protocol = writer._protocol  # type: ignore[attr-defined]
    await writer.drain()
    waiter = loop.create_future()
    tls = _AlertingSSLProtocol(loop, protocol, context, waiter, True, None,
                               ssl_handshake_timeout=timeout, call_connection_made=False)
    transport.pause_reading()
    transport.set_protocol(tls)
    made = loop.call_soon(tls.connection_made, transport)
    resumed = loop.call_soon(transport.resume_reading)
    try:
        await waiter
    except BaseException as exc:
        transport.close()
        made.cancel()
        resumed.cancel()
        if isinstance(exc, ssl.SSLError | OSError):
            raise TlsHandshakeError(exc, getattr(tls, "_sslobj", None)) from exc
        raise
    writer._transport = tls._app_transport  # type: ignore[attr-defined]
    protocol._replace_writer(writer)


@dataclass(frozen=True)
class TlsFailure:
    """Why a handshake was refused. ``reason`` is a short metric label."""

    reason: str
    error: str
    verify_code: int | None = None
    subject: str = ""
    issuer: str = ""

    def describe(self) -> str:
        who = f"; certificate subject {self.subject!r}, issuer {self.issuer!r}" \
            if self.subject else ""
        return f"{self.reason}: {self.error}{who}"


#: OpenSSL X509_V_ERR_* codes -> metric label
_VERIFY_REASONS = {
    9: "not-yet-valid", 10: "expired",
    2: "untrusted", 18: "untrusted", 19: "untrusted", 20: "untrusted", 21: "untrusted",
    23: "revoked",
}


def handshake_failure(exc: BaseException) -> TlsFailure:
    """Classify a failed server-side handshake (an exception from :func:`start_tls`)."""
    cause = exc.cause if isinstance(exc, TlsHandshakeError) else exc
    sslobj = exc.ssl_object if isinstance(exc, TlsHandshakeError) else None
    subject = issuer = ""
    der = getattr(sslobj, _CERT_ATTR, None) if sslobj is not None else None
    if der:
        with contextlib.suppress(Exception):
            cert = x509.load_der_x509_certificate(der)
            subject = cert.subject.rfc4514_string()
            issuer = cert.issuer.rfc4514_string()
    code = None
    if isinstance(cause, ssl.SSLCertVerificationError):
        code = cause.verify_code
        reason = _VERIFY_REASONS.get(code, "certificate-invalid")
        error = cause.verify_message or str(cause)
    elif isinstance(cause, ssl.SSLError):
        name = (cause.reason or "").upper()
        reason = {
            "PEER_DID_NOT_RETURN_A_CERTIFICATE": "no-certificate",
            "NO_SHARED_CIPHER": "no-shared-cipher",
            "UNSUPPORTED_PROTOCOL": "protocol-version",
            # bytes that are no TLS record at all: a client without TLS (a plain
            # A-ASSOCIATE-RQ starts 01 00, which OpenSSL reads as a bad record version)
            "WRONG_VERSION_NUMBER": "not-tls",
            "HTTP_REQUEST": "not-tls",
            "HTTPS_PROXY_REQUEST": "not-tls",
            "VERSION_TOO_LOW": "protocol-version",
        }.get(name, "handshake")
        error = (cause.reason or str(cause)).lower().replace("_", " ")
    else:
        reason, error = "closed", str(cause) or type(cause).__name__
    return TlsFailure(reason, error, code, subject, issuer)
