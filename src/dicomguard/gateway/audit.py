"""Audit trail: every association and operation as a DICOM audit message (PS3.15 A.5).

The XML follows the DICOM audit message schema (PS3.15 A.5.1, derived from RFC 3881; checked in
the tests against the RELAX NG schema with lxml) and the message definitions of PS3.15 A.5.3:
an ``EventIdentification`` with a DCM-coded event, the ``ActiveParticipant``\\ s each message
requires (with their role codes), an ``AuditSourceIdentification`` and the participant objects.
Which event stands for what:

===================================  =========================================================
gateway start / stop                 110100 Application Activity, 110120 / 110121; the gateway
                                     (110150 Application) and who started it (110151)
association accepted / ended         110114 User Authentication, type 110122 Login / 110123
                                     Logout; requestor and the gateway
association refused (other checks),  110113 Security Alert, type 110126 Node Authentication;
TLS handshake refused, connection    the Alert Subject (110182 Node ID: the peer's address,
closed in setup (limits)             details: alert description, certificate subject/issuer)
association refused (identity)       110114 User Authentication, Login, outcome 4
C-STORE                              110104 DICOM Instances Transferred, 110153 Source = the
                                     requestor, 110152 Destination = the backend
C-FIND                               110112 Query; the SOP class queried (110181)
C-MOVE, C-GET                        110102 Begin Transferring DICOM Instances; Source = the
                                     backend, Destination = the move destination (C-GET: the
                                     requestor)
refused operation, A-ABORT cause     110113 Security Alert, type 110132 Use of Restricted
                                     Function; the SOP class as the Alert Subject
C-ECHO                               not audited (see below)
===================================  =========================================================

C-ECHO is not audited per operation: PS3.15 A.5.3 defines no event for Verification (110112
Query is for queries of patient data, and a C-ECHO reads nothing), and the association that
carries it is already audited at Login and Logout. It is counted in the metrics; a *refused*
C-ECHO is a Security Alert like any refused operation.

**PHI** (``audit.include_phi``, off by default). PS3.15 asks for patient data in some messages:
the Query message carries the query keys (``ParticipantObjectQuery``), Instances Transferred and
Begin Transferring carry the study (110180 Study Instance UID) and the patient (ID and name).
An audit trail with names and IDs must be protected like the archive itself, so by default the
gateway leaves them out and names the SOP class instead (``ParticipantObjectName``): the
messages stay schema-valid but are not fully conformant. With ``include_phi = true`` the
gateway reads the first fragment of each C-FIND/C-MOVE/C-GET identifier and C-STORE data set
(a bounded copy, never the pixel data) and writes them.

**Volume.** Refusals (refused associations, TLS handshakes, connections closed in setup,
refused operations and protocol aborts) are aggregated per source address and reason: the
first one in ``audit.aggregate_window`` seconds is written, the rest are counted and written as
one message ("N more ...") when the window closes; at most ``MAX_AGGREGATE_KEYS`` sources are
tracked and the others share one entry per reason. 10,000 refusals from one address cost two
messages, not 10,000.

Messages go to a file (one XML document per line, so ``grep`` and log shippers work) and to
syslog as RFC 5424 (MSGID ``DICOM+RFC3881``, facility authpriv, as PS3.15 A.5 asks) over UDP or
TCP (RFC 6587 octet counting). Sending never blocks the relay: UDP is fire-and-forget and TCP
goes through a bounded queue whose overflow is counted, not waited for.

Events are recorded when they happen (with their time) but written at most ``BATCH_SECONDS``
later, in batches with one write and one flush: building and writing a message per C-STORE
cost more than relaying a small instance, and on the relay's path it delayed the response the
peer was waiting for. :meth:`AuditTrail.stop` writes what is pending and gives the TCP
collector ``DRAIN_SECONDS`` to take its queue (what is left then is counted as dropped, never
lost unsaid); a crash (SIGKILL) can lose the last ``BATCH_SECONDS`` of messages.

**Reload.** A reload that changes ``[audit]`` replaces the trail through
:meth:`AuditTrail.replaced_by`, with no wait between the last event recorded in the old trail
and the first in the new one: the reload loses or repeats nothing (a TCP connection lost at
any time can still cost or repeat a frame: RFC 6587 has no acknowledgement), a syslog
collector both configurations name keeps its connection and queue (messages in flight stay in
flight), and one the new configuration drops is sent its queue in the background.

**Audit source.** The ``AuditSourceID`` of a message is the ``source_id`` configured when its
event was recorded, for live associations too: the audit source is the one that detected the
event (PS3.15 A.5.3.2), and the gateway that detects an operation after the reload is the
gateway as it now names itself. A SIEM filters and routes by this ID: after a rename, every
later event should be found under the new one, and the old name appearing afterwards would look
like a second gateway still running the old configuration. A live association's Login therefore
names the old source and its Logout the new one; they stay paired by their participants (user,
address), which is how a SIEM correlates a session. The policy a live association runs under is
its snapshot; how the gateway names itself is not part of that policy.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import functools
import getpass
import ipaddress
import os
import re
import socket
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from xml.sax.saxutils import escape, quoteattr

from pydicom.multival import MultiValue
from pydicom.uid import UID, ImplicitVRLittleEndian

from ..dul.codes import STATUS_SUCCESS, is_c_warning
from .config import AuditConfig, parse_syslog_url

if TYPE_CHECKING:
    from .metrics import Metrics
    from .tls import TlsFailure

#: longest time a recorded audit event waits before it is written and flushed
BATCH_SECONDS = 0.05
#: sources (address, reason) whose refusals are aggregated separately; beyond, one shared entry
MAX_AGGREGATE_KEYS = 4096
_FACILITY_AUTHPRIV = 10
_SEVERITY_NOTICE = 5
_SEVERITY_WARNING = 4

Code = tuple[str, str]  # (DCM code value, meaning)

_EVENT: dict[str, Code] = {
    "auth": ("110114", "User Authentication"),
    "alert": ("110113", "Security Alert"),
    "store": ("110104", "DICOM Instances Transferred"),
    "query": ("110112", "Query"),
    "begin": ("110102", "Begin Transferring DICOM Instances"),
    "app": ("110100", "Application Activity"),
}
_TYPE: dict[str, Code] = {
    "login": ("110122", "Login"),
    "logout": ("110123", "Logout"),
    "node": ("110126", "Node Authentication"),
    "restricted": ("110132", "Use of Restricted Function"),
    "start": ("110120", "Application Start"),
    "stop": ("110121", "Application Stop"),
}
_ROLE: dict[str, Code] = {
    "source": ("110153", "Source Role ID"),
    "destination": ("110152", "Destination Role ID"),
    "application": ("110150", "Application"),
    "launcher": ("110151", "Application Launcher"),
}
#: ParticipantObjectIDTypeCode values: (code, coding scheme, meaning)
_SOP_CLASS = ("110181", "DCM", "SOP Class UID")
_STUDY = ("110180", "DCM", "Study Instance UID")
_NODE = ("110182", "DCM", "Node ID")
_PATIENT = ("2", "RFC-3881", "Patient Number")
#: ParticipantObjectTypeCode / ParticipantObjectTypeCodeRole (RFC 3881)
_PERSON, _SYSTEM = 1, 2
_ROLE_PATIENT, _ROLE_REPORT, _ROLE_SECURITY = 1, 3, 13
#: one message per line in the file: line breaks inside text become character references
_NEWLINES = {"\n": "&#10;", "\r": "&#13;"}
_OP_EVENT = {"STORE": ("store", "C"), "FIND": ("query", "E"), "MOVE": ("begin", "E"),
             "GET": ("begin", "E")}


class RelayInfo(Protocol):
    """What the audit trail reads from a relay (kept abstract to avoid an import cycle)."""

    peer_address: str
    calling_aet: str
    called_aet: str
    admission: Any
    listener: Any
    #: optional: operation messages pre-rendered for this association
    #: (:meth:`AuditTrail.operation`; a relay without it gets every message built in full)
    # audit_cache: dict[tuple[Any, ...], tuple[bool, tuple[str, str, str]]]


class Participant(NamedTuple):
    """One ``ActiveParticipant``: ``address`` is its NetworkAccessPointID (IP or host name).

    Named tuples rather than dataclasses: they are cache keys of every message, and a tuple
    hashes and compares in C."""

    user_id: str
    requestor: bool
    address: str = ""
    user_name: str = ""
    role: str = ""  # a key of _ROLE, or "" for none


class _TemplateOp(NamedTuple):
    """The fields of an operation an audit message reads (no PHI)."""

    operation: str
    sop_class: str
    sop_instance: str
    destination: str | None


class ParticipantObject(NamedTuple):
    """One ``ParticipantObjectIdentification``; ``name`` or ``query`` must be set (schema)."""

    object_id: str
    id_type: tuple[str, str, str]
    type_code: int
    role: int
    name: str = ""
    query: bytes = b""
    details: tuple[tuple[str, str], ...] = ()
    #: (SOP class UID, instance UIDs) for a ParticipantObjectDescription
    sop_instances: tuple[str, tuple[str, ...]] | None = None


#: characters XML 1.0 forbids (section 2.2), escaped or not: written as U+FFFD
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _clean(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot carry even escaped (a peer's certificate
    subject, a patient's name with include_phi may hold them: the line would be unreadable to
    every collector). Applied inside the cached fragment builders, so once per value."""
    return _NOT_XML.sub("\ufffd", text) if _NOT_XML.search(text) is not None else text


