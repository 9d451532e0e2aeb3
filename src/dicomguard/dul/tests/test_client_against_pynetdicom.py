"""The asyncio requestor interoperates with a real pynetdicom SCP."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomguard.dul.acse import AssociateRequest
from dicomguard.dul.scu import associate
from dicomguard.testing.reference import identifier

VERIFICATION = "1.2.840.10008.1.1"
STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
MODALITY_WORKLIST = "1.2.840.10008.5.1.4.31"


def study_query() -> Dataset:
    return identifier("STUDY", StudyInstanceUID="", StudyDate="")


async def test_echo_succeeds_and_fingerprint_is_read(pynetdicom_scp):
    host, port, _ = pynetdicom_scp
    req = AssociateRequest(called_aet="REFSCP", abstract_syntaxes=(VERIFICATION,))
    outcome = await associate(host, port, req)
    assert outcome.accepted and outcome.association
    async with outcome.association as assoc:
        assert await assoc.echo() == 0
        assert assoc.accept.implementation_version_name.startswith("PYNETDICOM")
        assert assoc.accept.implementation_class_uid.startswith("1.2.826.0.1.3680043.9.3811")
        assert assoc.accept.max_pdu and assoc.accept.max_pdu > 0


async def test_context_results_show_which_services_are_offered(pynetdicom_scp):
    host, port, _ = pynetdicom_scp
    req = AssociateRequest(abstract_syntaxes=(VERIFICATION, STUDY_FIND, MODALITY_WORKLIST))
    outcome = await associate(host, port, req)
    assert outcome.association
    accept = outcome.association.accept
    await outcome.association.release()
    assert accept.accepts(VERIFICATION) and accept.accepts(STUDY_FIND)
    assert not accept.accepts(MODALITY_WORKLIST)
    assert accept.results[MODALITY_WORKLIST] == 3  # abstract syntax not supported


async def test_find_counts_every_study(pynetdicom_scp):
    host, port, n_studies = pynetdicom_scp
    outcome = await associate(host, port, AssociateRequest(abstract_syntaxes=(STUDY_FIND,)))
    assert outcome.association
    async with outcome.association as assoc:
        uids = [ds.StudyInstanceUID async for ds in assoc.find(STUDY_FIND, study_query())]
        assert assoc.last_status == 0
    assert len(set(uids)) == n_studies


async def test_find_cancels_after_max_results(pynetdicom_scp):
    host, port, n_studies = pynetdicom_scp
    outcome = await associate(host, port, AssociateRequest(abstract_syntaxes=(STUDY_FIND,)))
    assert outcome.association
    async with outcome.association as assoc:
        got = [ds async for ds in assoc.find(STUDY_FIND, study_query(), max_results=5)]
        assert len(got) == 5 < n_studies
        # the association stays usable after the cancel
        again = [ds async for ds in assoc.find(STUDY_FIND, study_query(), max_results=1)]
        assert len(again) == 1
