"""One import for every test server launcher (see the modules beside this one for details).

==========================  ======================================================
launcher                    what it is
==========================  ======================================================
:class:`OrthancServer`      Orthanc 1.10.1, presets ``open``, ``locked``, ``default``,
                            ``modalities``, ``worklist``, ``nostore``, ``calledcheck``;
                            DICOM TLS / mutual TLS
:class:`DicomWebOrthanc`    Orthanc ``open`` with the orthanc-dicomweb plugin (``/dicom-web/``)
:class:`DcmqrscpServer`     DCMTK dcmqrscp with an AE table (preset ``aetable``)
:class:`StorescpServer`     DCMTK storescp, store-only; plain, TLS or mutual TLS
:class:`PynetdicomFindServer`  pynetdicom Verification + C-FIND, in-process
:class:`PynetdicomQrscpServer` ``python -m pynetdicom qrscp`` (its archive app)
:class:`WlmscpfsServer`     DCMTK wlmscpfs, Modality Worklist from files
==========================  ======================================================
"""

from __future__ import annotations

from dicomguard.testing.base import (
    EXPECTATION_KEYS,
    REASON_CALLED_AET,
    REASON_CALLING_AET,
    LoopbackServer,
    ServerStartError,
    find_binary,
)
from dicomguard.testing.dcmtk import DcmqrscpServer, StorescpServer, WlmscpfsServer
from dicomguard.testing.guard import assert_loopback
from dicomguard.testing.loopback import (
    LAB_NET,
    accepts,
    free_port,
    lab_address,
    wait_until_accepting,
)
from dicomguard.testing.orthanc import KNOWN_VIEWER_AET, DicomWebOrthanc, OrthancServer
from dicomguard.testing.pynetdicom_qrscp import PynetdicomQrscpServer
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer

__all__ = [
    "EXPECTATION_KEYS",
    "KNOWN_VIEWER_AET",
    "LAB_NET",
    "REASON_CALLED_AET",
    "REASON_CALLING_AET",
    "DcmqrscpServer",
    "DicomWebOrthanc",
    "LoopbackServer",
    "OrthancServer",
    "PynetdicomFindServer",
    "PynetdicomQrscpServer",
    "ServerStartError",
    "StorescpServer",
    "WlmscpfsServer",
    "accepts",
    "assert_loopback",
    "find_binary",
    "free_port",
    "lab_address",
    "wait_until_accepting",
]
