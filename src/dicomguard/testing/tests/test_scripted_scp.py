"""The scripted acceptor negotiates, answers each DIMSE message with what the script returns,
and ends the association as told."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from dicomguard.dul import dimse
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.command import encode_command
from dicomguard.dul.scu import associate
from dicomguard.testing import pdus
from dicomguard.testing.scripted import Answer, Handler, scripted_scp

ECHO = "1.2.840.10008.1.1"


def _echo_status(status: int) -> Answer:
    def answer(msg: dimse.DimseMessage) -> list[bytes]:
        command = encode_command({
            "CommandField": 0x8030, "MessageIDBeingRespondedTo": int(msg.command.MessageID),
            "AffectedSOPClassUID": ECHO, "CommandDataSetType": 0x0101, "Status": status})
        return [pdus.p_data_tf((msg.context_id, pdus.COMMAND_LAST, command))]
    return answer


async def test_the_script_answers_and_the_release_is_answered(
    raw_server: Callable[[Handler], Awaitable[int]],
) -> None:
    finished = asyncio.Event()
    port = await raw_server(scripted_scp((ECHO,), _echo_status(0x0110), finished=finished))
    outcome = await associate("127.0.0.1", port, AssociateRequest(abstract_syntaxes=(ECHO,)))
    assert outcome.association is not None
    async with outcome.association as assoc:  # released on exit: the script answers the RQ
        assert await assoc.echo() == 0x0110
    await asyncio.wait_for(finished.wait(), 5)
