"""DICOM's codes, named once: PDU and item types, A-ASSOCIATE-RJ and A-ABORT fields,
presentation context results, DIMSE command fields, statuses and their categories, user identity
types, priorities.

Everything else in dicomguard spells these codes by the names below (a test,
``dul/tests/test_no_bare_dicom_codes.py``, fails on a bare one elsewhere in ``src/``). The
standard's tables, so a reader can check every number:

=====================================  ===========================================================
PDU types                               PS3.8 9.3.2-9.3.8 (the first byte of each PDU)
PDV message control header              PS3.8 E.2
item and sub-item types                 PS3.8 9.3.2-9.3.3 and annex D, PS3.7 D.3.3
A-ASSOCIATE-RJ result/source/reason     PS3.8 9.3.4, Table 9-21
A-ABORT source/reason                   PS3.8 9.3.8, Table 9-26
presentation context results            PS3.8 9.3.3.2, Table 9-18
command fields, data set type, priority PS3.7 9.3 and E.1 (Table E.1-1)
statuses and their categories           PS3.7 Annex C (Table C-1: Success 0000, Warning 0001,
                                        0107, 0116, Bxxx, Failure Axxx, Cxxx, 01xx, 02xx, Cancel
                                        FE00, Pending FF00/FF01); the service specific ones in
                                        PS3.4 (B.2.3 C-STORE, C.4.1-C.4.3 C-FIND/MOVE/GET)
user identity types                     PS3.7 D.3.3.7, Table D.3-14
=====================================  ===========================================================

Status categories are pynetdicom's (:func:`pynetdicom.status.code_to_category`, the same table
pynetdicom's own service classes use), memoised here because the scanner and the gateway ask
for one per DIMSE response (statuses are 16 bits, so the cache is bounded). UIDs are not
retyped here or anywhere: they come from :mod:`pydicom.uid` and :mod:`pynetdicom.sop_class`.

Plain ``int`` constants, not enums, where a code sits on a hot path (PDU types, command fields,
statuses are compared per PDU / per message): a module constant costs nothing and prints as the
number the standard uses. Enums where the set is closed and the name is what gets shown (user
identity types, A-ABORT source/reason).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum

from pynetdicom import status as _status
from pynetdicom._globals import APPLICATION_CONTEXT_NAME as _APPLICATION_CONTEXT_NAME

# --- PDU types (PS3.8 9.3.1: the first byte of every PDU) ------------------------------------

A_ASSOCIATE_RQ = 0x01
A_ASSOCIATE_AC = 0x02
A_ASSOCIATE_RJ = 0x03
P_DATA_TF = 0x04
A_RELEASE_RQ = 0x05
A_RELEASE_RP = 0x06
A_ABORT = 0x07

PDU_NAMES = {
    A_ASSOCIATE_RQ: "A-ASSOCIATE-RQ",
    A_ASSOCIATE_AC: "A-ASSOCIATE-AC",
    A_ASSOCIATE_RJ: "A-ASSOCIATE-RJ",
    P_DATA_TF: "P-DATA-TF",
    A_RELEASE_RQ: "A-RELEASE-RQ",
    A_RELEASE_RP: "A-RELEASE-RP",
    A_ABORT: "A-ABORT",
}

#: Message control header of a PDV (PS3.8 E.2): bit 0 set = command fragment (else data set),
#: bit 1 set = last fragment of the command set or data set.
PDV_COMMAND = 0x01
PDV_LAST = 0x02

# --- item types of A-ASSOCIATE-RQ/AC (PS3.8 9.3.2-9.3.3, PS3.7 D.3.3) ------------------------

ITEM_APPLICATION_CONTEXT = 0x10
ITEM_PRESENTATION_CONTEXT_RQ = 0x20
ITEM_PRESENTATION_CONTEXT_AC = 0x21
ITEM_ABSTRACT_SYNTAX = 0x30
ITEM_TRANSFER_SYNTAX = 0x40
ITEM_USER_INFORMATION = 0x50
#: user information sub-items (PS3.8 D.1, PS3.7 D.3.3)
SUBITEM_MAXIMUM_LENGTH = 0x51
SUBITEM_IMPLEMENTATION_CLASS_UID = 0x52
SUBITEM_IMPLEMENTATION_VERSION_NAME = 0x55
SUBITEM_USER_IDENTITY_RQ = 0x58
SUBITEM_USER_IDENTITY_AC = 0x59

#: The DICOM Application Context Name (PS3.7 A.2.1), the only one PS3.8 9.3.2.1 allows;
#: pynetdicom's constant, as a plain ``str``.
APPLICATION_CONTEXT_NAME = str(_APPLICATION_CONTEXT_NAME)

#: Protocol-version bit of A-ASSOCIATE-RQ/AC (PS3.8 9.3.2: "bit 0 set", the only version).
PROTOCOL_VERSION = 1

# --- A-ASSOCIATE-RJ (PS3.8 9.3.4, Table 9-21) ------------------------------------------------

RESULT_REJECTED_PERMANENT = 1
RESULT_REJECTED_TRANSIENT = 2

SOURCE_SERVICE_USER = 1
SOURCE_SERVICE_PROVIDER_ACSE = 2
SOURCE_SERVICE_PROVIDER_PRESENTATION = 3

REJECT_RESULT = {
    RESULT_REJECTED_PERMANENT: "rejected-permanent",
    RESULT_REJECTED_TRANSIENT: "rejected-transient",
}
REJECT_SOURCE = {
    SOURCE_SERVICE_USER: "service-user",
    SOURCE_SERVICE_PROVIDER_ACSE: "service-provider (ACSE)",
    SOURCE_SERVICE_PROVIDER_PRESENTATION: "service-provider (presentation)",
}
#: (source, reason) -> the reason's name; the reason's meaning depends on the source.
REJECT_REASON = {
    (1, 1): "no-reason-given",
    (1, 2): "application-context-name-not-supported",
    (1, 3): "calling-AE-title-not-recognized",
    (1, 7): "called-AE-title-not-recognized",
    (2, 1): "no-reason-given",
    (2, 2): "protocol-version-not-supported",
    (3, 1): "temporary-congestion",
    (3, 2): "local-limit-exceeded",
}


@dataclass(frozen=True)
class Reject:
    """An A-ASSOCIATE-RJ's result, source and reason/diag. (PS3.8 9.3.4, Table 9-21).

    The one type for a reject, whether decoded from a peer (:func:`.acse.decode_reject`) or
    about to be sent (:func:`.pdu.reject_pdu`; the lab acceptor, the gateway). The triples
    dicomguard sends or recognises are the ``REJECT_*`` constants below; a peer may send any.
    """

    result: int
    source: int
    reason: int

    @property
    def reason_text(self) -> str:
        return REJECT_REASON.get((self.source, self.reason), f"reason-{self.reason}")

    @property
    def source_text(self) -> str:
        return REJECT_SOURCE.get(self.source, f"source-{self.source}")

    @property
    def result_text(self) -> str:
        return REJECT_RESULT.get(self.result, f"result-{self.result}")

    @property
    def calling_aet_refused(self) -> bool:
        return (self.source, self.reason) == (REJECT_CALLING_AET.source, REJECT_CALLING_AET.reason)

    @property
    def called_aet_refused(self) -> bool:
        return (self.source, self.reason) == (REJECT_CALLED_AET.source, REJECT_CALLED_AET.reason)

    @property
    def may_mean_authentication(self) -> bool:
        """A reject that servers use for a missing or refused user identity.

        PS3.8 has no reason code for it: DCMTK-based servers answer (1, 1, 1) "no reason
        given", pynetdicom (2, 2, 1) "transient, ACSE provider, no reason given".
        """
        return self in (REJECT_NO_REASON, REJECT_USER_IDENTITY)

    def describe(self) -> str:
        return f"{self.result_text}, {self.source_text}: {self.reason_text}"


#: (1, 1, 1) permanent, service user, no reason given (DCMTK's answer to a refused identity)
REJECT_NO_REASON = Reject(RESULT_REJECTED_PERMANENT, SOURCE_SERVICE_USER, 1)
#: (1, 1, 2) permanent, service user, application context name not supported
REJECT_APPLICATION_CONTEXT = Reject(RESULT_REJECTED_PERMANENT, SOURCE_SERVICE_USER, 2)
#: (1, 1, 3) permanent, service user, calling AE title not recognized
REJECT_CALLING_AET = Reject(RESULT_REJECTED_PERMANENT, SOURCE_SERVICE_USER, 3)
#: (1, 1, 7) permanent, service user, called AE title not recognized
REJECT_CALLED_AET = Reject(RESULT_REJECTED_PERMANENT, SOURCE_SERVICE_USER, 7)
#: (1, 2, 2) permanent, service provider (ACSE), protocol version not supported
REJECT_PROTOCOL_VERSION = Reject(RESULT_REJECTED_PERMANENT, SOURCE_SERVICE_PROVIDER_ACSE, 2)
#: (2, 2, 1) transient, service provider (ACSE), no reason given: what pynetdicom's acceptor
#: sends when its user identity handler says no (``acse._negotiate_as_acceptor``)
REJECT_USER_IDENTITY = Reject(RESULT_REJECTED_TRANSIENT, SOURCE_SERVICE_PROVIDER_ACSE, 1)
#: (2, 3, 1) transient, service provider (presentation), temporary congestion
REJECT_TEMPORARY_CONGESTION = Reject(
    RESULT_REJECTED_TRANSIENT, SOURCE_SERVICE_PROVIDER_PRESENTATION, 1
)
#: (2, 3, 2) transient, service provider (presentation), local limit exceeded
REJECT_LOCAL_LIMIT = Reject(RESULT_REJECTED_TRANSIENT, SOURCE_SERVICE_PROVIDER_PRESENTATION, 2)

# --- A-ABORT (PS3.8 9.3.8, Table 9-26) -------------------------------------------------------


class AbortSource(IntEnum):
    """Who aborted: byte 9 of an A-ABORT (1 is reserved)."""

    SERVICE_USER = 0
    SERVICE_PROVIDER = 2


class AbortReason(IntEnum):
    """Why the service provider aborted (A-P-ABORT): byte 10; 0 when the source is the user."""

    NOT_SPECIFIED = 0
    UNRECOGNIZED_PDU = 1
    UNEXPECTED_PDU = 2
    UNRECOGNIZED_PDU_PARAMETER = 4
    UNEXPECTED_PDU_PARAMETER = 5
    INVALID_PDU_PARAMETER_VALUE = 6


# --- presentation context results (PS3.8 9.3.3.2, Table 9-18) --------------------------------

CONTEXT_ACCEPTANCE = 0
CONTEXT_USER_REJECTION = 1
CONTEXT_NO_REASON = 2
CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED = 3
CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED = 4

CONTEXT_RESULT = {
    CONTEXT_ACCEPTANCE: "acceptance",
    CONTEXT_USER_REJECTION: "user-rejection",
    CONTEXT_NO_REASON: "no-reason",
    CONTEXT_ABSTRACT_SYNTAX_NOT_SUPPORTED: "abstract-syntax-not-supported",
    CONTEXT_TRANSFER_SYNTAXES_NOT_SUPPORTED: "transfer-syntaxes-not-supported",
}

# --- user identity negotiation (PS3.7 D.3.3.7, Table D.3-14) ---------------------------------


class UserIdentityType(IntEnum):
    """PS3.7 D.3.3.7 user identity types."""

    USERNAME = 1
    USERNAME_PASSCODE = 2
    KERBEROS = 3
    SAML = 4
    JWT = 5


# --- DIMSE command fields (PS3.7 E.1, Table E.1-1; a response is its request | 0x8000) -------

C_STORE_RQ = 0x0001
C_STORE_RSP = 0x8001
C_GET_RQ = 0x0010
C_GET_RSP = 0x8010
C_FIND_RQ = 0x0020
C_FIND_RSP = 0x8020
C_MOVE_RQ = 0x0021
C_MOVE_RSP = 0x8021
C_ECHO_RQ = 0x0030
C_ECHO_RSP = 0x8030
N_EVENT_REPORT_RQ = 0x0100
N_GET_RQ = 0x0110
N_SET_RQ = 0x0120
N_ACTION_RQ = 0x0130
N_CREATE_RQ = 0x0140
N_DELETE_RQ = 0x0150
C_CANCEL_RQ = 0x0FFF

#: the bit that makes a command field a response (PS3.7 E.1: C-ECHO-RSP = C-ECHO-RQ | 0x8000)
RESPONSE_BIT = 0x8000

#: Command Data Set Type (0000,0800): 0x0101 means no data set follows (PS3.7 E.1); any other
#: value means one does, and 0x0001 is what pynetdicom and DCMTK send.
DATA_SET_ABSENT = 0x0101
DATA_SET_PRESENT = 0x0001

#: Priority (0000,0700) of C-STORE/C-FIND/C-MOVE/C-GET requests (PS3.7 E.1).
PRIORITY_MEDIUM = 0x0000
PRIORITY_HIGH = 0x0001
PRIORITY_LOW = 0x0002

# --- DIMSE statuses (PS3.7 Annex C; PS3.4 for the service specific ones) ---------------------

STATUS_SUCCESS = 0x0000
#: Warning, e.g. "requested optional attributes are not supported" (PS3.7 Annex C)
STATUS_WARNING = 0x0001
#: Failure "Refused: SOP Class not supported" (PS3.7 Annex C)
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
#: Failure "Refused: Not authorized" (PS3.7 Annex C)
STATUS_NOT_AUTHORIZED = 0x0124
#: Failure "Refused: Out of resources" (C-STORE PS3.4 B.2.3, C-FIND C.4.1.1.4)
STATUS_OUT_OF_RESOURCES = 0xA700
#: Failure "Refused: Out of resources - unable to perform sub-operations" (C-MOVE, C-GET;
#: PS3.4 C.4.2.1.5, C.4.3.1.4)
STATUS_OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702
#: Failure "Refused: Move destination unknown" (C-MOVE, PS3.4 C.4.2.1.5)
STATUS_MOVE_DESTINATION_UNKNOWN = 0xA801
#: Failure "Identifier does not match SOP Class" (C-FIND/C-MOVE/C-GET, PS3.4 C.4.1.1.4)
STATUS_IDENTIFIER_MISMATCH = 0xA900
#: Failure "Unable to process" (PS3.4 C.4.1.1.4; the lowest code of the Cxxx range)
STATUS_UNABLE_TO_PROCESS = 0xC000
#: Warning "Coercion of data elements" (C-STORE, PS3.4 B.2.3)
STATUS_COERCION_OF_DATA_ELEMENTS = 0xB000
#: Warning "Sub-operations complete - one or more failures or warnings" (C-MOVE, C-GET;
#: PS3.4 C.4.2.1.5, C.4.3.1.4): the same code as C-STORE's coercion warning, another service
STATUS_SUBOPERATIONS_COMPLETE_WITH_FAILURES = 0xB000
#: Warning "Elements discarded" (C-STORE, PS3.4 B.2.3)
STATUS_ELEMENTS_DISCARDED = 0xB006
#: Warning "Data set does not match SOP class" (C-STORE, PS3.4 B.2.3)
STATUS_DATA_SET_MISMATCH = 0xB007
#: Cancel "Matching/sub-operations terminated due to Cancel request" (PS3.7 Annex C)
STATUS_CANCEL = 0xFE00
#: Pending "Matches are continuing, current match supplied" (PS3.4 C.4.1.1.4)
STATUS_PENDING = 0xFF00
#: Pending, with a warning that one or more optional keys were not supported (PS3.4 C.4.1.1.4)
STATUS_PENDING_WARNING = 0xFF01

# Status categories: pynetdicom's names ("Success", "Warning", "Failure", "Cancel", "Pending",
# "Unknown").
CATEGORY_SUCCESS = _status.STATUS_SUCCESS
CATEGORY_WARNING = _status.STATUS_WARNING
CATEGORY_FAILURE = _status.STATUS_FAILURE
CATEGORY_CANCEL = _status.STATUS_CANCEL
CATEGORY_PENDING = _status.STATUS_PENDING
CATEGORY_UNKNOWN = _status.STATUS_UNKNOWN

#: The Warning statuses the DIMSE-C services define (0001 and Bxxx: PS3.4 B.2.3, C.4.1-C.4.3).
#: The other two of the Warning category, 0107 "Attribute list error" and 0116 "Attribute value
#: out of range", appear only in the DIMSE-N tables (N-SET, N-CREATE ...), so the scanner's
#: C-FIND judgement does not take them as a warning while :func:`status_category` (and the
#: gateway, which relays N- services too) does.
C_WARNING_STATUSES = frozenset({STATUS_WARNING, *range(0xB000, 0xC000)})


#: The members of the Pending category (pynetdicom's ``code_to_category``): 0xFF00, 0xFF01.
#: A set for the relay's per-response test, where a function call would be measurable.
PENDING_STATUSES = frozenset(
    code for code in (STATUS_PENDING, STATUS_PENDING_WARNING)
    if _status.code_to_category(code) == _status.STATUS_PENDING
)


@functools.lru_cache(maxsize=1 << 16)  # statuses are US (16 bits): bounded even for junk
def status_category(status: int) -> str:
    """The category of a DIMSE status (``CATEGORY_*``): pynetdicom's ``code_to_category``.

    Raises ValueError for a negative status (a command set parser never yields one).
    """
    return _status.code_to_category(status)


def is_pending(status: int | None) -> bool:
    """True for the two Pending statuses (0xFF00, 0xFF01): more responses follow."""
    return status in PENDING_STATUSES


def is_success_or_warning(status: int | None) -> bool:
    """Success or Warning (PS3.7 C: 0000; 0001, 0107, 0116, Bxxx): the operation was done."""
    return status is not None and status_category(status) in (CATEGORY_SUCCESS, CATEGORY_WARNING)


def is_service_failure(status: int | None) -> bool:
    """A Failure of the service specific ranges, Axxx ("Refused: ...") or Cxxx ("Error: ...",
    "Unable to process"; PS3.7 Annex C, PS3.4 C.4), not one of the general 01xx/02xx."""
    return status is not None and (0xA000 <= status <= 0xAFFF or 0xC000 <= status <= 0xCFFF)


def is_c_warning(status: int | None) -> bool:
    """A DIMSE-C warning status (0001 or Bxxx, :data:`C_WARNING_STATUSES`)."""
    return status in C_WARNING_STATUSES
