"""Audit messages are neither lost nor repeated across a reload, and name the audit source the
gateway had when each event happened.

Suspected in the last session: a reload that changed ``[audit]`` stopped the old audit trail
(waiting at most 2 s for its TCP syslog queue, then cancelling it: whatever was still queued
was gone, uncounted) while live associations went on recording into it (their messages went to
a closed file and a queue nobody sent), and the live associations' cached operation messages
kept the old ``source_id``.

Each test runs real associations through the gateway to a real pynetdicom SCP with a real TCP
collector, stalled across the reload (so that messages are in flight when it happens), and
checks every message in the collector and in the file against the PS3.15 audit schema.
"""

from __future__ import annotations

import socket
import threading
import time
from copy import deepcopy
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from dicomguard.gateway.config import parse_config

from .conftest import RecordingBackend
from .scu import associate, ct_instance
from .syslog import TcpCollector

pytestmark = pytest.mark.usefixtures("no_tracebacks")

SCHEMA = Path(__file__).parent / "data" / "ps3.15-audit-message.rng"
STORED = "110104"  # DICOM Instances Transferred
AUTH = "110114"  # User Authentication (Login / Logout)
APP = "110100"  # Application Activity (start / stop)
#: frames waiting in the gateway's syslog queue that show its sends are backed up
BACKLOG = 5


@pytest.fixture(scope="module")
def schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


