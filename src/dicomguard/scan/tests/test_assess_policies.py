"""assess() reads each access control of real pynetdicom SCPs correctly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pynetdicom import evt
from pynetdicom.sop_class import (
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.reference import running_scp

HOST = "127.0.0.1"
FAST = Timeouts(connect=1.0, associate=2.0, dimse=2.0, release=0.5)


def _no_matches(event: evt.Event) -> Iterator[tuple[int, None]]:
    """A C-FIND handler answering Success with no match: the service is open, the archive
    empty (without one pynetdicom fails every C-FIND with 0xC311, which is not "open")."""
    yield from ()


@contextmanager
def scp(
    *,
    title: str = "REFSCP",
    check_called: bool = False,
    calling: list[str] | None = None,
    user_ok: bool | None = None,
) -> Iterator[int]:
    handlers: list = [(evt.EVT_C_FIND, _no_matches)]
    if user_ok is not None:
        handlers.append((evt.EVT_USER_ID, lambda event, *a: (user_ok, None)))
    with running_scp(HOST, ae_title=title, require_called_aet=check_called,
                     require_calling_aet=calling or (), handlers=handlers,
                     contexts=(Verification, StudyRootQueryRetrieveInformationModelFind)) as port:
        yield port


def opts(**kw: object) -> ProbeOptions:
    return ProbeOptions(timeouts=FAST, try_tls=False, **kw)  # type: ignore[arg-type]


async def test_open_server_has_no_ae_checks_and_lists_services():
    with scp() as port:
        r = await assess(HOST, port, opts())
    assert r.dicom and not r.tls
    assert r.called_aet == {
        "enforced": False,
        "accepted": r.called_aet["accepted"],
        "verified": True,
    }
    assert r.calling_aet["enforced"] is False
    assert r.services["verification"] and r.services["find_study_root"]
    assert not r.services["find_patient_root"] and not r.services["storage"]
    assert r.product == "pynetdicom"
    ids = {f["id"] for f in r.findings}
    assert {"DG-001", "DG-003", "DG-004", "DG-005", "DG-009", "DG-010"} <= ids


async def test_enforced_called_aet_is_guessed_from_wordlist():
    with scp(title="ARCHIVE", check_called=True) as port:
        r = await assess(HOST, port, opts())
    assert r.called_aet["enforced"] is True
    assert r.called_aet["accepted"] == "ARCHIVE"
    assert r.services["find_study_root"]
    assert "DG-002" in {f["id"] for f in r.findings}


async def test_secret_called_aet_stays_unknown_within_budget():
    with scp(title="XQ7Z3K9", check_called=True) as port:
        r = await assess(HOST, port, opts(max_aet_guesses=5))
    assert r.dicom and r.called_aet["enforced"] is True and r.called_aet["accepted"] is None
    assert r.associations == 6  # the probe plus five guesses, no more
    assert r.reject and r.reject["reason"] == 7


async def test_calling_aet_allow_list_is_reported():
    with scp(calling=["VIEWER01"]) as port:
        r = await assess(HOST, port, opts())
    assert r.dicom and r.calling_aet == {"enforced": True, "verified": True}
    assert r.reject and r.reject["reason"] == 3


async def test_user_identity_accepted_with_anything_is_high():
    with scp(user_ok=True) as port:
        r = await assess(HOST, port, opts())
    # pynetdicom only calls the handler when an identity is sent, so none is required here
    assert r.user_identity["required"] is False


@pytest.mark.parametrize("discovery", [True])
async def test_discovery_uses_one_association(discovery):
    with scp(check_called=True) as port:
        r = await assess(HOST, port, opts(discovery=discovery))
    assert r.dicom and r.associations == 1
