"""A-ASSOCIATE-AC read straight from its bytes, for the scanner's hot path.

The scanner reads one A-ASSOCIATE-AC per DICOM endpoint. Through pynetdicom
(``A_ASSOCIATE_AC.decode`` -> ``to_primitive`` -> :func:`.acse.decode_accept`) that builds an
item object per sub-item and validates every UID through pydicom's regular expressions twice:
about 0.35 ms of CPU per AC on the 2-core benchmark VM, a quarter of all the CPU a discovery scan
spent per association (``bench/bench_scan.py``, all-DICOM workload). Here the PDU is walked once
and the same :class:`.acse.Accept` is built directly: about 20 µs.

Only *clean* ACs take this path: every length adds up, the items are the ones PS3.8 9.3.3 lists
(application context, presentation context results, user information with maximum length,
implementation class UID, implementation version name), every UID is digits and dots, the
version name is printable ASCII. Anything else - an unknown sub-item, a role selection item, a
user identity answer, an even context ID, a UID with letters, a truncated item - makes
:func:`read_accept` return None and the caller decodes with pynetdicom as before, so hostile and
unusual peers get exactly the old behaviour (and its errors). ``test_accept_bytes.py`` checks
that the two readers agree on every AC the fast path accepts.

Layout: PS3.8 9.3.3 (A-ASSOCIATE-AC), 9.3.3.2 (presentation context item), PS3.7 D.3.3
(user information sub-items).
"""

from __future__ import annotations

import functools
import struct

from .acse import Accept, AssociateRequest
from .codes import (
    A_ASSOCIATE_AC,
    CONTEXT_ACCEPTANCE,
    CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED,
)
from .codes import ITEM_APPLICATION_CONTEXT as APPLICATION_CONTEXT
from .codes import ITEM_PRESENTATION_CONTEXT_AC as CONTEXT_AC
from .codes import ITEM_TRANSFER_SYNTAX as TRANSFER_SYNTAX
from .codes import ITEM_USER_INFORMATION as USER_INFORMATION
from .codes import SUBITEM_IMPLEMENTATION_CLASS_UID as IMPLEMENTATION_CLASS_UID
from .codes import SUBITEM_IMPLEMENTATION_VERSION_NAME as IMPLEMENTATION_VERSION_NAME
from .codes import SUBITEM_MAXIMUM_LENGTH as MAXIMUM_LENGTH

_FIXED = 74  # header (6) + version (2) + reserved (2) + called (16) + calling (16) + reserved (32)
_HEADER = struct.Struct(">BBL")
_ITEM = struct.Struct(">BBH")
_U32 = struct.Struct(">L")
_UID_CHARS = b"0123456789."
#: AE-like characters pynetdicom accepts in a version name: printable ASCII but backslash
_VERSION_CHARS = bytes(c for c in range(0x20, 0x7F) if c != 0x5C)


def _clean_uid(value: bytes) -> str | None:
    """The UID pynetdicom would read from a sub-item value, if it is plainly one (else None).

    pynetdicom drops one trailing NUL pad; a value of digits and dots, 1 to 64 characters, is
    then read unchanged by pydicom.
    """
    if value[-1:] == b"\x00":
        value = value[:-1]
    if not value or len(value) > 64 or value.translate(None, _UID_CHARS):
        return None
    return value.decode("ascii")


@functools.lru_cache(maxsize=64)
def _context_ids(abstract_syntaxes: tuple[str, ...]) -> dict[int, str]:
    return {2 * i + 1: uid for i, uid in enumerate(abstract_syntaxes)}


def read_accept(data: bytes, request: AssociateRequest) -> Accept | None:
    """The :class:`Accept` for a complete A-ASSOCIATE-AC PDU (header included), or None.

    None means "not clean enough for this reader": decode with pynetdicom instead
    (:func:`.acse.decode_accept`), which gives the same record for every AC this reader
    accepts. Never raises for any input.
    """
    n = len(data)
    if n < _FIXED or data[0] != A_ASSOCIATE_AC or _U32.unpack_from(data, 2)[0] + 6 != n:
        return None
    responding_raw = data[10:26]
    if not responding_raw.isascii():
        return None
    proposed = _context_ids(request.abstract_syntaxes)
    accepted: dict[int, tuple[str, str]] = {}
    results: dict[str, int] = {}
    max_pdu: int | None = None
    icu: str | None = None
    ivn: str | None = None
    seen_app = seen_user = False
    pos = _FIXED
    unpack_item = _ITEM.unpack_from
    while pos < n:
        if pos + 4 > n:
            return None
        kind, _, length = unpack_item(data, pos)
        start = pos + 4
        end = start + length
        if end > n:
            return None
        pos = end
        if kind == CONTEXT_AC:
            if length < 4:
                return None
            cid, code = data[start], data[start + 2]
            if cid % 2 == 0 or code > CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED:
                return None
            ts: str | None = None
            sub = start + 4
            if sub < end:  # at most one transfer syntax sub-item
                if sub + 4 > end:
                    return None
                s_kind, _, s_len = unpack_item(data, sub)
                if s_kind != TRANSFER_SYNTAX or sub + 4 + s_len != end:
                    return None
                value = data[sub + 4 : end]
                ts = _clean_uid(value)
                if ts is None and (code == CONTEXT_ACCEPTANCE or value.strip(b"\x00")):
                    return None  # a rejected context may carry an empty transfer syntax
            if code == CONTEXT_ACCEPTANCE and ts is None:
                return None
            uid = proposed.get(cid)
            if uid is None:
                continue  # a context we never proposed: ignored, as decode_accept does
            results[uid] = code
            if code == CONTEXT_ACCEPTANCE:
                accepted[cid] = (uid, ts)  # type: ignore[assignment]
        elif kind == APPLICATION_CONTEXT:
            if seen_app or _clean_uid(data[start:end]) is None:
                return None
            seen_app = True
        elif kind == USER_INFORMATION:
            if seen_user:
                return None
            seen_user = True
            sub = start
            while sub < end:
                if sub + 4 > end:
                    return None
                s_kind, _, s_len = unpack_item(data, sub)
                s_start = sub + 4
                s_end = s_start + s_len
                if s_end > end:
                    return None
                sub = s_end
                value = data[s_start:s_end]
                if s_kind == MAXIMUM_LENGTH:
                    if s_len != 4:
                        return None
                    max_pdu = _U32.unpack(value)[0]
                elif s_kind == IMPLEMENTATION_CLASS_UID:
                    icu = _clean_uid(value)
                    if icu is None:
                        return None
                elif s_kind == IMPLEMENTATION_VERSION_NAME:
                    if (
                        not 1 <= s_len <= 16
                        or value.translate(None, _VERSION_CHARS)
                        or not value.strip(b" ")
                    ):
                        return None
                    ivn = value.decode("ascii").strip()
                else:
                    return None  # role selection, extended negotiation, user identity...
        else:
            return None
    if not seen_app:
        return None
    return Accept(
        implementation_class_uid=icu,
        implementation_version_name=ivn,
        max_pdu=max_pdu,
        accepted=accepted,
        results=results,
        user_identity_response=None,
        responding_aet=responding_raw.decode("ascii").strip(),
    )
