"""The gateway's decisions: may this association reach a backend, may this operation run?

Pure functions of the configuration and what the peer sent, so every allow and deny case can be
tested without a socket, and so the relay never has to think about policy. Association checks
run in a fixed order, each with the A-ASSOCIATE-RJ reason PS3.8 9.3.4 defines for it (the
``REJECT_*`` constants of :mod:`dicomguard.dul.codes`):

0. protocol-version other than 1 → REJECT_PROTOCOL_VERSION (1, 2, 2) permanent, service
   provider (ACSE), protocol version not supported (the backend would otherwise decide what it
   means);
1. source address not allowed → REJECT_NO_REASON (1, 1, 1) permanent, service user, no reason
   given;
2. called AE title not routed → REJECT_CALLED_AET (1, 1, 7) called AE not recognized;
3. calling AE title not allowed from this source → REJECT_CALLING_AET (1, 1, 3) calling AE not
   recognized;
4. user identity bad, replayed, expired, or sent outside TLS when TLS is required →
   REJECT_NO_REASON;
5. no identity at all resolves to a configured policy → REJECT_NO_REASON.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from pynetdicom import pdu_primitives as prim

from ..dul.associate_bytes import AssociateView
from ..dul.codes import (
    C_ECHO_RQ,
    C_FIND_RQ,
    C_GET_RQ,
    C_MOVE_RQ,
    C_STORE_RQ,
    PROTOCOL_VERSION,
    REJECT_CALLED_AET,
    REJECT_CALLING_AET,
    REJECT_NO_REASON,
    REJECT_PROTOCOL_VERSION,
    STATUS_MOVE_DESTINATION_UNKNOWN,
    STATUS_NOT_AUTHORIZED,
    STATUS_OUT_OF_RESOURCES,
    STATUS_OUT_OF_RESOURCES_SUBOPERATIONS,
    Reject,
    UserIdentityType,
)
from ..tokenbucket import TokenBucket
from .auth import Authenticated, AuthError, JwtVerifier, PasscodeChecker
from .config import GatewayConfig, IdentityPolicy, Route

# Command field → operation name (requests only; responses are always relayed).
REQUEST_OPERATIONS = {C_STORE_RQ: "STORE", C_GET_RQ: "GET", C_FIND_RQ: "FIND", C_MOVE_RQ: "MOVE",
                      C_ECHO_RQ: "ECHO"}


@dataclass(frozen=True)
class Refusal:
    """An A-ASSOCIATE-RJ to send, and the reason for the audit trail."""

    reject: Reject
    why: str
    #: what was being checked, for metrics and the audit event ("source", "called-aet", ...)
    check: str


@dataclass(frozen=True)
class Admission:
    """An association the policy lets through: where it goes and whom it speaks for."""

    route: Route
    auth: Authenticated
    policy: IdentityPolicy
    user_identity: prim.UserIdentityNegotiation | None


@dataclass(frozen=True)
class Peer:
    """What the gateway knows about the connecting side before reading its request."""

    address: str
    tls: bool
    #: ``ssl.SSLSocket.getpeercert()`` of a verified client certificate, else None
    certificate: dict[str, Any] | None = None


def certificate_common_name(cert: dict[str, Any] | None) -> str | None:
    """Subject CN of a certificate as returned by ``getpeercert()``; None when there is none
    or more than one (which one counts differs between implementations: a subject
    ``CN=someone, CN=ct-scanner-1`` must not map to the identity of either)."""
    if not cert:
        return None
    names = [str(value) for rdn in cert.get("subject", ()) for name, value in rdn
             if name == "commonName"]
    return names[0] if len(names) == 1 else None


def _aet(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return (value or "").strip()


def find_user_identity(rq: AssociateView) -> prim.UserIdentityNegotiation | None:
    return rq.user_information[0] if rq.user_information else None


class AssociationPolicy:
    """Association-level checks for one configuration (built again on reload)."""

    def __init__(self, config: GatewayConfig, jwt_verifier: JwtVerifier | None = None) -> None:
        self.config = config
        self.passcodes = PasscodeChecker(config.users)
        self.jwt = jwt_verifier
        if config.jwt is not None and self.jwt is None:
            self.jwt = JwtVerifier(config.jwt)

    def screen(self, peer: Peer, rq: AssociateView) -> Refusal | None:
        """The checks that come before the user identity (0 to 3, and a user identity sent
        outside TLS when TLS is required): microseconds, so the relay runs them on the event
        loop and only a request that passes them queues for its identity check (a passcode
        costs ~45-70 ms of scrypt, see :mod:`.identity_queue`). None: :meth:`decide` goes on."""
        refusal = self._before_identity(peer, rq)
        return refusal if isinstance(refusal, Refusal) else None

    def _before_identity(self, peer: Peer, rq: AssociateView
                         ) -> Refusal | tuple[Route, str | None]:
        """Checks 0-3 and the TLS requirement of a user identity; passed: the route and the
        identity the calling AE title maps to."""
        cfg = self.config
        version = getattr(rq, "protocol_version", PROTOCOL_VERSION)
        if version != PROTOCOL_VERSION:
            return Refusal(REJECT_PROTOCOL_VERSION,
                           f"protocol version 0x{version:04x} not supported", "protocol-version")
        ip = ipaddress.ip_address(peer.address)
        if cfg.sources and not any(ip in net for net in cfg.sources):
            return Refusal(REJECT_NO_REASON, f"source {ip} not allowed", "source")
        called, calling = _aet(rq.called_ae_title), _aet(rq.calling_ae_title)
        route = cfg.route_for(called)
        if route is None:
            return Refusal(REJECT_CALLED_AET, f"called AE {called!r} not routed",
                           "called-aet")
        client_identity: str | None = None
        if cfg.clients:
            matches = [c for c in cfg.clients if c.calling_aet == calling]
            allowed = [c for c in matches if any(ip in net for net in c.sources)]
            if not allowed:
                why = (f"calling AE {calling!r} not allowed from {ip}" if matches
                       else f"calling AE {calling!r} unknown")
                return Refusal(REJECT_CALLING_AET, why, "calling-aet")
            client_identity = allowed[0].identity
        if rq.user_information and cfg.auth.require_tls and not peer.tls:
            return Refusal(REJECT_NO_REASON,
                           "user identity sent without TLS (TLS required)", "identity-tls")
        return route, client_identity

    def decide(self, peer: Peer, rq: AssociateView) -> Admission | Refusal:
        cfg = self.config
        screened = self._before_identity(peer, rq)
        if isinstance(screened, Refusal):
            return screened
        route, client_identity = screened
        calling = _aet(rq.calling_ae_title)
        ui = find_user_identity(rq)
        auth: Authenticated | None = None
        if ui is not None:
            try:
                auth = self._check_user_identity(ui)
            except AuthError as exc:
                return Refusal(REJECT_NO_REASON, str(exc), "identity")
        elif cfg.auth.required:
            return Refusal(REJECT_NO_REASON, "user identity required", "identity")
        if auth is None:
            cn = certificate_common_name(peer.certificate)
            for mapping in cfg.cert_identities:
                if cn is not None and mapping.common_name == cn:
                    auth = Authenticated(mapping.identity, cn, "certificate")
                    break
        if auth is None and client_identity:
            auth = Authenticated(client_identity, calling, "calling-aet")
        if auth is None and cfg.auth.default_identity:
            auth = Authenticated(cfg.auth.default_identity, calling, "default")
        if auth is None:
            return Refusal(REJECT_NO_REASON, "no identity for this association",
                           "identity")
        policy = cfg.identities.get(auth.identity)
        if policy is None:
            return Refusal(REJECT_NO_REASON, f"identity {auth.identity!r} has no policy",
                           "identity")
        return Admission(route, auth, policy, ui)

    def _check_user_identity(self, ui: prim.UserIdentityNegotiation) -> Authenticated:
        kind = int(ui.user_identity_type or 0)
        primary = bytes(ui.primary_field or b"")
        if kind == UserIdentityType.USERNAME_PASSCODE:
            username = primary.decode("utf-8", "replace")
            return self.passcodes.check(username, bytes(ui.secondary_field or b""))
        if kind == UserIdentityType.USERNAME:
            if not self.config.auth.accept_username_only:
                raise AuthError("username without passcode is not accepted")
            username = primary.decode("utf-8", "replace")
            user = next((u for u in self.config.users if u.name == username), None)
            if user is None:
                raise AuthError(f"unknown user {username!r}")
            return Authenticated(user.identity, username, "username")
        if kind == UserIdentityType.JWT:
            if self.jwt is None:
                raise AuthError("JWT user identity not configured")
            return self.jwt.check(primary)
        raise AuthError(f"user identity type {kind} not supported")


# --- operations ------------------------------------------------------------------------------


class RateLimits:
    """One bucket per identity, kept across reloads as long as the identity's rate stays.

    A classic token bucket (:class:`dicomguard.tokenbucket.TokenBucket`): ``rate`` tokens a
    second, at most ``burst`` saved up, starting full. Shared by every association of one
    identity, so opening more associations does not buy a harvester more throughput.
    """

    def __init__(self) -> None:
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, policy: IdentityPolicy) -> bool:
        if policy.rate <= 0:
            return True
        bucket = self._buckets.get(policy.name)
        burst = max(1, policy.burst)
        if bucket is None or bucket.refill != policy.rate or bucket.burst != burst:
            bucket = self._buckets[policy.name] = TokenBucket(policy.rate, burst, full=True)
        return bucket.take()


@dataclass(frozen=True)
class OperationVerdict:
    allowed: bool
    status: int = 0
    why: str = ""


#: the verdict of every allowed request (one object: built per request it cost ~1 us)
ALLOWED = OperationVerdict(True)


def _failure_status(operation: str, *, rate: bool) -> int:
    """The refusal status a peer's toolkit will recognise for this service.

    C-FIND defines only "Refused: Out of resources" (A700) as a refusal (PS3.4 C.4.1.1.4);
    DCMTK and others print the general 0x0124 as an unknown status for it, so C-FIND gets A700
    and the ErrorComment says why. The other services get 0x0124 "Refused: Not authorized".
    """
    if operation == "FIND":
        return STATUS_OUT_OF_RESOURCES
    if not rate:
        return STATUS_NOT_AUTHORIZED
    if operation in ("MOVE", "GET"):
        return STATUS_OUT_OF_RESOURCES_SUBOPERATIONS
    return STATUS_OUT_OF_RESOURCES


def decide_operation(
    policy: IdentityPolicy,
    operation: str | None,
    command_field: int,
    move_destination: str | None,
    limits: RateLimits,
) -> OperationVerdict:
    """May ``policy``'s identity run this request? (Checked before the backend sees it.)"""
    if operation is None:
        return OperationVerdict(False, STATUS_NOT_AUTHORIZED,
                                f"command 0x{command_field:04x} not allowed through the gateway")
    if operation not in policy.operations:
        return OperationVerdict(False, _failure_status(operation, rate=False),
                                f"{operation} not allowed for identity {policy.name!r}")
    if operation == "MOVE" and policy.move_destinations is not None and (
        (move_destination or "") not in policy.move_destinations
    ):
        return OperationVerdict(False, STATUS_MOVE_DESTINATION_UNKNOWN,
                                f"move destination {move_destination!r} not allowed")
    if not limits.take(policy):
        return OperationVerdict(False, _failure_status(operation, rate=True),
                                f"rate limit of {policy.rate:g}/s for {policy.name!r}")
    return ALLOWED
