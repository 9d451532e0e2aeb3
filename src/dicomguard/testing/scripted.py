"""A scripted DICOM acceptor: negotiates like dicomguard's own SCP, then answers each DIMSE
message with whatever PDUs the test returns (after pynetdicom's ``tests/parrot.py``).

For peer behaviours no real server has on demand (a backend that answers what nobody asked,
one that reads PDUs strictly by length and records every command set, ...). The association is
accepted by :mod:`dicomguard.dul.scp`'s negotiation with the given abstract syntaxes; after
that every P-DATA-TF is reassembled into DIMSE messages and ``answer(message)`` returns the
bytes to write back (whole PDUs, e.g. from :func:`dicomguard.testing.pdus.p_data_tf`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence

from dicomguard.dul import dimse
from dicomguard.dul import pdu as P
from dicomguard.dul.errors import DulError
from dicomguard.dul.scp import AcceptorPolicy, Handlers, negotiate

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Answer = Callable[[dimse.DimseMessage], Iterable[bytes]]


def scripted_scp(
    abstract_syntaxes: Sequence[str],
    answer: Answer,
    *,
    answer_release: bool = True,
    finished: asyncio.Event | None = None,
) -> Handler:
    """An ``asyncio.start_server`` handler: accept, then write ``answer(message)`` for every
    DIMSE message received. The association ends at the first PDU that is not a P-DATA-TF
    (an A-RELEASE-RQ is answered with an A-RELEASE-RP when ``answer_release``), at a typed
    upper-layer error (:class:`~dicomguard.dul.errors.DulError`: silence for 10 s, garbage,
    close) or when the peer goes; the connection is then closed and ``finished`` set."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        policy = AcceptorPolicy(abstract_syntaxes=tuple(abstract_syntaxes))
        info = await negotiate(reader, writer, policy, Handlers())
        assert info is not None
        assembler = dimse.MessageAssembler()
        try:
            while True:
                raw = await P.read_pdu(reader, timeout=10)
                if raw.pdu_type == P.A_RELEASE_RQ and answer_release:
                    writer.write(P.RELEASE_RP)
                    break
                if raw.pdu_type != P.P_DATA_TF:
                    break
                for msg in assembler.feed(raw.data):
                    writer.writelines(list(answer(msg)))
            await writer.drain()
        except DulError:
            pass
        finally:
            writer.close()
            if finished is not None:
                finished.set()

    return handle
