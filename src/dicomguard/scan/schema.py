"""The JSON Schema of a scan record, generated from the record's dataclasses (scan.result).

zgrab2 checks its output against a schema per module; here one schema (JSON Schema draft
2020-12) covers the JSON Lines record of ``dicomguard scan``: every field of
:class:`~dicomguard.scan.result.EndpointResult` with its type and its ``#:`` comment as the
description, each typed part (:class:`~dicomguard.scan.result.Part`) as a ``$defs`` entry, and
the field of every registered probe (``assess.PROBES``) that adds one, and the optional
``--geoip`` fields (:class:`~dicomguard.scan.result.GeoIpFields`). The committed copy is
``docs/scan-record.schema.json``; ``scan/tests/test_record_schema.py`` fails when it differs
from what this module generates, and validates the records of real scans against it.

Write it: ``python -m dicomguard.scan.schema docs/scan-record.schema.json`` (``-``: stdout).

Hand-written rather than a library: the only generators of JSON Schema from dataclasses are
pydantic's (a new dependency of ~6 MB for one file at build time) and small packages that do
not read per-field comments; this is ~100 lines over ``typing.get_type_hints``.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import types
import typing
from collections.abc import Iterable
from typing import Any

from .result import EndpointResult, GeoIpFields, Part

SCHEMA_ID = "https://dicomguard.invalid/schemas/scan-record.schema.json"
_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:")
_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def field_docs(cls: type) -> dict[str, str]:
    """The ``#:`` comment block above each field of ``cls`` (or the field's trailing ``#``
    comment), by field name."""
    docs: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines():
        text = line.strip()
        if text.startswith("#:"):
            pending.append(text[2:].strip())
            continue
        match = _FIELD_LINE.match(line)
        if match and not text.startswith(("def ", "@", "class ", "#")):
            name = match.group(1)
            if pending:
                docs[name] = " ".join(pending)
            elif "  # " in line:
                docs[name] = line.split("  # ", 1)[1].strip()
        pending = []
    return docs


class _Builder:
    def __init__(self) -> None:
        self.defs: dict[str, dict[str, Any]] = {}

    def of_type(self, tp: Any) -> dict[str, Any]:
        if tp is Any:
            return {}
        if tp in _SIMPLE:
            return {"type": _SIMPLE[tp]}
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            if tp.__name__ not in self.defs:
                self.defs[tp.__name__] = {}  # placeholder against recursion
                self.defs[tp.__name__] = self.of_dataclass(tp)
            return {"$ref": f"#/$defs/{tp.__name__}"}
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (types.UnionType, typing.Union):
            if all(a in _SIMPLE for a in args):
                return {"type": [_SIMPLE[a] for a in args]}
            return {"anyOf": [self.of_type(a) for a in args]}
        if origin is dict:
            return {"type": "object", "additionalProperties": self.of_type(args[1])}
        if origin is list:
            return {"type": "array", "items": self.of_type(args[0])}
        if origin is tuple:
            return {"type": "array", "items": self.of_type(args[0])}
        raise TypeError(f"no JSON Schema for {tp!r}")

    def of_dataclass(self, cls: type, extra: dict[str, dict[str, Any]] | None = None
                     ) -> dict[str, Any]:
        hints = typing.get_type_hints(cls)
        docs = field_docs(cls)
        props: dict[str, Any] = {}
        required: list[str] = []
        for f in dataclasses.fields(cls):
            shape = f.metadata.get("schema")
            if shape is not None:  # a dict at runtime, shaped by a dataclass
                schema = {"anyOf": [self.of_type(shape), {"type": "null"}]}
            else:
                schema = self.of_type(hints[f.name])
            if f.metadata.get("keys"):  # an object with these keys, always
                schema = {**schema, "required": list(f.metadata["keys"])}
            props[f.name] = {"description": docs.get(f.name, ""), **schema}
            if not f.metadata.get("omit_none"):
                required.append(f.name)
        props.update(extra or {})
        out: dict[str, Any] = {"type": "object"}
        if cls.__doc__:
            out["description"] = " ".join(cls.__doc__.split())
        out["properties"] = props
        out["required"] = required
        out["additionalProperties"] = bool(issubclass(cls, Part) and cls.OPEN)
        return out


def record_schema(probes: Iterable[Any] | None = None) -> dict[str, Any]:
    """The JSON Schema of one scan record, with the fields ``probes`` (default: the
    registered ``assess.PROBES``) add beside :class:`EndpointResult`'s."""
    if probes is None:
        from .assess import PROBES

        probes = PROBES
    builder = _Builder()
    own = {f.name for f in dataclasses.fields(EndpointResult)}
    extra: dict[str, dict[str, Any]] = {}
    for probe in probes:
        if probe.field is not None and probe.field not in own:
            doc = " ".join((probe.__doc__ or probe.name).split())
            extra[probe.field] = {
                "description": f"probe {probe.name!r}: {doc}",
                "anyOf": [builder.of_type(probe.result_type), {"type": "null"}],
            }
    geo = builder.of_dataclass(GeoIpFields)
    extra.update(geo["properties"])
    record = builder.of_dataclass(EndpointResult, extra)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "dicomguard scan record",
        **record,
        "$defs": dict(sorted(builder.defs.items())),
    }


def render(schema: dict[str, Any] | None = None) -> str:
    """The schema as the committed file holds it (2-space indent, trailing newline)."""
    return json.dumps(schema if schema is not None else record_schema(), indent=2) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m dicomguard.scan.schema FILE|-", file=sys.stderr)
        return 2
    text = render()
    if args[0] == "-":
        sys.stdout.write(text)
    else:
        with open(args[0], "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
