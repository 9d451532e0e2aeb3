"""One host, one product: DICOM records named from the Orthanc REST record of the same host.

Orthanc's DICOM port announces DCMTK's identity in its A-ASSOCIATE-AC (Orthanc is built on
DCMTK), so the A-ASSOCIATE-AC alone says "DCMTK"; Orthanc's REST ``/system`` names the product,
its version and its ``DicomPort``. The scanner joins the two per endpoint where it can
(``scan.web.orthanc_rest_identity``); this module does the same over all records of a scan once
it has ended, so the store (when a scan finishes, and when reading an older database) applies it
without importing the scanner. Pure: records in, records changed in place, no I/O.
"""

from __future__ import annotations

from typing import Any

__all__ = ["join_host_identity"]


def join_host_identity(records: list[dict[str, Any]]) -> int:
    """Name the product of DICOM records from the web records of the same host, in place.

    The per-endpoint check (``scan.web.orthanc_rest_identity``) only tries the usual web ports; a
    scan that also reached the Orthanc REST API on another port holds a web record with
    ``product: "Orthanc"`` beside DICOM records saying "DCMTK". Orthanc's ``/system`` names
    its ``DicomPort``: a DICOM record on that port is the same instance (observed); with a
    single Orthanc on the host whose ``DicomPort`` did not answer DICOM in this scan (a port
    mapping: Docker ``-p 104:4242``), its other DCMTK-identified ports are taken as Orthanc too
    (inferred). Orthanc has one DICOM port, so when its ``DicomPort`` is a DICOM record of the
    scan, the host's other DCMTK ports are other services (a dcmqrscp beside it) and keep their
    name. Returns how many records were changed.
    """
    dicom_ports = {
        (str(rec.get("host")), rec.get("port")) for rec in records if rec.get("dicom")
    }
    orthancs: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        web = rec.get("web") or {}
        if web.get("product") == "Orthanc":
            orthancs.setdefault(str(rec.get("host")), []).append(rec)
    changed = 0
    for rec in records:
        if not rec.get("dicom") or rec.get("product") != "DCMTK" or rec.get("toolkit"):
            continue
        webs = orthancs.get(str(rec.get("host")), [])
        same = [
            w for w in webs
            if ((w.get("web") or {}).get("orthanc") or {}).get("dicom_port") == rec.get("port")
        ]
        if not same and len(webs) != 1:
            continue
        if not same and (
            (str(rec.get("host")), ((webs[0].get("web") or {}).get("orthanc") or {})
             .get("dicom_port")) in dicom_ports
        ):
            continue  # that Orthanc's DICOM port is another record: this is something else
        w = (same or webs)[0]
        rec["toolkit"] = " ".join(x for x in ("DCMTK", rec.get("product_version")) if x)
        rec["product"] = "Orthanc"
        rec["product_version"] = (w.get("web") or {}).get("product_version")
        rec["product_evidence"] = {
            "source": f"joined with the Orthanc REST record {w.get('host')}:{w.get('port')}",
            "confidence": "observed" if same else "inferred",
        }
        conf = rec.get("confidence")
        if isinstance(conf, dict):
            conf["product"] = "observed" if same else "inferred"
        changed += 1
    return changed
