"""TLS assessment of one endpoint: versions, ciphers, certificate, client certificates, PS3.15.

Every check is a fresh handshake with a client context pinned to what is being asked (one
protocol version, or one group of cipher suites), through the scan's ``pace`` like every other
connection. Nothing is sent inside TLS: a DICOM server waits for an A-ASSOCIATE-RQ and a web
server for a request, so a handshake and a close cost them nothing but a log line.

Two things the ``ssl`` module does not show directly are read from the handshake messages with
``SSLContext._msg_callback`` (CPython's TLS message tracing hook, in the ssl module since 3.8 and
used by its own test suite): whether the server sent a CertificateRequest, and the ServerHello
and Certificate of handshakes that fail later because we send no client certificate. Without
the hook (another Python) the probe still works, with fewer facts (``client_cert.requested``
stays null and a failed handshake tells no version).

TLS 1.0 and 1.1 are probed with ``DEFAULT:@SECLEVEL=0``: OpenSSL 3 refuses them (SHA-1 in the
handshake) at its default security level 2, and Debian's openssl.cnf raises the minimum to 1.2.
Security level 0 is only ever used by this client to *ask* whether a server still accepts the
old versions; the DICOM and web traffic of a scan never uses it. RC4, single DES, 3DES and
export suites are compiled out of this OpenSSL (legacy provider): a server accepting them cannot
be detected here, which the result says (``null`` = not testable) instead of guessing.

Profiles compared (DICOM PS3.15 Annex B, 2022-2024 editions):

* B.9 *BCP 195 TLS Secure Transport Connection Profile*: comply with BCP 195 (RFC 7525): TLS 1.2,
  never NULL, RC4, export or < 112-bit suites; TLS 1.0/1.1 "SHOULD NOT" only.
* B.12 *BCP 195 RFC 8996 (and 9325) TLS Profile*: as B.9, with RFC 8996: TLS 1.0 and 1.1 MUST NOT
  be negotiated; servers shall support TLS 1.2 and may support TLS 1.3.
* B.10 *Non-Downgrading BCP 195 TLS Profile*: shall not negotiate TLS 1.0/1.1; shall support all of
  TLS_DHE_RSA_WITH_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
  TLS_DHE_RSA_WITH_AES_256_GCM_SHA384 and TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384.
* B.11 *Extended BCP 195 TLS Profile*: B.10, and *no other* suites than those four plus the eight
  listed "should" suites (ECDHE-ECDSA AES-GCM, Camellia-GCM); DHE >= 2048 and ECDHE >= 256 bits
  (key exchange sizes are not visible to this client and are reported as not measured).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import warnings
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa

from ..dul.errors import DulError
from ..dul.scu import close_writer, open_stream
from .probe import Need, ProbeResult, Session, Stage, Target
from .result import DicomLikelihood, EndpointResult, Finding, TlsDetails, finding

Pace = Callable[[], Awaitable[None]]

#: protocol versions probed, oldest first (names as ``SSLObject.version()`` reports them)
VERSIONS: tuple[tuple[str, str], ...] = (
    ("TLSv1", "TLSv1.0"),
    ("TLSv1_1", "TLSv1.1"),
    ("TLSv1_2", "TLSv1.2"),
    ("TLSv1_3", "TLSv1.3"),
)
OLD_VERSIONS = ("TLSv1.0", "TLSv1.1")

#: PS3.15 B.10 / B.11: "the following cipher suites shall all be supported" (IANA -> OpenSSL)
BCP195_REQUIRED: dict[str, str] = {
    "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256": "DHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384": "DHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
}
#: PS3.15 B.11: the suites allowed besides the required ones (IANA code points)
EXTENDED_ALLOWED_IDS = frozenset(
    {0x009E, 0xC02F, 0x009F, 0xC030}  # the four required
    | {0xC07D, 0xC07C, 0xC02C, 0xC087, 0xC08B, 0xC02B, 0xC086, 0xC08A}
)

#: weak suite groups (OpenSSL cipher strings) and why BCP 195 (RFC 7525 4.1) forbids them
WEAK_GROUPS: dict[str, str] = {
    "null_or_anonymous": "eNULL:aNULL",  # no encryption, or no server authentication
    "rc4": "RC4",
    "under_128_bit": "EXP:LOW:DES:3DES:IDEA",  # export, single DES, 3DES (112-bit)
    "no_forward_secrecy": "kRSA",  # static RSA key exchange (RFC 7525 4.2 recommends PFS)
}

_HANDSHAKE = 22
_SERVER_HELLO, _ENCRYPTED_EXTENSIONS, _CERTIFICATE, _CERTIFICATE_REQUEST = 2, 8, 11, 13
_WIRE_VERSION = {"TLSv1.0": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0303}


async def _no_pace() -> None:
    return None


@dataclass(frozen=True)
class TlsProbeOptions:
    timeout: float = 5.0
    #: how long to wait after a TLS 1.3 handshake whose server asked for a client certificate,
    #: to see whether it aborts (in TLS 1.3 the client finishes before the server judges it)
    post_handshake_wait: float = 0.5
    #: also test cipher groups and the PS3.15 suites (about seven more handshakes)
    ciphers: bool = True


@dataclass
class _Handshake:
    """What one handshake showed, whether it completed or not."""

    completed: bool = False
    version: str | None = None
    cipher: str | None = None
    server_hello_version: int | None = None
    server_hello_cipher: int | None = None
    encrypted_extensions: bool = False
    cert_request: bool = False
    cert_der: bytes | None = None
    error: str | None = None
    aborted_after: bool = False  # the server ended the connection right after the handshake

    def negotiated(self, pinned: str | None) -> bool:
        """Did the server agree to the pinned version (even if the handshake failed later)?"""
        if self.completed:
            return True
        if self.server_hello_version is None:
            return False
        if pinned == "TLSv1.3":
            return self.encrypted_extensions
        return pinned is None or self.server_hello_version == _WIRE_VERSION[pinned]


@cache
def _cipher_names() -> dict[int, str]:
    """IANA code point -> OpenSSL name, for every suite this OpenSSL knows."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    with contextlib.suppress(ssl.SSLError):
        ctx.set_ciphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0")
    return {c["id"] & 0xFFFF: c["name"] for c in ctx.get_ciphers()}