@functools.lru_cache(maxsize=64)
def _code(tag: str, code: Code) -> str:
    return (f'<{tag} csd-code="{code[0]}" codeSystemName="DCM" '
            f"originalText={quoteattr(code[1])}/>")


@functools.lru_cache(maxsize=256)
def _nap_type(address: str) -> str:
    """NetworkAccessPointTypeCode: 2 = IP address, 1 = machine name."""
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return "1"
    return "2"


# The fragments below repeat for every operation of an association (same peer, same gateway,
# a handful of SOP classes), so they are escaped once and cached rather than per message.
@functools.lru_cache(maxsize=1024)
def _participant(p: Participant) -> str:
    name = f" UserName={quoteattr(_clean(p.user_name))}" if p.user_name else ""
    nap = (f" NetworkAccessPointID={quoteattr(_clean(p.address))} "
           f'NetworkAccessPointTypeCode="{_nap_type(p.address)}"') if p.address else ""
    role = _code("RoleIDCode", _ROLE[p.role]) if p.role else ""
    return (f"<ActiveParticipant UserID={quoteattr(_clean(p.user_id or '-'))}{name} "
            f'UserIsRequestor="{"true" if p.requestor else "false"}"{nap}>'
            + role + "</ActiveParticipant>")


@functools.lru_cache(maxsize=16)
def _source(source_id: str) -> str:
    return (f"<AuditSourceIdentification AuditSourceID={quoteattr(_clean(source_id))}>"
            '<AuditSourceTypeCode csd-code="4" codeSystemName="DCM" '
            'originalText="Application Server Process"/></AuditSourceIdentification>')


