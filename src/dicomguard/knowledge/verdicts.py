"""The verdicts of an endpoint record and the three ways one can be reached (output contract).

Every record of a scan carries a ``confidence`` map: verdict key -> level. The scanner decides
the levels (``scan/confidence.py``); the reports print them (``report/tabular.py``: one
``confidence_<verdict>`` CSV column per key, in this order). Both read the names from here so
that neither imports the other. Documented in docs/scan-output.md; keys are only ever added.
"""

from __future__ import annotations

__all__ = ["INFERRED", "LEVELS", "OBSERVED", "UNKNOWN", "VERDICTS"]

#: the verdict restates what the server did on the wire (an AC, an RJ with a named reason)
OBSERVED = "observed"
#: deduced from indirect evidence (a refusal read as "authentication required", lower bounds)
INFERRED = "inferred"
#: the assessment could not tell (an earlier check hid this one, no AC)
UNKNOWN = "unknown"
LEVELS = (OBSERVED, INFERRED, UNKNOWN)

#: verdict keys of a record's ``confidence`` map, in report column order
VERDICTS = (
    "dicom",
    "tls",
    "called_aet",
    "calling_aet",
    "user_identity",
    "services",
    "exposure",
    "product",
)
