"""Prometheus metrics for the gateway, served as text format 0.0.4 on a loopback HTTP port.

Hand-written instead of ``prometheus_client`` because the project may add only PyJWT as a new
dependency, and the gateway needs just counters and one gauge; the exposition format is a few
lines of text. The HTTP side is a tiny asyncio server on the gateway's own loop (no thread), and
answers only ``GET /metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib


def _labels(labels: tuple[tuple[str, str], ...]) -> str:
    if not labels:
        return ""
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels
    )
    return "{" + inner + "}"


class _Child:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def add(self, amount: float = 1.0) -> None:
        self.value += amount


class Counter:
    """A monotonically increasing count, optionally split by labels."""

    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._children: dict[tuple[tuple[str, str], ...], _Child] = {}

    def child(self, **labels: str) -> _Child:
        key = tuple(sorted(labels.items()))
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = _Child()
        return found

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.child(**labels).add(amount)

    def value(self, **labels: str) -> float:
        found = self._children.get(tuple(sorted(labels.items())))
        return found.value if found else 0.0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        if not self._children:
            lines.append(f"{self.name} 0")
        for key, child in sorted(self._children.items()):
            lines.append(f"{self.name}{_labels(key)} {child.value:g}")
        return lines


class Gauge(Counter):
    """A value that goes up and down (live associations)."""

    kind = "gauge"

    def dec(self, amount: float = 1.0, **labels: str) -> None:
        self.child(**labels).add(-amount)


class Metrics:
    """Everything the gateway counts."""

    def __init__(self) -> None:
        self.associations = Counter(
            "dicomguard_gateway_associations_total",
            "Association requests by outcome (accepted, rejected-<check>, backend-failed).")
        self.active = Gauge("dicomguard_gateway_active_associations",
                            "Associations being relayed now.")
        self.operations = Counter(
            "dicomguard_gateway_operations_total",
            "DIMSE requests by operation and result (ok, failed, refused, capped).")
        self.bytes = Counter("dicomguard_gateway_bytes_total",
                             "PDU bytes relayed (up = client to backend).")
        self.aborts = Counter("dicomguard_gateway_aborts_total",
                              "Associations aborted by the gateway, by reason.")
        self.find_capped = Counter("dicomguard_gateway_find_capped_total",
                                   "C-FIND operations cut at the identity's result cap.")
        self.audit_dropped = Counter("dicomguard_gateway_audit_dropped_total",
                                     "Audit messages that could not be delivered to syslog.")
        self.reloads = Counter("dicomguard_gateway_reloads_total",
                               "Configuration reloads by result (ok, failed).")
        self.setup = Gauge("dicomguard_gateway_setup_connections",
                           "Connections in association setup now (TLS handshake or "
                           "A-ASSOCIATE-RQ not yet judged).")
        self.setup_closed = Counter(
            "dicomguard_gateway_setup_closed_total",
            "Connections closed during association setup, by reason (timeout, "
            "per-source-limit, evicted).")
        self.tls_failures = Counter(
            "dicomguard_gateway_tls_handshake_failures_total",
            "Refused or failed TLS handshakes, by reason (untrusted, expired, not-yet-valid, "
            "no-certificate, no-shared-cipher, protocol-version, not-tls, handshake, closed).")
        self.identity_checks = Counter(
            "dicomguard_gateway_identity_checks_total",
            "User identity checks by result (ok, failed, limited: refused without checking, "
            "the source failed too often).")
        self.identity_waiting = Gauge(
            "dicomguard_gateway_identity_checks_waiting",
            "User identity checks queued for the identity worker, not started.")
        self.audit_suppressed = Counter(
            "dicomguard_gateway_audit_suppressed_total",
            "Repeated refusals folded into an aggregate audit message instead of one each.")

    def render(self) -> str:
        lines: list[str] = []
        for metric in (self.associations, self.active, self.operations, self.bytes,
                       self.aborts, self.find_capped, self.audit_dropped, self.reloads,
                       self.setup, self.setup_closed, self.tls_failures,
                       self.identity_checks, self.identity_waiting, self.audit_suppressed):
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class MetricsServer:
    """``GET /metrics`` on ``address:port``; anything else gets 404."""

    def __init__(self, metrics: Metrics, address: str, port: int) -> None:
        self.metrics = metrics
        self.address = address
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.address, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            line = request.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(line) >= 2 and line[0] == "GET" and line[1].split("?")[0] == "/metrics":
                body = self.metrics.render().encode()
                head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\n"
            else:
                body = b"not found\n"
                head = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\n"
            head += f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
