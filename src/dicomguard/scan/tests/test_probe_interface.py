"""A new check is one probe object and one entry in ``assess.PROBES`` (scan.probe).

The example below is a whole check: the C-ECHO round trip on the assessment association. It
runs against a real pynetdicom SCP; its result lands in the record under its own field, in
the JSON Lines line and in the generated JSON Schema, which the record satisfies.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest
from jsonschema import Draft202012Validator

from dicomguard.dul.errors import (
    BudgetExhausted,
    ConnectFailed,
    MalformedPdu,
    PeerAborted,
    PeerClosed,
    PeerTimeout,
)
from dicomguard.dul.scu import Timeouts
from dicomguard.scan import assess as assess_module
from dicomguard.scan.assess import PROBES, ProbeOptions, assess
from dicomguard.scan.probe import (
    Need,
    ProbeResult,
    Session,
    Stage,
    Status,
    Target,
    run_probe,
    status_of,
)
from dicomguard.scan.result import EndpointResult, Finding, Part, finding
from dicomguard.scan.schema import record_schema

OPTS = ProbeOptions(timeouts=Timeouts(2.0, 5.0, 10.0, 1.0), tls_probe=None, web=None)


# --- the example check: this much is a new probe ---------------------------------------------


@dataclass(eq=False)
class EchoRoundTrip(Part):
    """The C-ECHO round trip on the assessment association."""

    #: milliseconds from C-ECHO-RQ to C-ECHO-RSP
    ms: int
    #: the C-ECHO-RSP status (0 success)
    status: int


class EchoRoundTripProbe:
    """C-ECHO round trip, on the association the DICOM checks opened."""

    name = "echo_round_trip"
    stage = Stage.ASSOCIATION
    needs = frozenset({Need.ASSOCIATION})
    field = "echo_round_trip"
    result_type = EchoRoundTrip

    def applies(self, session: Session) -> bool:
        return bool(session.record.services_negotiated.get("verification"))

    async def run(self, target: Target, session: Session) -> ProbeResult[EchoRoundTrip]:
        assoc = await session.live_association()
        if assoc is None:
            return ProbeResult.ok(None)
        started = time.monotonic()
        status = await assoc.echo()
        return ProbeResult.ok(EchoRoundTrip(int((time.monotonic() - started) * 1000), status))

    def findings(self, record: EndpointResult) -> list[Finding]:
        rtt = getattr(record, "echo_round_trip", None)
        return [finding("DG-009", detail=f"{rtt['ms']} ms")] if rtt else []


# ----------------------------------------------------------------------------------------------


@pytest.fixture
def with_example(monkeypatch):
    probe = EchoRoundTripProbe()
    monkeypatch.setattr(assess_module, "PROBES", [*PROBES, probe])
    return probe


async def test_a_registered_probe_runs_and_its_result_is_in_the_record(
    pynetdicom_scp, with_example
):
    r = await assess(pynetdicom_scp.host, pynetdicom_scp.port, OPTS)
    assert r.dicom
    record = json.loads(json.dumps(r.to_dict()))
    assert record["echo_round_trip"]["status"] == 0
    assert record["echo_round_trip"]["ms"] >= 0
    # its findings come after those of the probes before it in the list
    assert record["findings"][-1]["id"] == "DG-009"
    assert record["findings"][-1]["detail"].endswith(" ms")
    # the schema of the scan with this probe describes the new field, and the record fits
    schema = record_schema(assess_module.PROBES)
    assert "echo_round_trip" in schema["properties"]
    assert "EchoRoundTrip" in schema["$defs"]
    assert not list(Draft202012Validator(schema).iter_errors(record))
    # a worker's record (parallel scans) keeps the field
    assert EndpointResult.from_dict(record).to_dict()["echo_round_trip"] == record[
        "echo_round_trip"
    ]


async def test_without_the_entry_nothing_changes(pynetdicom_scp):
    r = await assess(pynetdicom_scp.host, pynetdicom_scp.port, OPTS)
    assert "echo_round_trip" not in r.to_dict()
    assert "echo_round_trip" not in record_schema()["properties"]


class _Failing:
    name = "failing"
    stage = Stage.NETWORK
    needs: frozenset[Need] = frozenset()
    field = "failing"
    result_type = None

    def __init__(self, exc: Exception) -> None:
        self.exc = exc

    def applies(self, session: Session) -> bool:
        return True

    async def run(self, target: Target, session: Session) -> ProbeResult[None]:
        raise self.exc

    def findings(self, record: EndpointResult) -> list[Finding]:
        return []


class _Session:
    def __init__(self) -> None:
        self.record = EndpointResult("127.0.0.1", 104)
        self.outcomes: dict = {}


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (ConnectFailed("closed", "connection refused"), Status.CONNECTION_REFUSED),
        (ConnectFailed("filtered", "no answer"), Status.CONNECTION_FAILED),
        (PeerTimeout("silent"), Status.IO_TIMEOUT),
        (PeerClosed("reset"), Status.CONNECTION_CLOSED),
        (MalformedPdu("garbage"), Status.PROTOCOL_ERROR),
        (PeerAborted(2, 0), Status.APPLICATION_ERROR),
        (BudgetExhausted("spent"), Status.BUDGET_EXHAUSTED),
    ],
)
async def test_a_typed_error_becomes_the_probes_status(exc, status):
    session = _Session()
    outcome = await run_probe(_Failing(exc), Target("127.0.0.1", 104), session)  # type: ignore[arg-type]
    assert (outcome.status, outcome.error, outcome.result) == (status, exc, None)
    assert status_of(exc) is status
    assert session.outcomes["failing"] is outcome
    assert not hasattr(session.record, "failing")


async def test_other_exceptions_are_bugs_and_propagate():
    with pytest.raises(ZeroDivisionError):
        await run_probe(_Failing(ZeroDivisionError()), Target("127.0.0.1", 104), _Session())  # type: ignore[arg-type]


def test_every_registered_probe_has_the_interface():
    names = [p.name for p in PROBES]
    assert len(names) == len(set(names))
    for probe in PROBES:
        assert isinstance(probe.stage, Stage)
        assert all(isinstance(n, Need) for n in probe.needs)
        for method in ("applies", "run", "findings"):
            assert callable(getattr(probe, method)), (probe.name, method)
