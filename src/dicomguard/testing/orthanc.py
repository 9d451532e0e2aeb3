"""Orthanc (Debian's 1.10.1) as a real PACS on loopback, loaded over its REST API.

Orthanc 1.10.1 has no option to choose the listening address: both its DICOM and HTTP servers
bind all interfaces (``Orthanc --config=x.json`` lists every option; none binds). So it only
starts inside a loopback-only network namespace (``testing/netns.py``; ``scripts/test`` runs
the tests in one), where every interface is loopback, and ``RemoteAccessAllowed`` stays false.
The DICOM port is random and the server lives only as long as a test session.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Sequence
from io import BytesIO
from typing import Any

from pydicom import dcmwrite

from dicomguard.lab.synthetic import SyntheticPatient, all_instances
from dicomguard.testing.base import (
    REASON_CALLED_AET,
    REASON_CALLING_AET,
    ProcessServer,
    ServerStartError,
    default_patients,
    find_binary,
)
from dicomguard.testing.loopback import free_port

#: The AE title of the one modality the locked preset knows.
KNOWN_VIEWER_AET = "DGVIEWER"

#: Measured with pynetdicom as SCU against Orthanc 1.10.1 (testing/tests/test_orthanc.py).
#: Services are what a caller that passes the AE checks gets (presentation context accepted).
_SERVICES = {
    "verification": True,
    "find_patient_root": True,
    "find_study_root": True,
    "move": True,
    "get": True,
    "worklist": False,  # needs the worklist plugin, which we do not load
    "storage": True,
}

PRESETS: dict[str, dict[str, Any]] = {
    "open": {
        "aet": "DGORTHANC",
        "check_called_aet": False,
        "always_allow": True,
        "modalities": {},
        "expected": {"called_aet_enforced": False, "calling_aet_enforced": False, **_SERVICES},
        "reject_reasons": {},
    },
    "locked": {
        "aet": "DGLOCKED",
        "check_called_aet": True,
        "always_allow": False,
        "modalities": {"viewer": KNOWN_VIEWER_AET},
        "expected": {"called_aet_enforced": True, "calling_aet_enforced": True, **_SERVICES},
        "reject_reasons": {
            "called_aet": REASON_CALLED_AET,
            "calling_aet": REASON_CALLING_AET,
        },
    },
}


class OrthancServer(ProcessServer):
    """Orthanc with a preset (``open`` or ``locked``) on ``host``; see :data:`PRESETS`.

    ``limit_find_results`` / ``limit_find_instances`` set Orthanc's C-FIND caps (0 = none),
    for testing how a scanner reports a capped answer.
    """

    kind = "orthanc"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        preset: str = "open",
        patients: Sequence[SyntheticPatient] | None = None,
        seed: int = 1,
        limit_find_results: int = 0,
        limit_find_instances: int = 0,
    ) -> None:
        p = PRESETS[preset]
        self.preset = preset
        self.http_port = 0
        self.limit_find_results = limit_find_results
        self.limit_find_instances = limit_find_instances
        self._modalities: dict[str, str] = dict(p["modalities"])
        super().__init__(
            host,
            port,
            called_aets=[p["aet"]],
            calling_aets=list(self._modalities.values()),
            patients=default_patients(seed) if patients is None else patients,
            expected=p["expected"],
            reject_reasons=p["reject_reasons"],
        )
        self._check_called = bool(p["check_called_aet"])
        self._always_allow = bool(p["always_allow"])

    @property
    def http_url(self) -> str:
        """Base URL of the REST API (loopback)."""
        return f"http://{self.host}:{self.http_port}"

    def config(self) -> dict[str, Any]:
        """The Orthanc configuration this server runs with (option names as of 1.10.1)."""
        allow = self._always_allow
        return {
            "Name": f"dicomguard-{self.preset}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "Plugins": [],
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.port,
            "DicomCheckCalledAet": self._check_called,
            "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": allow,
            "DicomAlwaysAllowFind": allow,
            "DicomAlwaysAllowFindWorklist": allow,
            "DicomAlwaysAllowGet": allow,
            "DicomAlwaysAllowMove": allow,
            "DicomAlwaysAllowStore": allow,
            "DicomModalities": {
                name: [aet, "127.0.0.1", 104] for name, aet in self._modalities.items()
            },
            "DicomModalitiesInDatabase": False,
            "DicomThreadsCount": 4,
            "DicomScpTimeout": 10,
            "UnknownSopClassAccepted": False,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SslEnabled": False,
            "DicomTlsEnabled": False,
            "HttpsVerifyPeers": True,
            "ExecuteLuaEnabled": False,
            "RestApiWriteToFileSystemEnabled": False,
            "LimitFindResults": self.limit_find_results,
            "LimitFindInstances": self.limit_find_instances,
            "SaveJobs": False,
            "StorageCompression": False,
            "DeidentifyLogs": True,
        }

    def _start(self) -> None:
        binary = find_binary("Orthanc")
        if binary is None:
            raise FileNotFoundError("Orthanc is not installed (apt-get install orthanc)")
        work = self._new_workdir()
        self.http_port = free_port(self.host)
        while self.http_port == self.port:
            self.http_port = free_port(self.host)
        cfg = work / "orthanc.json"
        cfg.write_text(json.dumps(self.config(), indent=2))
        self._spawn([binary, str(cfg)], cwd=work, wait_ports=[self.port, self.http_port])
        try:
            self._load()
        except OSError as e:
            raise ServerStartError(f"{self!r}: loading failed: {e}\n{self.log_tail()}") from e

    def rest(self, path: str, body: bytes | None = None) -> Any:
        """GET (or POST ``body`` to) ``path`` on the REST API and decode the JSON answer."""
        method = "POST" if body else "GET"
        req = urllib.request.Request(self.http_url + path, data=body, method=method)
        if body is not None:
            req.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read() or b"null")

    def _load(self) -> None:
        """POST every synthetic instance; the REST API is the only store path not gated by AETs."""
        for ds in all_instances(self.patients):
            buf = BytesIO()
            dcmwrite(buf, ds, enforce_file_format=True)
            self.rest("/instances", buf.getvalue())
        stats = self.rest("/statistics")
        if stats["CountStudies"] != self.ground_truth.studies:
            raise ServerStartError(f"{self!r}: loaded {stats} but expected {self.ground_truth}")
