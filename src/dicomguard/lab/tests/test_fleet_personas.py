"""A fleet of every persona on 127.42.x: each endpoint behaves exactly as its truth says.

The checks use only our own requestor (dicomguard.dul.scu), as the scanner will, so they are
also the first end-to-end proof that requestor and lab agree on every verdict field.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from pydicom.dataset import Dataset

from dicomguard.dul import errors
from dicomguard.dul.acse import AssociateRequest, UserIdentity, UserIdentityType
from dicomguard.dul.scu import AssociateOutcome, Timeouts, associate, scanner_tls_context
from dicomguard.lab.fleet import Fleet
from dicomguard.lab.personas import PERSONA_ORDER, SERVICE_SOP_CLASSES
from dicomguard.testing.reference import identifier

WORKLIST_FIND = SERVICE_SOP_CLASSES["worklist"][0]

# The fleet lives in the module's event loop, so the tests must run in that loop too.
pytestmark = pytest.mark.asyncio(loop_scope="module")

# A high 127.42.x block: 127.42.0.0/24 is the CLI default that developers run by hand.
NETWORK = "127.42.235.0/24"
SLOW = 0.3
TIMEOUTS = Timeouts(connect=1.0, associate=1.0, dimse=3.0, release=0.5)
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
#: one SOP class per contract service (the first of each), storage probed with CT
PROBE = {
    svc: (CT_STORAGE if svc == "storage" else uids[0]) for svc, uids in SERVICE_SOP_CLASSES.items()
}
FIND_MODEL = {
    "find_study_root": SERVICE_SOP_CLASSES["find_study_root"][0],
    "find_patient_root": SERVICE_SOP_CLASSES["find_patient_root"][0],
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fleet() -> AsyncIterator[Fleet]:
    async with Fleet(
        NETWORK, size=29, seed=5, slow_delay=SLOW, slow_greeting_delay=SLOW, max_patients=40
    ) as lab:
        yield lab


def _request(t: dict[str, Any], **overrides: Any) -> AssociateRequest:
    """The request a scanner that already knows the gates' secrets would send."""
    kwargs: dict[str, Any] = {
        "called_aet": t["called_aet"]["accepted"] or "ANY-SCP",
        "abstract_syntaxes": tuple(PROBE.values()),
    }
    if t["calling_aet"]["enforced"]:
        kwargs["calling_aet"] = t["calling_aet"]["allowed"][0]
    ui = t["user_identity"]
    if ui["required"]:
        kwargs["user_identity"] = UserIdentity(
            UserIdentityType.USERNAME_PASSCODE, ui["username"].encode(), ui["passcode"].encode()
        )
    kwargs.update(overrides)
    return AssociateRequest(**kwargs)


#: the lab CA's client certificate, for mutual-TLS personas (set by the fleet fixture's user)
CLIENT_CONTEXT: list[ssl.SSLContext] = []


def _client_context(fleet: Fleet) -> ssl.SSLContext:
    """A scanner context that presents the lab's client certificate."""
    assert fleet.certs is not None and fleet.certs.client_cert and fleet.certs.client_key
    ctx = scanner_tls_context()
    ctx.load_cert_chain(fleet.certs.client_cert, fleet.certs.client_key)
    return ctx


async def _associate(
    t: dict[str, Any], request: AssociateRequest, *, tls: bool | None = None,
    client_cert: bool = True,
) -> AssociateOutcome:
    use_tls = t["tls"] if tls is None else tls
    ctx = None
    if use_tls:
        mutual = t["tls_client_certificate_required"] and client_cert
        ctx = CLIENT_CONTEXT[0] if mutual else scanner_tls_context()
    return await associate(t["host"], t["port"], request, timeouts=TIMEOUTS, ssl_context=ctx)


async def _study_query(
    assoc: Any, model: str, date_range: str = ""
) -> tuple[list[Dataset], int | None]:
    q = identifier("STUDY", StudyInstanceUID="", PatientID="", StudyDate=date_range)
    found = [ds async for ds in assoc.find(model, q)]
    return found, assoc.last_status


