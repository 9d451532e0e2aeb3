"""One endpoint's verdicts, in the shape of the scan output contract (shared/scan-output.md).

Contract fields are never renamed or dropped; extra fields (state, error, timings, reject
details, confidence) are added beside them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..knowledge.sopclasses import SERVICES


def empty_services() -> dict[str, bool]:
    return dict.fromkeys(SERVICES, False)


@dataclass
class EndpointResult:
    host: str
    port: int
    state: str = "open"  # open | closed | filtered | unreachable | excluded
    dicom: bool = False
    tls: bool = False
    implementation_class_uid: str | None = None
    implementation_version_name: str | None = None
    max_pdu: int | None = None
    product: str | None = None
    product_version: str | None = None
    #: the toolkit the A-ASSOCIATE-AC names when the product embeds it unchanged (e.g.
    #: "DCMTK 3.6.7" for an Orthanc), else None
    toolkit: str | None = None
    #: how the product was told apart from that toolkit: {"source", "confidence": "observed"
    #: | "inferred", ...}; None when the AC alone named it
    product_evidence: dict[str, Any] | None = None
    called_aet: dict[str, Any] = field(
        default_factory=lambda: {"enforced": False, "accepted": None, "verified": False}
    )
    calling_aet: dict[str, Any] = field(
        default_factory=lambda: {"enforced": False, "verified": False}
    )
    user_identity: dict[str, Any] = field(
        default_factory=lambda: {"required": False, "accepted_with": None, "verified": False}
    )
    #: open to a stranger: an operation was answered (scan.operations), or, for services the
    #: default scan does not exercise (storage, and move/get without --intrusive), negotiated
    #: and not inferred closed by a per-operation refusal
    services: dict[str, bool] = field(default_factory=empty_services)
    #: presentation context accepted in the A-ASSOCIATE-AC (what ``services`` meant before)
    services_negotiated: dict[str, bool] = field(default_factory=empty_services)
    #: per negotiated service: {"state": answered | refused | failed | untested, "status":
    #: final DIMSE status or None, "detail"} of its probe operation (scan.operations)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: per service: "observed" (probed) or "inferred" (from negotiation / other probes)
    services_confidence: dict[str, str] = field(default_factory=dict)
    #: the server accepts contexts but refuses a stranger's operations (e.g. Orthanc defaults)
    access_enforced_per_operation: bool = False
    exposure: dict[str, Any] | None = None
    findings: list[dict[str, Any]] = field(default_factory=list)
    #: decoded A-ASSOCIATE-RJ of the first (arbitrary AE) request, when there was one
    reject: dict[str, Any] | None = None
    #: DICOM inferred, not observed (a TLS port requiring a client certificate):
    #: {"verdict": "likely" | "unknown", "confidence": 0..1, "reasons": [...]}; None otherwise
    dicom_likelihood: dict[str, Any] | None = None
    #: why DICOM could not be confirmed (timeout, garbage, abort...), when it could not
    error: str | None = None
    #: seconds the A-ASSOCIATE answer took when it came only on the slow-greeting retry
    #: (``ProbeOptions.slow_greeting_timeout``); None when the first request was answered
    slow_greeting_s: float | None = None
    associations: int = 0
    elapsed_ms: int = 0
    #: index of the target in the scan's deterministic order (resume bookkeeping)
    seq: int | None = None
    #: presentation-context result of the canary SOP class (sopclasses.CANARY): 0 accepted,
    #: 3 refused as a real server would; None when no AC was seen
    canary_result: int | None = None
    #: honeypot/clone signals (knowledge.honeypot): {"suspected", "signals", "confidence"}
    honeypot: dict[str, Any] | None = None
    #: how each verdict was reached: "observed" | "inferred" | "unknown" (knowledge.verdicts)
    confidence: dict[str, str] = field(default_factory=dict)
    #: TLS facts where a handshake completes (scan.tls_probe): versions, ciphers, certificate,
    #: client certificate, PS3.15 BCP 195 profile comparison; None when no TLS was seen
    tls_details: dict[str, Any] | None = None
    #: HTTP(S) ports only (scan.web): Orthanc REST and QIDO-RS exposure; dicom is false then
    web: dict[str, Any] | None = None
    #: only with --intrusive (scan.intrusive): C-STORE and C-MOVE results
    intrusive: dict[str, Any] | None = None
    #: what kind of failure ``error`` is (dul.errors ``kind``: "malformed", "timeout",
    #: "budget", ...), and the offending bytes (hex, at most 256 bytes) when there are some
    error_kind: str | None = None
    error_evidence: str | None = None
    #: when the endpoint's measurement finished (ISO 8601, UTC) and the scan it belongs to
    measured_at: str | None = None
    scan_id: str | None = None
    #: assessments of this endpoint: > 1 when transient rejects (A-ASSOCIATE-RJ result 2,
    #: source 3: congestion, local limit) were retried later in the scan
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the record (shares the nested dicts: callers serialise, not mutate).

        ``dataclasses.asdict`` deep-copies every nested value, which cost more than the whole
        TCP probe of a closed port in profiles of large scans.
        """
        return dict(self.__dict__)
