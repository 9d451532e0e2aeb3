"""Throw-away certificates for TLS tests: a CA, server and client leaves, expired and
not-yet-valid ones, and self-signed certificates, all made with ``cryptography``.

The lab's :func:`dicomguard.lab.tls.make_certificates` makes the fleet's server certificates
(shipped code, fixed shape); the tests need more shapes: client certificates with chosen common
names for identity mapping, a second CA nobody trusts, validity windows in the past or future,
self-signed leaves a TLS probe must flag. The pytest plugin offers a session CA as the
``test_ca`` fixture.

Files: ``<stem>.pem`` (certificate) and ``<stem>.key`` (PKCS#8 PEM, mode 0600).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class Issued(NamedTuple):
    """Where a certificate and its key were written, and the certificate's DER bytes."""

    cert: Path
    key: Path
    der: bytes = b""


def new_key(rsa_key: bool = False) -> PrivateKey:
    """EC P-256, or RSA 2048 bits when ``rsa_key`` (DCMTK's default TLS profile offers only
    RSA suites)."""
    if rsa_key:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def common_name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def certificate(
    subject: x509.Name,
    public_key: PrivateKey,
    *,
    issuer: x509.Name | None = None,
    signer: PrivateKey | None = None,
    not_before: dt.datetime,
    not_after: dt.datetime,
    serial: int | None = None,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> x509.Certificate:
    """One X.509 certificate; self-signed (issuer = subject, signed by ``public_key``'s own
    private key) unless ``issuer`` and ``signer`` are given. SHA-256 signature."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer or subject)
        .public_key(public_key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
    )
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    return builder.sign(signer or public_key, hashes.SHA256())


def write_pair(directory: Path, stem: str, cert: x509.Certificate, key: PrivateKey) -> Issued:
    """Write ``stem.pem`` and ``stem.key`` (0600) into ``directory``."""
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return Issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


def self_signed(directory: Path, name: str, *, days: tuple[float, float] = (-1, 30),
                rsa_key: bool = True, cn: str | None = None) -> Issued:
    """A self-signed certificate valid from ``days[0]`` to ``days[1]`` days from now
    (negative: in the past), common name ``cn`` or "dicomguard test <name>"."""
    key = new_key(rsa_key)
    now = dt.datetime.now(dt.UTC)
    cert = certificate(common_name(cn or f"dicomguard test {name}"), key,
                       not_before=now + dt.timedelta(days=days[0]),
                       not_after=now + dt.timedelta(days=days[1]))
    return write_pair(directory, name, cert, key)


class TestCA:
    """A CA (EC P-256, valid two days) that signs server and client certificates into
    ``directory``; its certificate is :attr:`ca_file`."""

    __test__ = False  # not a pytest class

    def __init__(self, directory: Path, name: str = "dicomguard test CA") -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = new_key()
        self.name = common_name(name)
        now = dt.datetime.now(dt.UTC)
        self.cert = certificate(
            self.name, self.key,
            not_before=now - dt.timedelta(minutes=5), not_after=now + dt.timedelta(days=2),
            extensions=((x509.BasicConstraints(ca=True, path_length=0), True),),
        )
        slug = name.replace(" ", "-")
        self.ca_file = directory / f"{slug}.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, cn: str, *, server: bool, hosts: tuple[str, ...] = (),
              rsa_key: bool = False, valid_from_days: float = 0.0,
              valid_days: float = 2.0, file_name: str = "") -> Issued:
        """A leaf certificate for ``cn`` valid from ``valid_from_days`` (negative: in the
        past) for ``valid_days``; serverAuth or clientAuth; ``hosts`` (IP literals) as
        subjectAltName; EC P-256 unless ``rsa_key`` (2048 bits). Expired:
        ``valid_from_days=-10, valid_days=5``; not yet valid: ``valid_from_days=5``."""
        key = new_key(rsa_key)
        start = dt.datetime.now(dt.UTC) + dt.timedelta(days=valid_from_days)
        start -= dt.timedelta(minutes=5)
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.ExtendedKeyUsage([usage]), False),
        )
        if hosts:
            sans = [x509.IPAddress(ipaddress.ip_address(h)) for h in hosts]
            extensions += ((x509.SubjectAlternativeName(sans), False),)
        cert = certificate(common_name(cn), key, issuer=self.name, signer=self.key,
                           not_before=start, not_after=start + dt.timedelta(days=valid_days),
                           extensions=extensions)
        return write_pair(self.dir, file_name or cn, cert, key)