async def check_endpoint(t: dict[str, Any]) -> None:
    """Assert every verdict field of one truth entry against the live endpoint."""
    where = f"{t['persona']} at {t['host']}:{t['port']}"
    if not t["dicom"]:
        with pytest.raises(errors.DulError) as exc:
            await _associate(t, _request(t))
        expected = {
            "http": errors.MalformedPdu,
            "ssh": errors.MalformedPdu,
            "garbage": errors.MalformedPdu,
            "giant-length": errors.PduTooLarge,
            "abort": errors.PeerAborted,
            "silent": errors.PeerTimeout,
        }[t["hostile"]]
        assert isinstance(exc.value, expected), (where, exc.value)
        return

    if t["tls"]:
        with pytest.raises(errors.DulError):
            await _associate(t, _request(t), tls=False)
    if t["tls_client_certificate_required"]:
        with pytest.raises(errors.DulError):  # TLS 1.3: the alert follows the handshake
            await _associate(t, _request(t), client_cert=False)
    if t["called_aet"]["enforced"]:
        out = await _associate(t, _request(t, called_aet="NOT-IT"))
        assert out.reject and out.reject.called_aet_refused, where
    if t["calling_aet"]["enforced"]:
        out = await _associate(t, _request(t, calling_aet="DICOMGUARD"))
        assert out.reject and out.reject.calling_aet_refused, where
    if t["user_identity"]["required"]:
        out = await _associate(t, _request(t, user_identity=None))
        assert out.reject and (out.reject.result, out.reject.source) == (2, 2), where

    started = time.monotonic()
    out = await _associate(t, _request(t))
    assert out.association, (where, out.reject)
    assert time.monotonic() - started >= t["answer_delay"] * 0.9
    async with out.association as assoc:
        accept = assoc.accept
        assert accept.implementation_class_uid == t["implementation_class_uid"], where
        assert accept.implementation_version_name == t["implementation_version_name"], where
        assert accept.max_pdu == t["max_pdu"]
        offered = {svc: accept.accepts(uid) for svc, uid in PROBE.items()}
        assert offered == t["services_negotiated"], where
        if t["services"]["verification"]:
            assert await assoc.echo() == 0
        if t["access_enforced_per_operation"]:  # contexts accepted, the C-FIND aborted
            with pytest.raises(errors.PeerAborted):
                await _study_query(assoc, FIND_MODEL["find_study_root"])
            return
        exposure = t["exposure"]
        if exposure is None:
            return
        if "worklist" in exposure:
            wl = Dataset()
            step = Dataset()
            step.ScheduledProcedureStepStartDate = ""
            wl.ScheduledProcedureStepSequence = [step]
            wl.PatientID = ""
            items = [ds async for ds in assoc.find(WORKLIST_FIND, wl)]
            if exposure["worklist"]["items"] is None:  # refused per query
                assert (items, assoc.last_status) == ([], 0xC000), where
            else:
                assert assoc.last_status == 0, where
                assert len(items) == exposure["worklist"]["items"], where
                assert len({ds.PatientID for ds in items}) == exposure["worklist"]["patients"]
        if "PATIENT" in t["refused_queries"]:
            pq = Dataset()
            pq.QueryRetrieveLevel = "PATIENT"
            pq.PatientID = ""
            found = [ds async for ds in assoc.find(FIND_MODEL["find_patient_root"], pq)]
            assert (found, assoc.last_status) == ([], 0xC000), where
        if not (t["services"]["find_study_root"] or t["services"]["find_patient_root"]):
            return
        model = (
            FIND_MODEL["find_study_root"]
            if t["services"]["find_study_root"]
            else FIND_MODEL["find_patient_root"]
        )
        found, status = await _study_query(assoc, model)
        if t["find_answers"] == "placeholder":  # one match, no key, no data
            assert status == 0 and len(found) == 1, where
            assert "StudyInstanceUID" not in found[0] and "PatientID" not in found[0], where
            return
        if t["cap_mode"] == "refuse+silent":
            if len(found) == 0:
                assert status == 0xA700 and exposure["studies"] > t["refuse_above"], where
            else:
                assert status == 0 and len(found) == t["find_cap"] < exposure["studies"]
        elif t["cap_mode"] == "refuse":
            assert (found, status) == ([], 0xA700), where
        elif t["cap_mode"] == "silent":
            assert status == 0 and len(found) == t["find_cap"], where
        else:
            assert status == 0, where
            assert len(found) == exposure["studies"], where
            assert len({ds.PatientID for ds in found}) == exposure["patients"]
            dates = sorted(ds.StudyDate for ds in found)
            assert (dates[0], dates[-1]) == (
                exposure["earliest_study_date"],
                exposure["latest_study_date"],
            )
            # date-range matching on the live server agrees with the truth's span
            upto, _ = await _study_query(assoc, model, f"-{exposure['earliest_study_date']}")
            assert len(upto) == dates.count(dates[0])
        assert all(ds.PatientID.startswith("DGSYN") for ds in found)


