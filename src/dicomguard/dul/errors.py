"""Errors of the DICOM upper layer.

Every failure a hostile or broken peer can cause maps to one of these, so callers (the scanner,
the lab, the gateway) turn them into verdicts instead of tracebacks.
"""

from __future__ import annotations


class DulError(Exception):
    """Base class: something went wrong talking DICOM to a peer."""


class PeerClosed(DulError):
    """The peer closed the TCP connection (or reset it) before a complete PDU arrived."""


class PeerTimeout(DulError):
    """The peer went silent for longer than the step's timeout."""


class MalformedPdu(DulError):
    """The peer sent bytes that are not a valid PDU (garbage, wrong type, bad item lengths)."""


class PduTooLarge(MalformedPdu):
    """A PDU announced a length above the bound we accept (a 4 GiB length is an attack or junk)."""


class PeerAborted(DulError):
    """The peer sent an A-ABORT."""

    def __init__(self, source: int, reason: int) -> None:
        super().__init__(f"peer aborted (source {source}, reason {reason})")
        self.source = source
        self.reason = reason


class ProtocolViolation(DulError):
    """A well-formed PDU arrived where the state machine does not allow it."""


class ConnectFailed(DulError):
    """TCP (or TLS) connection could not be set up; ``state`` is what a port scanner would say."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(f"{state}: {detail}")
        self.state = state  # "closed" | "filtered" | "unreachable" | "tls-failed"
        self.detail = detail
