"""One endpoint's verdicts, in the shape of the scan output contract (shared/scan-output.md).

Contract fields are never renamed or dropped; extra fields (state, error, timings, reject
details, confidence) are added beside them.

Every part of the record is a dataclass here, one documented field each (``#:`` comments, read
by :mod:`dicomguard.scan.schema` into the JSON Schema ``docs/scan-record.schema.json``):

- :class:`EndpointResult` the record itself (one JSON Lines line);
- verdicts the assessment fills in place and serialises with :meth:`Part.to_json`:
  :class:`CalledAet`, :class:`CallingAet`, :class:`UserIdentityVerdict`, :class:`Operation`,
  :class:`Finding`, :class:`AssociateReject`, :class:`DicomLikelihood`,
  :class:`ProductEvidence`, :class:`TlsDetails`, :class:`WebExposure`,
  :class:`IntrusiveChecks` (the nested objects of the last three are still dicts);
- parts still built as plain dicts by their probe, whose shape the schema takes from these
  classes (``schema=`` in the field metadata): :class:`Exposure`, :class:`HoneypotVerdict`.
  Classes marked ``OPEN`` allow keys not listed (their probe adds detail beside the
  documented keys).

Records read back from the store or a JSON Lines file are plain dicts; a :class:`Part` answers
``part["key"]`` and ``part.get("key")`` as well, so code that reads verdicts (honeypot
signals, confidence, report tests) serves both without converting.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from ..knowledge.findings import catalog
from ..knowledge.sopclasses import SERVICES

#: field metadata: the key is left out of the JSON when the value is None (keys a probe adds
#: only when it has something to say; their absence is part of the contract's byte layout)
OMIT_NONE = {"omit_none": True}


def empty_services() -> dict[str, bool]:
    return dict.fromkeys(SERVICES, False)


class Part:
    """A typed part of a record: JSON in field order, read access by key like the dict it was.

    Subclasses are dataclasses; ``to_json`` costs one dict per part (no deep copy).
    """

    __slots__ = ()
    #: keys beside the listed ones are allowed (the schema says ``additionalProperties``)
    OPEN: ClassVar[bool] = False

    def __getitem__(self, key: str) -> Any:
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __eq__(self, other: object) -> bool:
        """Equal to the same part, or to the dict of its JSON (a record read back)."""
        if isinstance(other, Part):
            return type(other) is type(self) and other.to_json() == self.to_json()
        if isinstance(other, dict):
            return self.to_json() == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key, default)

    def __contains__(self, key: object) -> bool:
        """``key in part``: the key is in the part's JSON, as it was in the dict (an omitted
        None is absent); without this, ``in`` would iterate by integer index."""
        return isinstance(key, str) and key in self.to_json()

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_json())

    def update(self, **changes: Any) -> None:
        """Set several fields at once. Raises TypeError for a name that is not a field."""
        names = {name for name, _ in self._fields()}
        for key, value in changes.items():
            if key not in names:
                raise TypeError(f"{type(self).__name__} has no field {key!r}")
            setattr(self, key, value)

    @classmethod
    def _fields(cls) -> tuple[tuple[str, bool], ...]:
        layout = cls.__dict__.get("_layout_cache")
        if layout is None:
            layout = tuple((f.name, bool(f.metadata.get("omit_none"))) for f in fields(cls))  # type: ignore[arg-type]
            cls._layout_cache = layout  # type: ignore[attr-defined]
        return layout

    def to_json(self) -> dict[str, Any]:
        """The part as the JSON object of the output (keys in field order)."""
        out: dict[str, Any] = {}
        for name, omit in self._fields():
            value = getattr(self, name)
            if value is None and omit:
                continue
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Any) -> Any:
        """The part from its JSON object (a record read back); other values pass through."""
        if not isinstance(data, dict):
            return data
        return cls(**data)


@dataclass(eq=False)
class CalledAet(Part):
    """Does the endpoint check the called AE title (A-ASSOCIATE-RJ reason 7)?"""

    #: an arbitrary called AE title was refused (reason 7)
    enforced: bool = False
    #: the called AE title that was accepted (the arbitrary one, or a guessed one), if any
    accepted: str | None = None
    #: observed on the wire (else the default, not measured)
    verified: bool = False
    #: where a guessed title came from when not from the wordlist (e.g. Orthanc REST /system)
    source: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(eq=False)
class CallingAet(Part):
    """Does the endpoint check the calling AE title (A-ASSOCIATE-RJ reason 3)?"""

    #: an unknown calling AE title was refused (reason 3)
    enforced: bool = False
    #: observed on the wire (else the default, not measured)
    verified: bool = False
    #: the calling title the server admitted, when one had to be guessed
    accepted: str | None = field(default=None, metadata=OMIT_NONE)
    #: access is judged per DIMSE operation, not at association time (e.g. Orthanc defaults)
    per_operation: bool | None = field(default=None, metadata=OMIT_NONE)


@dataclass(eq=False)
class UserIdentityVerdict(Part):
    """Does the endpoint require user identity negotiation (PS3.7 D.3.3.7)?"""

    #: an association was refused without a user identity and/or accepted only with one
    required: bool = False
    #: what an arbitrary identity got accepted with: "username" | "username+passcode" | None
    accepted_with: str | None = None
    #: observed on the wire (else inferred from refusals)
    verified: bool = False


@dataclass(eq=False)
class Operation(Part):
    """The one harmless operation sent for a negotiated service (scan.operations)."""

    #: "answered" | "refused" | "failed" | "untested"
    state: str
    #: the final DIMSE status (PS3.7 Annex C), None when no answer came
    status: int | None = None
    #: what happened, in words (status in hex, abort source/reason, silence)
    detail: str = ""
    #: answers to a query key that matches nothing (a stub or a decoy answering any query)
    nonsense_matches: int | None = field(default=None, metadata=OMIT_NONE)


@dataclass(eq=False)
class Finding(Part):
    """One finding of the catalogue (data/findings.toml) about this endpoint."""

    #: catalogue id, "DG-0xx"
    id: str
    #: "info" | "low" | "medium" | "high" | "critical"
    severity: str
    #: one line, from the catalogue
    title: str
    #: "confirmed" (observed) | "inferred"
    confidence: str = "confirmed"
    #: what was seen, when the catalogue title alone does not say it
    detail: str | None = field(default=None, metadata=OMIT_NONE)


def finding(fid: str, *, confidence: str = "confirmed", detail: str | None = None) -> Finding:
    """The finding ``fid`` of the catalogue (data/findings.toml) with what was seen.

    Raises KeyError for an id the catalogue does not hold."""
    d = catalog()[fid]
    return Finding(fid, d.severity, d.title, confidence, detail or None)


# --- parts built as dicts by their probe: shapes for the schema -----------------------------


@dataclass(eq=False)
class AssociateReject(Part):
    """The decoded A-ASSOCIATE-RJ of the first request (PS3.8 9.3.4)."""

    #: 1 rejected-permanent, 2 rejected-transient
    result: int
    #: 1 service-user, 2 service-provider (ACSE), 3 service-provider (presentation)
    source: int
    #: reason/diag. (PS3.8 Table 9-21), meaning depends on source
    reason: int
    #: the triple in words
    text: str


@dataclass(eq=False)
class PatientLevel(Part):
    """What the PATIENT level of the Q/R model answered (scan.exposure)."""

    #: "complete" | "capped" | "refused" | "not-offered" | "not-asked"
    state: str
    #: its final C-FIND status, None when none came
    status: int | None
    #: matches it returned, None when not asked
    matches: int | None


@dataclass(eq=False)
class WorklistExposure(Part):
    """What the Modality Worklist lists to a stranger (scan.exposure)."""

    #: scheduled procedure steps listed, None when refused
    items: int | None
    #: distinct patients among them (keyed hashes of PatientID), None when refused
    patients: int | None
    #: earliest scheduled date seen, "YYYYMMDD"
    earliest_scheduled_date: str | None = field(default=None, metadata=OMIT_NONE)
    #: latest scheduled date seen, "YYYYMMDD"
    latest_scheduled_date: str | None = field(default=None, metadata=OMIT_NONE)
    #: the counts are exact (false: lower bounds or refused)
    complete: bool = False
    #: the final C-FIND status
    status: int | None = field(default=None, metadata=OMIT_NONE)
    #: the failure that ended the count, when one did
    error: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(eq=False)
class Exposure(Part):
    """What a stranger can list (scan.exposure): counts are keyed-hash de-duplicated."""

    #: distinct patients listed, None when not known (refused, or impossible answers)
    patients: int | None
    #: distinct studies listed, None when not known
    studies: int | None
    #: earliest strict DA study date seen, "YYYYMMDD"
    earliest_study_date: str | None
    #: latest strict DA study date seen, "YYYYMMDD"
    latest_study_date: str | None
    #: false when the counts are lower bounds (result caps, budget, refusals, errors)
    complete: bool
    #: modalities seen in the study answers
    modalities: list[str] | None = field(default=None, metadata=OMIT_NONE)
    #: studies per study year ("YYYY" -> count), exact only when complete
    studies_by_year: dict[str, int] | None = field(default=None, metadata=OMIT_NONE)
    #: the silent result cap found, if any
    result_cap: int | None = field(default=None, metadata=OMIT_NONE)
    #: universal queries were refused (narrower ones may pass)
    refuses_broad_queries: bool | None = field(default=None, metadata=OMIT_NONE)
    #: every C-FIND refused, narrow ones too (per-operation access control)
    refuses_every_query: bool | None = field(default=None, metadata=OMIT_NONE)
    #: the failure status of those refusals
    refusal_status: int | None = field(default=None, metadata=OMIT_NONE)
    #: what the PATIENT level answered
    patient_level: PatientLevel | None = field(default=None, metadata=OMIT_NONE)
    #: matches without a Study Instance UID (stub placeholders): not studies
    placeholder_matches: int | None = field(default=None, metadata=OMIT_NONE)
    #: impossible combinations seen; complete is false when any is listed
    inconsistencies: list[str] | None = field(default=None, metadata=OMIT_NONE)
    #: studies came back for the range 18000101-18000102 (decoy behaviour)
    answers_impossible_query: bool | None = field(default=None, metadata=OMIT_NONE)
    #: every study is dated the day of the scan (decoy behaviour)
    studies_all_on_scan_day: bool | None = field(default=None, metadata=OMIT_NONE)
    #: the worklist's own counts, when a worklist service was counted
    worklist: WorklistExposure | None = field(default=None, metadata=OMIT_NONE)
    #: scheduled procedure steps listed (same as worklist.items)
    worklist_items: int | None = field(default=None, metadata=OMIT_NONE)
    #: C-FIND operations used
    queries: int | None = field(default=None, metadata=OMIT_NONE)
    #: the count stopped at its time budget: the counts are lower bounds
    time_budget_spent: bool | None = field(default=None, metadata=OMIT_NONE)
    #: host:port whose archive this port also fronts (its counts are that port's)
    same_archive_as: str | None = field(default=None, metadata=OMIT_NONE)
    #: only with --collect-identifiers: salted SHA-256 of patient IDs
    patient_id_hashes: list[str] | None = field(default=None, metadata=OMIT_NONE)
    #: the failure that ended the count, when one did
    error: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(eq=False)
class TlsDetails(Part):
    """TLS facts where a handshake completed (scan.tls_probe); keys in the order written."""

    #: per protocol version ("TLSv1.0".."TLSv1.3"): {"accepted", "cipher", "note"?, "error"?}
    versions: dict[str, dict[str, Any]]
    #: {"requested": bool | None, "required": bool | None}
    client_cert: dict[str, bool | None]
    #: subject, issuer, validity, key and signature of the server certificate, or None
    certificate: dict[str, Any] | None
    #: how the probe was done (security levels, what was not tested)
    notes: list[str]
    #: the version the cipher checks ran at (the best one <= TLS 1.2)
    tested_at: str | None = field(default=None, metadata=OMIT_NONE)
    #: weak suite groups: {"accepted", "cipher"} each
    weak_ciphers: dict[str, dict[str, Any]] | None = field(default=None, metadata=OMIT_NONE)
    #: the four suites PS3.15 B.10/B.11 require: accepted or not
    bcp195_suites: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)
    #: a suite outside the B.11 extended profile: {"accepted", "cipher"}
    suite_outside_extended_profile: dict[str, Any] | None = field(
        default=None, metadata=OMIT_NONE
    )
    #: per PS3.15 profile: {"conformant": bool | None, "reasons", "untested"?, ...}
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: TLS handshakes the probe made
    handshakes: int = 0


@dataclass(eq=False)
class WebExposure(Part):
    """Orthanc REST and QIDO-RS exposure of an HTTP(S) port (scan.web); keys in the order
    written."""

    #: "http" | "https"
    scheme: str
    #: the Server header (at most 100 characters), or None
    server: str | None
    #: product named by the REST answer (Orthanc, dcm4chee-arc), or None
    product: str | None
    #: its version, or None
    product_version: str | None
    #: Orthanc REST facts (/system, /statistics counts, authentication), None when no Orthanc
    #: answered
    orthanc: dict[str, Any] | None
    #: QIDO-RS study count where a DICOMweb path answered, else None
    qido: dict[str, Any] | None
    #: the failure that ended the checks, when one did
    error: str | None = field(default=None, metadata=OMIT_NONE)
    #: HTTP requests made
    requests: int = 0


@dataclass(eq=False)
class IntrusiveChecks(Part):
    """Results of the --intrusive checks (scan.intrusive); a check that did not run is None."""

    #: C-STORE of a synthetic test object: {"status", "accepted", UIDs} or {"error"}
    store: dict[str, Any] | None
    #: C-MOVE of nothing to a random AE: {"destination", "status", "accepted", ...}
    move: dict[str, Any] | None


@dataclass(eq=False)
class HoneypotVerdict(Part):
    """Honeypot/clone signals of the endpoint (knowledge.honeypot)."""

    OPEN = True
    #: the weighted score reached the suspect threshold
    suspected: bool
    #: sum of the signal weights
    score: int
    #: "none" | "low" | "medium" | "high"
    confidence: str
    #: each {"id", "weight", "why", "detail"?}
    signals: list[dict[str, Any]]


@dataclass(eq=False)
class ProductEvidence(Part):
    """How a product was told apart from the toolkit its A-ASSOCIATE-AC names."""

    #: what named it (REST /system on a port, or the behaviour seen)
    source: str
    #: "observed" | "inferred"
    confidence: str
    #: the host's Orthanc REST /system facts, when they named it
    rest: dict[str, Any] | None = field(default=None, metadata=OMIT_NONE)


@dataclass(eq=False)
class DicomLikelihood(Part):
    """DICOM inferred behind a TLS port that requires a client certificate."""

    #: "likely" | "unknown"
    verdict: str
    #: 0..1
    confidence: float
    #: why, in words
    reasons: list[str]


@dataclass(eq=False)
class GeoIpFields(Part):
    """Top-level fields ``--geoip`` adds to a record (dicomguard.geoip); absent without it."""

    #: ISO 3166-1 alpha-2 code of the address, None when unknown or the host is a name
    country: str | None = field(default=None, metadata=OMIT_NONE)
    #: autonomous system number
    asn: int | None = field(default=None, metadata=OMIT_NONE)
    #: autonomous system organisation
    as_org: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass
class EndpointResult:
    """One endpoint's record: the JSON Lines object of ``dicomguard scan`` (one per line)."""

    #: the endpoint's address or name as targeted
    host: str
    #: TCP port
    port: int
    #: open | closed | filtered | unreachable | excluded | unresolved
    state: str = "open"
    #: it answered an A-ASSOCIATE-RQ with an A-ASSOCIATE-AC or -RJ (or did so inside TLS)
    dicom: bool = False
    #: DICOM is spoken inside TLS on this port
    tls: bool = False
    #: Implementation Class UID from the A-ASSOCIATE-AC
    implementation_class_uid: str | None = None
    #: Implementation Version Name from the A-ASSOCIATE-AC
    implementation_version_name: str | None = None
    #: Maximum Length the A-ASSOCIATE-AC announced (bytes; 0 = unlimited)
    max_pdu: int | None = None
    #: what the fingerprint database (or REST /system) makes of the endpoint
    product: str | None = None
    #: the product's version, when known
    product_version: str | None = None
    #: the toolkit the A-ASSOCIATE-AC names when the product embeds it unchanged (e.g.
    #: "DCMTK 3.6.7" for an Orthanc), else None
    toolkit: str | None = None
    #: how the product was told apart from that toolkit: {"source", "confidence": "observed"
    #: | "inferred", ...}; None when the AC alone named it
    product_evidence: ProductEvidence | None = None
    #: does it reject unknown called AE titles, and which title it accepted
    called_aet: CalledAet = field(default_factory=CalledAet)
    #: does it reject unknown calling AE titles (reason 3)
    calling_aet: CallingAet = field(default_factory=CallingAet)
    #: user identity negotiation required, and what an arbitrary identity got
    user_identity: UserIdentityVerdict = field(default_factory=UserIdentityVerdict)
    #: open to a stranger: an operation was answered (scan.operations), or, for services the
    #: default scan does not exercise (storage, and move/get without --intrusive), negotiated
    #: and not inferred closed by a per-operation refusal
    services: dict[str, bool] = field(
        default_factory=empty_services, metadata={"keys": tuple(SERVICES)}
    )
    #: presentation context accepted in the A-ASSOCIATE-AC (what ``services`` meant before)
    services_negotiated: dict[str, bool] = field(
        default_factory=empty_services, metadata={"keys": tuple(SERVICES)}
    )
    #: per negotiated service: its probe operation (scan.operations)
    operations: dict[str, Operation] = field(default_factory=dict)
    #: per service: "observed" (probed) or "inferred" (from negotiation / other probes)
    services_confidence: dict[str, str] = field(default_factory=dict)
    #: the server accepts contexts but refuses a stranger's operations (e.g. Orthanc defaults)
    access_enforced_per_operation: bool = False
    #: what a stranger can list with C-FIND; None when not counted
    exposure: dict[str, Any] | None = field(default=None, metadata={"schema": Exposure})
    #: findings of the catalogue, in the order the probes produced them
    findings: list[Finding] = field(default_factory=list)
    #: decoded A-ASSOCIATE-RJ of the first (arbitrary AE) request, when there was one
    reject: AssociateReject | None = None
    #: DICOM inferred, not observed (a TLS port requiring a client certificate):
    #: {"verdict": "likely" | "unknown", "confidence": 0..1, "reasons": [...]}; None otherwise
    dicom_likelihood: DicomLikelihood | None = None
    #: why DICOM could not be confirmed (timeout, garbage, abort...), when it could not
    error: str | None = None
    #: seconds the A-ASSOCIATE answer took when it came only on the slow-greeting retry
    #: (``ProbeOptions.slow_greeting_timeout``); None when the first request was answered
    slow_greeting_s: float | None = None
    #: associations opened for this endpoint
    associations: int = 0
    #: wall time of the assessment (milliseconds)
    elapsed_ms: int = 0
    #: index of the target in the scan's deterministic order (resume bookkeeping)
    seq: int | None = None
    #: presentation-context result of the canary SOP class (sopclasses.CANARY): 0 accepted,
    #: 3 refused as a real server would; None when no AC was seen
    canary_result: int | None = None
    #: honeypot/clone signals (knowledge.honeypot): {"suspected", "signals", "confidence"}
    honeypot: dict[str, Any] | None = field(default=None, metadata={"schema": HoneypotVerdict})
    #: how each verdict was reached: "observed" | "inferred" | "unknown" (knowledge.verdicts)
    confidence: dict[str, str] = field(default_factory=dict)
    #: TLS facts where a handshake completes (scan.tls_probe): versions, ciphers, certificate,
    #: client certificate, PS3.15 BCP 195 profile comparison; None when no TLS was seen
    tls_details: TlsDetails | None = None
    #: HTTP(S) ports only (scan.web): Orthanc REST and QIDO-RS exposure; dicom is false then
    web: WebExposure | None = None
    #: only with --intrusive (scan.intrusive): C-STORE and C-MOVE results
    intrusive: IntrusiveChecks | None = None
    #: what kind of failure ``error`` is (dul.errors ``kind``: "malformed", "timeout",
    #: "budget", ...)
    error_kind: str | None = None
    #: the offending bytes (hex, at most 256 bytes) when there are some
    error_evidence: str | None = None
    #: when the endpoint's measurement finished (ISO 8601, UTC)
    measured_at: str | None = None
    #: the scan this record belongs to
    scan_id: str | None = None
    #: assessments of this endpoint: > 1 when transient rejects (A-ASSOCIATE-RJ result 2,
    #: source 3: congestion, local limit) were retried later in the scan
    attempts: int = 1

    def to_dict(self) -> dict[str, Any]:
        """A plain dict of the record, as JSON Lines and the store write it (shares nested
        dicts: callers serialise, not mutate).

        ``dataclasses.asdict`` deep-copies every nested value, which cost more than the whole
        TCP probe of a closed port in profiles of large scans: only the typed parts are
        converted here (one small dict each).
        """
        d = dict(self.__dict__)
        for key in _PART_FIELDS:
            value = d[key]
            if isinstance(value, Part):
                d[key] = value.to_json()
        if self.operations:
            d["operations"] = {
                k: (v.to_json() if isinstance(v, Part) else v) for k, v in self.operations.items()
            }
        if self.findings:
            d["findings"] = [f.to_json() if isinstance(f, Part) else f for f in self.findings]
        return d

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> EndpointResult:
        """The record from :meth:`to_dict`'s dict (a worker's result, a stored record); keys
        that are not fields (a registered probe's own field) are kept as attributes, so
        :meth:`to_dict` writes them again. Raises TypeError without host and port."""
        kwargs = {k: v for k, v in record.items() if k in _FIELD_NAMES}
        extra = {k: v for k, v in record.items() if k not in _FIELD_NAMES}
        for key, part in _PART_FIELDS.items():
            if key in kwargs:
                kwargs[key] = part.from_json(kwargs[key])
        if kwargs.get("operations"):
            kwargs["operations"] = {k: Operation.from_json(v)
                                    for k, v in kwargs["operations"].items()}
        if kwargs.get("findings"):
            kwargs["findings"] = [Finding.from_json(f) for f in kwargs["findings"]]
        out = cls(**kwargs)
        out.__dict__.update(extra)
        return out


_FIELD_NAMES = frozenset(f.name for f in fields(EndpointResult))
#: record fields holding one typed part (None or the part)
_PART_FIELDS: dict[str, type[Part]] = {
    "product_evidence": ProductEvidence,
    "called_aet": CalledAet,
    "calling_aet": CallingAet,
    "user_identity": UserIdentityVerdict,
    "reject": AssociateReject,
    "dicom_likelihood": DicomLikelihood,
    "tls_details": TlsDetails,
    "web": WebExposure,
    "intrusive": IntrusiveChecks,
}
