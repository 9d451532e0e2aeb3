"""The probe interface: one shape for every check the scanner runs on an endpoint.

After zgrab2's ``ScanModule`` (``Scan(target) -> (status, result, error)``, one status enum,
one typed result struct per module): a check is a :class:`Probe` object in
:data:`dicomguard.scan.assess.PROBES`; ``assess.assess`` runs that list in order and derives
the findings from it. A new check is one module with a probe object, and one entry in that
list (``scan/tests/test_probe_interface.py`` adds one in a few lines).

A probe declares

- ``name``: what it is called in logs and in :attr:`Session.outcomes`;
- ``stage`` (:class:`Stage`): when it runs. ``NETWORK`` probes run one after the other on the
  endpoint; the first that ends with a typed error ends that stage (the record says why, as it
  always did). ``ASSOCIATION`` probes run inside the assessment association, after the
  read-only operations and the exposure count, on a live association the session reopens
  when a refusal ended it. ``VERDICT`` probes run last, after the network stage whatever its
  outcome, on what the record holds (they may still ask the host's REST API);
- ``needs``: the transports it uses (:class:`Need`), for documentation and option checks;
- ``field``: the record key its result is written to (``None`` when the probe fills several
  fields of the record itself, as the DICOM association probe does); a field that is not one
  of :class:`~dicomguard.scan.result.EndpointResult`'s is added to the record, and to the
  JSON Schema with ``result_type``;
- ``result_type``: the dataclass (or dict) its result is, for the JSON Schema;
- ``applies(session)``, ``run(target, session) -> ProbeResult``, ``findings(record)``.

Exceptions: ``run`` may raise the typed errors of ``dul.errors`` (the session turns them into
a :class:`ProbeResult` with a :class:`Status`); anything else is a bug, recorded by the
engine as ``error_kind: "internal"`` for that endpoint.

Cost: the probe objects are module-level singletons; running the list adds no object per
closed port (closed ports never reach the assessment) and one :class:`ProbeResult` per probe
that applies to an open one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..dul.errors import ConnectFailed, DulError

if TYPE_CHECKING:
    from .result import EndpointResult, Finding, Operation

R = TypeVar("R")


class Status(enum.StrEnum):
    """How a probe ended (zgrab2 ``status.go``), derived from the typed error it met."""

    #: it ran and has a result
    SUCCESS = "success"
    #: it ran, and the endpoint does not speak what it probes (an HTTP probe on a DICOM port)
    NOT_APPLICABLE = "not-applicable"
    #: the TCP connection was refused (port closed)
    CONNECTION_REFUSED = "connection-refused"
    #: the TCP (or TLS) connection could not be set up otherwise (filtered, unreachable, TLS)
    CONNECTION_FAILED = "connection-failed"
    #: the peer closed or reset the connection before a complete PDU
    CONNECTION_CLOSED = "connection-closed"
    #: the peer stayed silent past the step's timeout
    IO_TIMEOUT = "io-timeout"
    #: the peer's bytes are not the protocol (malformed PDU, state machine violation, not HTTP)
    PROTOCOL_ERROR = "protocol-error"
    #: the peer refused at the application level (A-ABORT)
    APPLICATION_ERROR = "application-error"
    #: the engine's per-endpoint budget ran out
    BUDGET_EXHAUSTED = "budget-exhausted"
    #: any other typed error
    UNKNOWN_ERROR = "unknown-error"


_STATUS_OF_KIND = {
    "closed": Status.CONNECTION_CLOSED,
    "timeout": Status.IO_TIMEOUT,
    "malformed": Status.PROTOCOL_ERROR,
    "too-large": Status.PROTOCOL_ERROR,
    "protocol": Status.PROTOCOL_ERROR,
    "cancel-ignored": Status.PROTOCOL_ERROR,
    "not-http": Status.PROTOCOL_ERROR,
    "aborted": Status.APPLICATION_ERROR,
    "budget": Status.BUDGET_EXHAUSTED,
}


def status_of(exc: DulError) -> Status:
    """The :class:`Status` of a typed error (``dul.errors`` kinds)."""
    if isinstance(exc, ConnectFailed):
        return Status.CONNECTION_REFUSED if exc.state == "closed" else Status.CONNECTION_FAILED
    return _STATUS_OF_KIND.get(exc.kind, Status.UNKNOWN_ERROR)


class Stage(enum.Enum):
    """When a probe runs in an endpoint's assessment (see the module docstring)."""

    NETWORK = "network"
    ASSOCIATION = "association"
    VERDICT = "verdict"


