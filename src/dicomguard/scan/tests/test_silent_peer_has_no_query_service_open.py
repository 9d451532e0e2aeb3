"""A peer that accepts every presentation context and then answers nothing (the lab's
accept-then-silence) has no query service open: its C-FIND and worklist were never asked
(nothing more is asked of a peer that stopped answering), so nothing was answered.

Found by review: a full scan of accept-then-silence recorded find_patient_root,
find_study_root and worklist open (inferred) and DG-005 "Patient data can be queried by a
stranger (C-FIND)" (critical, confidence confirmed) and DG-007, with every operation
"untested" and the C-ECHO unanswered; README: "open only when an operation is answered, not
when a presentation context is merely accepted".
"""

from __future__ import annotations

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.hostile import HostileThread
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.scan.operations import ANSWERED, FAILED, UNTESTED, open_services
from dicomguard.scan.result import Operation
from dicomguard.testing.loopback import free_port

HOST = "127.0.0.1"
QUERIES = ("find_study_root", "find_patient_root", "worklist")


def _op(state: str, status: int | None = None) -> Operation:
    return Operation(state=state, status=status, detail="")


def test_untested_queries_after_silence_are_not_open() -> None:
    negotiated = dict.fromkeys(("verification", *QUERIES, "move", "storage"), True)
    ops = {"verification": _op(FAILED), **{n: _op(UNTESTED) for n in QUERIES}}
    services, confidence = open_services(negotiated, ops)
    assert not any(services[n] for n in QUERIES)
    assert all(confidence[n] == "inferred" for n in QUERIES)
    assert services["move"] and services["storage"]  # untested by design: as negotiated


def test_a_query_answered_by_the_count_after_a_silent_probe_stays_open() -> None:
    """dicom-rs #434: the probe got silence, the count's own query got matches."""
    negotiated = dict.fromkeys(("verification", *QUERIES), True)
    ops = {
        "verification": _op(ANSWERED, 0),
        "find_study_root": _op(ANSWERED, 0),  # the count's matches
        "find_patient_root": _op(FAILED),  # the probe's silence
        "worklist": _op(UNTESTED),
    }
    services, _ = open_services(negotiated, ops)
    assert services["find_study_root"]
    assert not services["find_patient_root"] and not services["worklist"]


async def test_accept_then_silence_has_no_query_finding() -> None:
    port = free_port(HOST)
    with HostileThread({HOST: "accept-then-silence"}, port=port):
        opts = ProbeOptions(timeouts=Timeouts(1.0, 2.0, 1.0, 0.5), try_tls=False, web=None)
        r = await assess(HOST, port, opts)
    record = r.to_dict()
    assert record["dicom"] and record["error_kind"] == "timeout"
    assert record["services_negotiated"]["find_study_root"]
    assert not any(record["services"][n] for n in QUERIES), record["services"]
    ids = {f["id"] for f in record["findings"]}
    assert not ids & {"DG-005", "DG-007"}, ids
