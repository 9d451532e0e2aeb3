"""User identities are checked off the event loop.

Found in review: a passcode check is ~70 ms of scrypt (by design: memory-hard). It ran on the
gateway's event loop, so every association offering a passcode, right or wrong, froze every
other association for that long; a few wrong passcodes a second from one allowed source made
the gateway useless to everyone. It now runs on one worker thread.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dicomguard.gateway import auth

from .conftest import PASSCODE
from .scu import associate, reject_reason


@pytest.mark.parametrize("passcode", [PASSCODE, "wrong passcode"])
def test_passcode_is_checked_off_the_event_loop(
    passcode: str, raw_config: dict[str, Any], gateway_factory: Any,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real = auth.verify_passcode

    def spy(given: bytes, stored: str) -> bool:
        threads.append(threading.current_thread())
        return real(given, stored)

    monkeypatch.setattr(auth, "verify_passcode", spy)
    gw = gateway_factory(raw_config)
    assoc = associate(gw.address(), calling="VIEWER1", username="alice", passcode=passcode)
    try:
        if passcode == PASSCODE:
            assert assoc.is_established
        else:
            assert reject_reason(assoc) == (1, 1, 1)
    finally:
        if assoc.is_established:
            assoc.release()
    assert threads and all(t is not gw.thread for t in threads), threads
