"""An asyncio event loop in a daemon thread, so synchronous tests can run asyncio servers.

Tests that drive a server with blocking clients (pynetdicom, DCMTK tools, a subprocess scan)
need the server's loop elsewhere: the gateway's tests run :class:`~dicomguard.gateway.server.
Gateway` on one, the scanner's worker tests a few counting listeners. (The lab's
:class:`~dicomguard.lab.fleet.FleetThread` is the shipped equivalent for the lab fleet.)
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")


class LoopThread:
    """``loop`` (a new event loop unless given) running forever in a daemon thread.

    :meth:`call` runs a coroutine there and waits for its result; :meth:`close` stops the loop,
    joins the thread (5 s at most) and closes the loop. A context manager closes on exit.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.loop = loop or asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def call(self, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
        """Run ``coro`` on the loop; its result, or its exception re-raised here. Raises
        TimeoutError after ``timeout`` seconds."""
        fut: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def close(self) -> None:
        """Stop the loop and close it (idempotent)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