class Need(enum.StrEnum):
    """What a probe talks over."""

    #: an accepted DICOM association (PS3.8), plain or inside TLS
    ASSOCIATION = "association"
    #: TLS handshakes of its own
    TLS = "tls"
    #: HTTP(S) requests
    HTTP = "http"
    #: a TCP connection of its own (A-ASSOCIATE-RQ exchanges)
    TCP = "tcp"


@dataclass(frozen=True, slots=True)
class Target:
    """The endpoint a probe runs on."""

    host: str
    port: int


@dataclass(slots=True)
class ProbeResult(Generic[R]):
    """How one probe ended: a status, its typed result (None unless it has one), the typed
    error that ended it (None on success)."""

    status: Status
    result: R | None = None
    error: DulError | None = None

    @classmethod
    def ok(cls, result: R | None) -> ProbeResult[R]:
        """SUCCESS with ``result``; NOT_APPLICABLE when ``result`` is None."""
        return cls(Status.SUCCESS if result is not None else Status.NOT_APPLICABLE, result)

    @classmethod
    def failed(cls, exc: DulError) -> ProbeResult[R]:
        return cls(status_of(exc), None, exc)


class Session(Protocol):
    """What a probe sees of the endpoint's assessment (``assess._Prober`` implements it)."""

    host: str
    port: int
    #: ``assess.ProbeOptions`` of the scan
    opts: Any
    #: the record being filled
    record: EndpointResult
    #: the scan's archive cache (``scan.exposure.ArchiveCache``), None: none
    archives: Any
    #: the scan's fingerprint database (``knowledge.fingerprint.FingerprintDB``), None: the packaged
    fingerprints: Any
    #: outcome of each probe that ran, by probe name
    outcomes: dict[str, ProbeResult[Any]]
    #: a TLS handshake completed but DICOM did not follow
    tls_only: bool
    #: the operations of the association in progress, by service (ASSOCIATION stage)
    operations: dict[str, Operation]

    async def pace(self) -> None:
        """Wait for the scan's rate limiter (before every connection, handshake, request)."""

    async def live_association(self) -> Any:
        """The assessment's association if still open, else a new one with the same request
        (``dul.scu.Association``), None when the server does not accept it again."""

    async def drop_if_broken(self, op: Operation) -> None:
        """Abort the association when ``op`` ended it (A-ABORT, dropped) or left it unknown
        (no answer): the next :meth:`live_association` opens a new one."""

    async def rest_identity(self) -> dict[str, Any] | None:
        """The host's Orthanc REST ``/system`` answer (asked once per endpoint)."""


class Probe(Protocol[R]):
    """One check (see the module docstring)."""

    name: str
    stage: Stage
    needs: frozenset[Need]
    field: str | None
    result_type: Any

    def applies(self, session: Session) -> bool:
        """Whether to run on this endpoint, given the options and what is known so far."""
        ...

    async def run(self, target: Target, session: Session) -> ProbeResult[R]:
        """Run the check. May raise ``dul.errors`` typed errors, nothing else."""
        ...

    def findings(self, record: EndpointResult) -> list[Finding]:
        """Findings of the catalogue this probe's results in ``record`` show."""
        ...


async def run_probe(probe: Probe[Any], target: Target, session: Session) -> ProbeResult[Any]:
    """Run ``probe``; a typed error becomes its result (status and error), and its result
    goes to the record's ``probe.field`` when it has one."""
    try:
        outcome = await probe.run(target, session)
    except DulError as exc:
        outcome = ProbeResult.failed(exc)
    session.outcomes[probe.name] = outcome
    if probe.field is not None and outcome.result is not None:
        value = outcome.result
        to_json = getattr(value, "to_json", None)
        setattr(session.record, probe.field, to_json() if to_json is not None else value)
    return outcome
