"""A scan of a lab holding every persona flags the honeypot imitations, and only them.

The lab has one host per persona plus a second DICOMHawk and dicompot imitation (canned data:
the same patients on both), and two ordinary "open" archives (different data: no cluster).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.knowledge import honeypot
from dicomguard.lab.fleet import Fleet
from dicomguard.lab.personas import PERSONA_ORDER
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets

NETWORK = "127.42.212.0/27"
TIMEOUTS = Timeouts(connect=1.0, associate=1.5, dimse=3.0, release=0.5)
PERSONAS = [*PERSONA_ORDER, "honeypot-dicomhawk", "honeypot-dicompot", "open"]


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    async def go() -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        async with Fleet(
            NETWORK, PERSONAS, slow_delay=0.3, slow_greeting_delay=2.5, max_patients=60
        ) as fleet:
            targets = build_targets([NETWORK], ports=(11112, 2762))
            results: dict[str, dict[str, Any]] = {}

            def sink(r: EndpointResult) -> None:
                results[f"{r.host}:{r.port}"] = r.to_dict()

            probe = ProbeOptions(timeouts=TIMEOUTS, slow_greeting_timeout=4.0)
            config = ScanConfig(targets=targets, probe=probe, rate=0)
            await Engine(config, sink).run()
            return fleet.truth, results

    return asyncio.run(go())


def test_every_honeypot_persona_is_suspected_and_nothing_else(scanned):
    truth, results = scanned
    flagged = {k for k, r in results.items() if (r.get("honeypot") or {}).get("suspected")}
    expected = {k for k, t in truth["endpoints"].items() if t.get("honeypot")}
    assert len(expected) == 5  # 2 DICOMHawk, 2 dicompot, 1 answering any query
    assert flagged == expected


def test_each_honeypot_shows_the_signals_its_source_predicts(scanned):
    truth, results = scanned
    for key, t in truth["endpoints"].items():
        ids = {s["id"] for s in (results[key].get("honeypot") or {}).get("signals", [])}
        if t["persona"] == "honeypot-dicomhawk":
            assert {"fingerprint", "orthanc-version-name"} <= ids
            assert results[key]["canary_result"] == 3  # pynetdicom refuses unknown SOP classes
        elif t["persona"] == "honeypot-dicompot":
            assert {"accepts-unknown-sop-class", "no-implementation-class-uid"} <= ids
            assert results[key]["canary_result"] == 0
        elif t["persona"] == "honeypot-answers-anything":
            # a stock pynetdicom identity: only its behaviour gives it away
            assert ids == {"answers-impossible-query"}, ids
        elif t["dicom"] and results[key].get("canary_result") is not None:
            assert results[key]["canary_result"] == 3, (key, t["persona"])
            assert not ids, (key, t["persona"], ids)


def test_clusters_and_categories(scanned):
    truth, results = scanned
    out = honeypot.classify(results.values())
    canned = [c for c in out["clusters"] if c["canned_data"]]
    by_persona = {
        frozenset(truth["endpoints"][ep]["persona"] for ep in c["endpoints"]) for c in canned
    }
    assert by_persona == {frozenset({"honeypot-dicomhawk"}), frozenset({"honeypot-dicompot"})}
    cats = out["endpoints"]
    for key, t in truth["endpoints"].items():
        if not t["dicom"]:
            assert key not in cats
        elif t.get("honeypot"):
            assert cats[key]["category"] == "flagged"
            if t["persona"] != "honeypot-answers-anything":  # made-up data differs per query
                assert any(s["id"] == "canned-data" for s in cats[key]["honeypot"]["signals"])
        else:
            assert cats[key]["category"] in ("confirmed", "likely"), (key, t["persona"])
    assert out["counts"]["flagged"] == 5
    # personas a stranger gets into and that look ordinary are confirmed
    open_hosts = [k for k, t in truth["endpoints"].items() if t["persona"] == "open"]
    assert all(cats[k]["category"] == "confirmed" for k in open_hosts)


def test_every_verdict_has_a_confidence(scanned):
    _truth, results = scanned
    for key, r in results.items():
        assert set(r["confidence"]) >= {
            "dicom",
            "tls",
            "called_aet",
            "calling_aet",
            "user_identity",
            "services",
            "exposure",
            "product",
        }, key
        assert set(r["confidence"].values()) <= {"observed", "inferred", "unknown"}
        for f in r["findings"]:
            assert f["confidence"] in ("confirmed", "inferred")