def _context(version: str | None, ciphers: str | None) -> ssl.SSLContext | None:
    """A non-verifying client context pinned to one version and/or cipher string.

    None when this OpenSSL cannot offer what is asked (so the server cannot be tested for it).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 / TLSv1_1
            if version is not None:
                attr = next(a for a, name in VERSIONS if name == version)
                tv = getattr(ssl.TLSVersion, attr)
                ctx.minimum_version = tv
                ctx.maximum_version = tv
            else:
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if ciphers is not None:
            ctx.set_ciphers(ciphers + ":@SECLEVEL=0")
        elif version in OLD_VERSIONS:
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except (ssl.SSLError, ValueError):
        return None
    return ctx


def _trace(ctx: ssl.SSLContext, hs: _Handshake) -> None:
    """Record the server's handshake messages (see the module docstring for the hook)."""

    def callback(
        conn: Any, direction: str, version: Any, content_type: Any, msg_type: Any, data: bytes
    ) -> None:
        if direction != "read" or int(content_type) != _HANDSHAKE:
            return
        try:
            kind = int(msg_type)
            if kind == _SERVER_HELLO and len(data) >= 39:
                hs.server_hello_version = int.from_bytes(data[4:6], "big")
                sid = data[38]
                if len(data) >= 41 + sid:
                    hs.server_hello_cipher = int.from_bytes(data[39 + sid : 41 + sid], "big")
            elif kind == _ENCRYPTED_EXTENSIONS:
                hs.encrypted_extensions = True
            elif kind == _CERTIFICATE and hs.cert_der is None:
                hs.cert_der = _first_certificate(data, tls13=hs.encrypted_extensions)
            elif kind == _CERTIFICATE_REQUEST:
                hs.cert_request = True
        except Exception:  # a hook must never break the handshake
            return

    with contextlib.suppress(AttributeError):
        ctx._msg_callback = callback  # type: ignore[attr-defined]


def _first_certificate(data: bytes, *, tls13: bool) -> bytes | None:
    """The leaf certificate's DER from a Certificate handshake message (RFC 5246 / 8446 4.4.2)."""
    pos = 4
    if tls13:
        if len(data) <= pos:
            return None
        pos += 1 + data[pos]  # certificate_request_context
    pos += 3  # certificate_list length
    if len(data) < pos + 3:
        return None
    n = int.from_bytes(data[pos : pos + 3], "big")
    der = data[pos + 3 : pos + 3 + n]
    return der if len(der) == n and n else None