@functools.lru_cache(maxsize=512)
def _object_head(object_id: str, id_type: tuple[str, str, str], type_code: int, role: int,
                 name: str) -> str:
    code, system, meaning = id_type
    head = (f"<ParticipantObjectIdentification "
            f"ParticipantObjectID={quoteattr(_clean(object_id or '-'))} "
            f'ParticipantObjectTypeCode="{type_code}" ParticipantObjectTypeCodeRole="{role}">'
            f'<ParticipantObjectIDTypeCode csd-code="{code}" codeSystemName="{system}" '
            f"originalText={quoteattr(meaning)}/>")
    if name:
        head += f"<ParticipantObjectName>{escape(_clean(name), _NEWLINES)}</ParticipantObjectName>"
    return head


def _object(obj: ParticipantObject) -> str:
    parts = [_object_head(obj.object_id, obj.id_type, obj.type_code, obj.role,
                          "" if obj.query else (obj.name or obj.object_id or "-"))]
    if obj.query:
        parts.append("<ParticipantObjectQuery>" + base64.b64encode(obj.query).decode()
                     + "</ParticipantObjectQuery>")
    for name, value in obj.details:
        encoded = base64.b64encode(value.encode()).decode()
        parts.append(f'<ParticipantObjectDetail type={_attr(name)} value="{encoded}"/>')
    if obj.sop_instances is not None:
        sop_class, instances = obj.sop_instances
        parts.append(_description_head(sop_class, len(instances)))
        parts.extend(f"<Instance UID={_uid_attr(uid)}/>" for uid in instances)
        parts.append("</SOPClass></ParticipantObjectDescription>")
    parts.append("</ParticipantObjectIdentification>")
    return "".join(parts)


@functools.lru_cache(maxsize=256)
def _description_head(sop_class: str, count: int) -> str:
    return (f"<ParticipantObjectDescription><SOPClass UID={quoteattr(_clean(sop_class))} "
            f'NumberOfInstances="{max(1, count)}">')


def _uid_attr(uid: str) -> str:
    """A UID as an attribute value: digits and dots need no escaping (the common case, one per
    C-STORE, too many to cache)."""
    if uid.replace(".", "").isdigit() and uid.isascii():
        return f'"{uid}"'
    return quoteattr(_clean(uid))


def build_message(
    *,
    event: str,
    action: str,
    outcome: int,
    source_id: str,
    participants: tuple[Participant, ...],
    event_type: str | None = None,
    description: str = "",
    objects: tuple[ParticipantObject, ...] = (),
    when: dt.datetime | float | None = None,
) -> str:
    """One audit message as an XML string (no declaration, no newlines).

    Assembled as text with escaped values rather than through ElementTree, which cost ~0.3 ms
    per message: the gateway writes one or two per C-STORE. Everything but the time and the
    participant objects repeats across the operations of an association and comes from a cache.
    ``participants`` must not be empty (the schema asks for at least one).
    """
    body = _body(outcome, event, event_type, description, participants, source_id)
    return "".join((_HEAD_START, action, _HEAD_TIME, _stamp(when), body,
                    *(_object(o) for o in objects), "</AuditMessage>"))


_HEAD_START = '<AuditMessage><EventIdentification EventActionCode="'
_HEAD_TIME = '" EventDateTime="'
#: the SOP instance UID an operation template is rendered with, then cut out
_INSTANCE_MARK = "<Instance UID=\"2.25.0.4242\"/>"
#: pre-rendered operation messages per association, at most (then the cache starts over)
MAX_CACHED_OPERATIONS = 256


@functools.lru_cache(maxsize=4096)
def _body(outcome: int, event: str, event_type: str | None, description: str,
          participants: tuple[Participant, ...], source_id: str) -> str:
    """The message from after the time stamp up to the participant objects."""
    parts = [f'" EventOutcomeIndicator="{outcome}">', _code("EventID", _EVENT[event])]
    if event_type:
        parts.append(_code("EventTypeCode", _TYPE[event_type]))
    if description:
        text = escape(_clean(description), _NEWLINES)
        parts.append(f"<EventOutcomeDescription>{text}</EventOutcomeDescription>")
    parts.append("</EventIdentification>")
    parts.extend(_participant(p) for p in participants)
    parts.append(_source(source_id))
    return "".join(parts)


