"""Wrong passcodes from many connections do not keep a legitimate user waiting.

Suspected in the last session, measured in this one (gateway to DCMTK storescp): 128
A-ASSOCIATE-RQs with a wrong passcode, 16 from each of 8 addresses (the default
``max_setup_per_source``), queued 128 scrypt checks on the one identity thread, first come first
served; DCMTK storescu with a right passcode then took 8.8 s instead of 0.25 s. (echoscu
without a user identity was not delayed: 0.12 s against 0.10 s; ``hashlib.scrypt`` releases the
GIL.) Now the identity thread serves the sources in turn and a source's failures are limited
(gateway/identity_queue.py).

The test is deterministic: the first passcode check is held on a gate until every request is
queued, then the order in which the checks ran is what is asserted (a count of scrypt runs,
not a time). The checks themselves are real scrypt.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydicom import dcmwrite

from dicomguard.dul import pdu as P
from dicomguard.dul.acse import AssociateRequest, UserIdentity
from dicomguard.dul.codes import (
    REJECT_LOCAL_LIMIT,
    REJECT_NO_REASON,
    Reject,
    UserIdentityType,
)
from dicomguard.gateway import auth
from dicomguard.testing.require import need_binaries

from .scu import ct_instance

pytestmark = pytest.mark.usefixtures("no_tracebacks")

ATTACK_SOURCES = [f"127.0.31.{i}" for i in range(1, 9)]
PER_SOURCE = 16  # limits.max_setup_per_source's default
FAILURES_ALLOWED = 2  # limits.max_identity_failures_per_source in this test
BOB = "bob-right-passcode"


def _wait(condition: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


def _triple(reject: Reject) -> tuple[int, int, int]:
    return reject.result, reject.source, reject.reason


def _answer(sock: socket.socket) -> tuple[int, int, int] | str:
    """The A-ASSOCIATE-RJ (result, source, reason) the gateway sent, or "closed"."""
    sock.settimeout(20)
    data = b""
    try:
        while len(data) < 10:
            chunk = sock.recv(10 - len(data))
            if not chunk:
                return "closed"
            data += chunk
    except ConnectionResetError:
        return "closed"
    assert data[0] == P.A_ASSOCIATE_RJ, data
    return data[7], data[8], data[9]


def test_wrong_passcodes_from_eight_sources_do_not_delay_a_right_one(
    raw_config: dict[str, Any], gateway_factory: Any, storescp_server: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    need_binaries("storescu", "echoscu")
    gate = threading.Event()
    order: list[str] = []  # the user of each passcode check, in the order they ran
    real = auth.verify_passcode
    users = {"alice": raw_config["user"][0]["passcode_hash"],
             "bob": auth.hash_passcode(BOB)}
    by_hash = {h: name for name, h in users.items()}

    def gated(given: bytes, stored: str) -> bool:
        if not order:
            gate.wait(30)  # the first check holds the thread until every request is queued
        order.append(by_hash.get(stored, "?"))
        return real(given, stored)

    monkeypatch.setattr(auth, "verify_passcode", gated)
    raw_config["sources"] = {"allow": ["127.0.0.0/8"]}
    raw_config["route"] = [{"called_aet": "PACS", "backend_host": storescp_server.host,
                            "backend_port": storescp_server.port,
                            "backend_aet": storescp_server.aet}]
    raw_config["user"].append({"name": "bob", "passcode_hash": users["bob"],
                               "identity": "modality"})
    raw_config["limits"] = {"max_identity_failures_per_source": FAILURES_ALLOWED}
    gw = gateway_factory(raw_config)
    host, port = gw.address()
    queue, metrics = gw.gateway.shared.identity, gw.gateway.metrics
    wrong = AssociateRequest(
        called_aet="PACS", calling_aet="ROAMING",
        user_identity=UserIdentity(UserIdentityType.USERNAME_PASSCODE, b"alice",
                                   b"not the passcode")).encode()
    attack: list[socket.socket] = []
    try:
        for source in ATTACK_SOURCES:
            for _ in range(PER_SOURCE):
                s = socket.socket()
                attack.append(s)
                s.bind((source, 0))
                s.connect((host, port))
                s.sendall(wrong)
        n = len(attack)
        _wait(lambda: order == [] and queue.waiting() == n - 1 and queue._running is not None,
              "every attacking request queued")

        # Without a user identity nothing waits for the identity thread (held on its gate).
        echo = subprocess.run(["echoscu", "-to", "20", "-aet", "CT01", "-aec", "PACS", host,
                               str(port)], capture_output=True, text=True, timeout=60,
                              check=False)
        assert echo.returncode == 0, echo.stdout + echo.stderr
        assert order == []

        instance = tmp_path / "ct.dcm"
        dcmwrite(instance, ct_instance(1), enforce_file_format=True)
        store = subprocess.Popen(
            ["storescu", "-to", "60", "-aet", "ROAMING", "-aec", "PACS", "--user", "bob",
             "--password", BOB, host, str(port), str(instance)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            _wait(lambda: queue.waiting("127.0.0.1") == 1, "storescu's check queued")
            gate.set()
            out, _ = store.communicate(timeout=60)
        finally:
            if store.poll() is None:
                store.kill()
                store.wait()
        assert store.returncode == 0, out
        answers = [_answer(s) for s in attack]
    finally:
        gate.set()
        for s in attack:
            s.close()
    # storescu's check ran after at most the one in progress and one of each attacking source
    assert "bob" in order
    assert order.index("bob") <= 1 + len(ATTACK_SOURCES), order
    # each attacking source had FAILURES_ALLOWED scrypt runs; the rest were refused unhashed
    assert order.count("alice") == FAILURES_ALLOWED * len(ATTACK_SOURCES)
    hashed = answers.count(_triple(REJECT_NO_REASON))
    limited = answers.count(_triple(REJECT_LOCAL_LIMIT))
    # closed to make room for echoscu at max_setup (128); storescu found the place echoscu left
    evicted = answers.count("closed")
    assert evicted == metrics.setup_closed.value(reason="evicted") == 1
    # an evicted connection's check may have run (the oldest one is the first one hashed)
    assert order.count("alice") - evicted <= hashed <= order.count("alice")
    assert hashed + limited + evicted == len(attack)
    assert metrics.identity_checks.value(result="limited") == limited
    assert metrics.associations.value(result="rejected-identity-limit") == limited
    assert metrics.identity_checks.value(result="ok") == 1
    assert queue.waiting() == 0 and metrics.identity_waiting.value() == 0


def test_a_source_over_its_failures_is_refused_before_hashing(
    raw_config: dict[str, Any], gateway_factory: Any, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path
) -> None:
    """Past its failures, even a right passcode from that source is refused, transiently,
    without a hash, and audited as a User Authentication failure."""
    from .conftest import PASSCODE
    from .scu import associate, reject_reason

    hashes: list[str] = []
    real = auth.verify_passcode

    def counted(given: bytes, stored: str) -> bool:
        hashes.append(stored)
        return real(given, stored)

    monkeypatch.setattr(auth, "verify_passcode", counted)
    raw_config["limits"] = {"max_identity_failures_per_source": 2,
                            "identity_failure_window": 3600}
    raw_config["audit"] = {"file": "audit.xml"}
    gw = gateway_factory(raw_config, tmp_path)
    for _ in range(2):
        bad = associate(gw.address(), calling="VIEWER1", username="alice", passcode="wrong")
        assert reject_reason(bad) == _triple(REJECT_NO_REASON)
    good = associate(gw.address(), calling="VIEWER1", username="alice", passcode=PASSCODE)
    assert reject_reason(good) == _triple(REJECT_LOCAL_LIMIT)
    assert len(hashes) == 2
    # another source is not affected
    other = associate(gw.address(), calling="VIEWER1", username="alice", passcode=PASSCODE,
                      bind="127.0.0.77")
    assert other.is_established
    other.release()
    metrics = gw.gateway.metrics
    # (pynetdicom may lose an RJ and ask again: scu.associate)
    assert metrics.associations.value(result="rejected-identity-limit") >= 1
    assert metrics.identity_checks.value(result="failed") == 2
    gw.stop()
    audit = (tmp_path / "audit.xml").read_text()
    limited = [line for line in audit.splitlines() if "too many failed user identities" in line]
    assert limited
    assert all('csd-code="110114"' in line and 'EventOutcomeIndicator="4"' in line
               for line in limited)
