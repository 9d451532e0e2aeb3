"""What the lab's archives do with DIMSE requests: service behaviour on top of ``dul.scp``.

``dul.scp`` is the protocol layer (negotiate, read, dispatch, answer); it invents no service
behaviour. The lab's personas need a few simple ones, kept here:

* :func:`discarding_store`: C-STORE accepted (status 0) and thrown away, counted per host; the
  lab keeps no pixels, and an ``--intrusive`` scan's test object is all it ever receives.
* :func:`retrieving_nothing`: C-MOVE and C-GET answered Success with zero sub-operations
  (the archive never moves data, so a scan's C-MOVE to an unknown AE sends nothing anywhere),
  or 0xA801 "move destination unknown" (PS3.4 C.4.2.1.4) when the persona knows its
  destinations; every C-MOVE-RQ's destination is reported first (the lab counts them).
* :func:`delayed`: a server slow to answer the A-ASSOCIATE-RQ (reverse DNS lookups of
  DCMTK/Orthanc): the connection is served after ``delay`` seconds. The requestor's RQ waits
  in the socket meanwhile, so on the wire the AC comes ``delay`` seconds after the RQ, as
  before when the acceptor itself slept between reading the RQ and answering it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ..dul.codes import STATUS_MOVE_DESTINATION_UNKNOWN, STATUS_SUCCESS
from ..dul.scp import (
    AssociationInfo,
    RetrieveHandler,
    RetrieveRequest,
    StoreHandler,
    StoreRequest,
)

__all__ = ["delayed", "discarding_store", "retrieving_nothing"]

#: the final C-MOVE-RSP/C-GET-RSP of a retrieval that moved nothing (PS3.7 Table 9.3-30)
NO_SUBOPERATIONS: dict[str, int] = {
    "NumberOfCompletedSuboperations": 0,
    "NumberOfFailedSuboperations": 0,
    "NumberOfWarningSuboperations": 0,
}

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def discarding_store(on_store: Callable[[StoreRequest], None] | None = None) -> StoreHandler:
    """C-STORE: ``on_store(request)`` if given, then Success (0x0000); nothing is kept."""

    async def store(request: StoreRequest) -> int:
        if on_store is not None:
            on_store(request)
        return STATUS_SUCCESS

    return store


def retrieving_nothing(
    destinations: frozenset[str] | None = None,
    on_move: Callable[[str, AssociationInfo], None] | None = None,
) -> RetrieveHandler:
    """C-MOVE/C-GET that move nothing: Success with zero sub-operations, or, for a C-MOVE to a
    destination outside ``destinations`` (None: any destination is known), 0xA801 and no
    counts. ``on_move(destination, association)`` sees every C-MOVE-RQ first."""

    async def retrieve(request: RetrieveRequest) -> tuple[int, dict[str, int]]:
        if request.move_destination is not None:
            if on_move is not None:
                on_move(request.move_destination, request.association)
            if destinations is not None and request.move_destination not in destinations:
                return STATUS_MOVE_DESTINATION_UNKNOWN, {}
        return STATUS_SUCCESS, dict(NO_SUBOPERATIONS)

    return retrieve


def delayed(serve: Serve, delay: float) -> Serve:
    """``serve`` after ``delay`` seconds (``serve`` itself when ``delay`` is not positive)."""
    if delay <= 0:
        return serve

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(delay)
        await serve(reader, writer)

    return slow
