"""Issue 12 item 2: a peer that ignores C-CANCEL costs a bounded number of responses, then
the requestor sends A-ABORT and raises CancelIgnored.

The peer is the lab's ``endless-pending`` behaviour (Pending responses for ever, C-CANCEL read
and ignored) and, slower, one Pending every 0.3 s: the second is ended by the seconds bound
(``timeouts.dimse``), the first by the count bound (MAX_RESPONSES_AFTER_CANCEL). Real servers
that honour C-CANCEL keep their association: test_client_against_pynetdicom.py and
test_server_services.py.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from pydicom.dataset import Dataset

from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.errors import CancelIgnored
from dicomguard.dul.scu import MAX_RESPONSES_AFTER_CANCEL, Timeouts, associate
from dicomguard.lab.hostile import endless_pending
from dicomguard.testing.reference import identifier

HOST = "127.0.0.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


def _query() -> Dataset:
    return identifier("STUDY", StudyInstanceUID="", StudyDate="")


@pytest.mark.parametrize(("interval", "dimse"), [(0.0, 30.0), (0.3, 1.0)], ids=["fast", "drip"])
def test_ignored_cancel_ends_in_abort_within_bounds(interval: float, dimse: float) -> None:
    sent: list[bytes] = []

    async def go() -> tuple[int, float]:
        server = await asyncio.start_server(endless_pending(interval), HOST, 0)
        port = server.sockets[0].getsockname()[1]
        try:
            outcome = await associate(
                HOST,
                port,
                AssociateRequest(abstract_syntaxes=(STUDY_FIND,)),
                timeouts=Timeouts(connect=2.0, associate=2.0, dimse=dimse, release=0.5),
                recorder=lambda way, data: sent.append(data) if way == "out" else None,
            )
            assoc = outcome.association
            assert assoc is not None
            got = 0
            started = time.monotonic()
            with pytest.raises(CancelIgnored):
                async for _ in assoc.find_raw(STUDY_FIND, _query(), max_results=5):
                    got += 1
            return got, time.monotonic() - started
        finally:
            server.close()

    got, took = asyncio.run(go())
    assert got == 5
    assert sent[-1][0] == P.A_ABORT  # the last thing we said
    if interval == 0:
        assert took < 10.0  # MAX_RESPONSES_AFTER_CANCEL responses arrive in well under that
    else:  # at most ``dimse`` seconds after the cancel, and fewer responses than the count bound
        assert took < 5 * interval + dimse + 1.0
        assert dimse / interval < MAX_RESPONSES_AFTER_CANCEL
