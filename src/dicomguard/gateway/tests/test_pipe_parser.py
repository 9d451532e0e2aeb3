"""The data phase's PDU parser (``gateway/pipe.py``, ``Pipe._consume``) against every way TCP
can cut a stream.

The socket tests can only suggest where a stream is cut; here the same bytes are fed in
thousands of random chunkings, straight into a :class:`Pipe` and its :class:`PdvFilter`, with a
recording stand-in for the sending transport (the one part replaced: no real socket lets a test
choose its segments). Everything passes the policy in this stream, so what comes out must be
the input, byte for byte, in order.
"""

from __future__ import annotations

import random
import struct
from typing import Any

from dicomguard.dul import dimse
from dicomguard.dul.command import encode_command
from dicomguard.gateway.pipe import PdvFilter, Pipe


class _Recorder:
    def __init__(self) -> None:
        self.out = bytearray()

    def write(self, data: Any) -> None:
        self.out += data

    def get_write_buffer_size(self) -> int:
        return 0


def _pipe(on_command: Any = lambda cid, command: True) -> tuple[Pipe, _Recorder]:
    ended: list[object] = []
    pipe = Pipe("up", PdvFilter(16384, 4, on_command), max_pdu=4 << 20, on_end=ended.append)
    recorder = _Recorder()
    pipe.out = recorder  # type: ignore[assignment]
    return pipe, recorder


def _message(cid: int, data_size: int, pdv_room: int, message_id: int | None = None) -> bytes:
    """A C-STORE-RQ with a data set of ``data_size`` bytes in PDUs of ``pdv_room``."""
    command = encode_command({
        "CommandField": dimse.C_STORE_RQ, "MessageID": message_id or cid, "Priority": 0,
        "AffectedSOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
        "AffectedSOPInstanceUID": f"2.25.{cid}", "CommandDataSetType": 0x0001,
    })
    out = struct.pack(">BBL", 4, 0, len(command) + 6) + struct.pack(
        ">LBB", len(command) + 2, cid, 0x03) + command
    data = bytes(i % 251 for i in range(data_size))
    for start in range(0, data_size, pdv_room):
        piece = data[start : start + pdv_room]
        last = start + pdv_room >= data_size
        pdv = struct.pack(">LBB", len(piece) + 2, cid, 0x02 if last else 0x00) + piece
        out += struct.pack(">BBL", 4, 0, len(pdv)) + pdv
    return out


def test_any_chunking_gives_back_the_input_byte_for_byte() -> None:
    stream = b"".join([
        _message(1, 5_000, 16_000),      # small PDUs: gathered whole
        _message(3, 100_000, 30_000),    # streamed PDUs
        _message(1, 20_000, 9_000),      # just above the streaming threshold
        dimse.echo_pdus(2, 1, 0)[0],     # a command alone
        bytes([5, 0, 0, 0, 0, 4, 0, 0, 0, 0]),  # A-RELEASE-RQ
    ])
    rng = random.Random(7)
    for trial in range(400):
        pipe, recorder = _pipe()
        pos = 0
        while pos < len(stream):
            step = rng.choice((1, 2, 3, 5, 6, 7, 11, 12, 13, 100, 4096, 20_000, 70_000))
            pipe._consume(stream[pos : pos + step])
            pos += step
        assert bytes(recorder.out) == stream, f"trial {trial}"


def test_any_chunking_drops_exactly_the_refused_messages() -> None:
    """Odd message IDs are refused: their command and every data PDU vanish, the rest is the
    input byte for byte (each PDV here has a PDU of its own, so nothing is re-wrapped)."""
    messages = [_message(1, size, room, message_id=i)
                for i, (size, room) in enumerate(
                    [(5_000, 16_000), (100_000, 30_000), (20_000, 9_000), (70_000, 65_000),
                     (3_000, 1_000), (40_000, 12_000)], start=1)]
    stream = b"".join(messages)
    expected = b"".join(m for i, m in enumerate(messages, start=1) if i % 2 == 0)
    rng = random.Random(11)
    for trial in range(300):
        pipe, recorder = _pipe(lambda cid, command: int(command.get("MessageID")) % 2 == 0)
        pos = 0
        while pos < len(stream):
            step = rng.choice((1, 5, 6, 7, 12, 13, 999, 8_192, 33_000, 70_000))
            pipe._consume(stream[pos : pos + step])
            pos += step
        assert bytes(recorder.out) == expected, f"trial {trial}"


def test_own_pdus_sent_at_any_moment_land_between_messages() -> None:
    """The gateway's own PDUs (the C-CANCEL of a capped C-FIND, a refusal's response) handed
    to a pipe between any two arrivals come out whole and between two messages: the output
    still reads as the input's messages, in order, with the injected ones somewhere between
    them (found in review: written at once, a C-CANCEL landed inside a streamed PDU and the
    backend read the PDU's end as a request the gateway never judged)."""
    messages = [_message(1, size, room, message_id=i)
                for i, (size, room) in enumerate(
                    [(5_000, 16_000), (100_000, 30_000), (20_000, 9_000), (3_000, 1_000),
                     (70_000, 65_000)], start=1)]
    stream = b"".join(messages)
    own = dimse.cancel_pdus(99, 1, 0)[0]
    rng = random.Random(5)
    for trial in range(200):
        pipe, recorder = _pipe()
        pos = sent = 0
        while pos < len(stream):
            step = rng.choice((1, 6, 7, 12, 13, 999, 8_192, 33_000, 70_000))
            pipe._consume(stream[pos : pos + step])
            pos += step
            if rng.random() < 0.3:
                pipe.send(own)
                sent += 1
        out = bytes(recorder.out)
        assembler = dimse.MessageAssembler()
        ids: list[int] = []
        at = 0
        while at < len(out):
            length = struct.unpack_from(">L", out, at + 2)[0]
            assert out[at] == 4, f"trial {trial}: PDU type {out[at]} at {at}"
            for msg in assembler.feed(out[at : at + 6 + length]):
                ids.append(int(msg.command.get("MessageID") or
                               msg.command.get("MessageIDBeingRespondedTo")))
            at += 6 + length
        assert [i for i in ids if i != 99] == [1, 2, 3, 4, 5], f"trial {trial}: {ids}"
        assert ids.count(99) == sent, f"trial {trial}: {ids}"