#: the same few participants recur in every message of an association: one object each
_participant_of = functools.lru_cache(maxsize=1024)(Participant)


@functools.lru_cache(maxsize=64)
def _attr(value: str) -> str:
    return quoteattr(value)


@functools.lru_cache(maxsize=512)
def _sop_name(uid: str) -> str:
    """The SOP class's name from pydicom's UID dictionary (the UID itself when unknown)."""
    if not uid:
        return "-"
    try:
        return str(UID(uid).name) or uid
    except Exception:
        return uid


@functools.lru_cache(maxsize=4)
def _second(epoch_second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch_second))


def _stamp(when: dt.datetime | float | None) -> str:
    """ISO 8601 UTC with milliseconds; the seconds part is formatted once per second."""
    if isinstance(when, dt.datetime):
        return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    t = time.time() if when is None else when
    second = int(t)
    return f"{_second(second)}.{int((t - second) * 1000):03d}Z"


@functools.lru_cache(maxsize=1)
def _hostname() -> str:
    return (socket.gethostname() or "-")[:255]


def syslog_frame(message: str, *, severity: int, when: dt.datetime | float | None = None,
                 hostname: str | None = None, app: str = "dicomguard") -> bytes:
    """An RFC 5424 syslog message carrying ``message`` (UTF-8, with the BOM the RFC asks for)."""
    pri = _FACILITY_AUTHPRIV * 8 + severity
    stamp = _stamp(when)
    host = hostname[:255] if hostname else _hostname()
    head = f"<{pri}>1 {stamp} {host} {app} {os.getpid()} DICOM+RFC3881 - "
    return head.encode() + b"\xef\xbb\xbf" + message.encode()


class _UdpSender(asyncio.DatagramProtocol):
    def error_received(self, exc: Exception) -> None:  # collector down: nothing to do
        pass


@dataclass
class _Repeats:
    """Refusals of one (source, reason) inside the current aggregation window."""

    started: float
    failure: bool
    message: dict[str, Any]
    address: str
    count: int = 0  # refusals after the first (which was written)


@dataclass
class PhiCapture:
    """What the gateway read of an operation's data set, when ``audit.include_phi`` is on."""

    transfer_syntax: str = ""
    query: bytes = b""  # the C-FIND/C-MOVE/C-GET identifier as sent
    study_uids: tuple[str, ...] = ()
    patient_id: str = ""
    patient_name: str = ""


#: bytes of a data set kept for the audit with include_phi (identifiers are small; of a
#: C-STORE only the start is read, where the patient and study modules are, never pixel data)
PHI_CAPTURE_BYTES = 64 << 10
_STOP_AFTER_STUDY = 0x0020FFFF


def read_phi(operation: str, data: bytes, transfer_syntax: str) -> PhiCapture:
    """Patient ID and name, study UIDs and (C-FIND) the query bytes from the start of a data
    set in ``transfer_syntax`` (implicit VR little endian if unknown), which may be cut
    anywhere after :data:`PHI_CAPTURE_BYTES`. Reading stops after group 0020 (the patient and
    study modules); anything undecodable is left out: the audit must never fail an
    operation."""
    from io import BytesIO

    from pydicom.filereader import read_dataset

    ts = UID(transfer_syntax or ImplicitVRLittleEndian)
    out = PhiCapture(transfer_syntax=str(ts))
    if operation == "FIND":
        out.query = data
    values: dict[str, Any] = {}
    try:
        with warnings.catch_warnings():  # a peer's odd encoding is not the gateway's warning
            warnings.simplefilter("ignore")
            ds = read_dataset(BytesIO(data), ts.is_implicit_VR, ts.is_little_endian,
                              stop_when=lambda tag, vr, length: tag > _STOP_AFTER_STUDY)
            for keyword in ("PatientID", "PatientName", "StudyInstanceUID"):
                with contextlib.suppress(Exception):
                    values[keyword] = ds.get(keyword)
    except Exception:
        return out
    out.patient_id = str(values.get("PatientID") or "")
    out.patient_name = str(values.get("PatientName") or "")
    study = values.get("StudyInstanceUID")
    if study:
        uids = list(study) if isinstance(study, MultiValue | list | tuple) else [study]
        out.study_uids = tuple(str(u) for u in uids if str(u).strip() and "*" not in str(u))
    return out