async def _handshake(
    host: str,
    port: int,
    ctx: ssl.SSLContext,
    opts: TlsProbeOptions,
    pace: Pace,
    *,
    wait_if_requested: bool = False,
) -> _Handshake:
    hs = _Handshake()
    _trace(ctx, hs)
    await pace()
    try:
        reader, writer = await open_stream(host, port, timeout=opts.timeout, ssl_context=ctx)
    except DulError as exc:
        hs.error = getattr(exc, "detail", None) or str(exc)
        return hs
    hs.completed = True
    sslobj = writer.get_extra_info("ssl_object")
    try:
        if sslobj is not None:
            hs.version = sslobj.version()
            cipher = sslobj.cipher()
            hs.cipher = cipher[0] if cipher else None
            if hs.cert_der is None:
                hs.cert_der = sslobj.getpeercert(binary_form=True)
        if wait_if_requested and hs.cert_request and hs.version == "TLSv1.3":
            try:
                data = await asyncio.wait_for(reader.read(1), opts.post_handshake_wait)
                hs.aborted_after = data == b""
            except TimeoutError:
                pass
            except (ssl.SSLError, ConnectionError, OSError):
                hs.aborted_after = True
    finally:
        await close_writer(writer)
    return hs


# --- certificate facts ---------------------------------------------------------------------------


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.subject != cert.issuer:
        return False
    try:
        key = cert.public_key()
        hash_alg = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        return True  # same name, key type we cannot check: call it self-signed
    sig, tbs = cert.signature, cert.tbs_certificate_bytes
    try:
        if isinstance(key, rsa.RSAPublicKey) and hash_alg is not None:
            key.verify(sig, tbs, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey) and hash_alg is not None:
            key.verify(sig, tbs, ec.ECDSA(hash_alg))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(sig, tbs)
        elif isinstance(key, dsa.DSAPublicKey) and hash_alg is not None:
            key.verify(sig, tbs, hash_alg)
        else:
            return True  # same name, key type we cannot check: call it self-signed
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def certificate_facts(der: bytes, now: datetime | None = None) -> dict[str, Any]:
    """Subject, issuer, validity, key and signature of a DER certificate, for the output.

    Raises ValueError for bytes that are not a certificate; a key or signature algorithm
    cryptography does not know (GOST, a mangled OID) is reported by its OID, not raised
    (issue 12: found by the fuzz test, UnsupportedAlgorithm escaped).
    """
    now = now or datetime.now(UTC)
    try:
        cert = x509.load_der_x509_certificate(der)
    except x509.InvalidVersion as exc:  # not a ValueError in cryptography: found by the fuzz
        raise ValueError(f"certificate with unknown X.509 version {exc.parsed_version}") from exc
    try:
        key: Any = cert.public_key()
    except UnsupportedAlgorithm as exc:
        key = exc
    if isinstance(key, UnsupportedAlgorithm):
        key_type, key_size = f"unsupported ({key})", None
    elif isinstance(key, rsa.RSAPublicKey):
        key_type, key_size = "RSA", key.key_size
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_type, key_size = f"EC {key.curve.name}", key.curve.key_size
    elif isinstance(key, ed25519.Ed25519PublicKey):
        key_type, key_size = "Ed25519", 256
    elif isinstance(key, ed448.Ed448PublicKey):
        key_type, key_size = "Ed448", 456
    elif isinstance(key, dsa.DSAPublicKey):
        key_type, key_size = "DSA", key.key_size
    else:
        key_type, key_size = type(key).__name__, None
    try:
        hash_alg = cert.signature_hash_algorithm
    except UnsupportedAlgorithm:
        hash_alg = None
    not_before, not_after = cert.not_valid_before_utc, cert.not_valid_after_utc
    try:
        sig_name = cert.signature_algorithm_oid._name  # e.g. sha256WithRSAEncryption
    except AttributeError:
        sig_name = cert.signature_algorithm_oid.dotted_string
    weak_key = (key_type in ("RSA", "DSA") and (key_size or 0) < 2048) or (
        key_type.startswith("EC") and (key_size or 0) < 256
    )
    weak_sig = hash_alg is not None and hash_alg.name in ("md5", "sha1")
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "self_signed": _self_signed(cert),
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "expired": now > not_after,
        "not_yet_valid": now < not_before,
        "days_left": (not_after - now).days,
        "key_type": key_type,
        "key_size": key_size,
        "signature_algorithm": sig_name,
        "weak_key": weak_key,
        "weak_signature": weak_sig,
        "serial": format(cert.serial_number, "x"),
    }


