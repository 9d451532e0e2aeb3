"""A server that closes the connections beyond its limit is DICOM on every address it answers.

One server behind many addresses (a NAT, a load balancer, an appliance bound to every
interface) that takes at most two connections at a time and closes the excess (FIN or RST)
right after accepting them (testing.connection_limit): echoscu gets in on every address once
the others are done. The scan recorded about 96% of such endpoints "not DICOM" (DG-014) with
FIN, and about as many "closed" (no record at all) with RST: a close before any PDU was neither
a loss for the congestion window nor retried. It is both now, so every address ends up DICOM,
answered. With several workers: test_connection_limit_with_workers.py.
"""

from __future__ import annotations

import asyncio

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets
from dicomguard.testing.connection_limit import ConnectionLimit
from dicomguard.testing.loopback import free_port

NET = "127.0.77.0/27"
LIMIT = 2


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
def test_every_address_of_a_connection_limited_server_is_dicom(reset: bool) -> None:
    import ipaddress

    hosts = [str(h) for h in ipaddress.ip_network(NET).hosts()]

    async def go() -> dict[str, EndpointResult]:
        port = free_port(hosts[0])
        server = await asyncio.start_server(ConnectionLimit(LIMIT, reset).handler(), hosts, port)
        results: dict[str, EndpointResult] = {}
        try:
            targets = build_targets([NET], ports=(port,))
            probe = ProbeOptions(discovery=True, web=None, try_tls=False,
                                 timeouts=Timeouts(2.0, 3.0, 3.0, 1.0))
            config = ScanConfig(targets=targets, probe=probe, rate=0, sweep="connect",
                                retry_backoff=0.2, transient_retries=4)
            await Engine(config, lambda r: results.__setitem__(r.host, r)).run()
        finally:
            server.close()
        return results

    results = asyncio.run(go())
    assert set(results) == set(hosts)
    wrong = {h: (r.state, r.error) for h, r in results.items()
             if not (r.dicom and r.operations["verification"].state == "answered")}
    assert not wrong