class _TcpSyslog:
    """One TCP syslog collector: a bounded queue of RFC 6587 octet-counted frames and the task
    that sends them over one connection (opened on the first frame, reopened once per frame
    after a failure). A frame the queue has no room for, or that cannot be sent, is counted
    in ``audit_dropped``: never waited for (the relay must not block), never lost unsaid."""

    def __init__(self, host: str, port: int, metrics: Metrics | None) -> None:
        self.host, self.port = host, port
        self.metrics = metrics
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=10_000)
        self._writer: asyncio.StreamWriter | None = None
        self._task = asyncio.create_task(self._run())

    def send(self, frame: bytes) -> None:
        try:
            self.queue.put_nowait(frame)
        except asyncio.QueueFull:
            self._dropped()

    def _dropped(self, n: int = 1) -> None:
        if self.metrics is not None and n:
            self.metrics.audit_dropped.inc(n)

    async def _run(self) -> None:
        while True:
            frame = await self.queue.get()
            written = False  # in the transport's buffer: sent when the connection closes
            try:
                for _attempt in range(2):
                    try:
                        if self._writer is None:
                            _, self._writer = await asyncio.wait_for(
                                asyncio.open_connection(self.host, self.port), 2.0)
                        self._writer.write(f"{len(frame)} ".encode() + frame)
                        written = True
                        await self._writer.drain()
                        break
                    except (OSError, TimeoutError):
                        written = False
                        if self._writer is not None:
                            self._writer.close()
                        self._writer = None
                else:
                    self._dropped()
            except asyncio.CancelledError:  # close() past its bound
                if not written:
                    self._dropped()
                raise
            finally:
                self.queue.task_done()

    async def close(self, timeout: float) -> None:
        """Send what is queued for at most ``timeout`` seconds, then close the connection
        after its buffer is written (bounded too). Frames still queued then are counted as
        dropped, also when this is cancelled."""
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.queue.join(), timeout)
        finally:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
            self._dropped(self.queue.qsize())
            writer, self._writer = self._writer, None
            if writer is not None:
                writer.close()  # the transport writes its buffer out before it closes
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(writer.wait_closed(), timeout)


#: how long the queue of a stopped trail's TCP collector may take to be sent (then counted
#: as dropped): at the gateway's stop, and for a collector a reload left behind
DRAIN_SECONDS = 2.0
RETIRED_DRAIN_SECONDS = 30.0


