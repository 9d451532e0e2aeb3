"""A client that sends requests and never reads the answers cannot make the gateway buffer
answers without bound.

Found in review: requests the policy refuses are answered by the gateway itself (a failure
status), never by the backend, so the back-pressure the backend's answers are under did not
apply to them: a client that sent refused C-FIND-RQs in a loop and read nothing made the
gateway queue every answer in memory (tens of MB in seconds, growing as long as it sent).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from dicomguard.gateway.pipe import WRITE_HIGH_WATER

from .test_bypass_suite import CID, FIND, _find_rq, _identifier, _open, _pdata


async def test_refused_requests_from_a_client_that_never_reads_are_bounded(
    raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    gw = gateway_factory(raw_config)
    assoc = await _open(gw.address(), "CT01")  # modality: ECHO and STORE only
    sock = assoc.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    # one request per PDU, distinct MessageIDs; ~20 MB of them, never reading an answer
    batch = b"".join(_pdata(CID[FIND], _find_rq(i % 60000 + 1), _identifier())
                     for i in range(2000))
    peak = 0

    def buffered() -> int:
        relays = list(gw.gateway.shared.active)
        return max((r.writer.transport.get_write_buffer_size() for r in relays), default=0)

    try:
        for _ in range(100):
            assoc.writer.write(batch)
            try:
                await asyncio.wait_for(assoc.writer.drain(), 0.5)
            except TimeoutError:
                break  # the gateway stopped reading: what the test wants
            except ConnectionError:
                # on a loaded machine the idle backend association (nothing reaches it: every
                # request is refused by the gateway) may time out first and the gateway ends
                # the client's association with it: the flood is over either way, and what
                # was buffered until then is what the assertion bounds
                break
            peak = max(peak, gw.call(_in_loop(buffered)))
        peak = max(peak, gw.call(_in_loop(buffered)))
    finally:
        assoc.writer.transport.abort()
    # the high-water mark plus what one arrival (at most 256 KiB of requests) is answered with
    assert peak <= WRITE_HIGH_WATER + (1 << 20), peak


async def _in_loop(fn: Any) -> Any:
    return fn()
