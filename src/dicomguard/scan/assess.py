"""Assess one host:port: is it DICOM, who made it, and what may a stranger do with it.

Read-only by default: the DIMSE operations sent are C-ECHO, the C-FINDs that test each query
service (scan.operations) and those of the exposure count. C-STORE, C-MOVE (scan.intrusive) and
C-GET (scan.operations.probe_get) are sent only when ``ProbeOptions.intrusive`` is set
(``--intrusive``). Every association, TLS handshake and HTTP request the assessment makes goes
through ``pace`` first, so the engine's rate limit covers all of them, and the number of
associations per endpoint is bounded by the AE-title guess budget.

HTTP ports (``ProbeOptions.web.ports``) get the web checks (scan.web) instead, and where a TLS
handshake completes its versions, ciphers and certificate are assessed (scan.tls_probe).

Every check is a probe (scan.probe) in :data:`PROBES`, run in that order by :func:`assess`;
this module holds the DICOM association probe (:class:`AssociationProbe`) itself.
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..dul.acse import (
    AssociateRequest,
    Reject,
    UserIdentity,
    UserIdentityType,
)
from ..dul.errors import (
    BudgetExhausted,
    ConnectFailed,
    DulError,
    PeerAborted,
    PeerTimeout,
    error_fields,
)
from ..dul.scu import (
    AssociateOutcome,
    Association,
    ReleasedBeforeAnswer,
    Timeouts,
    associate,
    scanner_tls_context,
)
from ..knowledge import sopclasses as sc
from ..knowledge.aedefaults import default_called_titles, default_calling_titles
from ..knowledge.fingerprint import Fingerprint, FingerprintDB
from . import exposure, honeypot_probe, intrusive, operations, product, tls_probe, web
from .confidence import confidence_map
from .evidence import EndpointEvidence
from .exposure import ArchiveCache, ExposureOptions
from .identity import OWN, Identity
from .probe import Need, Probe, ProbeResult, Session, Stage, Status, Target, run_probe
from .result import AssociateReject, EndpointResult, Finding, Operation, finding
from .tls_probe import TlsProbeOptions
from .web import WebOptions, orthanc_rest_identity

#: the scan's own calling AE title, unknown to any server; another (--calling-aet) may be one
#: the server admits, so a stranger's title is then tried too (_judge_calling_aet)
DEFAULT_CALLING_AET = "DICOMGUARD"

Pace = Callable[[], Awaitable[None]]


async def _no_pace() -> None:
    return None


def random_aet() -> str:
    """An AE title no real installation uses, to test whether the called AE is checked."""
    return "DG" + secrets.token_hex(5).upper()


@dataclass(frozen=True)
class ProbeOptions:
    calling_aet: str = DEFAULT_CALLING_AET
    #: the arbitrary called AE; random per scan so no server can whitelist it
    probe_called_aet: str = field(default_factory=random_aet)
    wordlist: tuple[str, ...] = field(default_factory=default_called_titles)
    #: calling titles tried (paired with the called title in use) when reason 3 comes back
    calling_titles: tuple[str, ...] = field(default_factory=default_calling_titles)
    #: associations spent on AE-title guesses per endpoint, called and calling together
    max_aet_guesses: int = 30
    #: implementation items of our A-ASSOCIATE-RQ: dicomguard's own unless --impersonate
    identity: Identity = OWN
    #: keep the PDUs of every endpoint, identifiers redacted, in this folder (--evidence)
    evidence_dir: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    #: seconds allowed for the A-ASSOCIATE answer when a port stayed silent through
    #: ``timeouts.associate``: one retry with this longer wait before TLS is tried. Archives
    #: that resolve the caller's name before answering (reverse DNS: 5 s per resolver try)
    #: greet after 5-15 s; silence is "unknown", never "not DICOM". 0 disables the retry.
    slow_greeting_timeout: float = 20.0
    try_tls: bool = True
    #: discovery only: one association (Verification) per endpoint, no policy tests
    discovery: bool = False
    echo: bool = True
    #: count what a stranger can list where C-FIND is accepted (None: don't)
    exposure: ExposureOptions | None = field(default_factory=ExposureOptions)
    #: TLS versions, ciphers and certificate wherever a handshake completes (None: don't)
    tls_probe: TlsProbeOptions | None = field(default_factory=TlsProbeOptions)
    #: Orthanc REST and DICOMweb checks on these HTTP ports (None: don't)
    web: WebOptions | None = field(default_factory=WebOptions)
    #: C-STORE of a synthetic test object and C-MOVE to a random AE: only with --intrusive
    intrusive: bool = False


class _Prober:
    """State for one endpoint: which transport works and how many associations were used."""

    def __init__(
        self, host: str, port: int, opts: ProbeOptions, pace: Pace, record: EndpointResult
    ) -> None:
        self.host = host
        self.port = port
        self.opts = opts
        self.pace = pace
        #: the record being filled, and each probe's outcome (scan.probe.Session)
        self.record = record
        self.outcomes: dict[str, ProbeResult[Any]] = {}
        self.fingerprints: FingerprintDB | None = None
        #: the association of the association-stage probes, and its operations
        self.association: Association | None = None
        self.operations: dict[str, Operation] = {}
        self.archives: ArchiveCache | None = None
        self.ssl: ssl.SSLContext | None = None
        self.associations = 0
        #: a TLS handshake completed but DICOM did not follow (TLS facts are still worth having)
        self.tls_only = False
        #: AE-title guesses spent (the --max-aet-guesses budget)
        self.guesses = 0
        #: a calling title the server admitted, used for every later association
        self.calling: str | None = None
        self.evidence = EndpointEvidence(host, port) if opts.evidence_dir else None
        #: the step timeouts in use (longer once the peer turned out to greet slowly)
        self.timeouts = opts.timeouts
        #: the Orthanc REST identity of the host (web.orthanc_rest_identity), once asked
        self.rest: dict[str, Any] | None = None
        self.rest_asked = False

    async def rest_identity(self) -> dict[str, Any] | None:
        """The host's Orthanc REST ``/system`` answer (asked once per endpoint; None without
        web checks or when no Orthanc answered)."""
        if not self.rest_asked and self.opts.web is not None:
            self.rest_asked = True
            self.rest = await orthanc_rest_identity(
                self.host, self.port, self.opts.web, pace=self.pace
            )
        return self.rest

    async def attempt(
        self,
        called: str,
        *,
        calling: str | None = None,
        syntaxes: tuple[str, ...] = sc.ALL_PROPOSED,
        user_identity: UserIdentity | None = None,
        ssl_context: ssl.SSLContext | None = None,
        echo_and_release: bool = False,
    ) -> AssociateOutcome:
        """One A-ASSOCIATE-RQ (paced, counted). ``echo_and_release``: the association's only
        request will be ``echo(release=True)`` (discovery), which the client may then send as
        soon as the AC is read (dul.scu.associate)."""
        await self.pace()
        self.associations += 1
        req = AssociateRequest(
            called_aet=called,
            calling_aet=calling or self.calling or self.opts.calling_aet,
            abstract_syntaxes=syntaxes,
            user_identity=user_identity,
            implementation_class_uid=self.opts.identity.implementation_class_uid,
            implementation_version_name=self.opts.identity.implementation_version_name,
        )
        return await associate(
            self.host,
            self.port,
            req,
            timeouts=self.timeouts,
            ssl_context=ssl_context if ssl_context is not None else self.ssl,
            recorder=self.evidence,
            echo_and_release=echo_and_release,
        )

    async def guess(self, called: str, **kwargs: Any) -> AssociateOutcome | None:
        """One guessing attempt; None when the peer dropped the connection instead of
        answering. Some servers (dcmqrscp in fork mode, Orthanc under load) do that rather
        than send their A-ASSOCIATE-RJ: not established means refused. A port that stops
        accepting connections (ConnectFailed) still ends the assessment."""
        try:
            return await self.attempt(called, **kwargs)
        except (ConnectFailed, BudgetExhausted):
            raise
        except DulError:
            return None

    def budget_left(self) -> bool:
        return self.guesses < self.opts.max_aet_guesses

    async def live_association(self) -> Association | None:
        """The association if still open, else a new one with the same request (None if the
        server does not accept it again)."""
        self.association = await _live(self, self.association)
        return self.association

    async def drop_if_broken(self, op: Operation) -> None:
        if self.association is not None:
            await _drop_if_broken(self.association, op)


def note_error(r: EndpointResult, exc: BaseException, text: str | None = None) -> None:
    """Record a failure: ``error`` (text), ``error_kind`` and ``error_evidence`` (dul.errors)."""
    r.error = text if text is not None else describe_error(exc)
    fields = error_fields(exc)
    r.error_kind, r.error_evidence = fields["error_kind"], fields["error_evidence"]


def describe_error(exc: BaseException) -> str:
    if isinstance(exc, PeerTimeout):
        return f"silent: {exc}"
    if isinstance(exc, PeerAborted):
        return f"aborted: {exc}"
    return f"{type(exc).__name__}: {exc}"


async def assess(
    host: str,
    port: int,
    opts: ProbeOptions,
    *,
    pace: Pace = _no_pace,
    fingerprints: FingerprintDB | None = None,
    archives: ArchiveCache | None = None,
    result: EndpointResult | None = None,
) -> EndpointResult:
    """Run every read-only check on one endpoint. Never raises for anything the peer does.

    ``archives`` (one per scan) lets a second port of a host that fronts the same archive
    reuse its count after one confirming query. ``result``, if given, is filled in place, so
    the engine keeps what was learned when it cuts an endpoint off at its budget.
    """
    started = time.monotonic()
    result = result if result is not None else EndpointResult(host, port)
    prober = _Prober(host, port, opts, pace, result)
    prober.archives = archives
    prober.fingerprints = fingerprints
    target = Target(host, port)
    for probe in PROBES:
        if probe.stage is not Stage.NETWORK or not probe.applies(prober):
            continue
        outcome = await run_probe(probe, target, prober)
        exc = outcome.error
        if isinstance(exc, ConnectFailed):
            result.state = exc.state if not result.dicom else result.state
            if result.error is None:
                note_error(result, exc, exc.detail)
            break
        if exc is not None:  # a peer that misbehaves half-way through the assessment
            note_error(result, exc)
            break
    if operations.enforced_per_operation(result.operations):
        # the calling AE (or the source) is judged per operation, not at association time:
        # "any calling AE (verified)" would be false, and no association-level check was seen
        result.access_enforced_per_operation = True
        result.calling_aet.update(enforced=False, verified=False, per_operation=True)
    result.associations = prober.associations
    result.elapsed_ms = int((time.monotonic() - started) * 1000)
    for probe in PROBES:
        if probe.stage is Stage.VERDICT and probe.applies(prober):
            outcome = await run_probe(probe, target, prober)
            if outcome.error is not None:
                raise outcome.error
    matched = prober.outcomes.get("product")
    fp: Fingerprint | None = matched.result if matched is not None else None
    result.confidence = confidence_map(result, fp.confidence if fp else None)
    if result.product_evidence is not None:
        result.confidence["product"] = result.product_evidence.confidence
    if result.dicom_likelihood is not None:
        result.confidence["dicom"] = "inferred"
        result.confidence["tls"] = "observed"
    if result.state == "open":
        result.findings = derive_findings(result)
        if fp is not None and result.confidence["product"] != "observed":
            for f in result.findings:
                if f.id == "DG-010":
                    f.confidence = "inferred"
    if prober.evidence is not None and opts.evidence_dir:
        prober.evidence.write(opts.evidence_dir)
    return result


async def _assess(p: _Prober, r: EndpointResult) -> None:
    opts = p.opts
    syntaxes = (sc.VERIFICATION,) if opts.discovery else sc.ALL_PROPOSED
    try:
        first = await _first_plain_attempt(p, r, syntaxes)
    except ConnectFailed:
        raise
    except DulError as plain_error:
        if not opts.try_tls:
            note_error(r, plain_error)
            return
        try:
            first = await p.attempt(
                opts.probe_called_aet, syntaxes=syntaxes, ssl_context=scanner_tls_context()
            )
        except ConnectFailed as tls_error:
            note_error(r, plain_error)
            # a TLS alert (not a timeout or a reset) is a TLS server refusing our handshake,
            # e.g. a TLS 1.2 server that requires a client certificate (alert 40): the TLS
            # probe tells which, and mutual TLS is then judged (_judge_mutual_tls)
            p.tls_only = "ALERT" in (tls_error.detail or "").upper()
            return
        except DulError:
            p.tls_only = True  # the handshake completed; what followed was not DICOM
            note_error(r, plain_error)
            return
        p.ssl = scanner_tls_context()
        r.tls = True
    r.dicom = True

    if first.association is not None:
        await _record_accept(p, r, first.association)
        if not opts.discovery:
            r.called_aet.update(enforced=False, accepted=opts.probe_called_aet, verified=True)
            r.user_identity.update(required=False, verified=True)
            await _judge_calling_aet(p, r, opts.probe_called_aet)
        return

    reject = first.reject
    assert reject is not None
    r.reject = _reject_record(reject)
    if opts.discovery:
        return
    if reject.called_aet_refused:
        r.called_aet.update(enforced=True, verified=True)
        await _guess_called_aet(p, r)
    elif reject.calling_aet_refused:
        # the calling check came first, so whether the called AE is checked stays unknown
        r.calling_aet.update(enforced=True, verified=True)
        await _guess_calling_aet(p, r, opts.probe_called_aet)
    elif reject.may_mean_authentication:
        await _try_user_identity(p, r, opts.probe_called_aet)


async def _first_plain_attempt(
    p: _Prober, r: EndpointResult, syntaxes: tuple[str, ...]
) -> AssociateOutcome:
    """The first A-ASSOCIATE-RQ in clear; a silent peer gets one more try with a longer wait.

    Raises what :meth:`_Prober.attempt` raises (the retry's error when it was retried).
    """
    opts = p.opts
    # discovery's one request is the C-ECHO with the A-RELEASE-RQ (_record_accept)
    pipelined = opts.discovery and opts.echo
    try:
        return await p.attempt(
            opts.probe_called_aet, syntaxes=syntaxes, echo_and_release=pipelined
        )
    except PeerTimeout:
        if opts.slow_greeting_timeout <= opts.timeouts.associate:
            raise
    # silence: the A-ASSOCIATE-AC may just be late (reverse DNS of the caller, a busy archive)
    p.timeouts = replace(opts.timeouts, associate=opts.slow_greeting_timeout)
    started = time.monotonic()
    outcome = await p.attempt(
        opts.probe_called_aet, syntaxes=syntaxes, echo_and_release=pipelined
    )
    r.slow_greeting_s = round(time.monotonic() - started, 1)
    return outcome


async def _record_accept(p: _Prober, r: EndpointResult, assoc: Association) -> None:
    """Fingerprint from an A-ASSOCIATE-AC, then one harmless operation per negotiated service
    (scan.operations) to learn which are really open to a stranger, then exposure counting
    where a C-FIND was answered.

    A refused operation often ends the association (Orthanc aborts): the next probe then opens
    a new association with the same AE titles and identity (each one paced and counted).
    """
    ac = assoc.accept
    r.implementation_class_uid = ac.implementation_class_uid
    r.implementation_version_name = ac.implementation_version_name
    r.max_pdu = ac.max_pdu
    negotiated = sc.services_from_results(ac.results)
    r.services_negotiated = dict(negotiated)
    r.canary_result = ac.results.get(sc.CANARY)
    ops: dict[str, Operation] = {
        name: operations.record(operations.UNTESTED) for name, on in negotiated.items() if on
    }
    current: Association | None = assoc
    try:
        if p.opts.echo and ac.accepts(sc.VERIFICATION):
            if p.opts.discovery:
                ops["verification"], current = await _echo_and_release(p, assoc)
            else:
                ops["verification"] = await operations.probe_echo(assoc)
            if current is not None:
                await _drop_if_broken(current, ops["verification"])
        if not p.opts.discovery:
            for name in ("find_study_root", "find_patient_root", "worklist"):
                if not negotiated[name] or operations.silent(ops):
                    continue  # a peer that stopped answering is not asked again and again
                current = await _live(p, current)
                if current is None:
                    break
                ops[name] = await operations.probe_find(current, name)
                await _drop_if_broken(current, ops[name])
        echo_silent = operations.silent(ops).get("verification")
        if echo_silent is not None and r.error is None:
            # an AC, then silence (issue 12's accept-then-silence): the record says so
            note_error(r, PeerTimeout(echo_silent), f"silent: {echo_silent}")
        if not p.opts.discovery:  # the exposure count, then the --intrusive checks
            current = await _association_stage(p, current, ops)
        if current is not None:
            await current.release()
    except DulError as exc:  # e.g. an AC, then silence: say so in the record (issue 12)
        note_error(r, exc)
        if current is not None:
            await current.abort()
    finally:
        r.operations = ops
        r.services, r.services_confidence = operations.open_services(negotiated, ops)


async def _echo_and_release(
    p: _Prober, assoc: Association
) -> tuple[Operation, Association | None]:
    """Discovery's C-ECHO, the association's last request: its A-RELEASE-RQ goes in the same
    write (two round trips, not three). Returns the operation record and the association it
    was sent on (closed already once the release went through; None: no association).

    A peer that answers the release before the C-ECHO (none seen: Orthanc, DCMTK and
    pynetdicom answer in order), or aborts or closes before answering it (the end may be its
    answer to the A-RELEASE-RQ), is asked again the unpipelined way on a new association, so
    its record says what it does with a C-ECHO; that costs it one more association."""
    try:
        return await operations.probe_echo(assoc, release=True), assoc
    except ReleasedBeforeAnswer as exc:
        await assoc.close()
        again = await _live(p, assoc)
        if again is None:
            return operations.record(operations.FAILED, None, f"C-ECHO: {exc}"), None
        return await operations.probe_echo(again), again


async def _association_stage(
    p: _Prober, current: Association | None, ops: dict[str, Operation]
) -> Association | None:
    """The association-stage probes (scan.probe.Stage.ASSOCIATION: the exposure count, the
    --intrusive checks) on
    ``current``; returns the association left open (None if none). A typed error that ended
    one is raised, as if the probe had run inline."""
    p.association, p.operations = current, ops
    probes = [probe for probe in PROBES if probe.stage is Stage.ASSOCIATION]
    if not any(probe.applies(p) for probe in probes):
        p.association = None
        return current
    target = Target(p.host, p.port)
    try:
        for probe in probes:
            if probe.applies(p):
                outcome = await run_probe(probe, target, p)
                if outcome.error is not None:
                    raise outcome.error
    except DulError:
        if p.association is not None:
            await p.association.abort()  # the latest one; the caller's may be an older one
        raise
    finally:
        current, p.association = p.association, None
    return current


async def _drop_if_broken(assoc: Association, op: Operation) -> None:
    """An operation refused by A-ABORT or a dropped connection leaves no association, and one
    that got no answer leaves it in an unknown state: either way, a new one is opened."""
    if op.state in (operations.REFUSED, operations.FAILED) and op.status is None:
        await assoc.abort()


async def _live(p: _Prober, assoc: Association | None) -> Association | None:
    """``assoc`` if still open, else a new association with the same request (None if the
    server does not accept it again)."""
    if assoc is None or operations.alive(assoc):
        return assoc
    await assoc.close()  # the peer's side is gone: release our socket too
    req = assoc.request
    outcome = await p.guess(
        req.called_aet,
        calling=req.calling_aet,
        syntaxes=req.abstract_syntaxes,
        user_identity=req.user_identity,
    )
    return None if outcome is None else outcome.association


async def _called_titles(p: _Prober) -> tuple[tuple[str, ...], dict[str, str]]:
    """The called titles to try, and the source of any not taken from the wordlist.

    Orthanc's REST API answers ``GET /system`` with its ``DicomAet`` (Orthanc REST API
    reference); where that API is open on the same host (and its ``DicomPort`` is not another
    port), the title is no secret: it is tried first, with ``DicomCheckCalledAet`` true it is
    the only lock (measured: Orthanc 1.10.1, scan/tests/test_orthanc_hardened.py).
    """
    words = p.opts.wordlist
    rest = await p.rest_identity()
    aet = (rest or {}).get("dicom_aet")
    if not isinstance(aet, str) or not aet.strip() or (rest or {}).get("same_instance") is False:
        return words, {}
    aet = aet.strip()
    source = f"Orthanc REST API /system on port {rest['port']}" if rest else ""
    return (aet, *(w for w in words if w != aet)), {aet: source}


async def _guess_called_aet(p: _Prober, r: EndpointResult) -> None:
    """Try the title the host's Orthanc REST API names, vendor defaults, then common words,
    until a title is not refused for reason 7."""
    words, sources = await _called_titles(p)
    for word in words:
        if not p.budget_left():
            return
        p.guesses += 1
        outcome = await p.guess(word)
        if outcome is None:
            continue
        if outcome.association is not None:
            r.called_aet.accepted = word
            if word in sources:
                r.called_aet.source = sources[word]
            r.user_identity.update(required=False, verified=True)
            await _record_accept(p, r, outcome.association)
            if p.calling is None:  # else the calling title had to be guessed: enforced
                await _judge_calling_aet(p, r, word)
            return
        rej = outcome.reject
        assert rej is not None
        if rej.called_aet_refused:
            continue
        r.called_aet.accepted = word
        if word in sources:
            r.called_aet.source = sources[word]
        if rej.calling_aet_refused:
            r.calling_aet.update(enforced=True, verified=True)
            await _guess_calling_aet(p, r, word)
        elif rej.may_mean_authentication:
            await _try_user_identity(p, r, word)
        return


async def _judge_calling_aet(p: _Prober, r: EndpointResult, called: str) -> None:
    """Our calling title was accepted: is a stranger's? Observed at once for the scan's own
    title; a --calling-aet title may be one the server admits (dcmqrscp's AETable: echoscu
    -aet DGVIEWER gets in, -aet STRANGER is rejected, reason 7), so one more association with
    a random title tells (accepted: not enforced; rejected: enforced; no answer: unknown)."""
    if p.opts.calling_aet == DEFAULT_CALLING_AET:
        r.calling_aet.update(enforced=False, verified=True)
        return
    if not p.budget_left():
        r.calling_aet.update(enforced=False, verified=False)
        return
    stranger = random_aet()
    outcome = await p.guess(called, calling=stranger, syntaxes=(sc.VERIFICATION,))
    if outcome is None:
        r.calling_aet.update(enforced=False, verified=False)
    elif outcome.association is not None:
        await outcome.association.release()
        r.calling_aet.update(enforced=False, verified=True)
    elif outcome.reject is not None and (
        outcome.reject.calling_aet_refused or outcome.reject.called_aet_refused
    ):
        r.calling_aet.update(enforced=True, accepted=p.opts.calling_aet, verified=True)
    else:  # busy, or another reason: nothing learned about the calling title
        r.calling_aet.update(enforced=False, verified=False)


async def _guess_calling_aet(p: _Prober, r: EndpointResult, called: str) -> None:
    """Reason 3: try calling titles servers commonly admit (vendor tools' defaults).

    Shares the --max-aet-guesses budget with the called-title guesses. An admitted calling
    title is kept for the rest of the assessment, so a called-title check found behind it is
    guessed with the pair (called x calling).
    """
    for calling in p.opts.calling_titles:
        if not p.budget_left():
            return
        p.guesses += 1
        outcome = await p.guess(called, calling=calling)
        if outcome is None:
            continue
        rej = outcome.reject
        if rej is not None and rej.calling_aet_refused:
            continue
        p.calling = calling
        r.calling_aet.update(enforced=True, accepted=calling, verified=True)
        if outcome.association is not None:
            if r.called_aet.accepted is None and not r.called_aet.enforced:
                r.called_aet.update(enforced=False, accepted=called, verified=True)
            r.user_identity.update(required=False, verified=True)
            await _record_accept(p, r, outcome.association)
        elif rej is not None and rej.called_aet_refused:
            r.called_aet.update(enforced=True, verified=True)
            await _guess_called_aet(p, r)
        elif rej is not None and rej.may_mean_authentication:
            await _try_user_identity(p, r, called)
        return


async def _try_user_identity(p: _Prober, r: EndpointResult, called: str) -> None:
    """A generic reject may mean 'authenticate first': offer an arbitrary identity and see."""
    tries = (
        ("username", UserIdentity(UserIdentityType.USERNAME, b"dicomguard")),
        (
            "username+passcode",
            UserIdentity(UserIdentityType.USERNAME_PASSCODE, b"dicomguard", b"dicomguard"),
        ),
    )
    for label, identity in tries:
        outcome = await p.guess(called, user_identity=identity)
        if outcome is None:
            continue
        if outcome.association is not None:
            r.user_identity.update(required=True, accepted_with=label, verified=True)
            if p.calling is None:
                r.calling_aet.update(enforced=False, verified=True)
            if r.called_aet.accepted is None:
                r.called_aet.update(accepted=called, verified=True)
            await _record_accept(p, r, outcome.association)
            return
    # refused with and without identity: most likely authentication with unknown credentials
    r.user_identity.update(required=True, accepted_with=None, verified=False)


def _reject_record(rej: Reject) -> AssociateReject:
    return AssociateReject(rej.result, rej.source, rej.reason, rej.describe())


def derive_findings(r: EndpointResult) -> list[Finding]:
    """Findings from verdicts, each probe's in the order of :data:`PROBES`; confidence says
    whether a verdict was observed or inferred."""
    return [f for probe in PROBES for f in probe.findings(r)]


def dicom_findings(r: EndpointResult) -> list[Finding]:
    """The association probe's findings: DICOM or not, AE titles, identity, services, the
    announced implementation."""
    out: list[Finding] = []
    if not r.dicom:
        if r.web is not None:
            return out  # an HTTP port: the web probe's findings say it
        if r.dicom_likelihood is not None or (r.error or "").startswith("silent"):
            # silence, or TLS that lets nobody in without a certificate: unknown, not "no"
            out.append(finding("DG-016", detail=r.error))
            return out
        out.append(finding("DG-014", detail=r.error))
        return out
    if r.dicom_likelihood is not None:
        out.append(
            finding(
                "DG-013",
                confidence="inferred",
                detail="a client certificate is required; DICOM behind it is inferred "
                f"(confidence {r.dicom_likelihood.confidence})",
            )
        )
        return out
    out.append(finding("DG-013") if r.tls else finding("DG-004"))
    if r.called_aet.verified:
        if not r.called_aet.enforced:
            out.append(finding("DG-001"))
        elif r.called_aet.accepted:
            source = r.called_aet.source
            detail = f"accepted: {r.called_aet.accepted}" + (f" (named by {source})"
                                                                 if source else "")
            out.append(finding("DG-002", detail=detail))
    if r.calling_aet.verified and not r.calling_aet.enforced:
        out.append(finding("DG-003"))
    ui = r.user_identity
    if ui.required:
        if ui.accepted_with:
            out.append(finding("DG-012", detail=f"accepted with any {ui.accepted_with}"))
        else:
            out.append(
                finding("DG-011", confidence="inferred" if not ui.verified else "confirmed")
            )
    s = r.services
    if r.access_enforced_per_operation:
        refused = sorted(n for n, o in r.operations.items() if o.state == "refused")
        out.append(finding("DG-015", detail="refused: " + ", ".join(refused)))
    if s.get("find_patient_root") or s.get("find_study_root"):
        out.append(finding("DG-005"))
    if s.get("move") or s.get("get"):
        observed = any(
            r.services_confidence.get(n) == "observed" and s.get(n) for n in ("move", "get")
        )
        out.append(finding("DG-006", confidence="confirmed" if observed else "inferred"))
    if s.get("worklist"):
        out.append(finding("DG-007"))
    if s.get("storage"):
        # inferred from the negotiated context unless a C-STORE was answered (--intrusive)
        observed = r.services_confidence.get("storage") == "observed"
        out.append(finding("DG-008", confidence="confirmed" if observed else "inferred"))
    if s.get("verification"):
        out.append(finding("DG-009"))
    if r.implementation_class_uid:
        detail = " ".join(x for x in (r.product, r.product_version) if x) or (
            r.implementation_version_name or r.implementation_class_uid
        )
        out.append(finding("DG-010", detail=detail))
    return out


class AssociationProbe:
    """The DICOM checks as a probe (scan.probe): A-ASSOCIATE-RQ in clear (one slow-greeting
    retry), else inside TLS; then the called and calling AE title, user identity, one
    operation per negotiated service, the exposure count and the association-stage probes.
    Fills the record's contract fields; result: whether the endpoint spoke DICOM."""

    name = "association"
    stage = Stage.NETWORK
    needs = frozenset({Need.TCP, Need.TLS})
    field = None
    result_type = None

    def applies(self, session: Session) -> bool:
        return session.record.web is None  # an HTTP port got the web checks instead

    async def run(self, target: Target, session: Session) -> ProbeResult[bool]:
        assert isinstance(session, _Prober)
        await _assess(session, session.record)
        return ProbeResult.ok(True) if session.record.dicom else ProbeResult(
            Status.NOT_APPLICABLE, False
        )

    def findings(self, record: EndpointResult) -> list[Finding]:
        return dicom_findings(record)


#: every check of an endpoint, in the order it runs (within its stage) and its findings are
#: listed (scan.probe). A new check: a module with a probe object, and one entry here.
PROBES: list[Probe[Any]] = [
    web.PROBE,
    AssociationProbe(),
    tls_probe.PROBE,
    exposure.PROBE,
    intrusive.PROBE,
    product.PROBE,
    honeypot_probe.PROBE,
]
