"""The operation judge (``gateway/judge.py``) on its own: command sets in as bytes, decisions out.

No socket, no relay: each case encodes the command sets a client or backend would send, reads
them with the gateway's strict reader, and checks what the judge answers: pass or drop, the
PDUs of the gateway's own it asks to send (decoded here), the outcome to count and audit, or
:class:`CommandRefused` (the relay aborts the association). The same behaviours against real
backends, through the whole gateway, are in ``test_bypass_suite.py`` and
``test_relay_operations.py``.
"""

from __future__ import annotations

import pytest

from dicomguard.dul import codes, dimse
from dicomguard.dul.codes import STATUS_OUT_OF_RESOURCES
from dicomguard.dul.command import CommandRefused, CommandSet, encode_command, parse_command_strict
from dicomguard.gateway.config import IdentityPolicy
from dicomguard.gateway.judge import DROP, PASS, Decision, OperationJudge
from dicomguard.gateway.policy import RateLimits

CT = "1.2.840.10008.5.1.4.1.1.2"
FIND = "1.2.840.10008.5.1.4.1.2.1.1"
GET = "1.2.840.10008.5.1.4.1.2.1.3"
ECHO = "1.2.840.10008.1.1"
#: presentation context ID -> abstract syntax, as the backend accepted them
ACCEPTED = {1: ECHO, 3: CT, 5: FIND, 7: GET}
PENDING = codes.STATUS_PENDING


def _judge(operations: str = "ECHO STORE FIND GET", *, find_cap: int = 0,
           include_phi: bool = False) -> OperationJudge:
    policy = IdentityPolicy("viewer", frozenset(operations.split()), find_max_results=find_cap)
    return OperationJudge(dict(ACCEPTED), policy, RateLimits(), include_phi=include_phi)


def _cs(**values: int | str) -> CommandSet:
    """A command set as the strict reader gives it from its encoded bytes."""
    return parse_command_strict(encode_command(values))


def _store_rq(message_id: int, sop_class: str = CT) -> CommandSet:
    return _cs(CommandField=dimse.C_STORE_RQ, MessageID=message_id, Priority=0,
               AffectedSOPClassUID=sop_class, AffectedSOPInstanceUID="1.2.3.4",
               CommandDataSetType=1)


def _find_rq(message_id: int) -> CommandSet:
    return _cs(CommandField=dimse.C_FIND_RQ, MessageID=message_id, Priority=0,
               AffectedSOPClassUID=FIND, CommandDataSetType=1)


def _rsp(field: int, answered: int, status: int, sop_class: str = CT) -> CommandSet:
    return _cs(CommandField=field, MessageIDBeingRespondedTo=answered, Status=status,
               AffectedSOPClassUID=sop_class,
               CommandDataSetType=1 if status == PENDING else codes.DATA_SET_ABSENT)


def _messages(pdus: tuple[bytes, ...]) -> list[dimse.DimseMessage]:
    assembler = dimse.MessageAssembler()
    return [msg for pdu in pdus for msg in assembler.feed(pdu)]


def test_a_store_passes_and_its_final_response_is_the_outcome() -> None:
    judge = _judge()
    assert judge.request(3, _store_rq(7)) is PASS
    decision = judge.response(3, _rsp(dimse.C_STORE_RSP, 7, 0))
    assert decision.passes and decision.op is not None
    op = decision.op
    assert (op.operation, op.sop_class, op.sop_instance) == ("STORE", CT, "1.2.3.4")
    assert (decision.result, decision.status, decision.why) == ("ok", 0, None)
    assert not decision.to_client and not decision.to_backend
    assert judge.ops == {}
    # a failure status is a failed operation, still passed on to the client
    judge.request(3, _store_rq(8))
    failed = judge.response(3, _rsp(dimse.C_STORE_RSP, 8, STATUS_OUT_OF_RESOURCES))
    assert failed.passes and failed.result == "failed"


def test_a_message_id_already_outstanding_is_refused() -> None:
    """Issue 11 item 2: two pipelined C-FINDs sharing a MessageID."""
    judge = _judge()
    assert judge.request(5, _find_rq(4)) is PASS
    with pytest.raises(CommandRefused, match="MessageID 4 is already outstanding"):
        judge.request(5, _find_rq(4))


