"""The acceptor accepts or rejects exactly as its policy says, with PS3.8 reject reasons."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from dicomguard.dul.acse import (
    AssociateRequest,
    UserIdentity,
    UserIdentityType,
)
from dicomguard.dul.scp import VERIFICATION, AcceptorPolicy, Handlers, start_acceptor
from dicomguard.dul.scu import associate

HOST = "127.0.0.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
WORKLIST = "1.2.840.10008.5.1.4.31"
BIG_ENDIAN = "1.2.840.10008.1.2.2"

Start = Callable[..., Awaitable[int]]


@pytest.fixture
async def acceptor() -> AsyncIterator[Start]:
    """Start our acceptor on loopback with a policy; returns the port."""
    servers: list[asyncio.Server] = []

    async def start(policy: AcceptorPolicy, handlers: Handlers | None = None) -> int:
        server = await start_acceptor(HOST, 0, policy, handlers)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for s in servers:
        s.close()


async def test_accepts_any_titles_and_announces_its_identity(acceptor: Start) -> None:
    policy = AcceptorPolicy(
        implementation_class_uid="1.2.276.0.7230010.3.0.3.6.7",
        implementation_version_name="OFFIS_DCMTK_367",
        max_pdu=32768,
    )
    port = await acceptor(policy)
    outcome = await associate(HOST, port, AssociateRequest(called_aet="WHATEVER"))
    assert outcome.association
    async with outcome.association as assoc:
        assert await assoc.echo() == 0
        assert assoc.accept.implementation_class_uid == "1.2.276.0.7230010.3.0.3.6.7"
        assert assoc.accept.implementation_version_name == "OFFIS_DCMTK_367"
        assert assoc.accept.max_pdu == 32768


async def test_called_aet_enforced_rejects_with_reason_7(acceptor: Start) -> None:
    port = await acceptor(AcceptorPolicy(called_aets=frozenset({"PACS"})))
    outcome = await associate(HOST, port, AssociateRequest(called_aet="ANY-SCP"))
    assert outcome.reject and outcome.reject.called_aet_refused
    assert (outcome.reject.result, outcome.reject.source, outcome.reject.reason) == (1, 1, 7)
    outcome = await associate(HOST, port, AssociateRequest(called_aet="PACS"))
    assert outcome.association
    await outcome.association.release()


async def test_calling_aet_allowlist_rejects_with_reason_3(acceptor: Start) -> None:
    port = await acceptor(AcceptorPolicy(calling_aets=frozenset({"VIEWER01"})))
    outcome = await associate(HOST, port, AssociateRequest(calling_aet="DICOMGUARD"))
    assert outcome.reject and outcome.reject.calling_aet_refused
    assert outcome.reject.result == 1
    outcome = await associate(HOST, port, AssociateRequest(calling_aet="VIEWER01"))
    assert outcome.association
    await outcome.association.release()


def _dgadmin(kind: int, primary: bytes, secondary: bytes) -> bool:
    return kind == UserIdentityType.USERNAME_PASSCODE and (primary, secondary) == (
        b"dgadmin",
        b"dgadmin",
    )


async def test_user_identity_required_mirrors_pynetdicom_reject(acceptor: Start) -> None:
    port = await acceptor(AcceptorPolicy(require_user_identity=True, user_identity_check=_dgadmin))
    outcome = await associate(HOST, port, AssociateRequest())
    assert outcome.reject
    assert (outcome.reject.result, outcome.reject.source, outcome.reject.reason) == (2, 2, 1)

    wrong = UserIdentity(UserIdentityType.USERNAME_PASSCODE, b"dgadmin", b"nope")
    outcome = await associate(HOST, port, AssociateRequest(user_identity=wrong))
    assert outcome.reject and outcome.reject.result == 2

    right = UserIdentity(UserIdentityType.USERNAME_PASSCODE, b"dgadmin", b"dgadmin")
    outcome = await associate(HOST, port, AssociateRequest(user_identity=right))
    assert outcome.association
    # positive response was requested: an (empty, for type 2) server response comes back
    assert outcome.association.accept.user_identity_response == b""
    await outcome.association.release()


async def test_identity_ignored_when_no_check(acceptor: Start) -> None:
    port = await acceptor(AcceptorPolicy())
    ident = UserIdentity(UserIdentityType.USERNAME, b"someone")
    outcome = await associate(HOST, port, AssociateRequest(user_identity=ident))
    assert outcome.association
    assert outcome.association.accept.user_identity_response is None
    await outcome.association.release()


async def test_context_results_distinguish_abstract_and_transfer_syntax(acceptor: Start) -> None:
    port = await acceptor(AcceptorPolicy(abstract_syntaxes=(VERIFICATION, STUDY_FIND)))
    outcome = await associate(
        HOST, port, AssociateRequest(abstract_syntaxes=(VERIFICATION, STUDY_FIND, WORKLIST))
    )
    assert outcome.association
    accept = outcome.association.accept
    await outcome.association.release()
    assert accept.results == {VERIFICATION: 0, STUDY_FIND: 0, WORKLIST: 3}

    outcome = await associate(HOST, port, AssociateRequest(transfer_syntaxes=(BIG_ENDIAN,)))
    assert outcome.association
    assert outcome.association.accept.results == {VERIFICATION: 4}
    await outcome.association.release()


async def test_association_limit_rejects_transient_local_limit(acceptor: Start) -> None:
    policy = AcceptorPolicy(max_associations=1)
    port = await acceptor(policy)
    first = await associate(HOST, port, AssociateRequest())
    assert first.association
    second = await associate(HOST, port, AssociateRequest())
    assert second.reject
    assert (second.reject.result, second.reject.source, second.reject.reason) == (2, 3, 2)
    await first.association.release()
    await asyncio.sleep(0.05)
    assert policy.active == 0
    third = await associate(HOST, port, AssociateRequest())
    assert third.association
    await third.association.release()
