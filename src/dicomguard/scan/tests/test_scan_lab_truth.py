"""A full scan of the lab reaches every persona's ground truth, and hostile ones end quickly."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.lab.fleet import Fleet
from dicomguard.scan.assess import ProbeOptions
from dicomguard.scan.engine import Engine, ScanConfig
from dicomguard.scan.result import EndpointResult
from dicomguard.scan.targets import build_targets

NETWORK = "127.42.210.0/27"
TIMEOUTS = Timeouts(connect=1.0, associate=1.5, dimse=3.0, release=0.5)
#: the slow-greeting persona answers after GREETING s: past TIMEOUTS.associate, within the
#: scan's one longer retry (SLOW_GREETING_TIMEOUT), as 7 s is within the default 20 s
GREETING = 2.5
SLOW_GREETING_TIMEOUT = 4.0
PROBE = ProbeOptions(timeouts=TIMEOUTS, slow_greeting_timeout=SLOW_GREETING_TIMEOUT)


@pytest.fixture(scope="module")
def scanned() -> tuple[dict[str, Any], dict[str, dict[str, Any]], float]:
    """One scan of one host per persona; returns (truth, results by host:port, seconds)."""
    import asyncio

    async def go() -> tuple[dict[str, Any], dict[str, dict[str, Any]], float]:
        async with Fleet(
            NETWORK, slow_delay=0.3, slow_greeting_delay=GREETING, max_patients=120
        ) as fleet:
            targets = build_targets([NETWORK], ports=(11112, 2762))
            assert targets.all_loopback()
            results: dict[str, dict[str, Any]] = {}

            def sink(r: EndpointResult) -> None:
                results[f"{r.host}:{r.port}"] = r.to_dict()

            config = ScanConfig(targets=targets, probe=PROBE, rate=0)
            start = time.monotonic()
            await Engine(config, sink).run()
            return fleet.truth, results, time.monotonic() - start

    return asyncio.run(go())


def _endpoints(truth: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return sorted(truth["endpoints"].items())


def test_every_open_lab_port_is_reported_once(scanned):
    truth, results, _ = scanned
    assert set(results) == set(truth["endpoints"])


def test_dicom_and_tls_verdicts_match_truth(scanned):
    truth, results, _ = scanned
    for key, t in _endpoints(truth):
        r = results[key]
        assert r["dicom"] == t["dicom"], (key, t["persona"], r.get("error"))
        assert r["tls"] == t["tls"], (key, t["persona"])
        if not t["dicom"]:
            assert r["error"], key  # a clear verdict on why it is not DICOM
            # silence is "DICOM unknown" (DG-016), never "not DICOM" (DG-014)
            silent = t["hostile"] == "silent"
            assert [f["id"] for f in r["findings"]] == ["DG-016" if silent else "DG-014"]
        if t["tls_client_certificate_required"]:
            assert r["dicom_likelihood"]["verdict"] == "likely", key
            assert r["tls_details"]["client_cert"]["required"] is True, key
        assert r["access_enforced_per_operation"] == t["access_enforced_per_operation"], key
        if t["persona"] == "slow-greeting":
            assert r["slow_greeting_s"] >= GREETING * 0.9, key
        if t["persona"] in ("stub-find", "honeypot-answers-anything"):
            # the operation probe's never-matching key is matched anyway
            assert r["operations"]["find_study_root"].get("nonsense_matches", 0) > 0, key
        elif t["dicom"] and "find_study_root" in r["operations"]:
            assert "nonsense_matches" not in r["operations"]["find_study_root"], key


def test_access_control_verdicts_match_truth(scanned):
    truth, results, _ = scanned
    for key, t in _endpoints(truth):
        if not t["dicom"]:
            continue
        r, persona = results[key], t["persona"]
        called = t["called_aet"]
        assert r["called_aet"]["enforced"] == called["enforced"], (key, persona)
        if called["enforced"]:
            expected = called["accepted"] if called["guessable"] else None
            assert r["called_aet"]["accepted"] == expected, (key, persona)
        assert r["calling_aet"]["enforced"] == t["calling_aet"]["enforced"], (key, persona)
        assert r["user_identity"]["required"] == t["user_identity"]["required"], (key, persona)


def test_services_and_product_match_truth_where_a_stranger_gets_in(scanned):
    truth, results, _ = scanned
    for key, t in _endpoints(truth):
        if not t["dicom"] or t["gated_by"]:
            continue
        r = results[key]
        for name, offered in t["services"].items():
            assert r["services"][name] == offered, (key, t["persona"], name)
            negotiated = t["services_negotiated"][name]
            assert r["services_negotiated"][name] == negotiated, (key, t["persona"], name)
        assert r["product"] == t["product"], (key, t["persona"])
        assert r["toolkit"] == t["toolkit"], (key, t["persona"])


def test_exposure_is_exact_or_a_flagged_lower_bound(scanned):
    """Open archives: exact. Capped or refusing ones: >= 90% of the studies within the default
    query budget, and a count claimed complete is exact (a lower bound is flagged)."""
    truth, results, _ = scanned
    seen_capped = False
    for key, t in _endpoints(truth):
        exp_t = t["exposure"]
        if not t["dicom"] or t["gated_by"] or not exp_t:
            continue
        exp = results[key]["exposure"]
        assert exp is not None, key
        if exp_t["complete"] or exp["complete"]:
            assert exp["complete"] is True, (key, t["persona"])
            assert exp["studies"] == exp_t["studies"], (key, t["persona"])
            # patients: distinct keyed hashes of PatientID, from either level
            assert exp["patients"] == exp_t["patients"], (key, t["persona"])
            assert exp["earliest_study_date"] == exp_t["earliest_study_date"]
            assert exp["latest_study_date"] == exp_t["latest_study_date"]
        else:
            assert 0 < exp["studies"] <= exp_t["studies"], (key, t["persona"])
        if "worklist" in exp_t:  # items, patients and span, even when packed in one PDU
            wl = exp["worklist"]
            for k, v in exp_t["worklist"].items():
                assert wl[k] == v, (key, t["persona"], k)
        if t["find_cap"] is not None:
            seen_capped = True
            assert exp["studies"] >= 0.9 * exp_t["studies"], (key, t["persona"])
    assert seen_capped


def test_hostile_personas_cost_bounded_time(scanned):
    truth, results, seconds = scanned
    for key, t in _endpoints(truth):
        if t["hostile"]:
            # silence costs the associate timeout, its one longer retry, then the TLS try
            bound = 2 * TIMEOUTS.associate + SLOW_GREETING_TIMEOUT + 2 * TIMEOUTS.connect + 1
            assert results[key]["elapsed_ms"] < bound * 1000, (key, t["persona"])
    assert seconds < 30
