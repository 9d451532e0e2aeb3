"""Errors of the DICOM upper layer: the only exceptions a decoder or a peer can cause.

Every failure a hostile or broken peer can cause maps to one of these, so callers (the scanner,
the lab, the gateway) turn them into verdicts instead of tracebacks. Every decoder of peer bytes
(``pdu.read_pdu``/``pdu.decode``, ``acse.decode_accept``/``decode_reject``,
``dimse.iter_pdvs``/``MessageAssembler``, ``command.parse_command``, ``dimse.decode_dataset``)
raises nothing else; ``dul/tests/test_decoders_raise_typed_errors.py`` fuzzes each of them.

The hierarchy, with the ``kind`` each class records in a scan result (``error_kind``)::

    DulError                       "dul-error"
    ├── PeerClosed                 "closed"         TCP closed or reset before a complete PDU
    ├── PeerTimeout                "timeout"        silent longer than the step's timeout
    ├── MalformedPdu               "malformed"      bytes that are not a valid PDU / item / DIMSE
    │   └── PduTooLarge            "too-large"      a length above our bound (4 GiB junk)
    ├── PeerAborted                "aborted"        an A-ABORT (source, reason)
    ├── ProtocolViolation          "protocol"       a valid PDU where the state machine forbids it
    │   └── CancelIgnored          "cancel-ignored" responses go on after our C-CANCEL-RQ
    ├── BudgetExhausted            "budget"         the engine's per-endpoint budget ran out
    ├── ConnectFailed              "connect"        TCP/TLS set-up failed (``state`` says how)
    └── scan.web.NotHttp           "not-http"       an HTTP port that does not answer HTTP/1.x

Besides these, a scan record's ``error_kind`` is "internal" when the engine caught an
exception that is none of them (a bug: the endpoint gets a record, the scan goes on).
TLS certificates are read by ``scan.tls_probe.certificate_facts``, which raises only ValueError
("not a certificate"); ``scan/tests/test_tls_http_decoders_raise_typed_errors.py`` fuzzes it
and the HTTP reader.
"""

from __future__ import annotations

#: evidence kept with a record: the first bytes of the offending PDU, never more
EVIDENCE_BYTES = 256


class DulError(Exception):
    """Base class: something went wrong talking DICOM to a peer."""

    kind = "dul-error"
    #: the bytes that proved the failure (the offending PDU, truncated), when there are some
    evidence: bytes | None = None


class PeerClosed(DulError):
    """The peer closed the TCP connection (or reset it) before a complete PDU arrived."""

    kind = "closed"


class PeerTimeout(DulError):
    """The peer went silent for longer than the step's timeout."""

    kind = "timeout"


class MalformedPdu(DulError):
    """The peer sent bytes that are not a valid PDU (garbage, wrong type, bad item lengths).

    ``evidence`` holds the first :data:`EVIDENCE_BYTES` bytes of what was received, when the
    decoder had them (an A-ASSOCIATE-AC whose presentation-context item is broken, say).
    """

    kind = "malformed"

    def __init__(self, message: str, *, evidence: bytes | None = None) -> None:
        super().__init__(message)
        self.evidence = evidence[:EVIDENCE_BYTES] if evidence else None


class PduTooLarge(MalformedPdu):
    """A PDU announced a length above the bound we accept (a 4 GiB length is an attack or junk)."""

    kind = "too-large"


class PeerAborted(DulError):
    """The peer sent an A-ABORT."""

    kind = "aborted"

    def __init__(self, source: int, reason: int) -> None:
        super().__init__(f"peer aborted (source {source}, reason {reason})")
        self.source = source
        self.reason = reason


class ProtocolViolation(DulError):
    """A well-formed PDU arrived where the state machine does not allow it."""

    kind = "protocol"


class CancelIgnored(ProtocolViolation):
    """After our C-CANCEL-RQ the peer kept sending responses past the bound (PS3.7 9.1.2.1.6
    lets a few in-flight Pending responses arrive; an endless stream is a broken or hostile
    peer). The association is aborted before this is raised."""

    kind = "cancel-ignored"


class BudgetExhausted(DulError):
    """The engine's per-endpoint budget (seconds or connections) is spent: no new association."""

    kind = "budget"


class ConnectFailed(DulError):
    """TCP (or TLS) connection could not be set up; ``state`` is what a port scanner would say."""

    kind = "connect"

    def __init__(self, state: str, detail: str) -> None:
        super().__init__(f"{state}: {detail}")
        self.state = state  # "closed" | "filtered" | "unreachable" | "tls-failed"
        self.detail = detail


def error_fields(exc: BaseException) -> dict[str, str | None]:
    """``error_kind`` and ``error_evidence`` (hex) of a scan record for a failure."""
    if isinstance(exc, DulError):
        return {
            "error_kind": exc.kind,
            "error_evidence": exc.evidence.hex() if exc.evidence else None,
        }
    return {"error_kind": "internal", "error_evidence": None}
