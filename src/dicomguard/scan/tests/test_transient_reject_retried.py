"""Issue 12 item 6: a busy archive's transient reject is retried later in the scan.

The real server is pynetdicom's AE with ``maximum_associations = 1``: while another client
holds its one association it answers A-ASSOCIATE-RJ (2, 3, 2), "rejected-transient, service
provider (presentation), local limit exceeded". DCMTK's echoscu, an independent requestor,
confirms that answer; the scan is then started, the held association released after a moment,
and the scan must come back (after its backoff) and assess the server fully.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading

from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig, is_transient
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer

HOST = "127.0.0.1"


def test_busy_archive_is_assessed_again_after_a_backoff() -> None:
    with PynetdicomFindServer(HOST, max_associations=1) as server:
        holder = AE(ae_title="HOLDER")
        holder.add_requested_context(Verification)
        held = holder.associate(HOST, server.port, ae_title=server.aet)
        assert held.is_established
        try:
            echo = subprocess.run(
                ["echoscu", "-aec", server.aet, HOST, str(server.port)],
                capture_output=True,
                text=True,
                timeout=30,
            )
            said = echo.stdout + echo.stderr
            assert echo.returncode != 0 and "Local Limit Exceeded" in said, said
            assert "Rejected Transient" in said, said

            records: list[EndpointResult] = []
            config = ScanConfig(
                targets=build_targets([HOST], ports=(server.port,)),
                probe=ProbeOptions(
                    timeouts=Timeouts(2.0, 5.0, 10.0, 1.0), try_tls=False, tls_probe=None, web=None
                ),
                rate=0,
                retry_backoff=1.0,
            )
            threading.Timer(0.5, held.release).start()  # the other client goes away
            asyncio.run(Engine(config, records.append).run())
        finally:
            held.release()
    (r,) = records
    assert r.attempts == 2, r
    assert r.dicom and r.reject is None and r.error is None, r
    assert r.services["verification"] and r.services["find_study_root"]
    assert r.exposure and r.exposure["patients"] == len(server.patients)


def test_only_presentation_provider_transient_rejects_are_retried() -> None:
    def rejected(result: int, source: int, reason: int) -> EndpointResult:
        return EndpointResult(
            "h", 1, dicom=True, reject={"result": result, "source": source, "reason": reason}
        )

    assert is_transient(rejected(2, 3, 2)) and is_transient(rejected(2, 3, 1))
    assert not is_transient(rejected(1, 3, 2))  # permanent
    assert not is_transient(rejected(2, 2, 1))  # pynetdicom's answer to a refused identity
    assert not is_transient(rejected(1, 1, 7))  # called AE title
