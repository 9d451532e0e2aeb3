"""An A-ASSOCIATE-RQ the gateway aborts as malformed (here: an even presentation context ID,
PS3.8 9.3.2.2) is audited as a Security Alert naming the source and why, and logged, besides
being counted: before, the metric was its only trace (found by review: 128 RQs with even
context IDs left no audit message and no log line).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from dicomguard.dul.codes import A_ABORT, AbortReason
from dicomguard.testing.pdus import A_RELEASE_RQ

from .test_even_presentation_context_ids import VERIFICATION, _answer, _request

SCHEMA = Path(__file__).parent / "data" / "ps3.15-audit-message.rng"


def _audited(audit: Path, text: str) -> list[str]:
    deadline = time.monotonic() + 5
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for line in audit.read_text().splitlines() if text in line]
        if lines:
            break
        time.sleep(0.05)
    return lines


def test_even_context_id_request_is_audited_and_logged(
    raw_config: dict[str, Any], gateway_factory: Any, tmp_path: Path,
    caplog: pytest.LogCaptureFixture
) -> None:
    audit = tmp_path / "audit.xml"
    raw_config["audit"] = {"file": str(audit)}
    gw = gateway_factory(raw_config)
    with caplog.at_level("INFO", logger="dicomguard.gateway"):
        answer = _answer(gw.address(), _request("PACS", [(1, VERIFICATION), (4, VERIFICATION)]))
        assert answer[0] == A_ABORT
    assert gw.gateway.metrics.associations.value(result="malformed") == 1
    lines = _audited(audit, "malformed")
    assert len(lines) == 1, audit.read_text()
    message = etree.fromstring(lines[0].encode())
    schema = etree.RelaxNG(etree.parse(str(SCHEMA)))
    assert schema.validate(message), schema.error_log
    assert message.find("EventIdentification/EventID").get("csd-code") == "110113"
    assert "presentation context ID 4 is even" in message.findtext(
        "EventIdentification/EventOutcomeDescription")
    assert message.find("ActiveParticipant").get("NetworkAccessPointID") == "127.0.0.1"
    assert any("malformed A-ASSOCIATE-RQ" in r.getMessage() for r in caplog.records)


def test_a_connection_that_opens_with_another_pdu_is_audited(
    raw_config: dict[str, Any], gateway_factory: Any, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.xml"
    raw_config["audit"] = {"file": str(audit)}
    gw = gateway_factory(raw_config)
    answer = _answer(gw.address(), A_RELEASE_RQ)
    assert answer[0] == A_ABORT and answer[9] == AbortReason.UNEXPECTED_PDU
    assert gw.gateway.metrics.associations.value(result="malformed") == 1
    lines = _audited(audit, "instead of an A-ASSOCIATE-RQ")
    assert len(lines) == 1, audit.read_text()
    message = etree.fromstring(lines[0].encode())
    assert etree.RelaxNG(etree.parse(str(SCHEMA))).validate(message)
