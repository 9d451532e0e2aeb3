"""How each verdict of an endpoint was reached: observed, inferred, or unknown.

A reviewer of a published number needs to know which parts were seen on the wire and which were
deduced. The ``confidence`` map of a result says, per verdict:

* ``observed``: the verdict restates what the server did (an AC or an RJ with a named reason,
  presentation-context results, C-FIND answers counted to the end);
* ``inferred``: deduced from indirect evidence (a refusal with and without a user identity read
  as "authentication required", counts that are lower bounds, a product named from a UID prefix
  or a heuristic, a port that stays silent read as "not DICOM");
* ``unknown``: the assessment could not tell (a check that came first hid the next one, no AC).

The verdict keys and the three levels are named in :mod:`dicomguard.knowledge.verdicts` (the
report reads them from there); this module decides the level of each from a scan result.
"""

from __future__ import annotations

from ..knowledge.fingerprint import CONFIDENCE_EXACT, CONFIDENCE_UNKNOWN
from ..knowledge.verdicts import INFERRED, OBSERVED, UNKNOWN, VERDICTS
from .result import EndpointResult

__all__ = ["confidence_map"]



def confidence_map(r: EndpointResult, fingerprint_confidence: str | None = None) -> dict[str, str]:
    """The confidence of every verdict of ``r`` (``fingerprint_confidence`` from the matcher)."""
    ac_seen = r.max_pdu is not None or r.implementation_class_uid is not None
    out = dict.fromkeys(VERDICTS, UNKNOWN)
    if r.dicom:
        out["dicom"] = OBSERVED
        out["tls"] = OBSERVED
    elif r.state == "open":
        # garbage, an abort or an HTTP answer was seen; silence only suggests "not DICOM"
        out["dicom"] = INFERRED if (r.error or "").startswith("silent") else OBSERVED
    if r.called_aet.get("verified"):
        out["called_aet"] = OBSERVED
    if r.calling_aet.get("verified"):
        out["calling_aet"] = OBSERVED
    ui = r.user_identity
    if ui.get("verified"):
        out["user_identity"] = OBSERVED
    elif ui.get("required"):
        out["user_identity"] = INFERRED
    if ac_seen:
        out["services"] = OBSERVED
    if r.exposure is not None:
        out["exposure"] = OBSERVED if r.exposure.get("complete", True) else INFERRED
    if r.product:
        out["product"] = OBSERVED if fingerprint_confidence == CONFIDENCE_EXACT else INFERRED
    elif fingerprint_confidence not in (None, CONFIDENCE_UNKNOWN):
        out["product"] = INFERRED
    return out
