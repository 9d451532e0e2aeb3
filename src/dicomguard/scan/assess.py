"""Assess one host:port: is it DICOM, who made it, and what may a stranger do with it.

Read-only by default: the DIMSE operations sent are C-ECHO and the C-FINDs of the exposure count.
C-STORE and C-MOVE (scan.intrusive) are sent only when ``ProbeOptions.intrusive`` is set
(``--intrusive``). Every association, TLS handshake and HTTP request the assessment makes goes
through ``pace`` first, so the engine's rate limit covers all of them, and the number of
associations per endpoint is bounded by the AE-title guess budget.

HTTP ports (``ProbeOptions.web.ports``) get the web checks (scan.web) instead, and where a TLS
handshake completes its versions, ciphers and certificate are assessed (scan.tls_probe).
"""

from __future__ import annotations

import secrets
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from ..dul.client import (
    AssociateOutcome,
    Association,
    Timeouts,
    associate,
    scanner_tls_context,
)
from ..dul.errors import (
    BudgetExhausted,
    ConnectFailed,
    DulError,
    PeerAborted,
    PeerTimeout,
    error_fields,
)
from ..dul.negotiation import (
    AssociateRequest,
    Reject,
    UserIdentity,
    UserIdentityType,
)
from . import honeypot
from . import sopclasses as sc
from .aedefaults import load_ae_defaults, merge_titles
from .confidence import confidence_map
from .evidence import EndpointEvidence
from .exposure import ArchiveCache, ExposureOptions, measure
from .findings import finding
from .fingerprint import FingerprintDB, load_database
from .identity import OWN, Identity
from .intrusive import intrusive_findings, run_intrusive
from .result import EndpointResult
from .tls_probe import TlsProbeOptions, probe_tls, tls_findings
from .web import WebOptions, probe_web, web_findings

Pace = Callable[[], Awaitable[None]]


async def _no_pace() -> None:
    return None


def load_wordlist(text: str | None = None) -> tuple[str, ...]:
    """Called-AE guesses: the packaged list, or the given file's text; comments dropped."""
    if text is None:
        text = resources.files("dicomguard").joinpath("data/aet_wordlist.txt").read_text()
    words = []
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip()
        if word and len(word) <= 16 and word not in words:
            words.append(word)
    return tuple(words)


def default_called_titles() -> tuple[str, ...]:
    """Vendor defaults (data/ae_defaults.toml) first, then the generic wordlist."""
    return merge_titles(load_ae_defaults().called_titles, load_wordlist())


def default_calling_titles() -> tuple[str, ...]:
    """Calling titles servers commonly admit (data/ae_defaults.toml), tried on reason 3."""
    return load_ae_defaults().calling_titles


def random_aet() -> str:
    """An AE title no real installation uses, to test whether the called AE is checked."""
    return "DG" + secrets.token_hex(5).upper()


