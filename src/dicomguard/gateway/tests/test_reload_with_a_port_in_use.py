"""A reload whose new listener cannot bind (its port is taken) fails whole: the running
configuration stays in force, the reload is counted as failed and logged in one line.

Found by review: the new listeners were opened after the new policy and audit trail were
installed, so a port in use raised out of the SIGHUP task ("Task exception was never
retrieved" with a traceback), the reload was counted neither ok nor failed, and the gateway ran
the new policy without the new listener. Moving a listener to TLS on the same port (the old
listener is closed to free it) still works.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest

from dicomguard.gateway.config import parse_config

from .conftest import GATEWAY_HOST
from .scu import associate


@pytest.mark.expect_error_log  # "reload failed, keeping the running configuration: ..."
def test_a_new_listener_on_a_taken_port_fails_the_reload_and_changes_nothing(
    raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    gw = gateway_factory(raw_config)
    address = gw.address()
    taken = socket.create_server((GATEWAY_HOST, 0))
    try:
        new = dict(raw_config)
        new["listen"] = [*raw_config["listen"],
                         {"address": GATEWAY_HOST, "port": taken.getsockname()[1]}]
        # the new configuration would also refuse CT01 and rename the audit source
        new["client"] = [c for c in raw_config["client"] if c["calling_aet"] != "CT01"]
        new["audit"] = {"source_id": "renamed"}
        assert gw.reload(parse_config(new)) is False
    finally:
        taken.close()
    metrics = gw.gateway.metrics
    assert metrics.reloads.value(result="failed") == 1
    assert metrics.reloads.value(result="ok") == 0
    assert gw.gateway.config.audit.source_id == "dicomguard-gateway"
    assert gw.gateway.shared.audit.config.source_id == "dicomguard-gateway"
    assert len(gw.gateway.config.listeners) == 1
    ok = associate(address, calling="CT01")  # the old policy, on the old listener
    assert ok.is_established
    ok.release()


def test_a_listener_moved_to_tls_on_its_own_port_reloads(
    raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any]
) -> None:
    raw_config["tls"] = {"cert": str(pki["server"].cert), "key": str(pki["server"].key)}
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    new = dict(raw_config)
    new["listen"] = [{"address": host, "port": port, "tls": True}]
    assert gw.reload(parse_config(new)) is True
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.check_hostname = False
    ok = associate((host, port), calling="CT01", tls=context)
    assert ok.is_established
    ok.release()


@pytest.mark.expect_error_log  # "reload failed, keeping the running configuration: ..."
def test_a_listener_freed_for_a_failed_reload_listens_again(
    raw_config: dict[str, Any], gateway_factory: Any, pki: dict[str, Any], tmp_path: Any
) -> None:
    raw_config["tls"] = {"cert": str(pki["server"].cert), "key": str(pki["server"].key)}
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    new = dict(raw_config)
    new["listen"] = [{"address": host, "port": port, "tls": True}]
    new["audit"] = {"file": str(blocker / "audit.xml")}  # cannot be opened: the reload fails
    assert gw.reload(parse_config(new)) is False
    assert gw.gateway.metrics.reloads.value(result="failed") == 1
    ok = associate((host, port), calling="CT01")  # plain, as before the reload
    assert ok.is_established
    ok.release()


def _metrics_answer(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
        return data


@pytest.mark.expect_error_log  # "reload failed, keeping the running configuration: ..."
def test_a_metrics_endpoint_moved_to_a_taken_port_fails_the_reload(
    raw_config: dict[str, Any], gateway_factory: Any
) -> None:
    from dicomguard.testing.loopback import free_port

    raw_config["metrics"] = {"address": "127.0.0.1", "port": free_port("127.0.0.1")}
    gw = gateway_factory(raw_config)
    running = gw.gateway.metrics_port
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        new = dict(raw_config)
        new["metrics"] = {"address": "127.0.0.1", "port": taken.getsockname()[1]}
        assert gw.reload(parse_config(new)) is False
    finally:
        taken.close()
    assert gw.gateway.metrics_port == running
    assert b'dicomguard_gateway_reloads_total{result="failed"} 1' in _metrics_answer(running)
    # and moved to a free port, it moves
    moved = dict(raw_config)
    moved["metrics"] = {"address": "127.0.0.1", "port": free_port("127.0.0.1")}
    assert gw.reload(parse_config(moved)) is True
    assert gw.gateway.metrics_port == moved["metrics"]["port"]
    assert b"reloads_total" in _metrics_answer(gw.gateway.metrics_port)
