"""Fixtures for the gateway tests: a recording pynetdicom backend, a gateway in a thread, PKI.

The gateway runs on its own event loop in a background thread so that the tests can drive it
with blocking clients (pynetdicom, DCMTK tools) exactly as a hospital's devices would.
Everything listens on 127.0.20.0/24 (gateways) and 127.0.21.0/24 (backends): loopback only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import (
    CTImageStorage,
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    Verification,
)

from dicomguard.gateway.auth import hash_passcode
from dicomguard.gateway.busypoll import event_loop
from dicomguard.gateway.config import GatewayConfig, Listener, parse_config
from dicomguard.gateway.server import Gateway
from dicomguard.testing.loopback import free_port
from dicomguard.testing.pki import Issued, TestCA
from dicomguard.testing.reference import start_scp
from dicomguard.testing.threads import LoopThread

GATEWAY_HOST = "127.0.20.1"
BACKEND_HOST = "127.0.21.1"
#: A second source address a test client binds to, to exercise the source checks.
OTHER_SOURCE = "127.0.0.77"

PASSCODE = "correct horse battery staple"
JWT_SECRET = "dicomguard-test-secret-0123456789abcdef"


@dataclass
class BackendRecord:
    """What the backend saw: proof that the gateway forwarded, rewrote or withheld."""

    associations: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    cancelled: list[int] = field(default_factory=list)
    #: encoded data set of each C-STORE by SOP instance UID, to compare bytes end to end
    stored: dict[str, bytes] = field(default_factory=dict)

    def clear(self) -> None:
        self.associations.clear()
        self.requests.clear()
        self.cancelled.clear()
        self.stored.clear()


class RecordingBackend:
    """A pynetdicom SCP (Verification, CT storage, Q/R Find/Move/Get) that records requests."""

    def __init__(self, host: str = BACKEND_HOST, find_matches: int = 25) -> None:
        self.host = host
        self.port = free_port(host)
        self.aet = "LEGACYPACS"
        self.find_matches = find_matches
        self.record = BackendRecord()
        self._server: Any = None

    def _on_requested(self, event: Event) -> None:
        rq = event.assoc.requestor
        items = rq.primitive.user_information if rq.primitive is not None else []
        ui = [i for i in items or [] if isinstance(i, UserIdentityNegotiation)]
        self.record.associations.append({
            "called": event.assoc.acceptor.ae_title,
            "calling": rq.ae_title,
            "address": rq.address,
            "user_identity": ui[0] if ui else None,
        })

    def _on_echo(self, event: Event) -> int:
        self.record.requests.append(("ECHO", ""))
        return 0

    def _on_store(self, event: Event) -> int:
        uid = str(event.request.AffectedSOPInstanceUID)
        self.record.requests.append(("STORE", uid))
        self.record.stored[uid] = event.request.DataSet.getvalue()
        return 0

    def _on_find(self, event: Event) -> Iterator[tuple[int, Dataset | None]]:
        self.record.requests.append(("FIND", ""))
        for i in range(self.find_matches):
            if event.is_cancelled:
                self.record.cancelled.append(i)
                yield 0xFE00, None
                return
            ds = Dataset()
            ds.QueryRetrieveLevel = "PATIENT"
            ds.PatientID = f"DGSYN{i:04d}"
            ds.PatientName = f"DGFAKE^PATIENT{i}"
            time.sleep(0.002)  # a real archive is not instantaneous; lets the cancel land
            yield 0xFF00, ds

    def _on_move(self, event: Event) -> Iterator[Any]:
        self.record.requests.append(("MOVE", str(event.move_destination)))
        yield None, None  # destination unknown to this backend: it answers 0xA801 itself

    def _on_get(self, event: Event) -> Iterator[Any]:
        self.record.requests.append(("GET", ""))
        yield 0

    def start(self) -> RecordingBackend:
        contexts = (Verification, CTImageStorage, PatientRootQueryRetrieveInformationModelFind,
                    StudyRootQueryRetrieveInformationModelFind,
                    PatientRootQueryRetrieveInformationModelMove,
                    PatientRootQueryRetrieveInformationModelGet)
        handlers = [
            (evt.EVT_ACCEPTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
            (evt.EVT_C_FIND, self._on_find),
            (evt.EVT_C_MOVE, self._on_move),
            (evt.EVT_C_GET, self._on_get),
        ]
        self._server = start_scp(self.host, self.port, ae_title=self.aet, contexts=contexts,
                                 handlers=handlers, timeout=20, maximum_pdu_size=65536)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


class GatewayThread(LoopThread):
    """A :class:`Gateway` on its own event loop in a daemon thread."""

    def __init__(self, config: GatewayConfig, config_path: Path | None = None) -> None:
        super().__init__(event_loop(config.limits.busy_poll_us))  # the loop as the CLI makes it
        self.gateway: Gateway = self.call(self._make(config, config_path))

    async def _make(self, config: GatewayConfig, path: Path | None) -> Gateway:
        gw = Gateway(config, path)
        await gw.start()
        return gw

    def address(self, index: int = 0) -> tuple[str, int]:
        return self.gateway.bound(self.gateway.config.listeners[index])

    def bound(self, listener: Listener) -> tuple[str, int]:
        return self.gateway.bound(listener)

    def reload(self, config: GatewayConfig | None = None) -> bool:
        return bool(self.call(self.gateway.reload(config)))

    def stop(self, grace: float | None = 2.0) -> None:
        if self.loop.is_closed():
            return
        try:
            self.call(self.gateway.stop(grace))
        finally:
            self.close()


@pytest.fixture(scope="session")
def backend() -> Iterator[RecordingBackend]:
    server = RecordingBackend().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def passcode_hash() -> str:
    return hash_passcode(PASSCODE)


@pytest.fixture(scope="session")
def pki(test_ca: TestCA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Gateway server cert, two client certs from the trusted CA (the kit's ``test_ca``), one
    from a rogue CA."""
    ca = test_ca
    rogue = TestCA(tmp_path_factory.mktemp("pki-rogue"), "rogue CA")
    return {
        "ca": ca.ca_file,
        "server": ca.issue("gateway", server=True, hosts=(GATEWAY_HOST, "127.0.0.1")),
        "modality": ca.issue("ct-scanner-1", server=False),
        "unknown": ca.issue("someone-else", server=False),
        "rogue": rogue.issue("ct-scanner-1", server=False),
        "server_rsa": ca.issue("gateway-rsa", server=True, hosts=(GATEWAY_HOST, "127.0.0.1"),
                               rsa_key=True),
        "expired": ca.issue("ct-expired", server=False, valid_from_days=-10, valid_days=5),
        "not_yet_valid": ca.issue("ct-future", server=False, valid_from_days=5),
    }


