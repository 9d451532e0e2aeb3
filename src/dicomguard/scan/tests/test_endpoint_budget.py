"""Issue 12: the engine holds every endpoint to a budget of connections and seconds, and
time spent waiting for the shared rate limiter is not charged to it."""

from __future__ import annotations

import asyncio

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.fleet import FleetThread
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets

PORT = 11112


def _scan(network: str, **config: object) -> list[EndpointResult]:
    records: list[EndpointResult] = []
    probe = ProbeOptions(
        timeouts=Timeouts(2.0, 3.0, 4.0, 1.0), try_tls=False, tls_probe=None, web=None
    )
    cfg = ScanConfig(targets=build_targets([network], ports=(PORT,)), probe=probe, **config)
    asyncio.run(Engine(cfg, records.append).run())
    return [r for r in records if r.state == "open"]


def test_connection_budget_stops_the_called_ae_guessing() -> None:
    network = "127.77.17.0/30"
    with FleetThread(network, {"called-aet-secret": 1}, ports=(PORT,)):
        (r,) = _scan(network, rate=0, endpoint_connections=4)
    assert r.dicom and r.called_aet["enforced"]  # learned before the budget ran out
    assert r.error_kind == "budget" and "4 connections" in (r.error or ""), r
    assert r.associations <= 4


def test_waiting_for_the_rate_limiter_is_not_charged_to_the_endpoint() -> None:
    network = "127.77.17.16/29"
    with FleetThread(network, {"echo-only": 6}, ports=(PORT,)):
        # 6 sweep connects + 6 associations at 2 per second: the last endpoint waits about
        # 5 s for tokens, far above its 1.5 s budget, yet its own work takes milliseconds
        records = _scan(network, rate=2, concurrency=6, endpoint_budget=1.5)
    assert len(records) == 6
    for r in records:
        assert r.dicom and r.error is None and r.services["verification"], r
