"""Audit messages (file + RFC 5424 syslog over UDP and TCP to loopback collectors) and the
Prometheus endpoint, from real associations through the gateway."""

from __future__ import annotations

import socket
import time
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from dicomguard.testing.loopback import free_port

from .conftest import RecordingBackend
from .scu import associate, ct_instance, find_all
from .syslog import SYSLOG, TcpCollector


def _events(path: Path) -> list[tuple[str, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        root = ET.fromstring(line)
        ev = root.find("EventIdentification")
        assert ev is not None
        code = ev.find("EventID")
        assert code is not None
        out.append((code.get("originalText", ""), ev.get("EventOutcomeIndicator", ""),
                    ev.findtext("EventOutcomeDescription") or ""))
    return out


def test_audit_file_and_udp_syslog(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend, tmp_path: Path
) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(5)
    raw_config["audit"] = {"file": "audit/audit.xml",
                           "syslog": f"udp://127.0.0.1:{udp.getsockname()[1]}"}
    gw = gateway_factory(raw_config, tmp_path)
    assoc = associate(gw.address(), calling="CT01")
    assert assoc.send_c_store(ct_instance(5)).Status == 0
    find_all(assoc)  # refused: the modality may not query
    assoc.release()
    refused = associate(gw.address(), calling="NOBODY")
    assert not refused.is_established
    gw.stop()  # flushes; the fixture's second stop is harmless
    events = _events(tmp_path / "audit" / "audit.xml")
    names = [e[0] for e in events]
    assert names[0] == "Application Activity" and names[-1] == "Application Activity"
    assert ("DICOM Instances Transferred", "0", "STORE") in events
    assert any(n == "Security Alert" and "FIND refused" in d for n, _, d in events)
    assert any(n == "Security Alert" and "calling AE 'NOBODY'" in d for n, _, d in events)
    assert names.count("User Authentication") == 2  # login + logout of the CT01 association
    frames = []
    udp.settimeout(0.5)  # everything was sent before stop() returned
    try:
        while True:
            frames.append(udp.recv(65536))
    except TimeoutError:
        pass
    assert len(frames) == len(events)
    for frame in frames:
        m = SYSLOG.match(frame)
        assert m is not None, frame[:120]
        assert int(m.group(1)) in (84, 85)  # authpriv.warning / authpriv.notice
        ET.fromstring(m.group(2))


def test_tcp_syslog_and_metrics_endpoint(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    collector = TcpCollector()
    raw_config["audit"] = {"syslog": f"tcp://127.0.0.1:{collector.port}"}
    raw_config["metrics"] = {"address": "127.0.0.1", "port": 0}
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="CT01")
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert gw.gateway.metrics_port is None  # port 0 = endpoint off
    raw_config["metrics"]["port"] = free_port()
    assert gw.reload(_parse(raw_config))
    url = f"http://127.0.0.1:{gw.gateway.metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    assert 'dicomguard_gateway_associations_total{result="accepted"} 1' in text
    assert 'dicomguard_gateway_operations_total{operation="ECHO",result="ok"} 1' in text
    assert 'dicomguard_gateway_reloads_total{result="ok"} 1' in text
    assert "# TYPE dicomguard_gateway_active_associations gauge" in text
    gw.stop()
    assert collector.wait_for(
        lambda frames: any(b"DICOM+RFC3881" in f and b"110114" in f for f in frames))


def _parse(raw: dict[str, Any]) -> Any:
    from dicomguard.gateway.config import parse_config

    return parse_config(raw)


def test_audit_reaches_the_file_within_the_batch_window_while_running(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend, tmp_path: Path
) -> None:
    from dicomguard.gateway.audit import BATCH_SECONDS

    raw_config["audit"] = {"file": "audit.xml"}
    gw = gateway_factory(raw_config, tmp_path)
    assoc = associate(gw.address(), calling="CT01")
    for i in range(20):
        assert assoc.send_c_store(ct_instance(40 + i)).Status == 0
    time.sleep(BATCH_SECONDS + 0.5)  # no stop: the running gateway must have flushed them
    stored = [e for e in _events(tmp_path / "audit.xml") if e[0] == "DICOM Instances Transferred"]
    assert len(stored) == 20
    assoc.release()
