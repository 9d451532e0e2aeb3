"""Operations through the gateway against a recording pynetdicom backend: what passes, what is
refused with which status, and what the backend sees (rewritten AE titles, nothing refused)."""

from __future__ import annotations

from typing import Any

from .conftest import RecordingBackend
from .scu import associate, ct_instance, find_all, get, move


def test_echo_and_store_pass_with_rewritten_ae_titles(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="CT01")
    assert assoc.is_established
    assert assoc.send_c_echo().Status == 0
    ds = ct_instance(1)
    assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    assert backend.record.associations[-1]["called"] == backend.aet
    assert backend.record.associations[-1]["calling"] == "DGGATEWAY"
    assert backend.record.requests == [("ECHO", ""), ("STORE", ds.SOPInstanceUID)]
    m = gw.gateway.metrics
    assert m.operations.value(operation="STORE", result="ok") == 1
    assert m.associations.value(result="accepted") == 1


def test_operation_not_allowed_is_refused_before_the_backend(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="CT01")  # identity "modality": ECHO + STORE
    found, final = find_all(assoc)
    assert (found, final) == ([], 0xA700)  # C-FIND's only refusal status
    assert move(assoc, "VIEWER1") == 0x0124
    assert get(assoc) == 0x0124
    # the association survives refusals, and data sets of refused requests were swallowed
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert backend.record.requests == [("ECHO", "")]


def test_store_refused_for_viewer_and_dataset_swallowed(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="VIEWER1")
    big = ct_instance(2, rows=256, columns=256)  # 128 KiB: many PDUs to swallow
    assert assoc.send_c_store(big).Status == 0x0124
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert backend.record.requests == [("ECHO", "")]


def test_find_cap_cancels_at_backend(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="VIEWER1")  # viewer: cap of 10 matches
    found, final = find_all(assoc)
    assert len(found) == 10
    assert final == 0xA700
    assert assoc.send_c_echo().Status == 0  # backend's late responses did not leak through
    assoc.release()
    assert backend.record.cancelled, "the backend never saw the C-CANCEL"
    assert gw.gateway.metrics.find_capped.value() == 1


def test_find_under_cap_passes_unchanged(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["identity"]["viewer"]["find_max_results"] = 100
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="VIEWER1")
    found, final = find_all(assoc)
    assoc.release()
    assert (len(found), final) == (backend.find_matches, 0)
    assert found[0].PatientID == "DGSYN0000"


def test_move_destination_allow_list(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="VIEWER1")
    assert move(assoc, "HARVESTER") == 0xA801  # refused by the gateway
    allowed = move(assoc, "VIEWER1")  # reaches the backend, which answers for itself
    assoc.release()
    assert backend.record.requests == [("MOVE", "VIEWER1")]
    assert allowed == 0xA801  # the recording backend knows no destinations


def test_get_allowed_for_admin(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["client"][0]["identity"] = "admin"
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="CT01")
    assert get(assoc) == 0
    assoc.release()
    assert backend.record.requests == [("GET", "")]


def test_rate_limit_per_identity(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    raw_config["identity"]["modality"].update({"rate": 0.5, "burst": 3})
    gw = gateway_factory(raw_config)
    first = associate(gw.address(), calling="CT01")
    second = associate(gw.address(), calling="CT01")  # a second association shares the bucket
    statuses = [first.send_c_store(ct_instance(i)).Status for i in range(2)]
    statuses += [second.send_c_store(ct_instance(10 + i)).Status for i in range(2)]
    first.release()
    second.release()
    assert statuses == [0, 0, 0, 0xA700]
    assert len(backend.record.requests) == 3
