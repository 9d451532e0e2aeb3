"""Orthanc (Debian's 1.10.1) as a real PACS on loopback, loaded over its REST API.

Orthanc 1.10.1 has no option to choose the listening address: both its DICOM and HTTP servers
bind all interfaces (``Orthanc --config=x.json`` lists every option; none binds). So it only
starts inside a loopback-only network namespace (``testing/netns.py``; ``scripts/test`` runs
the tests in one), where every interface is loopback, and ``RemoteAccessAllowed`` stays false.
The DICOM port is random and the server lives only as long as a test session.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

from pydicom import dcmwrite

from dicomguard.knowledge.synthetic import SyntheticPatient, all_instances
from dicomguard.lab.tls import LabCertificates, make_certificates
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
    # Orthanc's own defaults (1.10.1 OrthancServer/Resources/Configuration.json): any called
    # AE, no DicomModalities, Echo and Store allowed for anyone, Find/Move/Get refused per
    # operation. Measured with DCMTK (testing/tests/test_orthanc_access.py): echoscu status 0,
    # findscu/movescu/getscu "Peer aborted Association", log "DICOM authorization rejected".
    "default": {
        "aet": "DGDEFAULT",
        "check_called_aet": False,
        "always_allow": {"Echo": True, "Store": True},
        "modalities": {},
        "expected": {"called_aet_enforced": False, "calling_aet_enforced": False, **_SERVICES},
        "reject_reasons": {},
        "open_to_stranger": {"verification": True, "find_patient_root": False,
                             "find_study_root": False, "move": False, "get": False,
                             "worklist": False, "storage": True},
    },
    # DicomAlwaysAllowFind false beside one declared modality: the modality may query, a
    # stranger's C-FIND is aborted (the association itself is accepted)
    "modalities": {
        "aet": "DGMODS",
        "check_called_aet": False,
        "always_allow": {"Echo": True, "Store": True},
        "modalities": {"viewer": KNOWN_VIEWER_AET},
        "expected": {"called_aet_enforced": False, "calling_aet_enforced": False, **_SERVICES},
        "reject_reasons": {},
        "open_to_stranger": {"verification": True, "find_patient_root": False,
                             "find_study_root": False, "move": False, "get": False,
                             "worklist": False, "storage": True},
    },
    # the ModalityWorklists sample plugin loaded, Q/R FIND open to anyone but the worklist
    # not (DicomAlwaysAllowFindWorklist false): only the worklist C-FIND is aborted
    "worklist": {
        "aet": "DGWORKLIST",
        "check_called_aet": False,
        "always_allow": {"Echo": True, "Store": True, "Find": True, "Move": True, "Get": True},
        "modalities": {},
        "worklist_plugin": True,
        "expected": {"called_aet_enforced": False, "calling_aet_enforced": False,
                     **_SERVICES, "worklist": True},
        "reject_reasons": {},
        "open_to_stranger": {"verification": True, "find_patient_root": True,
                             "find_study_root": True, "move": True, "get": True,
                             "worklist": False, "storage": True},
    },
    # Orthanc's defaults hardened the way DG-008's remediation says: DicomAlwaysAllowStore
    # false too. Measured with DCMTK (scan/tests/test_orthanc_hardened.py): echoscu Success,
    # storescu, findscu, movescu and getscu "Peer aborted Association".
    "nostore": {
        "aet": "DGNOSTORE",
        "check_called_aet": False,
        "always_allow": {"Echo": True},
        "modalities": {},
        "expected": {"called_aet_enforced": False, "calling_aet_enforced": False, **_SERVICES},
        "reject_reasons": {},
        "open_to_stranger": {"verification": True, "find_patient_root": False,
                             "find_study_root": False, "move": False, "get": False,
                             "worklist": False, "storage": False},
    },
    # DicomCheckCalledAet true but every operation allowed to anyone: the called AE title is
    # the only lock, and the REST API's GET /system names it (DicomAet) to whoever can reach it
    "calledcheck": {
        "aet": "DGCALLED",
        "check_called_aet": True,
        "always_allow": True,
        "modalities": {},
        "expected": {"called_aet_enforced": True, "calling_aet_enforced": False, **_SERVICES},
        "reject_reasons": {"called_aet": REASON_CALLED_AET},
    },
}

#: Debian's build of Orthanc's sample worklist plugin (package orthanc 1.10.1)
WORKLIST_PLUGIN = "/usr/share/orthanc/plugins/libModalityWorklists.so"


class OrthancServer(ProcessServer):
    """Orthanc with a preset (``open``, ``locked``, ``default``, ``modalities``, ``worklist``,
    ``nostore``, ``calledcheck``) on ``host``; see :data:`PRESETS`.

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
        dicom_tls: str = "none",
        unknown_sop_class_accepted: bool = False,
        rest_users: dict[str, str] | None = None,
    ) -> None:
        p = PRESETS[preset]
        #: ``AuthenticationEnabled`` with these ``RegisteredUsers`` (user -> password) on the
        #: REST API; the launcher loads its data as the first user (HTTP Basic)
        self.rest_users = dict(rest_users or {})
        #: Orthanc's ``UnknownSopClassAccepted`` (default false): accept storage of any SOP class
        self.unknown_sop_class_accepted = unknown_sop_class_accepted
        if dicom_tls not in ("none", "tls", "mutual"):
            raise ValueError(f"dicom_tls must be none, tls or mutual, not {dicom_tls!r}")
        #: DICOM inside TLS (``DicomTlsEnabled``); ``mutual`` adds
        #: ``DicomTlsRemoteCertificateRequired`` with the test CA as the trusted list
        self.dicom_tls = dicom_tls
        self.certs: LabCertificates | None = None
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
        allow = p["always_allow"]
        kinds = ("Echo", "Find", "FindWorklist", "Get", "Move", "Store")
        #: DicomAlwaysAllow<kind> options; a bool preset sets all of them
        self._always_allow: dict[str, bool] = (
            dict.fromkeys(kinds, allow) if isinstance(allow, bool)
            else {k: bool(allow.get(k, False)) for k in kinds}
        )
        self._worklist_plugin = bool(p.get("worklist_plugin", False))
        #: measured: which services a stranger's operations are answered for (the presets
        #: built on per-operation checks); defaults to the negotiated services
        self.open_to_stranger: dict[str, bool] = dict(
            p.get("open_to_stranger") or {k: p["expected"][k] for k in _SERVICES}
        )

    @property
    def http_url(self) -> str:
        """Base URL of the REST API (loopback)."""
        return f"http://{self.host}:{self.http_port}"

    def config(self) -> dict[str, Any]:
        """The Orthanc configuration this server runs with (option names as of 1.10.1)."""
        allow = self._always_allow
        cfg: dict[str, Any] = {
            "Name": f"dicomguard-{self.preset}",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "storage"),
            "Plugins": [WORKLIST_PLUGIN] if self._worklist_plugin else [],
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.port,
            "DicomCheckCalledAet": self._check_called,
            "DicomCheckModalityHost": False,
            "DicomAlwaysAllowEcho": allow["Echo"],
            "DicomAlwaysAllowFind": allow["Find"],
            "DicomAlwaysAllowFindWorklist": allow["FindWorklist"],
            "DicomAlwaysAllowGet": allow["Get"],
            "DicomAlwaysAllowMove": allow["Move"],
            "DicomAlwaysAllowStore": allow["Store"],
            "DicomModalities": {
                name: [aet, "127.0.0.1", 104] for name, aet in self._modalities.items()
            },
            "DicomModalitiesInDatabase": False,
            "DicomThreadsCount": 4,
            "DicomScpTimeout": 10,
            "UnknownSopClassAccepted": self.unknown_sop_class_accepted,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.rest_users),
            "RegisteredUsers": self.rest_users,
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
        if self.dicom_tls != "none":
            if self.certs is None:
                self.certs = make_certificates(
                    self.workdir / "tls", [self.host], rsa_bits=2048, client=True
                )
            cfg.update(
                DicomTlsEnabled=True,
                DicomTlsCertificate=str(self.certs.cert),
                DicomTlsPrivateKey=str(self.certs.key),
                DicomTlsTrustedCertificates=str(self.certs.ca_cert),
                DicomTlsRemoteCertificateRequired=self.dicom_tls == "mutual",
            )
        if self._worklist_plugin:
            (self.workdir / "worklists").mkdir(exist_ok=True)
            cfg["Worklists"] = {"Enable": True, "Database": str(self.workdir / "worklists")}
        return cfg

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
        if self.rest_users:
            user, password = next(iter(self.rest_users.items()))
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
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


#: Debian's orthanc-dicomweb plugin (DICOMweb: QIDO-RS, WADO-RS, STOW-RS under /dicom-web/).
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")


class DicomWebOrthanc(OrthancServer):
    """The ``open`` Orthanc preset with the DICOMweb plugin loaded (``/dicom-web/``)."""

    @staticmethod
    def installed() -> bool:
        """True when Orthanc and its DICOMweb plugin are both installed."""
        return find_binary("Orthanc") is not None and DICOMWEB_PLUGIN.exists()

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["Plugins"] = [str(DICOMWEB_PLUGIN)]
        cfg["DicomWeb"] = {"Enable": True, "Root": "/dicom-web/"}
        return cfg