class Modality:
    """A live CT01 association storing numbered synthetic instances."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.assoc = associate(address, calling="CT01")
        assert self.assoc.is_established
        # pynetdicom writes a C-STORE as two PDUs: with Nagle on, the second waits for the
        # gateway's delayed ACK (~40 ms per instance)
        self.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.uids: list[str] = []

    def store(self, n: int = 1) -> list[str]:
        done = []
        for _ in range(n):
            ds = ct_instance(len(self.uids))
            assert self.assoc.send_c_store(ds).Status == 0
            self.uids.append(str(ds.SOPInstanceUID))
            done.append(self.uids[-1])
        return done

    def store_until(self, condition: Any, limit: int = 5000) -> None:
        """Store until ``condition()`` holds (asserted within ``limit`` instances)."""
        for _ in range(limit):
            if condition():
                return
            self.store()
        raise AssertionError(f"condition not met after {limit} instances")


def _parse(messages: list[bytes], schema: etree.RelaxNG) -> list[etree._Element]:
    out = []
    for xml in messages:
        message = etree.fromstring(xml)
        assert schema.validate(message), (schema.error_log.last_error, xml[:400])
        out.append(message)
    return out


def _event(message: etree._Element) -> str:
    return str(message.find("EventIdentification/EventID").get("csd-code"))


def _source(message: etree._Element) -> str:
    return str(message.find("AuditSourceIdentification").get("AuditSourceID"))


def _instances(messages: list[etree._Element]) -> list[str]:
    return [i.get("UID") for m in messages if _event(m) == STORED for i in m.iter("Instance")]


def _reload_in_background(gw: Any, raw: dict[str, Any], base: Path) -> Any:
    """Start ``gw.reload`` in a thread (it may wait for the old trail's queue); the returned
    function joins it and returns its result."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(gw.reload(parse_config(raw, base_dir=base)))
        except BaseException as exc:  # handed to the test thread by join()
            result.append(exc)

    thread = threading.Thread(target=run)
    thread.start()

    def join() -> bool:
        thread.join(60)
        assert result, "reload did not return"
        if isinstance(result[0], BaseException):
            raise result[0]
        return bool(result[0])

    return join


def _arrived(n: int, *collectors: TcpCollector, timeout: float = 10.0) -> bool:
    """Whether ``n`` frames (or more) have arrived at the collectors together in time."""
    deadline = time.monotonic() + timeout
    while sum(len(c.frames) for c in collectors) < n:
        if time.monotonic() > deadline:
            return False
        collectors[0].wait_for(lambda _frames: False, 0.05)  # a short wait for more frames
    return True


def _sources_by_instance(messages: list[etree._Element]) -> dict[str, str]:
    return {i.get("UID"): _source(m) for m in messages if _event(m) == STORED
            for i in m.iter("Instance")}


def _check_exactly_once(messages: list[etree._Element], uids: list[str]) -> None:
    assert sorted(_instances(messages)) == sorted(uids)  # each stored instance once
    events = [_event(m) for m in messages]
    assert events.count(AUTH) == 2  # login and logout of the one association
    assert events.count(APP) == 2  # start and stop


@pytest.mark.parametrize("collector_changes", [False, True], ids=["same-collector",
                                                                   "other-collector"])
def test_operations_recorded_at_every_step_of_a_reload_are_written_once(
    collector_changes: bool, raw_config: dict[str, Any], gateway_factory: Any,
    backend: RecordingBackend, tmp_path: Path, schema: etree.RelaxNG
) -> None:
    """Deterministic: on the gateway's loop, a live association's relay records one C-STORE
    outcome at every turn of the loop while the reload runs (as its pipes do when traffic
    flows), so every wait inside the reload has operations recorded during it. Before the
    fix, those recorded while the old trail was stopping went to its closed file and to a
    queue nobody sent."""
    import asyncio

    from dicomguard.gateway.judge import Operation

    first, second = TcpCollector(), TcpCollector()
    raw_config["audit"] = {"syslog": first.url, "file": "audit.xml", "source_id": "before"}
    gw = gateway_factory(raw_config, tmp_path)
    ct = Modality(gw.address())
    ct.store(1)
    changed = deepcopy(raw_config)
    changed["audit"]["source_id"] = "after"
    if collector_changes:
        changed["audit"]["syslog"] = second.url
    new_config = parse_config(changed, base_dir=tmp_path)
    recorded: list[str] = []

    async def reload_under_traffic() -> bool:
        gateway = gw.gateway
        relay = next(iter(gateway.shared.active))
        reload = asyncio.ensure_future(gateway.reload(new_config))
        while True:  # one operation before the reload's first step and after each of its waits
            uid = f"2.25.4242.{len(recorded) + 1}"
            recorded.append(uid)
            gateway.shared.audit.operation(
                relay, Operation("STORE", "1.2.840.10008.5.1.4.1.1.2", uid, None), status=0)
            if reload.done():
                return reload.result()
            await asyncio.sleep(0)

    assert gw.call(reload_under_traffic())
    ct.store(1)
    ct.assoc.release()
    gw.stop()
    expected = len(recorded) + len(ct.uids) + 4
    assert _arrived(expected, first, second)
    syslog = _parse(first.messages() + second.messages(), schema)
    _check_exactly_once(syslog, ct.uids + recorded)
    assert len(syslog) == expected
    in_file = _parse([line.encode() for line in (tmp_path / "audit.xml").read_text()
                      .splitlines()], schema)
    _check_exactly_once(in_file, ct.uids + recorded)
    assert gw.gateway.metrics.audit_dropped.value() == 0
    # the audit source is the one configured when the event was recorded: "before" up to some
    # step of the reload, "after" from then on, never back (PS3.15 A.5.3.2)
    source = _sources_by_instance(syslog)
    sequence = [source[uid] for uid in recorded]
    assert sequence[0] == "before" and sequence[-1] == "after"
    assert sequence == sorted(sequence, key=["before", "after"].index)
    assert source[ct.uids[0]] == "before" and source[ct.uids[-1]] == "after"


def test_reload_with_a_stalled_tcp_collector_loses_and_repeats_nothing(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    tmp_path: Path, schema: etree.RelaxNG
) -> None:
    collector = TcpCollector(receive_buffer=4096)
    raw_config["audit"] = {"syslog": collector.url, "file": "audit.xml",
                           "source_id": "gateway-before"}
    gw = gateway_factory(raw_config, tmp_path)
    ct = Modality(gw.address())
    ct.store(3)
    assert collector.wait_for(lambda frames: len(frames) >= 2)  # start + login at least
    collector.pause()
    trail = gw.gateway.shared.audit
    ct.store_until(lambda: trail.syslog_backlog >= BACKLOG)
    before = list(ct.uids)
    changed = deepcopy(raw_config)
    changed["audit"]["source_id"] = "gateway-after"
    join = _reload_in_background(gw, changed, tmp_path)
    ct.store(5)  # while the reload may be waiting on the stalled collector
    assert join()
    collector.resume()  # stalled until after the reload: messages were in flight across it
    after = ct.store(5)
    ct.assoc.release()
    gw.stop()
    expected = len(ct.uids) + 4
    assert collector.wait_for(lambda frames: len(frames) >= expected)
    syslog = _parse(collector.messages(), schema)
    _check_exactly_once(syslog, ct.uids)
    assert len(syslog) == expected
    in_file = _parse([line.encode() for line in (tmp_path / "audit.xml").read_text()
                      .splitlines()], schema)
    _check_exactly_once(in_file, ct.uids)
    assert gw.gateway.metrics.audit_dropped.value() == 0
    # the live association's operations name the audit source of the moment: its login and
    # the operations before the reload the old one, those after it and its logout the new one
    source = _sources_by_instance(syslog)
    assert {source[uid] for uid in before} == {"gateway-before"}
    assert {source[uid] for uid in after} == {"gateway-after"}
    logins = [_source(m) for m in syslog if _event(m) == AUTH]
    assert logins == ["gateway-before", "gateway-after"]  # login, logout
    apps = [_source(m) for m in syslog if _event(m) == APP]
    assert apps == ["gateway-before", "gateway-after"]  # start, stop


def test_reload_to_another_collector_delivers_each_message_to_one_of_them(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    tmp_path: Path, schema: etree.RelaxNG
) -> None:
    """The old collector, stalled across the reload, still gets what was recorded before it;
    the new one gets everything after; nothing twice."""
    old, new = TcpCollector(receive_buffer=4096), TcpCollector()
    raw_config["audit"] = {"syslog": old.url}
    gw = gateway_factory(raw_config, tmp_path)
    ct = Modality(gw.address())
    ct.store(3)
    assert old.wait_for(lambda frames: len(frames) >= 2)
    old.pause()
    trail = gw.gateway.shared.audit
    ct.store_until(lambda: trail.syslog_backlog >= BACKLOG)
    before = list(ct.uids)
    changed = deepcopy(raw_config)
    changed["audit"]["syslog"] = new.url
    join = _reload_in_background(gw, changed, tmp_path)
    ct.store(5)
    assert join()
    old.resume()
    ct.store(5)
    ct.assoc.release()
    gw.stop()
    expected = len(ct.uids) + 4
    assert _arrived(expected, old, new)
    at_old, at_new = _parse(old.messages(), schema), _parse(new.messages(), schema)
    _check_exactly_once(at_old + at_new, ct.uids)
    assert set(before) <= set(_instances(at_old))  # recorded before the reload: the old one
    assert len(at_old) + len(at_new) == expected


@pytest.mark.expect_error_log  # "reload failed, keeping the running configuration"
def test_a_reload_whose_audit_file_cannot_be_opened_keeps_the_running_trail(
    raw_config: dict[str, Any], gateway_factory: Any, backend: RecordingBackend,
    tmp_path: Path, schema: etree.RelaxNG
) -> None:
    raw_config["audit"] = {"file": "audit.xml"}
    gw = gateway_factory(raw_config, tmp_path)
    (tmp_path / "blocker").write_text("a file where the new audit directory would be\n")
    changed = deepcopy(raw_config)
    changed["audit"]["file"] = "blocker/audit.xml"
    assert not gw.reload(parse_config(changed, base_dir=tmp_path))
    assert gw.gateway.metrics.reloads.value(result="failed") == 1
    ct = Modality(gw.address())
    ct.store(2)
    ct.assoc.release()
    gw.stop()
    in_file = _parse([line.encode() for line in (tmp_path / "audit.xml").read_text()
                      .splitlines()], schema)
    _check_exactly_once(in_file, ct.uids)


def test_sighup_on_the_real_command_keeps_every_audit_message_once(
    backend: RecordingBackend, tmp_path: Path, schema: etree.RelaxNG
) -> None:
    """As an operator runs it: ``python -m dicomguard.gateway``, a live association storing,
    the configuration's source_id changed and SIGHUP sent, then SIGTERM."""
    import os
    import signal
    import subprocess
    import sys

    from dicomguard.testing.loopback import free_port, wait_until_accepting

    from .conftest import GATEWAY_HOST

    collector = TcpCollector()
    port = free_port(GATEWAY_HOST)

    def toml(source_id: str) -> str:
        return (f'[[listen]]\naddress = "{GATEWAY_HOST}"\nport = {port}\n\n'
                '[[client]]\ncalling_aet = "CT01"\nsources = ["127.0.0.1/32"]\n'
                'identity = "modality"\n\n'
                f'[[route]]\ncalled_aet = "PACS"\nbackend_host = "{backend.host}"\n'
                f'backend_port = {backend.port}\nbackend_aet = "{backend.aet}"\n\n'
                '[identity.modality]\noperations = ["ECHO", "STORE"]\n\n'
                f'[audit]\nsyslog = "{collector.url}"\nsource_id = "{source_id}"\n')

    cfg = tmp_path / "gw.toml"
    cfg.write_text(toml("before"))
    log = tmp_path / "gw.log"
    src = str(Path(__file__).resolve().parents[3])
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dicomguard.gateway", "--config",
                                 str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                env=dict(os.environ, PYTHONPATH=src))
    try:
        wait_until_accepting(GATEWAY_HOST, port, timeout=15, alive=lambda: proc.poll() is None)
        ct = Modality((GATEWAY_HOST, port))
        before = ct.store(20)
        cfg.write_text(toml("after"))
        proc.send_signal(signal.SIGHUP)
        during = ct.store(20)  # stored while the gateway reloads, or just after
        deadline = time.monotonic() + 10
        while b"configuration reloaded" not in log.read_bytes():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        after = ct.store(20)
        ct.assoc.release()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = len(ct.uids) + 4
    assert _arrived(expected, collector)
    syslog = _parse(collector.messages(), schema)
    _check_exactly_once(syslog, ct.uids)
    assert len(syslog) == expected
    source = _sources_by_instance(syslog)
    assert {source[uid] for uid in before} == {"before"}
    assert {source[uid] for uid in after} == {"after"}
    sequence = [source[uid] for uid in before + during + after]
    assert sequence == sorted(sequence, key=["before", "after"].index)
    assert b"Traceback" not in log.read_bytes()
