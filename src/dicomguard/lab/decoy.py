"""Honeypot-like behaviour for the lab: an acceptor that says yes to everything, like dicompot.

dicompot (nsmfoo/dicompot, built on go-netdicom) accepts every proposed presentation context
with the first transfer syntax offered, whatever the abstract syntax, and its A-ASSOCIATE-AC
carries only a Maximum Length item of 4 MiB: no Implementation Class UID, no version name. The
lab's regular acceptor (dul.scp) is policy driven and always introduces itself properly, so
this module wraps it instead of copying it: it reads the A-ASSOCIATE-RQ first, widens the policy
to every abstract syntax the requestor proposed, replays the request into the acceptor, and
strips the identity items from the AC it answers with. Everything after the AC (C-ECHO, C-FIND
from the persona's archive) is the regular acceptor's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from typing import Any

from pynetdicom import pdu as _pdu
from pynetdicom import pdu_items

from ..dul import pdu as P
from ..dul.errors import DulError
from ..dul.scp import AcceptorPolicy, Handlers, serve_association

_IDENTITY_ITEMS = (
    pdu_items.ImplementationClassUIDSubItem,
    pdu_items.ImplementationVersionNameSubItem,
)


def strip_identity(ac_bytes: bytes) -> bytes:
    """The same A-ASSOCIATE-AC without Implementation Class UID and Version Name sub-items."""
    ac = _pdu.A_ASSOCIATE_AC()
    ac.decode(ac_bytes)
    for item in ac.variable_items:
        if isinstance(item, pdu_items.UserInformationItem):
            item.user_data = [u for u in item.user_data if not isinstance(u, _IDENTITY_ITEMS)]
    return bytes(ac.encode())


class _AnonymousWriter:
    """A StreamWriter stand-in that rewrites the AC and passes everything else through."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        if data[:1] == bytes([P.A_ASSOCIATE_AC]):
            data = strip_identity(data)
        self._writer.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._writer, name)


async def serve_accept_everything(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    policy: AcceptorPolicy,
    handlers: Handlers,
) -> None:
    """Serve one connection the way dicompot does (see the module docstring)."""
    try:
        raw = await P.read_pdu(
            reader, timeout=policy.associate_timeout, max_length=P.MAX_ASSOCIATION_PDU
        )
    except DulError:
        return
    proposed: list[str] = []
    if raw.pdu_type == P.A_ASSOCIATE_RQ:
        with contextlib.suppress(Exception):  # a broken RQ is the acceptor's to refuse
            primitive = P.decode(raw).to_primitive()  # type: ignore[attr-defined]
            for cx in primitive.presentation_context_definition_list or []:
                if cx.abstract_syntax:
                    proposed.append(str(cx.abstract_syntax))
    widened = dataclasses.replace(
        policy, abstract_syntaxes=tuple(dict.fromkeys((*policy.abstract_syntaxes, *proposed)))
    )
    replay = asyncio.StreamReader(limit=1 << 16)
    replay.feed_data(raw.data)

    async def pump() -> None:
        try:
            while chunk := await reader.read(65536):
                replay.feed_data(chunk)
        except (ConnectionError, OSError):
            pass
        finally:
            replay.feed_eof()

    task = asyncio.create_task(pump())
    try:
        await serve_association(replay, _AnonymousWriter(writer), widened, handlers)  # type: ignore[arg-type]
    finally:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
