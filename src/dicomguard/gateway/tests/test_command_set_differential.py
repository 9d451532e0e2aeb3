"""Differential fuzz: whatever command set the gateway's strict reading admits, pydicom and DCMTK
read the same way; every other command set is refused.

A security gateway that judges a command differently from the device behind it is a bypass
(issue 11: a repeated CommandField read last by the gateway, first by DCMTK). Hypothesis builds
command sets from valid requests mutated the ways a hostile peer would (repeated and reordered
elements, lying lengths, odd padding, stray elements, junk). For each one the strict parser
admits, the tags it holds and every value the gateway acts on must equal pydicom's reading
(``read_dataset``, what pynetdicom SCPs use) and DCMTK's (``dcmdump -f -ti``, the same DcmItem
reader DCMTK's DIMSE layer, dcmqrscp, storescp and Orthanc use; all admitted sets go to one
dcmdump call). Bounded for CI: ``max_examples`` (default 400, ``DICOMGUARD_FUZZ_EXAMPLES`` to
explore more, randomly), no deadline, derandomized so that a CI run is repeatable.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.filereader import read_dataset

from dicomguard.dul.command import CommandRefused, CommandSet, encode_command, parse_command_strict
from dicomguard.testing.base import find_binary

EXAMPLES = int(os.environ.get("DICOMGUARD_FUZZ_EXAMPLES", "400"))
FIND = "1.2.840.10008.5.1.4.1.2.1.1"
MOVE = "1.2.840.10008.5.1.4.1.2.1.2"

TEMPLATES: list[dict[str, int | str]] = [
    {"CommandField": 0x0030, "MessageID": 1, "AffectedSOPClassUID": "1.2.840.10008.1.1",
     "CommandDataSetType": 0x0101},
    {"CommandField": 0x0020, "MessageID": 7, "AffectedSOPClassUID": FIND, "Priority": 0,
     "CommandDataSetType": 0x0001},
    {"CommandField": 0x0021, "MessageID": 3, "AffectedSOPClassUID": MOVE, "Priority": 0,
     "MoveDestination": "VIEWER1", "CommandDataSetType": 0x0001},
    {"CommandField": 0x0001, "MessageID": 9, "AffectedSOPClassUID": "1.2.840.10008.5.1.4.1.1.2",
     "AffectedSOPInstanceUID": "1.2.826.0.1.3680043.9.7.1.2", "Priority": 2,
     "CommandDataSetType": 0x0000, "MoveOriginatorApplicationEntityTitle": "VIEWER1",
     "MoveOriginatorMessageID": 3},
    {"CommandField": 0x0FFF, "MessageIDBeingRespondedTo": 7, "CommandDataSetType": 0x0101},
    {"CommandField": 0x8020, "MessageIDBeingRespondedTo": 7, "AffectedSOPClassUID": FIND,
     "Status": 0xFF00, "CommandDataSetType": 0x0001},
]
#: elements a mutation may add or repeat: the ones the gateway acts on, a few it does not,
#: and numbers outside the dictionary
ELEMENTS = [0x0000, 0x0001, 0x0002, 0x0003, 0x0010, 0x0100, 0x0106, 0x0110, 0x0120, 0x0600,
            0x0700, 0x0800, 0x0900, 0x0901, 0x0902, 0x1000, 0x1030, 0x1031, 0x5170]
_HEAD = struct.Struct("<HHL")

Element = tuple[int, int, bytes]  # (group, element, value); the length is the value's


def _elements(raw: bytes) -> list[Element]:
    out, pos = [], 0
    while pos + 8 <= len(raw):
        group, element, length = _HEAD.unpack_from(raw, pos)
        out.append((group, element, raw[pos + 8 : pos + 8 + length]))
        pos += 8 + length
    return out


def _join(elements: list[Element]) -> bytes:
    return b"".join(_HEAD.pack(g, e, len(v)) + v for g, e, v in elements)


values = st.one_of(
    st.integers(0, 0xFFFF).map(lambda n: struct.pack("<H", n)),
    st.integers(0, 0xFFFFFFFF).map(lambda n: struct.pack("<L", n)),
    st.sampled_from([b"1.2.840.10008.1.1\x00", b"1.2.840.10008.5.1.4.1.2.1.1\x00", FIND.encode(),
                     b"1.2.840.10008.5.1.4.1.2.1.2\x00", b"EVIL", b"EVIL            ",
                     b"VIEWER1 ", b" VIEWER1", b"VIEWER1\x00", b"VIE\x00WER1", b"VIEWER1\\EVIL",
                     b"1.2.3 ", b"1.2.3\x00\x00", b"", b"\x00", b" ", b"\xff\xfe"]),
    st.binary(max_size=24),
)

mutation = st.one_of(
    st.tuples(st.just("repeat"), st.integers(0, 15), values),
    st.tuples(st.just("swap"), st.integers(0, 15), st.integers(0, 15)),
    st.tuples(st.just("value"), st.integers(0, 15), values),
    st.tuples(st.just("add"), st.sampled_from(ELEMENTS), values),
    st.tuples(st.just("drop"), st.integers(0, 15), st.none()),
    st.tuples(st.just("group"), st.integers(0, 15), st.sampled_from([0x0002, 0x0008, 0xFFFE])),
    st.tuples(st.just("length"), st.integers(0, 15), st.integers(-3, 3)),
    st.tuples(st.just("tail"), st.none(), st.binary(max_size=10)),
)


@st.composite
def command_sets(draw: st.DrawFn) -> bytes:
    elements = _elements(encode_command(dict(draw(st.sampled_from(TEMPLATES)))))
    tail = b""
    lie: tuple[int, int] | None = None
    for kind, a, b in draw(st.lists(mutation, max_size=4)):
        n = len(elements)
        if kind == "repeat" and n:
            g, e, _ = elements[a % n]
            elements.insert(a % n + 1, (g, e, b))
        elif kind == "swap" and n:
            elements[a % n], elements[b % n] = elements[b % n], elements[a % n]
        elif kind == "value" and n:
            g, e, _ = elements[a % n]
            elements[a % n] = (g, e, b)
        elif kind == "add":
            elements.append((0, a, b))
            elements.sort(key=lambda x: (x[0], x[1]))
        elif kind == "drop" and n:
            del elements[a % n]
        elif kind == "group" and n:
            _, e, v = elements[a % n]
            elements[a % n] = (b, e, v)
        elif kind == "length" and n:
            lie = (a % n, b)
        elif kind == "tail":
            tail = b
    raw = bytearray(_join(elements))
    if lie is not None and elements:
        index, delta = lie[0] % len(elements), lie[1]
        pos = sum(8 + len(v) for _, _, v in elements[:index])
        (length,) = struct.unpack_from("<L", raw, pos + 4)
        struct.pack_into("<L", raw, pos + 4, max(0, length + delta))
    return bytes(raw) + tail


def _norm(value: object) -> object:
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    if isinstance(value, str):
        return value.rstrip("\x00 ")
    return value


def _pydicom_reading(raw: bytes) -> dict[int, object]:
    ds = read_dataset(BytesIO(raw), is_implicit_VR=True, is_little_endian=True)
    return {int(elem.tag): _norm(elem.value) for elem in ds}


def _ours(cs: CommandSet) -> dict[int, object]:
    from pydicom.datadict import tag_for_keyword

    return {int(tag_for_keyword(k) or 0): v for k, v in cs.values.items()}


_LINE = re.compile(r"^\((\w{4}),(\w{4})\) (\w\w) (.*?)\s+#\s*\d+,")


def _dcmdump_readings(raws: list[bytes], tmp: Path) -> list[dict[int, object] | None]:
    """One dcmdump call over all files: per file, tag -> value (None when DCMTK failed)."""
    paths = []
    for i, raw in enumerate(raws):
        path = tmp / f"c{i:05d}.bin"
        path.write_bytes(raw)
        paths.append(str(path))
    done = subprocess.run([find_binary("dcmdump") or "dcmdump", "-q", "-f", "-ti", "+L", "+F",
                           "-Un", *paths],
                          capture_output=True, text=True, timeout=120, check=False)
    readings: dict[str, dict[int, object] | None] = {}
    current: dict[int, object] | None = None
    for line in done.stdout.splitlines():
        header = re.match(r"^# dcmdump \(\d+/\d+\): (.*)$", line)
        if header:
            current = readings[header.group(1)] = {}
            continue
        m = _LINE.match(line)
        if m is None or current is None:
            continue
        tag = int(m.group(1) + m.group(2), 16)
        vr, text = m.group(3), m.group(4)
        value: object
        if text.startswith("(no value"):
            value = ""
        elif text.startswith("["):
            value = _norm(text[1 : text.rindex("]")])
        elif vr in ("US", "UL"):
            value = int(text)
        else:
            value = text
        current[tag] = value
    out = []
    for path in paths:
        reading = readings.get(path)
        out.append(reading if reading else None)
    return out


def test_strict_reading_equals_pydicom_and_dcmtk(tmp_path: Path) -> None:
    if find_binary("dcmdump") is None:
        pytest.skip("dcmdump not installed (apt-get install dcmtk)")
    admitted: list[tuple[bytes, dict[int, object]]] = []
    refused = 0

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              derandomize="DICOMGUARD_FUZZ_EXAMPLES" not in os.environ,
              suppress_health_check=[HealthCheck.too_slow])
    @given(command_sets())
    def check(raw: bytes) -> None:
        nonlocal refused
        try:
            cs = parse_command_strict(raw)
        except CommandRefused:
            refused += 1
            return
        ours = _ours(cs)
        theirs = _pydicom_reading(raw)
        tags = {(g << 16) | e for g, e, _ in _elements(raw)}
        assert set(theirs) == tags, raw.hex()
        for tag, value in ours.items():
            assert theirs[tag] == value, (raw.hex(), hex(tag))
        admitted.append((raw, ours))

    check()
    print(f"{len(admitted)} admitted, {refused} refused")
    assert len(admitted) >= 30 and refused >= 30, (len(admitted), refused)
    readings = _dcmdump_readings([raw for raw, _ in admitted], tmp_path)
    for (raw, ours), dcmtk in zip(admitted, readings, strict=True):
        assert dcmtk is not None, f"DCMTK could not read {raw.hex()}"
        assert set(dcmtk) == {(g << 16) | e for g, e, _ in _elements(raw)}, raw.hex()
        for tag, value in ours.items():
            assert dcmtk[tag] == value, (raw.hex(), hex(tag), dcmtk[tag], value)
