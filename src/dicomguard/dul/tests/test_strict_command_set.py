"""The gateway's strict command-set reading (dul/command.py ``parse_command_strict``): what is
refused because two implementations could read it differently or PS3.7's table forbids it, and
the harmless quirks real devices have that still pass."""

from __future__ import annotations

import struct

import pytest

from dicomguard.dul.command import CommandRefused, encode_command, parse_command_strict
from dicomguard.testing import pdus

FIND = "1.2.840.10008.5.1.4.1.2.1.1"
ECHO = "1.2.840.10008.1.1"

#: The command set of issue 11: CommandField C-FIND-RQ, then C-ECHO-RQ (decoded in testing/pdus.py).
#: DCMTK acts on the first CommandField, pydicom (and the old gateway) on the last.
ISSUE_11_DUPLICATE_FIELD = pdus.C_FIND_RQ_COMMAND_FIELD_TWICE
_el, _us = pdus.element, pdus.us


def _find(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {"CommandField": 0x0020, "MessageID": 7,
                                 "AffectedSOPClassUID": FIND, "Priority": 0,
                                 "CommandDataSetType": 1}
    values.update(changes)
    return {k: v for k, v in values.items() if v is not None}


def test_issue_11_duplicate_command_field_is_refused() -> None:
    with pytest.raises(CommandRefused, match=r"\(0000,0100\) repeated"):
        parse_command_strict(ISSUE_11_DUPLICATE_FIELD)


def test_a_well_formed_find_is_read() -> None:
    cs = parse_command_strict(encode_command(_find()))  # type: ignore[arg-type]
    assert cs.values == {"AffectedSOPClassUID": FIND, "CommandField": 0x20, "MessageID": 7,
                         "Priority": 0, "CommandDataSetType": 1}


@pytest.mark.parametrize(("raw", "why"), [
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0110, _us(7)) + _el(0x0100, _us(0x20))
     + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "ascending"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, _us(7))
     + _el(0x0110, _us(8)) + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "repeated"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, b"\x07\x00\x00")
     + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "length 3"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20))
     + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "without MessageID"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, b"")
     + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "without MessageID"),
    (_el(0x0100, _us(0x20)) + _el(0x0110, _us(7)) + _el(0x0700, _us(0)) + _el(0x0800, _us(1)),
     "without AffectedSOPClassUID"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, _us(7))
     + _el(0x0600, b"EVIL") + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "does not belong"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, _us(7))
     + _el(0x0700, _us(0)) + _el(0x0800, _us(0x0101)), "needs a data set"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, _us(7))
     + _el(0x0700, _us(0)) + struct.pack("<HHL", 0, 0x0800, 40) + _us(1), "overruns"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0110, _us(7))
     + _el(0x0700, _us(0)) + _el(0x0800, _us(1)) + b"\x00\x00", "truncated"),
    (_el(0x0002, FIND.encode() + b"\x00") + _el(0x0100, _us(0x20)) + _el(0x0106, _us(0x30))
     + _el(0x0110, _us(7)) + _el(0x0700, _us(0)) + _el(0x0800, _us(1)), "not a command element"),
    (_el(0x0002, b" 1.2.840.10008.1.1") + _el(0x0100, _us(0x30)) + _el(0x0110, _us(7))
     + _el(0x0800, _us(0x0101)), "not a UID"),
    (_el(0x0002, b"1.2.840.10008.1.1\x00 ") + _el(0x0100, _us(0x30)) + _el(0x0110, _us(7))
     + _el(0x0800, _us(0x0101)), "not a UID"),
    (_el(0x0002, b"1.2.840\x0010008.1.1") + _el(0x0100, _us(0x30)) + _el(0x0110, _us(7))
     + _el(0x0800, _us(0x0101)), "not a UID"),
    (_el(0x0100, _us(0x0040)) + _el(0x0110, _us(7)) + _el(0x0800, _us(0x0101)),
     "unknown command field"),
])
def test_refused(raw: bytes, why: str) -> None:
    with pytest.raises(CommandRefused, match=why):
        parse_command_strict(raw)


@pytest.mark.parametrize("destination", [b" VIEWER1", b"VIEWER1\x00", b"VIE\x00WER1",
                                         b"VIEWER1\\EVIL", b"VIEWER\xe91"])
def test_move_destination_read_two_ways_is_refused(destination: bytes) -> None:
    raw = encode_command(_find(CommandField=0x0021, MoveDestination="X"))  # type: ignore[arg-type]
    raw = raw.replace(_el(0x0600, b"X "), _el(0x0600, destination))
    with pytest.raises(CommandRefused):
        parse_command_strict(raw)


def test_wrong_or_missing_group_length_is_tolerated() -> None:
    """Nobody acts on CommandGroupLength: DCMTK's DIMSE layer and pydicom read the elements to
    the end of the command set whatever it says (dcmdump reads such a set whole), and devices
    have been seen to send it wrong."""
    raw = bytearray(encode_command(_find()))  # type: ignore[arg-type]
    struct.pack_into("<L", raw, 8, 3)
    assert parse_command_strict(bytes(raw)).values["CommandField"] == 0x20
    assert parse_command_strict(bytes(raw[12:])).values["MessageID"] == 7


def test_padding_and_empty_optional_elements_pass() -> None:
    raw = encode_command(_find(CommandField=0x0021, MoveDestination="VIEWER1"))  # type: ignore[arg-type]
    assert parse_command_strict(raw).values["MoveDestination"] == "VIEWER1"  # "VIEWER1 "
    store = (_el(0x0000, struct.pack("<L", 0)) + _el(0x0002, b"1.2.840.10008.5.1.4.1.1.2\x00")
             + _el(0x0100, _us(1)) + _el(0x0110, _us(5)) + _el(0x0700, _us(0))
             + _el(0x0800, _us(0)) + _el(0x1000, b"1.2.3\x00") + _el(0x1030, b"")
             + _el(0x1031, b""))
    cs = parse_command_strict(store)
    assert cs.values["AffectedSOPInstanceUID"] == "1.2.3"
    echo = (_el(0x0002, b"1.2.840.10008.1.1 ") + _el(0x0100, _us(0x30)) + _el(0x0110, _us(7))
            + _el(0x0800, _us(0x0101)))  # a UID padded with a space, as old devices do
    assert parse_command_strict(echo).values["AffectedSOPClassUID"] == "1.2.840.10008.1.1"
    assert "MoveOriginatorApplicationEntityTitle" not in cs.values


def test_request_or_response_expected() -> None:
    rsp = _el(0x0100, _us(0x8030)) + _el(0x0120, _us(1)) + _el(0x0800, _us(0x0101)) + _el(
        0x0900, _us(0))
    assert parse_command_strict(rsp, request=False).values["Status"] == 0
    with pytest.raises(CommandRefused, match="request was expected"):
        parse_command_strict(rsp, request=True)
    with pytest.raises(CommandRefused, match="without Status"):
        parse_command_strict(rsp[:-10])


def test_a_response_error_comment_is_not_judged() -> None:
    """Free text nobody acts on: a backend's control characters in it pass (bounded)."""
    rsp = (_el(0x0100, _us(0x8020)) + _el(0x0120, _us(1)) + _el(0x0800, _us(0x0101))
           + _el(0x0900, _us(0xC000)))
    assert parse_command_strict(rsp + _el(0x0902, b"bad\r\nquery\x00")).values[
        "Status"] == 0xC000
    with pytest.raises(CommandRefused, match="ErrorComment of 66"):
        parse_command_strict(rsp + _el(0x0902, b"x" * 66))
