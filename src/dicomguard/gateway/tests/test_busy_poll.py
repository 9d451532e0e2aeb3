"""The opt-in busy-polling selector spins only while traffic flows: an idle gateway sleeps."""

from __future__ import annotations

import selectors
import socket
import time

import pytest

from dicomguard.gateway.busypoll import SpinningSelector
from dicomguard.gateway.config import ConfigError, parse_config


def _cpu_during(fn: object) -> float:
    start = time.process_time()
    fn()  # type: ignore[operator]
    return time.process_time() - start


def test_idle_selector_sleeps_and_busy_one_spins() -> None:
    a, b = socket.socketpair()
    sel = SpinningSelector(window=0.05)
    try:
        sel.register(a, selectors.EVENT_READ)
        # idle (no events yet): a 0.3 s wait is spent asleep in epoll
        assert _cpu_during(lambda: sel.select(0.3)) < 0.1
        b.send(b"x")
        assert sel.select(1.0)  # an event: traffic is flowing
        a.recv(1)
        # right after it, a wait spins for the window before it sleeps
        cpu = _cpu_during(lambda: sel.select(0.3))
        assert cpu >= 0.02
        # a long-ago event: sleeping again
        time.sleep(0.1)
        assert _cpu_during(lambda: sel.select(0.3)) < 0.1
    finally:
        sel.close()
        a.close()
        b.close()


@pytest.mark.parametrize("value", [-1, 10_001, "fast"])
def test_busy_poll_bounds_are_checked(raw_config: dict, value: object) -> None:
    raw_config["limits"] = {"busy_poll_us": value}
    with pytest.raises(ConfigError, match="busy_poll_us"):
        parse_config(raw_config)