def base_config(backend: RecordingBackend, passcode_hash: str) -> dict[str, Any]:
    """The config most tests start from (a dict, so tests can change one thing)."""
    return {
        "listen": [{"address": GATEWAY_HOST, "port": 0}],
        "sources": {"allow": ["127.0.0.1/32", "127.0.0.77/32"]},
        "client": [
            {"calling_aet": "CT01", "sources": ["127.0.0.1/32"], "identity": "modality"},
            {"calling_aet": "VIEWER1", "sources": ["127.0.0.1/32", "127.0.0.77/32"],
             "identity": "viewer"},
            {"calling_aet": "ROAMING", "sources": ["127.0.0.0/8"]},
        ],
        "route": [{"called_aet": "PACS", "backend_host": backend.host,
                   "backend_port": backend.port, "backend_aet": backend.aet,
                   "calling_aet": "DGGATEWAY"}],
        "user": [{"name": "alice", "passcode_hash": passcode_hash, "identity": "viewer"}],
        "jwt": {"algorithms": ["HS256"], "secret": JWT_SECRET, "audience": "dicomguard",
                "issuer": "test-idp", "identity_claim": "role"},
        "identity": {
            "modality": {"operations": ["ECHO", "STORE"]},
            "viewer": {"operations": ["ECHO", "FIND", "MOVE"], "move_destinations": ["VIEWER1"],
                       "find_max_results": 10},
            "admin": {"operations": ["ECHO", "STORE", "FIND", "MOVE", "GET"]},
        },
    }


@pytest.fixture
def raw_config(backend: RecordingBackend, passcode_hash: str) -> dict[str, Any]:
    backend.record.clear()
    return deepcopy(base_config(backend, passcode_hash))


def start_gateway(raw: dict[str, Any], base_dir: Path = Path(".")) -> GatewayThread:
    return GatewayThread(parse_config(raw, base_dir=base_dir))


@pytest.fixture
def gateway_factory() -> Iterator[Any]:
    """``gateway_factory(raw_dict)`` → running :class:`GatewayThread`, stopped after the test."""
    made: list[GatewayThread] = []

    def make(raw: dict[str, Any], base_dir: Path = Path(".")) -> GatewayThread:
        gw = start_gateway(raw, base_dir)
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()


__all__ = ["Issued"]


@pytest.fixture(autouse=True)
def no_tracebacks(request: pytest.FixtureRequest,
                  caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Fail the test if the gateway (or asyncio under it) logged an error or a traceback.

    Used by every gateway test (autouse): "never a traceback for any input" holds for every
    input the tests send, not only for the fuzzers'. A test that provokes an error log on
    purpose says so with ``@pytest.mark.expect_error_log``."""
    import logging

    if request.node.get_closest_marker("expect_error_log") is not None:
        yield
        return
    with caplog.at_level(logging.INFO):
        yield
    # caplog.records holds the current phase's only (teardown, here): the test's own log is
    # the call phase's (found: an ERROR logged by a test went unseen)
    records = caplog.get_records("setup") + caplog.get_records("call") + caplog.records
    bad = [r for r in records
           if (r.name.startswith(("dicomguard", "asyncio")) and r.levelno >= logging.ERROR)
           or (r.exc_info and r.name.startswith(("dicomguard", "asyncio")))]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "expect_error_log: the test provokes an error log on purpose "
        "(no_tracebacks does not check it)")