def test_a_response_to_nothing_outstanding_is_dropped_and_recorded() -> None:
    judge = _judge()
    decision = judge.response(3, _rsp(dimse.C_STORE_RSP, 9, 0))
    assert not decision.passes
    assert decision.result == "dropped" and decision.op is not None
    assert decision.op.operation == "response 0x8001"
    assert "message ID 9" in str(decision.why)
    # the right MessageID but the wrong command answers nothing either
    judge.request(5, _find_rq(2))
    wrong = judge.response(5, _rsp(dimse.C_STORE_RSP, 2, 0, FIND))
    assert not wrong.passes and wrong.result == "dropped"


@pytest.mark.parametrize(("cid", "why"), [(5, "SOP class"), (9, "not accepted")])
def test_a_command_off_its_presentation_context_is_refused(cid: int, why: str) -> None:
    """Issue 11 item 7: a STORE on the FIND context, a context ID never accepted."""
    with pytest.raises(CommandRefused, match=why):
        _judge().request(cid, _store_rq(1))


def test_a_refused_operation_is_answered_by_the_gateway() -> None:
    judge = _judge("ECHO STORE")
    decision = judge.request(5, _find_rq(11))
    assert not decision.passes
    assert decision.result == "refused" and "FIND not allowed" in str(decision.why)
    (answer,) = _messages(decision.to_client)
    assert answer.context_id == 5
    assert answer.command.get("CommandField") == dimse.C_FIND_RSP
    assert answer.command.get("MessageIDBeingRespondedTo") == 11
    assert answer.command.get("Status") == STATUS_OUT_OF_RESOURCES == decision.status
    assert judge.ops == {}


def test_a_find_past_its_cap_is_cancelled_at_the_backend_and_closed_at_the_client() -> None:
    judge = _judge(find_cap=2)
    judge.request(5, _find_rq(3))
    pending = _rsp(dimse.C_FIND_RSP, 3, PENDING, FIND)
    assert judge.response(5, pending) is PASS
    assert judge.response(5, pending) is PASS
    capped = judge.response(5, pending)
    assert not capped.passes and capped.to_backend
    assert capped.result == "capped" and capped.status == STATUS_OUT_OF_RESOURCES
    (cancel,) = _messages(capped.to_backend)
    assert cancel.command.get("CommandField") == dimse.C_CANCEL_RQ
    assert cancel.command.get("MessageIDBeingRespondedTo") == 3
    (final,) = _messages(capped.to_client)
    assert final.command.get("Status") == STATUS_OUT_OF_RESOURCES
    # the backend's late answers vanish; the ID cannot be reused until its final one
    assert judge.response(5, pending) is DROP
    reuse = judge.request(5, _find_rq(3))
    assert not reuse.passes and reuse.result == "refused"
    assert reuse.why == "message ID still in use"
    assert judge.response(5, _rsp(dimse.C_FIND_RSP, 3, dimse.STATUS_CANCEL, FIND)) is DROP
    assert judge.request(5, _find_rq(3)) is PASS


def test_cancels_pass_only_for_what_is_outstanding() -> None:
    judge = _judge()
    cancel = _cs(CommandField=dimse.C_CANCEL_RQ, MessageIDBeingRespondedTo=6,
                 CommandDataSetType=codes.DATA_SET_ABSENT)
    assert judge.request(5, cancel) is DROP  # PS3.7 9.3.2.3: nothing to cancel, ignored
    judge.request(5, _find_rq(6))
    assert judge.request(5, cancel) is PASS
    with pytest.raises(CommandRefused, match="C-CANCEL-RQ from the backend"):
        judge.response(5, cancel)


def test_get_sub_operations_are_tracked_the_other_way() -> None:
    """The backend's C-STORE-RQs of a C-GET: the client's responses must answer one of them."""
    judge = _judge()
    judge.request(7, _cs(CommandField=dimse.C_GET_RQ, MessageID=1, Priority=0,
                         AffectedSOPClassUID=GET, CommandDataSetType=1))
    assert judge.response(3, _store_rq(40)) is PASS
    assert judge.request(3, _rsp(dimse.C_STORE_RSP, 40, 0)) is PASS
    again = judge.request(3, _rsp(dimse.C_STORE_RSP, 40, 0))
    assert not again.passes and again.result == "dropped"


def test_phi_capture_is_asked_for_only_with_include_phi() -> None:
    assert _judge().request(3, _store_rq(1)) is PASS
    decision: Decision = _judge(include_phi=True).request(3, _store_rq(1))
    assert decision.passes and decision.capture is not None
    assert decision.capture.operation == "STORE"