# --- the probe ---------------------------------------------------------------------------------


async def probe_tls(
    host: str,
    port: int,
    opts: TlsProbeOptions | None = None,
    *,
    pace: Pace = _no_pace,
) -> dict[str, Any] | None:
    """The ``tls_details`` record of one endpoint, or None if no TLS version is accepted."""
    opts = opts or TlsProbeOptions()
    names = _cipher_names()
    versions: dict[str, Any] = {}
    handshakes = 0
    cert_der: bytes | None = None
    requested: bool | None = None if not _has_trace() else False
    let_in = refused = False  # without a client certificate, on some accepted version
    for _attr, version in VERSIONS:
        ctx = _context(version, None)
        if ctx is None:
            versions[version] = {"accepted": None, "cipher": None, "note": "client cannot offer"}
            continue
        hs = await _handshake(host, port, ctx, opts, pace, wait_if_requested=True)
        handshakes += 1
        accepted = hs.negotiated(version)
        cipher = hs.cipher
        if cipher is None and accepted and hs.server_hello_cipher is not None:
            cipher = names.get(hs.server_hello_cipher, f"0x{hs.server_hello_cipher:04X}")
        entry: dict[str, Any] = {"accepted": accepted, "cipher": cipher}
        if not hs.completed and hs.error:
            entry["error"] = hs.error
        versions[version] = entry
        if not accepted:
            continue
        cert_der = cert_der or hs.cert_der
        requested = True if hs.cert_request else requested
        # Without a client certificate a TLS <= 1.2 handshake fails, and a TLS 1.3 connection
        # is ended right after it, but only where the server asked for one.
        if hs.completed and not hs.aborted_after:
            let_in = True
        elif hs.cert_request:
            refused = True
    required = False if let_in else (True if refused else None)
    if not any(v.get("accepted") for v in versions.values()):
        return None
    out: dict[str, Any] = {
        "versions": versions,
        "client_cert": {"requested": requested, "required": required},
        "certificate": None,
        "notes": [
            "TLS 1.0/1.1 probed with OpenSSL security level 0 (DEFAULT:@SECLEVEL=0)",
        ],
    }
    if cert_der:
        try:
            out["certificate"] = certificate_facts(cert_der)
        except ValueError as exc:
            out["certificate"] = {"error": f"unparsable certificate: {exc}"}
    best12 = next(
        (v for v in ("TLSv1.2", "TLSv1.1", "TLSv1.0") if versions[v].get("accepted")), None
    )
    if opts.ciphers and best12 is not None and (required is not True or _has_trace()):
        extra = await _cipher_checks(host, port, best12, opts, pace, names)
        handshakes += extra.pop("handshakes")
        out.update(extra)
    elif opts.ciphers:
        out["notes"].append(
            "cipher suites not tested: "
            + ("no TLS <= 1.2" if best12 is None else "a client certificate is required")
        )
    out["profiles"] = compare_profiles(out)
    out["handshakes"] = handshakes
    return out


def _has_trace() -> bool:
    return hasattr(ssl.SSLContext, "_msg_callback")


async def _cipher_checks(
    host: str,
    port: int,
    version: str,
    opts: TlsProbeOptions,
    pace: Pace,
    names: dict[int, str],
) -> dict[str, Any]:
    """Weak groups, the four PS3.15 suites and 'anything else' at the best version <= 1.2."""
    handshakes = 0

    async def accepts(ciphers: str) -> tuple[bool | None, str | None]:
        nonlocal handshakes
        ctx = _context(version, ciphers)
        if ctx is None:
            return None, None  # this OpenSSL cannot offer any suite of the group
        hs = await _handshake(host, port, ctx, opts, pace)
        handshakes += 1
        ok = hs.negotiated(version)
        name = hs.cipher or (
            names.get(hs.server_hello_cipher) if hs.server_hello_cipher is not None else None
        )
        return ok, name if ok else None

    weak: dict[str, Any] = {}
    for group, spec in WEAK_GROUPS.items():
        ok, name = await accepts(spec)
        weak[group] = {"accepted": ok, "cipher": name}
    required: dict[str, bool | None] = {}
    for iana, openssl_name in BCP195_REQUIRED.items():
        ok, _ = await accepts(openssl_name)
        required[iana] = ok
    others = [n for i, n in names.items() if i not in EXTENDED_ALLOWED_IDS]
    ok, name = await accepts(":".join(others)) if others else (None, None)
    return {
        "tested_at": version,
        "weak_ciphers": weak,
        "bcp195_suites": required,
        "suite_outside_extended_profile": {"accepted": ok, "cipher": name},
        "handshakes": handshakes,
    }