class AuditTrail:
    """Writes audit messages to the configured file and syslog collector.

    A reload that changes ``[audit]`` replaces the trail with :meth:`replaced_by`: the
    messages recorded until then are written by this trail (with its ``source_id``), every
    later one by its successor, and a syslog collector both configurations name keeps its
    connection and queue; nothing is lost or written twice.
    """

    def __init__(self, config: AuditConfig, metrics: Metrics | None = None) -> None:
        self.config = config
        self.metrics = metrics
        self._file = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: _TcpSyslog | None = None
        #: (failure, build_message keywords or (time, *template, SOP instance UID))
        self._pending: list[tuple[bool, dict[str, Any] | tuple[float, str, str, str, str]]] = []
        self._repeats: dict[tuple[str, ...], _Repeats] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        #: the trail that took over (:meth:`replaced_by`): what is recorded here goes there
        self._successor: AuditTrail | None = None
        self.written = 0

    @property
    def syslog_backlog(self) -> int:
        """Frames waiting to be sent to the TCP syslog collector (0 for UDP or no syslog)."""
        return self._tcp.queue.qsize() if self._tcp is not None else 0

    @property
    def enabled(self) -> bool:
        return self.config.file is not None or self.config.syslog is not None

    async def start(self, *, syslog: bool = True) -> None:
        """Open the file and (``syslog``) the syslog collector."""
        if self.config.file is not None:
            Path(self.config.file).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.config.file, "a", encoding="utf-8")  # noqa: SIM115
        if self.config.syslog and syslog:
            scheme, host, port = parse_syslog_url(self.config.syslog)
            loop = asyncio.get_running_loop()
            if scheme == "udp":
                transport, _ = await loop.create_datagram_endpoint(
                    _UdpSender, remote_addr=(host, port))
                self._udp = transport
            else:
                self._tcp = _TcpSyslog(host, port, self.metrics)

    async def replaced_by(self, config: AuditConfig) -> AuditTrail:
        """A started trail for ``config`` that takes over from this one (a reload).

        The new trail's file and collector are opened first (the only waits); then, with no
        wait until the caller installs the new trail: the aggregated refusals and the batch
        recorded here are written here (events detected before the reload keep this trail's
        ``source_id``), a syslog collector both name (same URL) moves to the new trail with
        its connection and queue, and anything still recorded here goes to the new trail.
        :meth:`stop` then closes what stayed here.
        """
        same_syslog = config.syslog is not None and config.syslog == self.config.syslog
        new = AuditTrail(config, self.metrics)
        try:
            await new.start(syslog=not same_syslog or (self._tcp is None and self._udp is None))
        except BaseException:
            await new.stop()  # what it opened before the failure; this trail goes on
            raise
        self.flush_repeats()
        self._write_pending()
        if same_syslog and new._tcp is None and new._udp is None:
            new._tcp, self._tcp = self._tcp, None
            new._udp, self._udp = self._udp, None
        self._successor = new
        return new

    async def stop(self, drain: float = DRAIN_SECONDS) -> None:
        """Write what is pending, then close: the TCP collector's queue gets ``drain`` seconds
        (what is left then is counted in ``audit_dropped``)."""
        self.flush_repeats()
        self._write_pending()
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        tcp, self._tcp = self._tcp, None
        if tcp is not None:
            await tcp.close(drain)

    def emit(self, xml: str, *, failure: bool) -> None:
        """Write one message now (the file is flushed by the caller)."""
        self.written += 1
        if self._file is not None:
            self._file.write(xml + "\n")
        if self._udp is None and self._tcp is None:
            return
        frame = syslog_frame(xml, severity=_SEVERITY_WARNING if failure else _SEVERITY_NOTICE)
        if self._udp is not None:
            self._udp.sendto(frame)
        elif self._tcp is not None:
            self._tcp.send(frame)

    # -- events -------------------------------------------------------------------------------
    def _emit(self, failure: bool = False, **kwargs: Any) -> None:
        if self._successor is not None:  # recorded after a reload replaced this trail
            self._successor._emit(failure, **kwargs)
            return
        if not self.enabled:
            return
        kwargs.setdefault("when", time.time())
        self._pending.append((failure, kwargs))
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_later(BATCH_SECONDS, self._write_pending)
            except RuntimeError:  # no loop (a tool or test calling directly): write now
                self._write_pending()

    def _emit_rendered(self, failure: bool, template: tuple[str, str, str], instance: str
                       ) -> None:
        """Record an operation message rendered from its association's cached fragments
        (:meth:`operation`): all but the time stamp and the SOP instance UID."""
        if self._successor is not None:
            self._successor._emit_rendered(failure, template, instance)
            return
        self._pending.append((failure, (time.time(), *template, instance)))
        if len(self._pending) == 1:
            try:
                asyncio.get_running_loop().call_later(BATCH_SECONDS, self._write_pending)
            except RuntimeError:
                self._write_pending()

    def _write_pending(self) -> None:
        pending, self._pending = self._pending, []
        source_id = self.config.source_id
        for failure, message in pending:
            if isinstance(message, tuple):
                when, head, middle, tail, instance = message
                xml = "".join((head, _stamp(when), middle,
                               f"<Instance UID={_uid_attr(instance)}/>" if instance else "",
                               tail))
            else:
                xml = build_message(source_id=source_id, **message)
            self.emit(xml, failure=failure)
        if self._file is not None and pending:
            self._file.flush()

    # -- aggregation of repeated refusals -----------------------------------------------------
    def _refusal(self, key: tuple[str, ...], address: str, failure: bool = True,
                 **kwargs: Any) -> None:
        """Write the first refusal of ``key`` in a window, count the rest (see the module
        docstring); ``address`` is the source the aggregate message names."""
        if self._successor is not None:
            self._successor._refusal(key, address, failure, **kwargs)
            return
        if not self.enabled:
            return
        now = time.monotonic()
        window = self.config.aggregate_window
        entry = self._repeats.get(key)
        if entry is not None and now - entry.started >= window:
            self._flush_repeats(key, entry)
            entry = None
        if entry is None and len(self._repeats) >= MAX_AGGREGATE_KEYS:
            key, address = (key[0], "*", *key[2:]), "several sources"  # (kind, source, why)
            entry = self._repeats.get(key)
        if entry is not None:
            entry.count += 1
            entry.message = kwargs
            if self.metrics is not None:
                self.metrics.audit_suppressed.inc()
            return
        self._repeats[key] = _Repeats(now, failure, kwargs, address)
        self._emit(failure=failure, **kwargs)
        if self._sweeper is None:
            with contextlib.suppress(RuntimeError):
                self._sweeper = asyncio.get_running_loop().call_later(window, self._sweep)

    def _flush_repeats(self, key: tuple[str, ...], entry: _Repeats) -> None:
        del self._repeats[key]
        if not entry.count:
            return
        message = dict(entry.message)
        window = self.config.aggregate_window
        message["description"] = (
            f"{entry.count} more like this from {entry.address} within {window:g}s "
            f"(last: {message.get('description', '')})")
        message["when"] = time.time()
        self._emit(failure=entry.failure, **message)

    def _sweep(self) -> None:
        self._sweeper = None
        now = time.monotonic()
        window = self.config.aggregate_window
        for key, entry in list(self._repeats.items()):
            if now - entry.started >= window:
                self._flush_repeats(key, entry)
        if self._repeats:
            with contextlib.suppress(RuntimeError):
                self._sweeper = asyncio.get_running_loop().call_later(window / 2, self._sweep)

    def flush_repeats(self) -> None:
        """Write every pending aggregate now (at stop, and for tests)."""
        for key, entry in list(self._repeats.items()):
            self._flush_repeats(key, entry)
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    # -- who is who -----------------------------------------------------------------------------
    @staticmethod
    def _user(relay: RelayInfo) -> str:
        adm = relay.admission
        return f"{adm.auth.user} ({adm.auth.method}: {adm.auth.identity})" if adm else ""

    def _requestor(self, relay: RelayInfo, role: str = "") -> Participant:
        return _participant_of(relay.calling_aet, True, relay.peer_address, self._user(relay),
                               role)

    def _gateway(self, relay: RelayInfo | None = None, role: str = "") -> Participant:
        if relay is None:
            return Participant(self.config.source_id, False, _hostname(), "", role)
        return _participant_of(relay.called_aet or self.config.source_id, False,
                               relay.listener.address, "", role)

    def _backend(self, relay: RelayInfo, role: str) -> Participant:
        route = relay.admission.route if relay.admission else None
        if route is None:
            return self._gateway(relay, role)
        return _participant_of(route.backend_aet, False, route.backend_host, "", role)

    @staticmethod
    def _alert_subject(address: str, name: str, details: tuple[tuple[str, str], ...]
                       ) -> ParticipantObject:
        return ParticipantObject(address or "-", _NODE, _SYSTEM, _ROLE_SECURITY,
                                 name=name or address or "-", details=details)

    # -- events the gateway records -------------------------------------------------------------
    def application(self, started: bool) -> None:
        try:
            launcher = getpass.getuser()
        except Exception:
            launcher = str(os.getuid())
        self._emit(event="app", action="E", outcome=0,
                   event_type="start" if started else "stop",
                   participants=(self._gateway(role="application"),
                                 Participant(launcher, True, "", "", "launcher")))

    def association(self, relay: RelayInfo, *, accepted: bool, why: str, check: str) -> None:
        participants = (self._requestor(relay), self._gateway(relay))
        if accepted:
            self._emit(event="auth", event_type="login", action="E", outcome=0,
                       participants=participants)
            return
        # a user identity that failed is a User Authentication failure; every other check
        # (source, AE titles, protocol version, limits, backend) judges the node
        node_check = not check.startswith("identity")
        key = ("association", relay.peer_address, check)
        if node_check:
            subject = self._alert_subject(relay.peer_address, relay.calling_aet,
                                          (("Alert Description", why),))
            self._refusal(key, relay.peer_address, event="alert", event_type="node",
                          action="E", outcome=4, description=why, participants=participants,
                          objects=(subject,))
        else:
            self._refusal(key, relay.peer_address, event="auth", event_type="login",
                          action="E", outcome=4, description=why, participants=participants)

    def association_end(self, relay: RelayInfo, reason: str) -> None:
        self._emit(event="auth", event_type="logout", action="E",
                   outcome=0 if reason == "released" else 4, description=reason,
                   participants=(self._requestor(relay), self._gateway(relay)))

    def tls_refused(self, address: str, failure: TlsFailure) -> None:
        """A refused TLS handshake: Security Alert, Node Authentication, minor failure."""
        details = [("Alert Description", f"TLS handshake refused: {failure.error}")]
        if failure.verify_code is not None:
            details.append(("Verify Error", str(failure.verify_code)))
        if failure.subject:
            details.append(("Certificate Subject", failure.subject))
        if failure.issuer:
            details.append(("Certificate Issuer", failure.issuer))
        requestor = Participant(failure.subject or address, True, address)
        self._refusal(("tls", address, failure.reason), address, event="alert",
                      event_type="node", action="E", outcome=4,
                      description=f"TLS handshake refused ({failure.reason}): {failure.error}",
                      participants=(requestor, self._gateway()),
                      objects=(self._alert_subject(address, failure.subject, tuple(details)),))

    def setup_refused(self, address: str, reason: str) -> None:
        """A connection closed during association setup by a limit (not a timeout)."""
        why = {"per-source-limit": "too many connections in association setup from this "
                                   "source",
               "evicted": "closed to make room: connections in association setup at the "
                          "limit"}.get(reason, reason)
        self._refusal(("setup", address, reason), address, event="alert", event_type="node",
                      action="E", outcome=4, description=why,
                      participants=(Participant(address, True, address), self._gateway()),
                      objects=(self._alert_subject(address, "", (("Alert Description", why),)),))

    def operation(self, relay: RelayInfo, op: Any, *, status: int | None,
                  refused: str | None = None) -> None:
        if self._successor is not None:
            self._successor.operation(relay, op, status=status, refused=refused)
            return
        if refused is not None:
            status_text = f"0x{status:04X}" if status is not None else "none"
            sop_class = op.sop_class or "-"
            details = [("Alert Description", f"{op.operation} refused: {refused}"),
                       ("Status", status_text)]
            if op.destination:
                details.append(("MoveDestination", op.destination))
            subject = ParticipantObject(sop_class, _SOP_CLASS, _SYSTEM, _ROLE_SECURITY,
                                        name=_sop_name(op.sop_class), details=tuple(details))
            key = ("operation", relay.peer_address, f"{op.operation}: {refused}")
            self._refusal(key, relay.peer_address, event="alert", event_type="restricted",
                          action="E", outcome=4, description=f"{op.operation} refused: {refused}",
                          participants=(self._requestor(relay), self._gateway(relay)),
                          objects=(subject,))
            return
        if op.operation not in _OP_EVENT:
            return  # C-ECHO and anything else that touches no patient data (module docstring)
        phi: PhiCapture | None = getattr(op, "phi", None) if self.config.include_phi else None
        cache = getattr(relay, "audit_cache", None)
        if phi is None and cache is not None:
            if not self.enabled:
                return
            # Everything but the time and the SOP instance UID repeats across the operations of
            # an association with the same service, SOP class and status: rendered once per
            # association (measured: ~7 us per C-STORE built in full, ~1 us from the cache).
            # The source_id is in the key: after a reload that changes it, a live association's
            # operations name the new one, as every other message recorded after the reload
            # (the audit source is the one that detected the event, PS3.15 A.5.3.2).
            key = (op.operation, op.sop_class, status, op.destination, bool(op.sop_instance),
                   self.config.source_id)
            entry = cache.get(key)
            if entry is None:
                if len(cache) >= MAX_CACHED_OPERATIONS:
                    cache.clear()
                entry = cache[key] = self._operation_template(relay, op, status)
            failure, template = entry
            self._emit_rendered(failure, template, op.sop_instance)
            return
        failure, kwargs = self._operation_message(relay, op, status, phi)
        self._emit(failure=failure, **kwargs)

    def _operation_template(self, relay: RelayInfo, op: Any, status: int | None
                            ) -> tuple[bool, tuple[str, str, str]]:
        """(failure, (the message up to its time stamp, from there up to the SOP instance,
        the rest)): :meth:`_operation_message` rendered with a marker instance, cut there."""
        marked = _TemplateOp(op.operation, op.sop_class, "2.25.0.4242" if op.sop_instance else "",
                             op.destination)
        failure, kwargs = self._operation_message(relay, marked, status, None)
        xml = build_message(source_id=self.config.source_id, when=0.0, **kwargs)
        cut = xml.index(_HEAD_TIME) + len(_HEAD_TIME)
        head, after_stamp = xml[:cut], xml[cut + len(_stamp(0.0)):]
        middle, mark, tail = after_stamp.partition(_INSTANCE_MARK)
        if not mark:
            middle, tail = after_stamp, ""
        return failure, (head, middle, tail)

    def _operation_message(self, relay: RelayInfo, op: Any, status: int | None,
                           phi: PhiCapture | None) -> tuple[bool, dict[str, Any]]:
        """(failure, :func:`build_message` keywords) of a completed operation."""
        status_text = f"0x{status:04X}" if status is not None else "none"
        event, action = _OP_EVENT[op.operation]
        ok = status == STATUS_SUCCESS or is_c_warning(status)
        if op.operation in ("STORE", "FIND"):  # the requestor sends data / the query
            participants = (self._requestor(relay, "source"), self._backend(relay, "destination"))
        elif op.operation == "GET":  # the backend sends to the requestor
            participants = (self._backend(relay, "source"), self._requestor(relay, "destination"))
        else:  # MOVE: the backend sends to the move destination, at the requestor's request
            participants = (self._requestor(relay), self._backend(relay, "source"),
                            Participant(op.destination or "-", False, "", "", "destination"))
        objects = self._operation_objects(op, status_text, phi)
        return not ok, {"event": event, "action": action, "outcome": 0 if ok else 4,
                        "description": op.operation, "participants": participants,
                        "objects": objects}

    @staticmethod
    def _operation_objects(op: Any, status_text: str, phi: PhiCapture | None
                           ) -> tuple[ParticipantObject, ...]:
        details: list[tuple[str, str]] = [("Status", status_text)]
        if phi is not None and phi.transfer_syntax:
            details.insert(0, ("TransferSyntax", phi.transfer_syntax))
        if op.destination:
            details.append(("MoveDestination", op.destination))
        instances = (op.sop_instance,) if op.sop_instance else ()
        if op.operation == "FIND" or phi is None or not phi.study_uids:
            # the SOP class (queried, or of what was transferred), with the query keys if PHI
            obj = ParticipantObject(
                op.sop_class or "-", _SOP_CLASS, _SYSTEM, _ROLE_REPORT,
                name=_sop_name(op.sop_class), query=phi.query if phi is not None else b"",
                details=tuple(details),
                sop_instances=(op.sop_class, instances) if op.operation == "STORE" else None)
            objects: list[ParticipantObject] = [obj]
        else:
            objects = [ParticipantObject(uid, _STUDY, _SYSTEM, _ROLE_REPORT, name=uid,
                                         details=tuple(details),
                                         sop_instances=(op.sop_class, instances))
                       for uid in phi.study_uids]
        if phi is not None and phi.patient_id and op.operation != "FIND":
            objects.append(ParticipantObject(phi.patient_id, _PATIENT, _PERSON, _ROLE_PATIENT,
                                             name=phi.patient_name or phi.patient_id))
        return tuple(objects)

    def protocol_violation(self, relay: RelayInfo, why: str) -> None:
        subject = self._alert_subject(relay.peer_address, relay.calling_aet,
                                      (("Alert Description", why),))
        self._refusal(("abort", relay.peer_address, why.split(":", 1)[0]), relay.peer_address,
                      event="alert", event_type="restricted", action="E", outcome=8,
                      description=f"association aborted: {why}",
                      participants=(self._requestor(relay), self._gateway(relay)),
                      objects=(subject,))