async def test_fleet_layout_and_truth(fleet: Fleet) -> None:
    truth = fleet.truth
    assert [h["persona"] for h in truth["hosts"][: len(PERSONA_ORDER)]] == list(PERSONA_ORDER)
    assert truth["size"] == 29 and truth["hosts"][0]["host"] == "127.42.235.1"
    assert all(key.startswith("127.42.235.") for key in truth["endpoints"])
    tls = fleet.host_of("tls-only")
    assert tls.ports == (11112, 2762)
    assert truth["tls"] and "BEGIN CERTIFICATE" in truth["tls"]["ca_pem"]
    secret = fleet.host_of("called-aet-secret").called_aet
    assert (
        secret
        and len(secret) == 6
        and not truth["endpoints"][f"{fleet.host_of('called-aet-secret').host}:11112"][
            "called_aet"
        ]["guessable"]
    )


async def test_every_endpoint_behaves_as_its_truth_says(fleet: Fleet) -> None:
    CLIENT_CONTEXT[:] = [_client_context(fleet)]
    entries = list(fleet.truth["endpoints"].values())
    results = await asyncio.gather(*(check_endpoint(t) for t in entries), return_exceptions=True)
    failures = [(t["persona"], t["port"], r) for t, r in zip(entries, results, strict=True) if r]
    assert not failures, failures
    assert sum(fleet.connections.values()) >= len(entries)


async def test_storage_is_accepted_and_discarded(fleet: Fleet) -> None:
    from pynetdicom import dimse_messages as dm

    from dicomguard.dul import dimse
    from dicomguard.knowledge.synthetic import instance_dataset, make_patients

    plan = fleet.host_of("store-only")
    out = await associate(
        plan.host, 11112, AssociateRequest(abstract_syntaxes=(CT_STORAGE,)), timeouts=TIMEOUTS
    )
    assert out.association
    async with out.association as assoc:
        cid, ts = assoc._context(CT_STORAGE)
        patient = make_patients(1, 1)[0]
        ds = instance_dataset(patient, patient.studies[0])
        msg = dm.C_STORE_RQ()
        cs = msg.command_set
        cs.CommandField = dimse.C_STORE_RQ
        cs.MessageID = 1
        cs.AffectedSOPClassUID = CT_STORAGE
        cs.AffectedSOPInstanceUID = ds.SOPInstanceUID
        cs.Priority = 0
        await assoc._send(
            dimse.encode_message(msg, cid, assoc.peer_max_pdu, dimse.encode_dataset(ds, ts))
        )
        reply = await assoc._receive()
        assert reply.command_field == dimse.C_STORE_RSP and reply.status == 0
    assert fleet.stored[plan.host] == 1