def compare_profiles(d: dict[str, Any]) -> dict[str, Any]:
    """Each PS3.15 profile: ``conformant`` (True/False/None = not decidable) and why not."""
    v = d["versions"]
    old = [name for name in OLD_VERSIONS if v.get(name, {}).get("accepted")]
    tls12 = v.get("TLSv1.2", {}).get("accepted")
    weak = d.get("weak_ciphers") or {}
    forbidden = [
        g
        for g in ("null_or_anonymous", "rc4", "under_128_bit")
        if (weak.get(g) or {}).get("accepted")
    ]
    untested = [g for g in ("rc4", "under_128_bit") if (weak.get(g) or {}).get("accepted") is None]
    suites = d.get("bcp195_suites") or {}
    missing = [s for s, ok in suites.items() if ok is False]

    def verdict(reasons: list[str], undecided: bool = False) -> dict[str, Any]:
        return {
            "conformant": False if reasons else (None if undecided else True),
            "reasons": reasons,
        }

    base: list[str] = []
    if not tls12:
        base.append("TLS 1.2 not accepted")
    base += [f"forbidden suites accepted: {g}" for g in forbidden]
    bcp195 = verdict(base, undecided=not weak)
    if old:
        bcp195["warnings"] = [f"{', '.join(old)} accepted (BCP 195: SHOULD NOT)"]
    rfc8996 = verdict(base + ([f"{', '.join(old)} accepted"] if old else []), undecided=not weak)
    nd_reasons = base + ([f"{', '.join(old)} accepted"] if old else [])
    nd_reasons += [f"required suite not accepted: {s}" for s in missing]
    non_downgrading = verdict(nd_reasons, undecided=not suites)
    other = (d.get("suite_outside_extended_profile") or {}).get("accepted")
    ext_reasons = list(nd_reasons)
    if other:
        cipher = d["suite_outside_extended_profile"].get("cipher") or "?"
        ext_reasons.append(f"suite outside the profile accepted: {cipher}")
    extended = verdict(ext_reasons, undecided=not suites or other is None)
    extended["not_measured"] = ["DHE >= 2048 / ECDHE >= 256 bit key exchange"]
    if untested:
        for p in (bcp195, rfc8996, non_downgrading, extended):
            p["untested"] = [f"{g} (not offered by this OpenSSL)" for g in untested]
            if p["conformant"]:
                p["confidence"] = "inferred"  # nothing testable failed; some was untestable
    return {
        "B.9 BCP 195": bcp195,
        "B.12 BCP 195 RFC 8996": rfc8996,
        "B.10 Non-Downgrading BCP 195": non_downgrading,
        "B.11 Extended BCP 195": extended,
    }


def tls_findings(d: TlsDetails | dict[str, Any] | None) -> list[Finding]:
    """Findings (with remediation in the catalog) from a ``tls_details`` record."""
    if not d:
        return []
    out: list[Finding] = []
    v = d["versions"]
    old = [name for name in OLD_VERSIONS if v.get(name, {}).get("accepted")]
    if old:
        out.append(finding("DG-020", detail=", ".join(old)))
    weak = d.get("weak_ciphers") or {}
    bad = [
        f"{g}: {w.get('cipher') or '?'}"
        for g, w in weak.items()
        if g != "no_forward_secrecy" and w.get("accepted")
    ]
    if bad:
        out.append(finding("DG-021", detail="; ".join(bad)))
    if (weak.get("no_forward_secrecy") or {}).get("accepted"):
        out.append(finding("DG-022", detail=weak["no_forward_secrecy"].get("cipher")))
    cert = d.get("certificate") or {}
    if cert.get("self_signed"):
        out.append(finding("DG-023", detail=cert.get("subject")))
    if cert.get("expired") or cert.get("not_yet_valid"):
        when = cert.get("not_after") if cert.get("expired") else cert.get("not_before")
        out.append(
            finding("DG-024", detail=f"{'expired' if cert.get('expired') else 'valid from'} {when}")
        )
    if cert.get("weak_key") or cert.get("weak_signature"):
        out.append(
            finding(
                "DG-025",
                detail=f"{cert.get('key_type')} {cert.get('key_size')}, "
                f"{cert.get('signature_algorithm')}",
            )
        )
    cc = d.get("client_cert") or {}
    if cc.get("required") is False:
        out.append(
            finding(
                "DG-026",
                detail="requested but optional" if cc.get("requested") else "not requested",
            )
        )
    nd = (d.get("profiles") or {}).get("B.10 Non-Downgrading BCP 195") or {}
    if nd.get("conformant") is False:
        out.append(finding("DG-027", detail="; ".join(nd.get("reasons", []))))
    return out


