"""A pynetdicom Q/R FIND SCP on loopback, answering from synthetic patients in memory.

Unlike Orthanc and DCMTK it runs in-process (a thread), starts in milliseconds and can be told
to check AE titles or not, which makes it the cheap third implementation for scanner tests.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)
from pynetdicom.transport import ThreadedAssociationServer

from dicomguard.dul.codes import STATUS_CANCEL, STATUS_PENDING, STATUS_UNABLE_TO_PROCESS
from dicomguard.knowledge.synthetic import SyntheticPatient
from dicomguard.testing import matching
from dicomguard.testing.base import (
    REASON_CALLED_AET,
    REASON_CALLING_AET,
    LoopbackServer,
    ServerStartError,
    default_patients,
)
from dicomguard.testing.reference import start_scp


class PynetdicomFindServer(LoopbackServer):
    """Verification + Patient/Study Root C-FIND (PATIENT and STUDY levels) from memory.

    ``require_called_aet`` makes pynetdicom reject other called titles (reason 7);
    ``calling_aets`` non-empty makes it reject other calling titles (reason 3);
    ``max_associations`` makes it a busy archive (2, 3, 2) above that many at once.
    """

    kind = "pynetdicom"
    #: abstract syntaxes offered; subclasses (peer behaviours in tests) may add more
    sop_classes: tuple[str, ...] = (
        Verification,
        PatientRootQueryRetrieveInformationModelFind,
        StudyRootQueryRetrieveInformationModelFind,
    )

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        aet: str = "DGPYSCP",
        require_called_aet: bool = False,
        calling_aets: Sequence[str] = (),
        patients: Sequence[SyntheticPatient] | None = None,
        seed: int = 3,
        max_associations: int | None = None,
    ) -> None:
        reasons = {}
        if require_called_aet:
            reasons["called_aet"] = REASON_CALLED_AET
        if calling_aets:
            reasons["calling_aet"] = REASON_CALLING_AET
        super().__init__(
            host,
            port,
            called_aets=[aet],
            calling_aets=calling_aets,
            patients=default_patients(seed) if patients is None else patients,
            expected={
                "called_aet_enforced": require_called_aet,
                "calling_aet_enforced": bool(calling_aets),
                "verification": True,
                "find_patient_root": True,
                "find_study_root": True,
                "move": False,
                "get": False,
                "worklist": False,
                "storage": False,
            },
            reject_reasons=reasons,
        )
        self._require_called = require_called_aet
        #: above this many at once pynetdicom answers A-ASSOCIATE-RJ (2, 3, 2) "transient,
        #: presentation provider, local limit exceeded" (pynetdicom acse.py)
        self._max_associations = max_associations
        self._server: ThreadedAssociationServer | None = None

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        identifier = event.identifier
        try:
            answers = list(matching.find(identifier, self.patients))
        except ValueError:
            yield STATUS_UNABLE_TO_PROCESS, None
            return
        for ds in answers:
            if event.is_cancelled:
                yield STATUS_CANCEL, None
                return
            yield STATUS_PENDING, ds

    def _start(self) -> None:
        try:
            self._server = start_scp(
                self.host,
                self.port,
                ae_title=self.aet,
                contexts=self.sop_classes,
                handlers=[(evt.EVT_C_FIND, self._on_find)],
                require_called_aet=self._require_called,
                require_calling_aet=self.calling_aets,
                timeout=30,
                maximum_associations=self._max_associations,
            )
        except OSError as e:
            raise ServerStartError(f"{self!r}: {e}") from e

    def _stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
