"""pynetdicom's own Q/R archive application (``python -m pynetdicom qrscp``) on loopback.

A real third-party server, not our in-process FIND SCP: its C-FIND answers come from its
SQLAlchemy database of stored instances, with the application's own quirks (measured in
scan/tests/test_patient_counts_real_servers.py with DCMTK findscu). It can bind one address
(``--bind-address``), so it needs no network namespace. Instances are loaded with C-STORE from
a pynetdicom SCU, the application's only way in.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pynetdicom import AE
from pynetdicom.presentation import StoragePresentationContexts

from dicomguard.knowledge.synthetic import SyntheticPatient, all_instances
from dicomguard.testing.base import ProcessServer, ServerStartError, default_patients

#: What a stranger gets (measured): every Q/R model, worklist (always 0 items) and storage.
QRSCP_EXPECTED = {
    "called_aet_enforced": False,
    "calling_aet_enforced": False,
    "verification": True,
    "find_patient_root": True,
    "find_study_root": True,
    "move": True,
    "get": True,
    "worklist": True,
    "storage": True,
}


class PynetdicomQrscpServer(ProcessServer):
    """``python -m pynetdicom qrscp`` with AE title ``aet``, its database in a temp dir."""

    kind = "pynetdicom-qrscp"
    binds_all_interfaces = False

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        aet: str = "QRSCP",
        patients: Sequence[SyntheticPatient] | None = None,
        seed: int = 5,
    ) -> None:
        super().__init__(
            host,
            port,
            called_aets=[aet],
            patients=default_patients(seed, 3) if patients is None else patients,
            expected=QRSCP_EXPECTED,
        )

    def _start(self) -> None:
        work = self._new_workdir()
        (work / "instances").mkdir()
        cfg = work / "qrscp.ini"
        cfg.write_text(
            "[DEFAULT]\n"
            f"ae_title: {self.aet}\nport: {self.port}\nmax_pdu: 16382\n"
            "acse_timeout: 30\ndimse_timeout: 30\nnetwork_timeout: 30\n"
            f"bind_address: {self.host}\n"
            f"instance_location: {work / 'instances'}\n"
            f"database_location: {work / 'instances.sqlite'}\n"
            "log_identifier: False\n"
        )
        argv = [sys.executable, "-m", "pynetdicom", "qrscp", "-c", str(cfg)]
        self._spawn(argv, cwd=work, wait_ports=[self.port])
        self._load()

    def _load(self) -> None:
        ae = AE(ae_title="DGLOADER")
        ae.requested_contexts = StoragePresentationContexts[:120]
        assoc = ae.associate(self.host, self.port, ae_title=self.aet)
        if not assoc.is_established:
            raise ServerStartError(f"{self!r}: cannot associate to load instances")
        try:
            for ds in all_instances(self.patients):
                status = assoc.send_c_store(ds)
                if status is None or int(status.Status) != 0:
                    raise ServerStartError(f"{self!r}: C-STORE failed: {status}")
        finally:
            assoc.release()
