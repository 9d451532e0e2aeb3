"""A host answering on two ports for one archive is counted once, and the totals say so."""

from __future__ import annotations

import asyncio

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.fleet import Fleet
from dicomguard.report.stats import counted_exposure
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets

NETWORK = "127.42.221.0/29"


def test_second_port_reuses_the_first_ports_count_after_two_small_queries():
    async def go() -> tuple[dict, list[dict]]:
        async with Fleet(NETWORK, ["capped", "open"], ports=(104, 11112)) as fleet:
            out: list[dict] = []

            def sink(r: EndpointResult) -> None:
                out.append(r.to_dict())

            config = ScanConfig(
                targets=build_targets([NETWORK], ports=(104, 11112)),
                probe=ProbeOptions(timeouts=Timeouts(1.0, 3.0, 5.0, 0.5), try_tls=False),
                rate=0,
                per_host=1,  # ports of one host one after the other, as a polite scan does
            )
            await Engine(config, sink).run()
            return fleet.truth, out

    truth, records = asyncio.run(go())
    dicom = [r for r in records if r["dicom"]]
    assert len(dicom) == 4
    for host in {r["host"] for r in dicom}:
        first, second = sorted((r for r in dicom if r["host"] == host), key=lambda r: r["port"])
        assert "same_archive_as" not in first["exposure"]
        assert second["exposure"]["same_archive_as"] == f"{host}:{first['port']}"
        assert second["exposure"]["queries"] == 2  # its first and last study day
        assert second["exposure"]["studies"] == first["exposure"]["studies"]
        assert counted_exposure(second) == {}
        want = truth["endpoints"][f"{host}:104"]["exposure"]["studies"]
        assert first["exposure"]["studies"] <= want
