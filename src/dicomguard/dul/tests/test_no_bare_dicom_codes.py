"""DICOM's codes are spelled by name outside ``dul/codes.py`` (issue 16, step 1).

An AST scan of every module of the package (``tests`` folders, ``conftest.py`` and
``dul/codes.py`` itself excluded) for the shapes a bare code takes, each narrow enough to flag
only DICOM codes:

``reject-abort``
    an int literal given to what builds or reads an A-ASSOCIATE-RJ or an A-ABORT: ``Reject``,
    ``Refusal``, ``abort_pdu``, ``provider_abort_pdu``, ``reject_pdu``, ``PeerAborted``,
    ``RelayAbort``, ``_Abort`` (``Refusal(2, 3, 2, ...)``, ``abort_pdu(2, 6)``); an int
    compared with the ``result``/``source``/``reason`` of a reject or abort (``rej.source == 1``);
    a module constant named ``REASON_``/``SOURCE_``/``RESULT_``/``RJ_``/``REJECT_``/``ABORT_``
    bound to an int or a tuple of ints (``RJ_LOCAL_LIMIT = (2, 3, 2)``).
``status``
    an int literal compared with something named ``status`` (``status == 0xC000``,
    ``0xB000 <= status <= 0xBFFF``, ``status in (0, 1)``; a decimal from 100 to 599 is an HTTP
    status, as in scan/web.py, and not flagged), or given as the ``Status`` of a
    command set (``cs.Status = 0xFF00``, ``{"Status": 0}``); and, anywhere, a hexadecimal
    literal whose value is a status ``codes.py`` names in the ranges no other field of
    dicomguard uses (0x0122, 0x0124, 0xA700-0xFF01: ``yield 0xFF00, ds``, ``SUCCESS = 0xC000``).
``command-field``
    an int literal as a ``CommandField``, ``CommandDataSetType`` or ``Priority`` (attribute
    assignment, dict key string, keyword argument), compared with something named ``field``
    or ``command_field``, or or-ed/and-ed into one (``field_ | 0x8000``); a dict display keyed
    only by hexadecimal command-field values, two or more (``{0x0001: "STORE", 0x0010: "GET"}``;
    command.py's table keyed by element numbers, which overlap a few N- command fields, is not).

``identity-type``
    an int compared with a user identity type (a name or attribute ``kind``,
    ``user_identity_type``), ``kind == 2``.
``pdu-type``
    an int compared with something named ``pdu_type``, or packed as the first byte of a PDU
    (``struct.pack(">BBL", 0x04, 0, n)``).
``pdv-header``
    an int and-ed/or-ed with a PDV message control header (a name ``header``/``hdr``:
    ``header & 0x02``), or a header assembled from literals
    (``header = (1 if is_command else 0) | (2 if last else 0)``): ``PDV_COMMAND``, ``PDV_LAST``.
``uid``
    a string or bytes literal (trailing NUL padding ignored) that is a UID of the DICOM
    registry (pydicom's UID dictionary, root 1.2.840.10008), outside docstrings: import it
    from :mod:`pydicom.uid` or :mod:`pynetdicom.sop_class` instead.

Not flagged, on purpose: data element tags and lengths, bit masks of other fields, item types
inside the byte-level readers when named locally from ``codes`` (they are), and any code in a
comment or docstring (where a reader wants the number beside the name).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydicom._uid_dict import UID_dictionary

from dicomguard.dul import codes

PACKAGE = Path(__file__).resolve().parents[2]
CODES = PACKAGE / "dul" / "codes.py"

_REJECT_ABORT_CALLS = {
    "Reject", "Refusal", "abort_pdu", "provider_abort_pdu", "reject_pdu", "PeerAborted",
    "RelayAbort", "_Abort",
}
_REJECT_ABORT_FIELDS = {"result", "source", "reason", "reason_diagnostic", "result_source",
                        "diagnostic"}
_REJECT_ABORT_HOLDERS = ("rej", "refus", "abort", "rj")
_REJECT_ABORT_NAMES = ("REASON_", "SOURCE_", "RESULT_", "RJ_", "REJECT_", "ABORT_")
_COMMAND_KEYWORDS = {"CommandField", "CommandDataSetType", "Priority"}
_COMMAND_FIELDS = {
    value for name, value in vars(codes).items()
    if name.startswith(("C_", "N_")) and name.endswith(("_RQ", "_RSP")) and isinstance(value, int)
}
#: statuses named in codes.py whose values no other field of dicomguard takes in hex
_DISTINCT_STATUSES = {
    value for name, value in vars(codes).items()
    if name.startswith("STATUS_") and isinstance(value, int)
    and (value >= 0xA000 or value in (codes.STATUS_SOP_CLASS_NOT_SUPPORTED,
                                      codes.STATUS_NOT_AUTHORIZED))
}
_PDV_HEADER_NAMES = ("header", "hdr")
_PDU_TYPES = set(codes.PDU_NAMES)
_DICOM_UIDS = {uid for uid in UID_dictionary if uid.startswith("1.2.840.10008.")}


def _name(node: ast.AST) -> str:
    """The last identifier of a Name/Attribute/Call/Subscript chain ('' for anything else)."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Call):
        return _name(node.func)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    return ""


