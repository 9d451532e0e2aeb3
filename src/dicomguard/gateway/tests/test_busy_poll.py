"""The opt-in busy-polling selector spins only while traffic flows: an idle gateway sleeps."""

from __future__ import annotations

import selectors
import socket
import time

import pytest

from dicomguard.gateway.busypoll import SpinningSelector
from dicomguard.gateway.config import ConfigError, parse_config


def test_idle_selector_sleeps_and_busy_one_spins() -> None:
    a, b = socket.socketpair()
    sel = SpinningSelector(window=0.05)
    try:
        sel.register(a, selectors.EVENT_READ)
        # idle (no events yet): the wait is spent asleep in epoll, no spinning
        assert sel.select(0.2) == [] and sel.spins == 0
        b.send(b"x")
        assert sel.select(1.0)  # an event: traffic is flowing
        a.recv(1)
        # right after it, a wait spins (polls with zero timeout) before it sleeps
        start = time.monotonic()
        assert sel.select(0.3) == []
        assert sel.spins > 1
        assert time.monotonic() - start >= 0.25  # and still honours the caller's timeout
        # a long-ago event: sleeping again
        time.sleep(0.1)
        spins = sel.spins
        assert sel.select(0.2) == [] and sel.spins == spins
    finally:
        sel.close()
        a.close()
        b.close()


@pytest.mark.parametrize("value", [-1, 10_001, "fast"])
def test_busy_poll_bounds_are_checked(raw_config: dict, value: object) -> None:
    raw_config["limits"] = {"busy_poll_us": value}
    with pytest.raises(ConfigError, match="busy_poll_us"):
        parse_config(raw_config)
