"""``dicomguard report --format parquet``: one row per stored endpoint, nested facts flattened.

For analysis at survey scale (pandas, polars, DuckDB, Spark read it directly). Flattening:

* nested objects become columns joined with ``_``: ``called_aet_enforced``,
  ``exposure_patients``, ``services_find_study_root``, ``tls_details_certificate_not_after``...
* lists of scalars stay lists (``list<string>``, ``list<int64>``);
* ``findings`` becomes ``finding_ids`` (list of ids), ``worst_severity`` and ``findings_json``;
  other lists of objects are kept as JSON text (``<name>_json``);
* a column whose values have mixed types across rows is written as JSON text.

Leading columns are fixed and always present (null when a record lacks them): ``scan_id``,
``measured_at``, ``host``, ``port``, ``state``, ``dicom``, ``tls``, ``country``, ``asn``,
``as_org``; then the rest in first-seen order. Schema metadata carries the dicomguard version,
the scan's start time and its options. No patient identifier is in a record, so none is here.
"""

from __future__ import annotations

import io
import json
from typing import Any

from ..store.read import StoredScan

__all__ = ["LEADING_COLUMNS", "flatten_record", "render_parquet"]

LEADING_COLUMNS = (
    "scan_id",
    "measured_at",
    "host",
    "port",
    "state",
    "dicom",
    "tls",
    "country",
    "asn",
    "as_org",
    "product",
    "product_version",
    "worst_severity",
)

_SEVERITY = ("info", "low", "medium", "high", "critical")


def _scalar(v: Any) -> bool:
    return v is None or isinstance(v, str | int | float | bool)


def flatten_record(rec: dict[str, Any]) -> dict[str, Any]:
    """One contract record -> a flat dict of column name -> scalar, list of scalars or JSON."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if not value and prefix:
                out[prefix] = None
            for k, v in value.items():
                walk(f"{prefix}_{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            if all(_scalar(v) for v in value):
                out[prefix] = value
            else:
                out[f"{prefix}_json"] = json.dumps(value, sort_keys=True)
        else:
            out[prefix] = value

    findings = rec.get("findings") or []
    rest = {k: v for k, v in rec.items() if k != "findings"}
    walk("", rest)
    out["finding_ids"] = [str(f.get("id")) for f in findings if isinstance(f, dict)]
    severities = [f.get("severity") for f in findings if isinstance(f, dict)]
    ranked = [s for s in severities if s in _SEVERITY]
    out["worst_severity"] = max(ranked, key=_SEVERITY.index) if ranked else None
    out["findings_json"] = json.dumps(findings, sort_keys=True)
    return out


def _column(values: list[Any]) -> Any:
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array(
            [None if v is None else v if isinstance(v, str) else json.dumps(v) for v in values],
            type=pa.string(),
        )


def render_parquet(scan: StoredScan) -> bytes:
    """The Parquet file (bytes) of every stored endpoint of ``scan``; see the module doc."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [flatten_record(r) for r in scan.records]
    columns: dict[str, None] = dict.fromkeys(LEADING_COLUMNS)
    for row in rows:
        columns.update(dict.fromkeys(row))
    arrays = [_column([row.get(name) for row in rows]) for name in columns]
    from .. import __version__

    meta = {
        "dicomguard.version": __version__,
        "dicomguard.started_at": str(scan.meta.get("started_at") or ""),
        "dicomguard.options": json.dumps(scan.meta.get("options") or {}, sort_keys=True),
    }
    table = pa.Table.from_arrays(arrays, names=list(columns)).replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    return buf.getvalue()