@dataclass(frozen=True)
class ProbeOptions:
    calling_aet: str = "DICOMGUARD"
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

    def __init__(self, host: str, port: int, opts: ProbeOptions, pace: Pace) -> None:
        self.host = host
        self.port = port
        self.opts = opts
        self.pace = pace
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

    async def attempt(
        self,
        called: str,
        *,
        calling: str | None = None,
        syntaxes: tuple[str, ...] = sc.ALL_PROPOSED,
        user_identity: UserIdentity | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> AssociateOutcome:
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
            timeouts=self.opts.timeouts,
            ssl_context=ssl_context if ssl_context is not None else self.ssl,
            recorder=self.evidence,
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
    prober = _Prober(host, port, opts, pace)
    prober.archives = archives
    try:
        if not await _assess_web(prober, result):
            await _assess(prober, result)
            if (
                opts.tls_probe is not None
                and not opts.discovery
                and (result.tls or prober.tls_only)
            ):
                result.tls_details = await probe_tls(host, port, opts.tls_probe, pace=pace)
    except ConnectFailed as exc:
        result.state = exc.state if not result.dicom else result.state
        if result.error is None:
            note_error(result, exc, exc.detail)
    except DulError as exc:  # a peer that misbehaves half-way through the assessment
        note_error(result, exc)
    result.associations = prober.associations
    result.elapsed_ms = int((time.monotonic() - started) * 1000)
    fp = None
    # an AC without any identity item still matches heuristics (dicompot: no UID, 4 MiB PDU)
    if result.implementation_class_uid or result.implementation_version_name or result.max_pdu:
        fp = (fingerprints or load_database()).match(
            result.implementation_class_uid, result.implementation_version_name, result.max_pdu
        )
        result.product, result.product_version = fp.product, fp.product_version
    if result.dicom:
        result.honeypot = honeypot.verdict(honeypot.endpoint_signals(result.__dict__, fp))
    result.confidence = confidence_map(result, fp.confidence if fp else None)
    if result.state == "open":
        result.findings = derive_findings(result)
        if fp is not None and result.confidence["product"] != "observed":
            for f in result.findings:
                if f["id"] == "DG-010":
                    f["confidence"] = "inferred"
    if prober.evidence is not None and opts.evidence_dir:
        prober.evidence.write(opts.evidence_dir)
    return result


async def _assess_web(p: _Prober, r: EndpointResult) -> bool:
    """On an HTTP port: the web checks; True if it spoke HTTP(S) (no DICOM checks then)."""
    web_opts = p.opts.web
    if web_opts is None or p.opts.discovery or p.port not in web_opts.ports:
        return False
    web = await probe_web(p.host, p.port, web_opts, pace=p.pace)  # ConnectFailed if closed
    if web is None:
        return False  # not HTTP: maybe DICOM on an unusual port
    r.web = web
    r.product, r.product_version = web.get("product"), web.get("product_version")
    if web["scheme"] == "https" and p.opts.tls_probe is not None:
        r.tls_details = await probe_tls(p.host, p.port, p.opts.tls_probe, pace=p.pace)
    return True


async def _assess(p: _Prober, r: EndpointResult) -> None:
    opts = p.opts
    syntaxes = (sc.VERIFICATION,) if opts.discovery else sc.ALL_PROPOSED
    try:
        first = await p.attempt(opts.probe_called_aet, syntaxes=syntaxes)
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
        except ConnectFailed:
            note_error(r, plain_error)
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
            r.calling_aet.update(enforced=False, verified=True)
            r.user_identity.update(required=False, verified=True)
        return

    reject = first.reject
    assert reject is not None
    r.reject = _reject_dict(reject)
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


async def _record_accept(p: _Prober, r: EndpointResult, assoc: Association) -> None:
    """Fingerprint and services from an A-ASSOCIATE-AC, then a C-ECHO if offered."""
    ac = assoc.accept
    r.implementation_class_uid = ac.implementation_class_uid
    r.implementation_version_name = ac.implementation_version_name
    r.max_pdu = ac.max_pdu
    r.services = sc.services_from_results(ac.results)
    r.canary_result = ac.results.get(sc.CANARY)
    try:
        if p.opts.echo and ac.accepts(sc.VERIFICATION):
            status = await assoc.echo()
            r.services["verification"] = status == 0
        if p.opts.exposure is not None and not p.opts.discovery:
            r.exposure = await measure(
                assoc, p.opts.exposure, archives=p.archives, where=(p.host, p.port)
            )
        if p.opts.intrusive and not p.opts.discovery:
            r.intrusive = await run_intrusive(assoc)
        await assoc.release()
    except DulError as exc:  # e.g. an AC, then silence: say so in the record (issue 12)
        note_error(r, exc)
        await assoc.abort()


async def _guess_called_aet(p: _Prober, r: EndpointResult) -> None:
    """Try vendor defaults, then common words, until a title is not refused for reason 7."""
    for word in p.opts.wordlist:
        if not p.budget_left():
            return
        p.guesses += 1
        outcome = await p.guess(word)
        if outcome is None:
            continue
        if outcome.association is not None:
            r.called_aet["accepted"] = word
            if p.calling is None:  # else the calling title had to be guessed: enforced
                r.calling_aet.update(enforced=False, verified=True)
            r.user_identity.update(required=False, verified=True)
            await _record_accept(p, r, outcome.association)
            return
        rej = outcome.reject
        assert rej is not None
        if rej.called_aet_refused:
            continue
        r.called_aet["accepted"] = word
        if rej.calling_aet_refused:
            r.calling_aet.update(enforced=True, verified=True)
            await _guess_calling_aet(p, r, word)
        elif rej.may_mean_authentication:
            await _try_user_identity(p, r, word)
        return


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
            if r.called_aet.get("accepted") is None and not r.called_aet.get("enforced"):
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
            if r.called_aet["accepted"] is None:
                r.called_aet.update(accepted=called, verified=True)
            await _record_accept(p, r, outcome.association)
            return
    # refused with and without identity: most likely authentication with unknown credentials
    r.user_identity.update(required=True, accepted_with=None, verified=False)


def _reject_dict(rej: Reject) -> dict:
    return {
        "result": rej.result,
        "source": rej.source,
        "reason": rej.reason,
        "text": rej.describe(),
    }


def derive_findings(r: EndpointResult) -> list[dict]:
    """Findings from verdicts; confidence says whether a verdict was observed or inferred."""
    out: list[dict] = []
    if not r.dicom:
        if r.web is not None:
            return web_findings(r.web) + tls_findings(r.tls_details)
        out.append(finding("DG-014", detail=r.error))
        return out + tls_findings(r.tls_details)
    out.append(finding("DG-013") if r.tls else finding("DG-004"))
    if r.called_aet.get("verified"):
        if not r.called_aet["enforced"]:
            out.append(finding("DG-001"))
        elif r.called_aet.get("accepted"):
            out.append(finding("DG-002", detail=f"accepted: {r.called_aet['accepted']}"))
    if r.calling_aet.get("verified") and not r.calling_aet["enforced"]:
        out.append(finding("DG-003"))
    ui = r.user_identity
    if ui["required"]:
        if ui["accepted_with"]:
            out.append(finding("DG-012", detail=f"accepted with any {ui['accepted_with']}"))
        else:
            out.append(
                finding("DG-011", confidence="inferred" if not ui["verified"] else "confirmed")
            )
    s = r.services
    if s.get("find_patient_root") or s.get("find_study_root"):
        out.append(finding("DG-005"))
    if s.get("move") or s.get("get"):
        out.append(finding("DG-006"))
    if s.get("worklist"):
        out.append(finding("DG-007"))
    if s.get("storage"):
        out.append(finding("DG-008"))
    if s.get("verification"):
        out.append(finding("DG-009"))
    if r.implementation_class_uid:
        detail = " ".join(x for x in (r.product, r.product_version) if x) or (
            r.implementation_version_name or r.implementation_class_uid
        )
        out.append(finding("DG-010", detail=detail))
    return out + tls_findings(r.tls_details) + intrusive_findings(r.intrusive)
