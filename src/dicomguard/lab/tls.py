"""A throw-away CA and server certificate for the lab's TLS personas.

Made with ``cryptography`` at fleet start into a temporary folder, so nothing secret is shipped
and every run has fresh keys. Scanners do not verify lab certificates; the CA is still real so a
test can check the chain when it wants to.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class LabCertificates:
    """Paths of the PEM files and the facts a truth file records about them."""

    ca_cert: Path
    cert: Path
    key: Path
    ca_pem: str
    #: SHA-256 of the server certificate (DER), as a TLS probe would report it
    cert_sha256: str
    #: a client certificate signed by the same CA (``client=True``), for mutual TLS
    client_cert: Path | None = None
    client_key: Path | None = None


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dicomguard lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_certificates(
    directory: Path,
    hosts: Iterable[str],
    *,
    days: int = 7,
    rsa_bits: int | None = None,
    client: bool = False,
) -> LabCertificates:
    """Write ca.pem, server.pem and server.key into ``directory`` for the given IP hosts.

    EC P-256 keys by default: generated in milliseconds, unlike RSA, which matters when every
    test fleet makes its own. ``rsa_bits`` makes the leaf keys RSA (DCMTK's default TLS profile,
    Non-Downgrading BCP 195, only offers ECDHE-RSA/DHE-RSA suites). ``client`` adds client.pem
    and client.key (clientAuth) signed by the same CA.
    """

    def leaf_key() -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
        if rsa_bits:
            return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
        return ec.generate_private_key(ec.SECP256R1())

    directory.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(minutes=5)
    end = now + dt.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("dicomguard lab CA")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )

    key = leaf_key()
    sans: list[x509.GeneralName] = [x509.DNSName("localhost")]
    sans += [x509.IPAddress(ipaddress.ip_address(h)) for h in sorted(set(hosts))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("dicomguard lab DICOM TLS"))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    paths = LabCertificates(
        ca_cert=directory / "ca.pem",
        cert=directory / "server.pem",
        key=directory / "server.key",
        ca_pem=ca_pem.decode("ascii"),
        cert_sha256=hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )
    paths.ca_cert.write_bytes(ca_pem)
    # server.pem holds the chain (leaf then CA) so clients that verify can build it.
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    paths.key.chmod(0o600)
    if client:
        ckey = leaf_key()
        ccert = (
            x509.CertificateBuilder()
            .subject_name(_name("dicomguard lab client"))
            .issuer_name(ca_name)
            .public_key(ckey.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        paths = dataclasses.replace(
            paths, client_cert=directory / "client.pem", client_key=directory / "client.key"
        )
        assert paths.client_cert is not None and paths.client_key is not None
        paths.client_cert.write_bytes(ccert.public_bytes(serialization.Encoding.PEM))
        paths.client_key.write_bytes(
            ckey.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        paths.client_key.chmod(0o600)
    return paths


def server_context(certs: LabCertificates) -> ssl.SSLContext:
    """The TLS server context of a lab persona (TLS 1.2+, no client certificate asked)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certs.cert, certs.key)
    return ctx


def mutual_server_context(certs: LabCertificates) -> ssl.SSLContext:
    """A server context that requires a client certificate signed by the lab CA (mutual TLS)."""
    ctx = server_context(certs)
    ctx.load_verify_locations(cafile=str(certs.ca_cert))
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def verifying_client_context(certs: LabCertificates) -> ssl.SSLContext:
    """A client context that trusts only the lab CA (for tests that check the chain)."""
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    ctx.check_hostname = False  # lab hosts are IPs; the SAN check is the test's business
    return ctx
