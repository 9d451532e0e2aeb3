"""The gateway process: listeners, reload without dropping associations, graceful stop.

A :class:`Gateway` owns one :class:`relay.Shared` state. Each accepted connection becomes a
:class:`relay.Relay` that takes a snapshot of the configuration at accept time, so
:meth:`Gateway.reload` (SIGHUP) only changes what *new* associations get: listeners that are in
both configurations keep their sockets, new ones are opened, removed ones are closed, and live
associations run on with the policy they were admitted under. :meth:`Gateway.stop` (SIGTERM)
closes the listeners and the connections still in association setup, waits up to
``limits.stop_grace`` seconds for live associations to finish, then aborts the rest with
A-ABORT to both sides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

from .audit import DRAIN_SECONDS, RETIRED_DRAIN_SECONDS, AuditTrail
from .auth import JwtVerifier
from .config import GatewayConfig, Listener, load_config
from .metrics import Metrics, MetricsServer
from .policy import AssociationPolicy, RateLimits
from .relay import Relay, Shared
from .tls import server_context

log = logging.getLogger("dicomguard.gateway")


class Gateway:
    """Run with ``await gw.start()``; ``await gw.reload()``; ``await gw.stop()``."""

    def __init__(self, config: GatewayConfig, config_path: Path | None = None) -> None:
        self.config_path = config_path
        self.metrics = Metrics()
        self.shared = Shared(
            config=config,
            policy=AssociationPolicy(config),
            limits=RateLimits(),
            audit=AuditTrail(config.audit, self.metrics),
            metrics=self.metrics,
            tls_context=server_context(config.tls) if config.tls else None,
        )
        self._servers: dict[Listener, asyncio.Server] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._metrics_server: MetricsServer | None = None
        self._stopped = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        #: old audit trails still sending their queue to a collector a reload left behind
        self._retired: set[asyncio.Task[None]] = set()
        #: reloads started by SIGHUP, still running
        self._signal_reloads: set[asyncio.Future[bool]] = set()

    @property
    def config(self) -> GatewayConfig:
        return self.shared.config

    def bound(self, listener: Listener) -> tuple[str, int]:
        """Where ``listener`` actually listens (port 0 in a config means any free port)."""
        sock = self._servers[listener].sockets[0]
        host, port = sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def metrics_port(self) -> int | None:
        return self._metrics_server.port if self._metrics_server else None

    async def start(self) -> None:
        await self.shared.audit.start()
        for listener in self.config.listeners:
            await self._listen(listener)
        await self._start_metrics()
        self.shared.audit.application(started=True)

    async def _start_metrics(self) -> None:
        cfg = self.config.metrics
        if cfg.port:
            self._metrics_server = MetricsServer(self.metrics, cfg.address, cfg.port)
            await self._metrics_server.start()

    async def _listen(self, listener: Listener) -> None:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            relay = Relay(self.shared, listener, reader, writer)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await relay.run()
            except asyncio.CancelledError:
                # A stop past its grace cancels this task. Python 3.11's start_server
                # callback then logs the cancelled task as an error with a traceback
                # (CPython gh-113538, fixed in 3.12.2): it ends here instead (the relay
                # closed its sockets in its own finally).
                pass
            finally:
                if task is not None:
                    self._tasks.discard(task)

        # limit: the StreamReader buffer; big enough for a 128 KiB PDU in one read.
        self._servers[listener] = await asyncio.start_server(
            on_connect, listener.address, listener.port, limit=1 << 18, reuse_address=True)

    async def reload(self, new: GatewayConfig | None = None) -> bool:
        """Apply a new configuration (read from :attr:`config_path` when ``new`` is None).

        A configuration that fails validation (or whose TLS files do not load) leaves the old
        one running and returns False. Reloads run one at a time (two SIGHUPs in a row).
        """
        async with self._reload_lock:
            return await self._reload(new)

    async def _reload(self, new: GatewayConfig | None) -> bool:
        try:
            if new is None:
                if self.config_path is None:
                    raise ValueError("no configuration file to reload from")
                new = load_config(self.config_path)
            tls_context = server_context(new.tls) if new.tls else None
            jwt_verifier = None
            old_jwt = self.shared.policy.jwt
            if new.jwt is not None:
                # Keep the replay cache: a reload must not make used tokens usable again.
                jwt_verifier = JwtVerifier(new.jwt, old_jwt.replay if old_jwt else None)
            policy = AssociationPolicy(new, jwt_verifier)
            if self.config.audit != new.audit:
                # The new trail takes over with no wait between the last message recorded in
                # the old one and the first in the new (audit.AuditTrail.replaced_by; a file or
                # collector it cannot open fails the reload here, before anything changed).
                # The old one's file closes and its collector, if the new configuration names
                # another, gets its queue sent in the background: a stalled collector must
                # not hold the reload.
                retired = self.shared.audit
                self.shared.audit = await retired.replaced_by(new.audit)
                task = asyncio.create_task(retired.stop(RETIRED_DRAIN_SECONDS))
                self._retired.add(task)
                task.add_done_callback(self._retired.discard)
        except Exception as exc:
            log.error("reload failed, keeping the running configuration: %s", exc)
            self.metrics.reloads.inc(result="failed")
            return False
        old = self.config
        self.shared.config = new
        self.shared.policy = policy
        self.shared.tls_context = tls_context
        for listener in list(self._servers):
            if listener not in new.listeners:
                server = self._servers.pop(listener)
                server.close()
        for listener in new.listeners:
            if listener not in self._servers:
                await self._listen(listener)
        if old.metrics != new.metrics:
            if self._metrics_server is not None:
                await self._metrics_server.stop()
                self._metrics_server = None
            await self._start_metrics()
        self.metrics.reloads.inc(result="ok")
        log.info("configuration reloaded")
        return True

    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, let live associations finish for ``grace`` seconds, abort the rest."""
        if self._signal_reloads:  # a reload half applied would stop the wrong listeners
            await asyncio.wait(set(self._signal_reloads))
        grace = self.config.limits.stop_grace if grace is None else grace
        for server in self._servers.values():
            server.close()
        self._servers.clear()
        for relay in list(self.shared.setup):  # no association yet: nothing to finish
            relay.close_setup()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            if pending:
                for relay in list(self.shared.active):
                    await relay.abort()
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
        self.shared.identity.close()
        if self._metrics_server is not None:
            await self._metrics_server.stop()
        self.shared.audit.flush_repeats()  # aggregated refusals before the stop message
        self.shared.audit.application(started=False)
        await self.shared.audit.stop()
        if self._retired:  # bounded; cancelled, what they still hold is counted as dropped
            _, late = await asyncio.wait(set(self._retired), timeout=DRAIN_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._stopped.set()

    def _reload_on_signal(self) -> None:
        """SIGHUP: a reload task, referenced until it ends (the loop keeps only a weak
        reference to a task: an unreferenced one may be collected mid-reload)."""
        task = asyncio.ensure_future(self.reload())
        self._signal_reloads.add(task)
        task.add_done_callback(self._signal_reloads.discard)

    async def serve_forever(self) -> None:
        """Start, then run until SIGTERM/SIGINT (graceful stop); SIGHUP reloads."""
        loop = asyncio.get_running_loop()
        await self.start()
        stop = asyncio.Event()
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
            loop.add_signal_handler(signal.SIGINT, stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        for listener in self.config.listeners:
            host, port = self.bound(listener)
            log.info("listening on %s:%d%s", host, port, " (TLS)" if listener.tls else "")
        await stop.wait()
        log.info("stopping: waiting for live associations")
        await self.stop()