#: ports where DICOM is registered (IANA: 104 dicom, 2761 dicom-iscl, 2762 dicom-tls, 11112
#: dicom) or the default of a widespread server (Orthanc: 4242)
DICOM_PORTS = frozenset({104, 2761, 2762, 4242, 11112})


def judge_mutual_tls(r: EndpointResult, web_ports: Collection[int]) -> None:
    """A TLS server that requires a client certificate before any byte of DICOM: likely DICOM.

    Nothing inside TLS can be seen without a certificate the server trusts, so DICOM is
    inferred, never observed: from the port, and from the plain A-ASSOCIATE-RQ being refused by
    a TLS stack (DCMTK storescp ``+tls ... -rc`` and Orthanc ``DicomTlsRemoteCertificateRequired``
    end the TLS 1.3 connection with alert 116, certificate required: openssl s_client). The
    endpoint is a secured one: ``tls`` is true, ``dicom`` is true with confidence "inferred"
    unless the port is an HTTP port (``web_ports``; then DICOM stays unknown).
    """
    details = r.tls_details or {}
    if (details.get("client_cert") or {}).get("required") is not True:
        return
    reasons = ["TLS handshake requires a client certificate"]
    score = 0.5
    if r.port in DICOM_PORTS:
        score += 0.3
        reasons.append(f"port {r.port} is a DICOM port")
    if r.port in web_ports:
        score -= 0.3
        reasons.append(f"port {r.port} is an HTTP port")
    likely = score >= 0.5
    r.tls = True
    r.dicom = likely
    r.dicom_likelihood = DicomLikelihood(
        "likely" if likely else "unknown", round(score, 2), reasons
    )
    r.error = None if likely else r.error


class TlsProbe:
    """The TLS checks as a probe (scan.probe): versions, ciphers and certificate into the
    record's ``tls_details`` wherever a handshake completes: an HTTPS port of the web checks,
    or a port where DICOM (or only a TLS handshake) was seen inside TLS. On a port that did not
    turn out DICOM, a required client certificate then makes DICOM likely
    (:func:`judge_mutual_tls`)."""

    name = "tls"
    stage = Stage.NETWORK
    needs = frozenset({Need.TLS})
    field = "tls_details"
    result_type = TlsDetails

    def applies(self, session: Session) -> bool:
        opts, r = session.opts, session.record
        if opts.tls_probe is None:
            return False
        if r.web is not None:
            return bool(r.web["scheme"] == "https")
        # discovery too on a TLS-only port: without the client-certificate check a mutual-TLS
        # DICOM server would be recorded "not DICOM" (issue 10 item 2), unlike the full scan
        return session.tls_only or (not opts.discovery and r.tls)

    async def run(self, target: Target, session: Session) -> ProbeResult[TlsDetails]:
        r = session.record
        opts = session.opts.tls_probe
        if session.opts.discovery and opts is not None:
            opts = replace(opts, ciphers=False)  # discovery: versions and client cert only
        found = await probe_tls(target.host, target.port, opts, pace=session.pace)
        details = TlsDetails(**found) if found is not None else None
        r.tls_details = details  # before the judgement below reads it
        if r.web is None and not r.dicom:
            web = session.opts.web
            judge_mutual_tls(r, web.ports if web is not None else ())
        return ProbeResult.ok(details)

    def findings(self, record: EndpointResult) -> list[Finding]:
        return tls_findings(record.tls_details)


PROBE = TlsProbe()