def _ints(node: ast.AST) -> list[ast.Constant]:
    """Int literals of an operand: itself, or the items of a tuple/list/set display."""
    items = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    if isinstance(node, ast.Call) and _name(node.func) in ("range", "frozenset", "set", "tuple"):
        items = [a for arg in node.args for a in _ints(arg)]  # type: ignore[misc]
    out = []
    for item in items:
        if isinstance(item, ast.UnaryOp) and isinstance(item.op, ast.USub):
            item = item.operand
        if (isinstance(item, ast.Constant) and isinstance(item.value, int)
                and not isinstance(item.value, bool)):
            out.append(item)
    return out


def _is_hex(node: ast.Constant, source: str) -> bool:
    text = ast.get_source_segment(source, node) or ""
    return text.lower().startswith("0x")


def _holds_reject_or_abort_field(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Attribute) and sub.attr in _REJECT_ABORT_FIELDS:
            base = _name(sub.value).lower()
            if any(h in base for h in _REJECT_ABORT_HOLDERS):
                return True
    return False


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def bare_codes(source: str, filename: str = "<string>") -> list[str]:
    """``"line: rule: what"`` for every bare DICOM code in ``source`` (see the module docstring)."""
    tree = ast.parse(source, filename)
    found: list[str] = []

    def flag(node: ast.AST, rule: str) -> None:
        found.append(f"{getattr(node, 'lineno', 0)}: {rule}: "
                     f"{ast.get_source_segment(source, node) or ast.dump(node)[:60]}")

    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            callee = _name(node.func)
            if (callee == "pack" and len(node.args) >= 2 and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).startswith(">B") and _ints(node.args[1])
                    and _ints(node.args[1])[0].value in _PDU_TYPES):
                flag(node, "pdu-type")
            if callee in _REJECT_ABORT_CALLS:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    if _ints(arg) and not isinstance(arg, ast.Tuple | ast.List | ast.Set):
                        flag(node, "reject-abort")
                        break
            for kw in node.keywords:
                if kw.arg in _COMMAND_KEYWORDS and _ints(kw.value):
                    flag(node, "command-field")
                if kw.arg == "Status" and _ints(kw.value):
                    flag(node, "status")
        elif isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            literal = [c for op in operands for c in _ints(op)]
            if not literal:
                continue
            names = {_name(op).lower() for op in operands}
            if any("status" in n for n in names):
                if any(_is_hex(c, source) or not 100 <= c.value < 600 for c in literal):
                    flag(node, "status")
            elif any(n in ("field", "field_", "command_field", "commandfield") for n in names):
                flag(node, "command-field")
            elif any(n in ("kind", "user_identity_type", "identity_type") for n in names):
                flag(node, "identity-type")
            elif any(n == "pdu_type" for n in names):
                flag(node, "pdu-type")
            elif any(_holds_reject_or_abort_field(op) for op in operands):
                flag(node, "reject-abort")
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr | ast.BitAnd):
            sides = (node.left, node.right)
            if any(_name(s).lower() in ("field", "field_", "command_field", "commandfield")
                   for s in sides) and any(_ints(s) for s in sides):
                flag(node, "command-field")
            if any(_name(s).lower() in _PDV_HEADER_NAMES for s in sides) and any(
                _ints(s) for s in sides
            ):
                flag(node, "pdv-header")
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if (isinstance(target, ast.Name) and target.id.lower() in _PDV_HEADER_NAMES
                        and isinstance(node.value, ast.BinOp)
                        and isinstance(node.value.op, ast.BitOr)
                        and any(isinstance(side, ast.IfExp) and _ints(side.body)
                                and side.body.value  # type: ignore[attr-defined]
                                for side in (node.value.left, node.value.right))):
                    flag(node, "pdv-header")
                if (isinstance(target, ast.Name) and target.id.startswith(_REJECT_ABORT_NAMES)
                        and _ints(node.value)):
                    flag(node, "reject-abort")
                if isinstance(target, ast.Attribute) and _ints(node.value):
                    if target.attr in _COMMAND_KEYWORDS:
                        flag(node, "command-field")
                    elif target.attr == "Status":
                        flag(node, "status")
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None]
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and isinstance(value, ast.Constant) and (
                    _ints(value)
                ):
                    if key.value in _COMMAND_KEYWORDS:
                        flag(value, "command-field")
                    elif key.value == "Status":
                        flag(value, "status")
            int_keys = [k for k in keys if isinstance(k, ast.Constant)
                        and isinstance(k.value, int) and _is_hex(k, source)]
            if len(int_keys) >= 2 and all(k.value in _COMMAND_FIELDS for k in int_keys):
                flag(node, "command-field")
        if (isinstance(node, ast.Constant) and isinstance(node.value, int)
                and node.value in _DISTINCT_STATUSES and _is_hex(node, source)):
            flag(node, "status")
        if (isinstance(node, ast.Constant) and isinstance(node.value, str)
                and id(node) not in docstrings and node.value in _DICOM_UIDS):
            flag(node, "uid")
        if (isinstance(node, ast.Constant) and isinstance(node.value, bytes)
                and node.value.rstrip(b"\0").decode("latin-1") in _DICOM_UIDS):
            flag(node, "uid")  # a hand-built PDU's UID bytes (lab/hostile.py's AC items)
    return sorted(set(found), key=lambda f: int(f.split(":", 1)[0]))


