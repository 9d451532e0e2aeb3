"""The loopback-only guard of the test kit refuses every socket aimed off loopback, in this
process, before a packet is sent, and fails the test that tried."""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Iterator

import pytest

from dicomguard.testing import guard

pytest_plugins = ["pytester"]

#: TEST-NET-1 (RFC 5737): documentation only, never a real host.
OFF_LOOPBACK = "192.0.2.1"


@pytest.fixture
def refusals() -> Iterator[list[str]]:
    """What the guard refused during the test; cleared so the kit does not fail this test."""
    seen: list[str] = []
    yield seen
    seen.extend(guard.violations)
    guard.violations.clear()


def test_connect_off_loopback_is_refused_as_unreachable(refusals: list[str]) -> None:
    with socket.socket() as s, pytest.raises(guard.OffLoopbackError) as info:
        s.connect((OFF_LOOPBACK, 104))
    assert info.value.errno == errno.ENETUNREACH
    assert isinstance(info.value, OSError)  # code under test takes its ordinary error path
    assert guard.violations and OFF_LOOPBACK in guard.violations[-1]


def test_udp_and_ipv6_sends_off_loopback_are_refused(refusals: list[str]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, pytest.raises(OSError):
        s.sendto(b"x", (OFF_LOOPBACK, 514))
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s, pytest.raises(OSError):
        s.connect(("2001:db8::1", 104, 0, 0))  # documentation prefix (RFC 3849)
    assert len(guard.violations) == 2


async def test_asyncio_connections_go_through_the_guard(refusals: list[str]) -> None:
    with pytest.raises(OSError):
        await asyncio.wait_for(asyncio.open_connection(OFF_LOOPBACK, 104), 5)
    assert guard.violations


def test_loopback_is_allowed(loopback_port: int) -> None:
    with (
        socket.create_server(("127.0.0.1", loopback_port)) as server,
        socket.create_connection(("127.0.0.1", loopback_port), timeout=5),
    ):
        conn, _ = server.accept()
        conn.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", loopback_port))
        s.sendto(b"x", ("localhost", loopback_port))
    assert guard.violations == []


def test_binding_every_interface_only_inside_the_namespace(refusals: list[str]) -> None:
    with socket.socket() as s:
        if guard.is_isolated():
            s.bind(("0.0.0.0", 0))  # only lo exists here
        else:
            with pytest.raises(guard.OffLoopbackError):
                s.bind(("0.0.0.0", 0))


def test_a_test_that_leaves_loopback_fails(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        f"""
        import contextlib, socket

        def test_leaks():
            with socket.socket() as s, contextlib.suppress(OSError):
                s.connect(("{OFF_LOOPBACK}", 104))
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([f"*socket.connect to ('{OFF_LOOPBACK}', 104): not loopback*"])
