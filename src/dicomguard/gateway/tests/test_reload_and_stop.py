"""Reload on SIGHUP without dropping live associations, and a graceful stop on SIGTERM, on
the real command (``python -m dicomguard.gateway``) as an operator would run it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from dicomguard.testing.loopback import free_port, wait_until_accepting

from .conftest import GATEWAY_HOST, RecordingBackend
from .scu import associate, ct_instance

SRC = str(Path(__file__).resolve().parents[3])


def _toml(backend: RecordingBackend, port: int, clients: list[str]) -> str:
    lines = [f'[[listen]]\naddress = "{GATEWAY_HOST}"\nport = {port}\n']
    for aet in clients:
        lines.append(f'[[client]]\ncalling_aet = "{aet}"\nsources = ["127.0.0.0/8"]\n'
                     'identity = "modality"\n')
    lines.append(f'[[route]]\ncalled_aet = "PACS"\nbackend_host = "{backend.host}"\n'
                 f'backend_port = {backend.port}\nbackend_aet = "{backend.aet}"\n')
    lines.append('[identity.modality]\noperations = ["ECHO", "STORE"]\n')
    lines.append("[limits]\nstop_grace = 3\n")
    return "\n".join(lines)


def _wait_for(predicate: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_sighup_reload_keeps_live_association_and_sigterm_stops_gracefully(
    backend: RecordingBackend, tmp_path: Path
) -> None:
    port = free_port(GATEWAY_HOST)
    cfg = tmp_path / "gw.toml"
    cfg.write_text(_toml(backend, port, ["CT01", "CT02"]))
    log = tmp_path / "gw.log"
    env = dict(os.environ, PYTHONPATH=SRC)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dicomguard.gateway", "--config",
                                 str(cfg)], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until_accepting(GATEWAY_HOST, port, timeout=15, alive=lambda: proc.poll() is None)
        live = associate((GATEWAY_HOST, port), calling="CT02")
        assert live.is_established
        # CT02 is removed from the configuration while its association is live
        cfg.write_text(_toml(backend, port, ["CT01"]))
        proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: b"configuration reloaded" in log.read_bytes()), log.read_text()
        assert not associate((GATEWAY_HOST, port), calling="CT02").is_established
        assert live.send_c_store(ct_instance(42)).Status == 0  # the live one goes on
        # A broken file on reload keeps the running configuration
        cfg.write_text("[[listen]]\nport = 'x'\n")
        proc.send_signal(signal.SIGHUP)
        assert _wait_for(lambda: b"reload failed" in log.read_bytes())
        ok = associate((GATEWAY_HOST, port), calling="CT01")
        assert ok.is_established
        ok.release()
        # SIGTERM: no new associations, the live one may still finish within the grace
        proc.send_signal(signal.SIGTERM)
        assert _wait_for(lambda: b"stopping" in log.read_bytes())
        assert not associate((GATEWAY_HOST, port), calling="CT01").is_established
        assert live.send_c_echo().Status == 0
        live.release()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stop_aborts_associations_past_the_grace(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend
) -> None:
    gw = gateway_factory(raw_config)
    idle = associate(gw.address(), calling="CT01")
    assert idle.is_established
    started = time.monotonic()
    gw.stop(grace=0.5)
    assert time.monotonic() - started < 5
    assert _wait_for(lambda: idle.is_aborted or not idle.is_alive())
