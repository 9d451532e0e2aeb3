"""Starting, refusing and stopping fleets: loopback only, sync use, the CLI entry point."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from pathlib import Path

import pytest
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind, Verification

from dicomguard.cli.lab import main
from dicomguard.lab.fleet import Fleet, FleetThread, LabError, plan_fleet
from dicomguard.lab.personas import PERSONA_ORDER
from dicomguard.testing.reference import identifier, scu_association


@pytest.mark.parametrize(
    "network", ["192.0.2.0/24", "10.0.0.0/8", "0.0.0.0/0", "::1/128", "not-a-net", "126.0.0.0/7"]
)
def test_non_loopback_networks_are_refused_before_anything_binds(network: str) -> None:
    with pytest.raises(LabError):
        Fleet(network)
    assert main(["--network", network, "--duration", "0"]) == 2


def test_plan_is_stable_and_fills_to_size() -> None:
    a = plan_fleet("127.42.231.0/24", size=40, seed=3)
    b = plan_fleet("127.42.231.0/24", size=40, seed=3)
    assert [(p.host, p.persona.name, p.n_patients, p.called_aet) for p in a] == [
        (p.host, p.persona.name, p.n_patients, p.called_aet) for p in b
    ]
    assert a[0].host == "127.42.231.1" and a[-1].host == "127.42.231.40"
    assert {p.persona.name for p in a[len(PERSONA_ORDER) :]} <= {
        "open",
        "echo-only",
        "called-aet-guessable",
        "store-only",
        "capped",
        "calling-aet-allowlist",
        "not-dicom",
        "silent",
        "user-identity-required",
        "called-aet-secret",
    }
    counts = plan_fleet("127.42.231.0/29", {"open": 2, "silent": 1})
    assert [p.persona.name for p in counts] == ["open", "open", "silent"]
    with pytest.raises(LabError):
        plan_fleet("127.42.231.0/30", size=3)  # only 2 usable hosts
    with pytest.raises(LabError):
        plan_fleet(personas=["no-such-persona"])


async def test_busy_port_is_a_clear_error_and_nothing_is_left_bound() -> None:
    with socket.socket() as s:
        s.bind(("127.42.232.2", 11112))
        s.listen()
        with pytest.raises(LabError, match=re.escape("127.42.232.2:11112")):
            async with Fleet("127.42.232.0/24", ["echo-only", "echo-only"]):
                pass
    async with Fleet("127.42.232.0/24", ["echo-only", "echo-only"]) as fleet:
        assert len(fleet.endpoints()) == 2


def _pynetdicom_echo_and_count(host: str) -> tuple[int, int]:
    contexts = (Verification, StudyRootQueryRetrieveInformationModelFind)
    with scu_association(host, 11112, contexts, calling="PYNDSCU") as assoc:
        assert assoc.is_established
        echo = assoc.send_c_echo().Status
        q = identifier("STUDY", StudyInstanceUID="")
        found = sum(
            1
            for st, ds in assoc.send_c_find(q, StudyRootQueryRetrieveInformationModelFind)
            if ds is not None and st.Status == 0xFF00
        )
    return echo, found


def test_fleet_thread_serves_pynetdicom_from_sync_code() -> None:
    lab = FleetThread("127.42.233.0/24", ["open", "silent"], seed=9, max_patients=30).start()
    try:
        host = lab.fleet.host_of("open").host
        echo, found = _pynetdicom_echo_and_count(host)
        assert echo == 0
        assert found == lab.truth["endpoints"][f"{host}:11112"]["exposure"]["studies"]
        # a connection the silent host holds open must not keep the fleet from stopping
        hung = socket.create_connection(("127.42.233.2", 11112))
    finally:
        started = time.monotonic()
        lab.stop()
    assert time.monotonic() - started < 5
    hung.close()
    with pytest.raises(OSError):
        socket.create_connection((host, 11112), timeout=1)


def test_cli_writes_truth_and_stops_after_duration(tmp_path: Path) -> None:
    truth_file = tmp_path / "truth.json"
    code: list[int] = []
    thread = threading.Thread(
        target=lambda: code.append(
            main(
                [
                    "--network",
                    "127.42.234.0/24",
                    "--size",
                    "18",
                    "--seed",
                    "4",
                    "--truth",
                    str(truth_file),
                    "--duration",
                    "1",
                    "--max-patients",
                    "20",
                ]
            )
        )
    )
    thread.start()
    thread.join(20)
    assert code == [0]
    truth = json.loads(truth_file.read_text())
    assert truth["format"] == "dicomguard-lab-truth/1" and truth["size"] == 18
    assert "127.42.234.7:2762" in truth["endpoints"]  # tls-only's second port
    assert truth["endpoints"]["127.42.234.7:2762"]["tls"] is True
