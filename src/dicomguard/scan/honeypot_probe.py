"""Honeypot signals of one endpoint (knowledge.honeypot) as a probe of the scan (scan.probe)."""

from __future__ import annotations

from typing import Any

from ..knowledge import honeypot
from .probe import Need, ProbeResult, Session, Stage, Target
from .result import EndpointResult, Finding, HoneypotVerdict


class HoneypotProbe:
    """The per-endpoint honeypot signals as a probe (scan.probe): after the network checks,
    on what the record holds and the fingerprint the product probe matched; sends nothing.
    The signals only the whole scan shows (clusters) are added by ``honeypot.annotate``."""

    name = "honeypot"
    stage = Stage.VERDICT
    needs: frozenset[Need] = frozenset()
    field = "honeypot"
    result_type = HoneypotVerdict

    def applies(self, session: Session) -> bool:
        return session.record.dicom

    async def run(self, target: Target, session: Session) -> ProbeResult[dict[str, Any]]:
        product = session.outcomes.get("product")
        fp = product.result if product is not None else None
        signals = honeypot.endpoint_signals(session.record.__dict__, fp)
        return ProbeResult.ok(honeypot.verdict(signals))

    def findings(self, record: EndpointResult) -> list[Finding]:
        return []


PROBE = HoneypotProbe()