def _rules(source: str) -> set[str]:
    return {finding.split(": ")[1] for finding in bare_codes(source)}


def _modules() -> list[Path]:
    return sorted(
        p for p in PACKAGE.rglob("*.py")
        if "tests" not in p.relative_to(PACKAGE).parts
        and p.name != "conftest.py" and p != CODES
    )


def test_no_bare_dicom_code_outside_codes_py() -> None:
    report = [
        f"{path.relative_to(PACKAGE.parent)}:{finding}"
        for path in _modules()
        for finding in bare_codes(path.read_text(encoding="utf-8"), str(path))
    ]
    assert not report, "bare DICOM codes (name them in dul/codes.py):\n" + "\n".join(report)


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ('Refusal(2, 3, 2, "too many associations", "limit")', "reject-abort"),
        ("P.abort_pdu(2, 6)", "reject-abort"),
        ('raise RelayAbort("bad command set", 6)', "reject-abort"),
        ("ok = rej.source == 1", "reject-abort"),
        ("RJ_LOCAL_LIMIT = (2, 3, 2)", "reject-abort"),
        ("REASON_CALLED_AET = 7", "reject-abort"),
        ("ok = status == 0xC000", "status"),
        ("ok = status in (0, 1) or 0xB000 <= status <= 0xBFFF", "status"),
        ("ok = reply.status not in (0xFF00, 0xFF01)", "status"),
        ("cs.Status = 0", "status"),
        ("x = {'Status': 0xFE00}", "status"),
        ("def f():\n    yield 0xFF00, None", "status"),
        ("UNABLE = 0xC000", "status"),
        ("cs.CommandField = 0x8030", "command-field"),
        ("x = {'CommandDataSetType': 0x0101}", "command-field"),
        ("ok = field_ & 0x8000", "command-field"),
        ("ok = command_field == 0x0020", "command-field"),
        ("OPS = {0x0001: 'STORE', 0x0010: 'GET'}", "command-field"),
        ("ok = kind == 2", "identity-type"),
        ("ok = raw.pdu_type == 0x07", "pdu-type"),
        ('pdu = struct.pack(">BBL", 0x04, 0, len(item)) + item', "pdu-type"),
        ("ok = header & 0x02", "pdv-header"),
        ("header = (1 if is_command else 0) | (2 if last else 0)", "pdv-header"),
        ("VERIFICATION = '1.2.840.10008.1.1'", "uid"),
        ("ITEM = b'\\x10\\x00\\x00\\x15' + b'1.2.840.10008.3.1.1.1'", "uid"),
        ("TS = b'1.2.840.10008.1.2\\x00'", "uid"),
    ],
)
def test_each_shape_of_a_bare_code_is_flagged(source: str, rule: str) -> None:
    assert _rules(source) == {rule}


@pytest.mark.parametrize(
    "source",
    [
        "ok = status == STATUS_SUCCESS",
        "ok = len(parts) == 1",
        "tag = peek.tag(0x0020, 0x000D)",
        "ok = flags & 0x02",
        "ok = hdr & PDV_LAST",
        'pdu = struct.pack(">BBL", P_DATA_TF, 0, n)',
        "header = _TCP.pack(1, 0, 2)",
        "SUITES = {0xC02F, 0xC030}",  # TLS cipher suites, not statuses (decimal-free hex)
        "x = {'MessageID': 1}",
        "ok = exc.kind == 'timeout'",
        "ok = resp.status == 200 or resp.status in (401, 403)",  # HTTP (scan/web.py)
        "FIELDS = {0x0002: 'AffectedSOPClassUID', 0x0100: 'CommandField'}",  # element numbers
        "IMPLEMENTATION = '2.25.305828488182648779632024563416215404731'",
        'def f():\n    """Answers 0xC000 and 1.2.840.10008.1.1 in prose."""',
        "ok = rej == REJECT_LOCAL_LIMIT",
        "P.abort_pdu(AbortSource.SERVICE_USER)",
    ],
)
def test_unrelated_numbers_are_not_flagged(source: str) -> None:
    assert bare_codes(source) == []
