"""The SYN sweep and the connect sweep find the same open ports; every endpoint gets one verdict."""

from __future__ import annotations

import asyncio
import os
import socket
from collections import Counter

import pytest

from dicomguard.scan.sweep import Sweep
from dicomguard.scan.synsweep import SynSweep, raw_sockets_available

NETWORK_HOSTS = [f"127.42.230.{i}" for i in range(1, 41)]
PORTS = (104, 11112, 4242)


@pytest.fixture
def listeners() -> list[tuple[str, int]]:
    socks, opened = [], []
    for host in NETWORK_HOSTS[::7]:
        s = socket.socket()
        s.bind((host, 11112))
        s.listen(16)
        socks.append(s)
        opened.append((host, 11112))
    yield opened
    for s in socks:
        s.close()


async def _sweep(kind: type[Sweep]) -> dict[tuple[str, int], str]:
    verdicts: dict[tuple[str, int], str] = {}
    seen: Counter[tuple[str, int]] = Counter()

    def verdict(seq: int, host: str, port: int, state: str) -> None:
        verdicts[(host, port)] = state
        seen[(host, port)] += 1

    endpoints = iter(
        [(i, h, p) for i, (h, p) in enumerate((h, p) for h in NETWORK_HOSTS for p in PORTS)]
    )
    sweep = kind(endpoints, verdict, limit=64, timeout=1.0)
    try:
        await asyncio.wait_for(sweep.run(), 30)
    finally:
        sweep.close()
    assert set(seen.values()) == {1}  # one verdict per endpoint, never two
    return verdicts


def test_connect_sweep_finds_exactly_the_listeners(listeners):
    verdicts = asyncio.run(_sweep(Sweep))
    assert len(verdicts) == len(NETWORK_HOSTS) * len(PORTS)
    assert {k for k, v in verdicts.items() if v == "open"} == set(listeners)
    assert set(verdicts.values()) == {"open", "closed"}


@pytest.mark.skipif(
    not raw_sockets_available() and os.environ.get("CI") != "true",
    reason="raw sockets need root (CI runs as root and must run this)",
)
def test_syn_sweep_agrees_with_connect_sweep(listeners):
    syn = asyncio.run(_sweep(SynSweep))
    connect = asyncio.run(_sweep(Sweep))
    assert syn == connect


@pytest.fixture
def unreachable_net():
    """A loopback /24 the namespace has no route to (an 'unreachable' route in table local):
    connects fail at once with EHOSTUNREACH, as for a blackholed prefix; no packet leaves."""
    import subprocess

    net = "127.42.199.0/24"
    subprocess.run(["ip", "route", "add", "unreachable", net, "table", "local"], check=True)
    yield [f"127.42.199.{i}" for i in (1, 2, 3)]
    subprocess.run(["ip", "route", "del", "unreachable", net, "table", "local"], check=True)


@pytest.mark.skipif(
    not raw_sockets_available() and os.environ.get("CI") != "true",
    reason="raw sockets need root (CI runs as root and must run this)",
)
@pytest.mark.parametrize("kind", [SynSweep, Sweep])
def test_a_destination_without_a_route_is_unreachable_not_a_dead_sweep(
    unreachable_net: list[str], listeners: list[tuple[str, int]], kind: type[Sweep]
) -> None:
    """Found by a fresh tester: the SYN sweep raised ENETUNREACH out of its route lookup in an
    event-loop callback, the sweep never finished (a hang) and no endpoint got a verdict."""
    endpoints = [(h, 104) for h in unreachable_net] + listeners
    verdicts: dict[tuple[str, int], str] = {}

    def verdict(seq: int, host: str, port: int, state: str) -> None:
        assert (host, port) not in verdicts
        verdicts[(host, port)] = state

    async def run() -> None:
        sweep = kind(iter([(i, h, p) for i, (h, p) in enumerate(endpoints)]), verdict, timeout=1.0)
        try:
            await asyncio.wait_for(sweep.run(), 20)
        finally:
            sweep.close()

    asyncio.run(run())
    assert {k: v for k, v in verdicts.items() if k[0] in unreachable_net} == {
        (h, 104): "unreachable" for h in unreachable_net
    }
    assert {k for k, v in verdicts.items() if v == "open"} == set(listeners)
