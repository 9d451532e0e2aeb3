"""Audit messages stay well-formed XML whatever bytes a peer puts into what they record.

XML 1.0 forbids most C0 control characters even as character references, so escaping alone
(``quoteattr``, ``escape``) does not make such a value writable: a TLS client whose rejected
certificate names itself ``CN=a\\x01b`` (no authentication needed) or a patient name with a
control byte stored with ``audit.include_phi`` made the gateway write a line no XML parser (or
SIEM) accepts. Such characters are written as U+FFFD."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from pydicom.dataset import Dataset

from dicomguard.dul import dimse
from dicomguard.gateway.audit import AuditTrail, read_phi
from dicomguard.gateway.config import AuditConfig
from dicomguard.gateway.tls import TlsFailure
from dicomguard.testing.pki import certificate, common_name, new_key, write_pair

from .test_audit_schema import CT, SCHEMA, _op, _relay
from .test_tls_profiles import _tls_config

pytestmark = pytest.mark.usefixtures("no_tracebacks")


@pytest.fixture(scope="module")
def schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def _valid_lines(schema: etree.RelaxNG, path: Path) -> list[etree._Element]:
    out = []
    for line in path.read_text().splitlines():
        message = etree.fromstring(line.encode())  # raises on a character XML forbids
        assert schema.validate(message), schema.error_log.last_error
        out.append(message)
    assert out
    return out


async def test_control_characters_from_peers_and_phi_are_written_as_replacement(
    schema: etree.RelaxNG, tmp_path: Path
) -> None:
    path = tmp_path / "audit.xml"
    trail = AuditTrail(AuditConfig(file=str(path), include_phi=True))
    await trail.start()
    trail.tls_refused("127.0.0.9", TlsFailure("untrusted", "unknown ca", 20, "CN=a\x01b",
                                              "CN=rogue\x07"))
    ds = Dataset()
    ds.PatientName = "DOE^\x01JOHN"
    ds.PatientID = "ID\x02"
    ds.StudyInstanceUID = "1.2.3"
    phi = read_phi("STORE", dimse.encode_dataset(ds, "1.2.840.10008.1.2"), "1.2.840.10008.1.2")
    trail.operation(_relay(), _op("STORE", CT, "1.2.3.4", phi=phi), status=0)
    trail.flush_repeats()
    await trail.stop()
    text = etree.tostring(_valid_lines(schema, path)[0], encoding="unicode")
    assert "CN=a\ufffdb" in text
    assert "DOE^\ufffdJOHN" in path.read_text()


def test_rejected_certificate_with_a_control_character_is_audited_as_valid_xml(
    schema: etree.RelaxNG, raw_config: dict[str, Any], gateway_factory: Any,
    pki: dict[str, Any], tmp_path: Path
) -> None:
    raw = _tls_config(raw_config, pki, client_ca=str(pki["ca"]), require_client_cert=True)
    raw["audit"] = {"file": str(tmp_path / "audit.xml")}
    gw = gateway_factory(raw)
    key = new_key()
    now = dt.datetime.now(dt.UTC)
    cert = certificate(common_name("evil\x01scanner"), key,
                       not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(1))
    pair = write_pair(tmp_path, "evil", cert, key)
    ctx = ssl.create_default_context(cafile=str(pki["ca"]))
    ctx.check_hostname = False
    ctx.load_cert_chain(str(pair.cert), str(pair.key))

    async def handshake() -> None:
        host, port = gw.address()
        try:
            _, writer = await asyncio.open_connection(host, port, ssl=ctx)
            await asyncio.sleep(0.2)  # TLS 1.3: the refusal comes after the client's Finished
            writer.close()
        except (ssl.SSLError, OSError):
            pass

    asyncio.run(handshake())
    deadline = time.monotonic() + 10
    while gw.gateway.metrics.tls_failures.value(reason="untrusted") < 1:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    gw.stop()
    messages = _valid_lines(schema, tmp_path / "audit.xml")  # start, the refusal, stop
    users = [p.get("UserID") for m in messages
             for p in m.findall("ActiveParticipant[@UserIsRequestor='true']")]
    assert "CN=evil\ufffdscanner" in users, users
