"""A server that greets slowly is DICOM; a silent one is "unknown", never "not DICOM".

The peer behaviour comes from the field: archives that resolve the caller's address before
answering (reverse DNS, 5 s per resolver try) accept TCP at once and send their
A-ASSOCIATE-AC seconds later. dcm4chee-arc does an rDNS lookup of every incoming DICOM
connection by default (dcm4che/dcm4chee-arc-light#1360: ``REVERSE_DNS`` defaults to true;
#4291), and DCMTK's dcmqrscp/storescp look the caller's host name up unless started with
``-dhl --disable-host-lookup``. Here a loopback relay holds back the first bytes of a real
pynetdicom SCP for 7 s.

Truth, checked with DCMTK echoscu through the same relay: ``echoscu -ta 3`` (3 s ACSE timeout)
fails with "DUL network read timeout"; ``echoscu -ta 15`` gets "Association Accepted" and
"Received Echo Response (Success)" (see :func:`test_echoscu_sees_a_slow_but_real_dicom_server`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from dicomguard.dul.scu import Timeouts
from dicomguard.scan.assess import ProbeOptions, assess
from dicomguard.testing.base import find_binary
from dicomguard.testing.pynetdicom_scp import PynetdicomFindServer

HOST = "127.0.0.1"
DELAY = 7.0


@contextlib.asynccontextmanager
async def delaying_relay(backend: tuple[str, int] | None, delay: float) -> AsyncIterator[int]:
    """A TCP listener on loopback that forwards to ``backend`` but sends nothing back to the
    caller until ``delay`` seconds after the connection was accepted. ``backend`` None: a peer
    that accepts and never says a word."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, hold: float):
        try:
            first = True
            while data := await reader.read(65536):
                if first and hold:
                    await asyncio.sleep(hold)
                first = False
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        accepted = asyncio.get_running_loop().time()
        if backend is None:
            with contextlib.suppress(ConnectionError, OSError):
                await cr.read()  # until the caller gives up
            cw.close()
            return
        br, bw = await asyncio.open_connection(*backend)

        async def back() -> None:
            # the backend answers at once; hold its first bytes until `delay` after accept
            data = await br.read(65536)
            wait = delay - (asyncio.get_running_loop().time() - accepted)
            if wait > 0:
                await asyncio.sleep(wait)
            if data:
                cw.write(data)
                await cw.drain()
            await pipe(br, cw, 0)

        await asyncio.gather(pipe(cr, bw, 0), back(), return_exceptions=True)

    server = await asyncio.start_server(handle, HOST, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()


@pytest.fixture(scope="module")
def slow_backend():
    with PynetdicomFindServer(HOST) as server:
        yield server


async def test_a_seven_second_greeting_is_dicom_with_default_options(slow_backend) -> None:
    async with delaying_relay((slow_backend.host, slow_backend.port), DELAY) as port:
        r = await assess(HOST, port, ProbeOptions(try_tls=False, web=None))
    assert ProbeOptions().timeouts.associate < DELAY < ProbeOptions().slow_greeting_timeout
    assert r.dicom is True and r.error is None
    assert r.slow_greeting_s is not None and r.slow_greeting_s >= DELAY - 0.5
    assert r.product == "pynetdicom" and r.services["verification"]
    assert "DG-014" not in {f["id"] for f in r.findings}


async def test_a_silent_port_is_unknown_not_not_dicom() -> None:
    opts = ProbeOptions(timeouts=Timeouts(1.0, 0.5, 1.0, 0.5), slow_greeting_timeout=1.0,
                        web=None)
    async with delaying_relay(None, 0) as port:
        r = await assess(HOST, port, opts)
    assert r.dicom is False and (r.error or "").startswith("silent")
    assert r.confidence["dicom"] == "inferred"
    ids = {f["id"] for f in r.findings}
    assert "DG-016" in ids and "DG-014" not in ids


async def test_echoscu_sees_a_slow_but_real_dicom_server(slow_backend) -> None:
    echoscu = find_binary("echoscu")
    if echoscu is None:
        pytest.skip("echoscu (dcmtk) not installed")

    async def run(acse_timeout: int, port: int) -> str:
        proc = await asyncio.create_subprocess_exec(
            echoscu, "-v", "-ta", str(acse_timeout), HOST, str(port),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        return out.decode(errors="replace")

    async with delaying_relay((slow_backend.host, slow_backend.port), DELAY) as port:
        short, long = await asyncio.gather(run(3, port), run(15, port))
    assert "Association Accepted" not in short and "timeout" in short.lower()
    assert "Received Echo Response (Success)" in long


def test_cli_slow_greeting_option_reaches_the_probe() -> None:
    from dicomguard.cli import build_parser
    from dicomguard.cli.scan import scan_config_from_args

    def probe(*extra: str) -> ProbeOptions:
        args = build_parser().parse_args(["scan", "127.0.0.1", "-p", "104", *extra])
        return scan_config_from_args(args).probe

    assert probe().slow_greeting_timeout == 20.0
    assert probe("--slow-greeting", "0").slow_greeting_timeout == 0.0
    assert probe("--slow-greeting", "45").slow_greeting_timeout == 45.0
