"""Canonical encoded PDUs, each byte group decoded in a comment, and the builders tests use
to make more (after pynetdicom's ``tests/encoded_pdu_items.py``).

Every vector is a bytes literal whose lines are one field each: the comment gives the field's
offset from the start of the PDU and what it means. ``testing/tests/test_pdus.py`` decodes each
one with pynetdicom's PDU classes (an implementation independent of ours), checks the fields
and re-encodes it to the same bytes, so a vector here is a fact about the standard, not about
dicomguard.

==============================  ==================================================================
vector                          PS3.8 / PS3.7
==============================  ==================================================================
A_ASSOCIATE_RQ                  9.3.2 (Table 9-11); items 9.3.2.1-9.3.2.3, PS3.7 D.3.3 (user
                                information: maximum length, implementation class UID and
                                version name, asynchronous operations window, SCP/SCU role
                                selection, SOP class extended negotiation, user identity)
A_ASSOCIATE_AC                  9.3.3 (Table 9-17), the answer to A_ASSOCIATE_RQ
A_ASSOCIATE_RJ_*                9.3.4 (Table 9-21): (1,1,7) (1,1,3) (1,1,1) (2,3,2) (2,2,1)
P_DATA_TF_C_ECHO_RQ/RSP         9.3.5 (Table 9-22), PDV E.2; PS3.7 9.3.5 (C-ECHO)
P_DATA_TF_C_FIND_RQ             the same, PS3.7 9.1.2 (C-FIND) with its identifier
C_FIND_RQ_COMMAND_FIELD_TWICE   a hostile command set (issue 11), no PDU header
A_RELEASE_RQ / A_RELEASE_RP     9.3.6 / 9.3.7 (Tables 9-24, 9-25)
A_ABORT_*                       9.3.8 (Table 9-26): (2,6) (2,2) (0,0)
==============================  ==================================================================

PDUs and items are big endian (PS3.8 9.3.1); command sets and the identifiers here are implicit
VR little endian (PS3.7 6.3.1). Names, AE titles, user name and passcode are synthetic.
"""

from __future__ import annotations

import socket
import struct

from dicomguard.dul import codes

#: Message control headers of a PDV (PS3.8 E.2), from dul/codes.py's two bits.
COMMAND_LAST = codes.PDV_COMMAND | codes.PDV_LAST
COMMAND_MORE = codes.PDV_COMMAND
DATA_LAST = codes.PDV_LAST
DATA_MORE = 0


def pdu(pdu_type: int, body: bytes) -> bytes:
    """A PDU: type, reserved byte, 4-byte big-endian length of ``body``, then ``body``."""
    return struct.pack(">BBL", pdu_type, 0, len(body)) + body


def recv_pdu(sock: socket.socket) -> bytes:
    """Bytes read from a blocking ``sock`` until one whole PDU (header and its length) is in,
    or the peer closed (then what came, possibly b"")."""
    data = b""
    while len(data) < 6 or len(data) < 6 + struct.unpack(">L", data[2:6])[0]:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def item(item_type: int, body: bytes) -> bytes:
    """An A-ASSOCIATE item or sub-item: type, reserved byte, 2-byte length, ``body``."""
    return struct.pack(">BBH", item_type, 0, len(body)) + body


def pdv(context_id: int, control: int, fragment: bytes) -> bytes:
    """A presentation data value item (PS3.8 9.3.5.1): length, context ID, control header."""
    return struct.pack(">LBB", len(fragment) + 2, context_id, control) + fragment


def p_data_tf(*pdvs: tuple[int, int, bytes]) -> bytes:
    """One P-DATA-TF carrying a PDV per (context ID, control header, fragment)."""
    return pdu(codes.P_DATA_TF, b"".join(pdv(*v) for v in pdvs))


def element(tag_element: int, value: bytes, group: int = 0x0000) -> bytes:
    """One implicit VR little endian data element (command sets: group 0000)."""
    return struct.pack("<HHL", group, tag_element, len(value)) + value


def us(n: int) -> bytes:
    """A US value (2 bytes, little endian)."""
    return struct.pack("<H", n)


#: An A-ASSOCIATE-RQ proposing Verification, Study Root FIND and CT Image Storage, with
#: asynchronous operations, role selection, extended negotiation and user identity.
A_ASSOCIATE_RQ = (
    b"\x01\x00"                               #   0: PDU type 01H (A-ASSOCIATE-RQ), reserved
    b"\x00\x00\x01\xd1"                       #   2: PDU length 465: the bytes after this field
    b"\x00\x01\x00\x00"                       #   6: protocol version 1 (bit 0), reserved
    b"ANY-SCP         "                       #  10: called AE title, space-padded to 16
    b"DICOMGUARD      "                       #  26: calling AE title
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  42: reserved (32 bytes)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  50: (continued)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  58: (continued)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  66: (continued)
    # -- Application Context
    b"\x10\x00"                               #  74: item type 10H, reserved
    b"\x00\x15"                               #  76: item length 21
    b"1.2.840.10008.3.1.1.1"                  #  78: DICOM Application Context Name (PS3.7 A.2.1)
    # -- Presentation Context RQ (PS3.8 9.3.2.2, Table 9-13)
    b"\x20\x00"                               #  99: item type 20H, reserved
    b"\x00\x2e"                               # 101: item length 46
    b"\x01\x00\x00\x00"                       # 103: presentation context ID 1 (odd), reserved x3
    # ---- Abstract Syntax
    b"\x30\x00"                               # 107: item type 30H, reserved
    b"\x00\x11"                               # 109: item length 17
    b"1.2.840.10008.1.1"                      # 111: Verification SOP Class
    # ---- Transfer Syntax
    b"\x40\x00"                               # 128: item type 40H, reserved
    b"\x00\x11"                               # 130: item length 17
    b"1.2.840.10008.1.2"                      # 132: Implicit VR Little Endian
    # -- Presentation Context RQ (PS3.8 9.3.2.2, Table 9-13)
    b"\x20\x00"                               # 149: item type 20H, reserved
    b"\x00\x4f"                               # 151: item length 79
    b"\x03\x00\x00\x00"                       # 153: presentation context ID 3 (odd), reserved x3
    # ---- Abstract Syntax
    b"\x30\x00"                               # 157: item type 30H, reserved
    b"\x00\x1b"                               # 159: item length 27
    b"1.2.840.10008.5.1.4.1.2.2.1"            # 161: Study Root Q/R Information Model - FIND
    # ---- Transfer Syntax
    b"\x40\x00"                               # 188: item type 40H, reserved
    b"\x00\x11"                               # 190: item length 17
    b"1.2.840.10008.1.2"                      # 192: Implicit VR Little Endian
    # ---- Transfer Syntax
    b"\x40\x00"                               # 209: item type 40H, reserved
    b"\x00\x13"                               # 211: item length 19
    b"1.2.840.10008.1.2.1"                    # 213: Explicit VR Little Endian
    # -- Presentation Context RQ (PS3.8 9.3.2.2, Table 9-13)
    b"\x20\x00"                               # 232: item type 20H, reserved
    b"\x00\x36"                               # 234: item length 54
    b"\x05\x00\x00\x00"                       # 236: presentation context ID 5 (odd), reserved x3
    # ---- Abstract Syntax
    b"\x30\x00"                               # 240: item type 30H, reserved
    b"\x00\x19"                               # 242: item length 25
    b"1.2.840.10008.5.1.4.1.1.2"              # 244: CT Image Storage
    # ---- Transfer Syntax
    b"\x40\x00"                               # 269: item type 40H, reserved
    b"\x00\x11"                               # 271: item length 17
    b"1.2.840.10008.1.2"                      # 273: Implicit VR Little Endian
    # -- User Information (PS3.8 9.3.2.3, PS3.7 D.3.3)
    b"\x50\x00"                               # 290: item type 50H, reserved
    b"\x00\xb1"                               # 292: item length 177
    # ---- Maximum Length
    b"\x51\x00"                               # 294: item type 51H, reserved
    b"\x00\x04"                               # 296: item length 4
    b"\x00\x00\x40\x00"                       # 298: maximum length received 16384
    # ---- Implementation Class UID
    b"\x52\x00"                               # 302: item type 52H, reserved
    b"\x00\x2c"                               # 304: item length 44
    # 306: dicomguard's
    b"2.25.305828488182648779632024563416215404731"
    # ---- Asynchronous Operations Window
    b"\x53\x00"                               # 350: item type 53H, reserved
    b"\x00\x04"                               # 352: item length 4
    b"\x00\x01\x00\x01"                       # 354: invoked 1, performed 1 (no asynchrony)
    # ---- SCP/SCU Role Selection
    b"\x54\x00"                               # 358: item type 54H, reserved
    b"\x00\x1d"                               # 360: item length 29
    b"\x00\x19"                               # 362: UID length 25
    b"1.2.840.10008.5.1.4.1.1.2"              # 364: SOP class: CT Image Storage
    b"\x00\x01"                               # 389: SCU role 0, SCP role 1 (as for C-GET)
    # ---- SOP Class Extended Negotiation
    b"\x56\x00"                               # 391: item type 56H, reserved
    b"\x00\x1e"                               # 393: item length 30
    b"\x00\x1b"                               # 395: SOP class UID length 27
    b"1.2.840.10008.5.1.4.1.2.2.1"            # 397: Study Root Q/R FIND
    # 424: service class application info: relational queries
    b"\x01"
    # ---- Implementation Version Name
    b"\x55\x00"                               # 425: item type 55H, reserved
    b"\x00\x0e"                               # 427: item length 14
    b"DICOMGUARD_010"                         # 429: (16 chars at most)
    # ---- User Identity Negotiation RQ (PS3.7 D.3.3.7.1)
    b"\x58\x00"                               # 443: item type 58H, reserved
    b"\x00\x18"                               # 445: item length 24
    # 447: type 2 (username and passcode), positive response requested
    b"\x02\x01"
    b"\x00\x06"                               # 449: primary field length 6
    b"dgtest"                                 # 451: username (synthetic)
    b"\x00\x0c"                               # 457: secondary field length 12
    b"not-a-secret"                           # 459: passcode (synthetic)
)


#: The A-ASSOCIATE-AC answering :data:`A_ASSOCIATE_RQ` (pynetdicom 3.0.4's identity):
#: contexts 1 and 3 accepted, 5 refused, every negotiation item answered.
A_ASSOCIATE_AC = (
    b"\x02\x00"                               #   0: PDU type 02H (A-ASSOCIATE-AC), reserved
    b"\x00\x00\x01\x49"                       #   2: PDU length 329: the bytes after this field
    b"\x00\x01\x00\x00"                       #   6: protocol version 1 (bit 0), reserved
    #  10: called AE title, space-padded to 16 (echoed, not tested)
    b"ANY-SCP         "
    b"DICOMGUARD      "                       #  26: calling AE title (echoed)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  42: reserved (32 bytes)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  50: (continued)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  58: (continued)
    b"\x00\x00\x00\x00\x00\x00\x00\x00"       #  66: (continued)
    # -- Application Context
    b"\x10\x00"                               #  74: item type 10H, reserved
    b"\x00\x15"                               #  76: item length 21
    b"1.2.840.10008.3.1.1.1"                  #  78: DICOM Application Context Name (PS3.7 A.2.1)
    # -- Presentation Context AC (PS3.8 9.3.3.2, Table 9-18)
    b"\x21\x00"                               #  99: item type 21H, reserved
    b"\x00\x19"                               # 101: item length 25
    # 103: context ID 1, reserved, result 0 (acceptance), reserved
    b"\x01\x00\x00\x00"
    # ---- Transfer Syntax
    b"\x40\x00"                               # 107: item type 40H, reserved
    b"\x00\x11"                               # 109: item length 17
    b"1.2.840.10008.1.2"                      # 111: Implicit VR Little Endian
    # -- Presentation Context AC (PS3.8 9.3.3.2, Table 9-18)
    b"\x21\x00"                               # 128: item type 21H, reserved
    b"\x00\x1b"                               # 130: item length 27
    # 132: context ID 3, reserved, result 0 (acceptance), reserved
    b"\x03\x00\x00\x00"
    # ---- Transfer Syntax
    b"\x40\x00"                               # 136: item type 40H, reserved
    b"\x00\x13"                               # 138: item length 19
    b"1.2.840.10008.1.2.1"                    # 140: Explicit VR Little Endian
    # -- Presentation Context AC (PS3.8 9.3.3.2, Table 9-18)
    b"\x21\x00"                               # 159: item type 21H, reserved
    b"\x00\x19"                               # 161: item length 25
    # 163: context ID 5, reserved, result 3 (abstract syntax not supported), reserved
    b"\x05\x00\x03\x00"
    # ---- Transfer Syntax
    b"\x40\x00"                               # 167: item type 40H, reserved
    b"\x00\x11"                               # 169: item length 17
    b"1.2.840.10008.1.2"                      # 171: (not significant)
    # -- User Information (PS3.8 9.3.3.3, PS3.7 D.3.3)
    b"\x50\x00"                               # 188: item type 50H, reserved
    b"\x00\x8f"                               # 190: item length 143
    # ---- Maximum Length
    b"\x51\x00"                               # 192: item type 51H, reserved
    b"\x00\x04"                               # 194: item length 4
    b"\x00\x00\x40\x00"                       # 196: maximum length received 16384
    # ---- Implementation Class UID
    b"\x52\x00"                               # 200: item type 52H, reserved
    b"\x00\x20"                               # 202: item length 32
    b"1.2.826.0.1.3680043.9.3811.3.0.4"       # 204: pynetdicom 3.0.4's
    # ---- Asynchronous Operations Window
    b"\x53\x00"                               # 236: item type 53H, reserved
    b"\x00\x04"                               # 238: item length 4
    b"\x00\x01\x00\x01"                       # 240: invoked 1, performed 1 (no asynchrony)
    # ---- SCP/SCU Role Selection
    b"\x54\x00"                               # 244: item type 54H, reserved
    b"\x00\x1d"                               # 246: item length 29
    b"\x00\x19"                               # 248: UID length 25
    b"1.2.840.10008.5.1.4.1.1.2"              # 250: SOP class: CT Image Storage
    b"\x00\x01"                               # 275: SCU role 0, SCP role 1 (as for C-GET)
    # ---- SOP Class Extended Negotiation
    b"\x56\x00"                               # 277: item type 56H, reserved
    b"\x00\x1e"                               # 279: item length 30
    b"\x00\x1b"                               # 281: SOP class UID length 27
    b"1.2.840.10008.5.1.4.1.2.2.1"            # 283: Study Root Q/R FIND
    # 310: service class application info: relational queries
    b"\x01"
    # ---- Implementation Version Name
    b"\x55\x00"                               # 311: item type 55H, reserved
    b"\x00\x0e"                               # 313: item length 14
    b"PYNETDICOM_304"                         # 315: pynetdicom 3.0.4
    # ---- User Identity Negotiation AC (PS3.7 D.3.3.7.2)
    b"\x59\x00"                               # 329: item type 59H, reserved
    b"\x00\x02"                               # 331: item length 2
    # 333: server response length 0 (none for a username and passcode)
    b"\x00\x00"
)


#: A-ASSOCIATE-RJ (1, 1, 7): called AE title not recognized (pynetdicom, DCMTK).
A_ASSOCIATE_RJ_CALLED_AET = (
    b"\x03\x00"                               #   0: PDU type 03H (A-ASSOCIATE-RJ), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00"                                   #   6: reserved
    b"\x01"                                   #   7: result 1: rejected-permanent
    b"\x01"                                   #   8: source 1: service-user
    b"\x07"                                   #   9: reason/diag. 7: called-AE-title-not-recognized
)


#: A-ASSOCIATE-RJ (1, 1, 3): calling AE title not recognized.
A_ASSOCIATE_RJ_CALLING_AET = (
    b"\x03\x00"                               #   0: PDU type 03H (A-ASSOCIATE-RJ), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00"                                   #   6: reserved
    b"\x01"                                   #   7: result 1: rejected-permanent
    b"\x01"                                   #   8: source 1: service-user
    b"\x03"                                   #   9: reason/diag. 3: calling-AE-title-not-recognized
)


#: A-ASSOCIATE-RJ (1, 1, 1): no reason given (DCMTK's answer to a refused identity).
A_ASSOCIATE_RJ_NO_REASON = (
    b"\x03\x00"                               #   0: PDU type 03H (A-ASSOCIATE-RJ), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00"                                   #   6: reserved
    b"\x01"                                   #   7: result 1: rejected-permanent
    b"\x01"                                   #   8: source 1: service-user
    b"\x01"                                   #   9: reason/diag. 1: no-reason-given
)


#: A-ASSOCIATE-RJ (2, 3, 2): local limit exceeded (a busy pynetdicom or DCMTK).
A_ASSOCIATE_RJ_LOCAL_LIMIT = (
    b"\x03\x00"                               #   0: PDU type 03H (A-ASSOCIATE-RJ), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00"                                   #   6: reserved
    b"\x02"                                   #   7: result 2: rejected-transient
    b"\x03"                                   #   8: source 3: service-provider (presentation)
    b"\x02"                                   #   9: reason/diag. 2: local-limit-exceeded
)


#: A-ASSOCIATE-RJ (2, 2, 1): pynetdicom's answer to a refused user identity.
A_ASSOCIATE_RJ_USER_IDENTITY = (
    b"\x03\x00"                               #   0: PDU type 03H (A-ASSOCIATE-RJ), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00"                                   #   6: reserved
    b"\x02"                                   #   7: result 2: rejected-transient
    b"\x02"                                   #   8: source 2: service-provider (ACSE)
    b"\x01"                                   #   9: reason/diag. 1: no-reason-given
)


#: P-DATA-TF carrying a C-ECHO-RQ (PS3.7 9.3.5.1) on context 1, implicit VR LE.
P_DATA_TF_C_ECHO_RQ = (
    b"\x04\x00"                               #   0: PDU type 04H (P-DATA-TF), reserved
    b"\x00\x00\x00\x4a"                       #   2: PDU length 74: the bytes after this field
    # -- PDV item (PS3.8 9.3.5.1, Table 9-23; control header PS3.8 E.2)
    b"\x00\x00\x00\x46"                       #   6: PDV item length 70
    b"\x01"                                   #  10: presentation context ID 1
    #  11: message control header 03H: command, last fragment
    b"\x03"
    # ---- (0000,0000) CommandGroupLength, UL
    b"\x00\x00\x00\x00"                       #  12: tag (0000,0000), little endian
    b"\x04\x00\x00\x00"                       #  16: value length 4
    b"\x38\x00\x00\x00"                       #  20: 56: bytes of the command set after this element
    # ---- (0000,0002) AffectedSOPClassUID, UI
    b"\x00\x00\x02\x00"                       #  24: tag (0000,0002), little endian
    b"\x12\x00\x00\x00"                       #  28: value length 18
    b"1.2.840.10008.1.1"                      #  32: Verification SOP Class
    b"\x00"                                   #  49: NUL pad to an even length (PS3.5 6.2, UI)
    # ---- (0000,0100) CommandField, US
    b"\x00\x00\x00\x01"                       #  50: tag (0000,0100), little endian
    b"\x02\x00\x00\x00"                       #  54: value length 2
    b"\x30\x00"                               #  58: 0030H: C-ECHO-RQ
    # ---- (0000,0110) MessageID, US
    b"\x00\x00\x10\x01"                       #  60: tag (0000,0110), little endian
    b"\x02\x00\x00\x00"                       #  64: value length 2
    b"\x01\x00"                               #  68: 1
    # ---- (0000,0800) CommandDataSetType, US
    b"\x00\x00\x00\x08"                       #  70: tag (0000,0800), little endian
    b"\x02\x00\x00\x00"                       #  74: value length 2
    b"\x01\x01"                               #  78: 0101H: no data set
)


#: P-DATA-TF carrying the C-ECHO-RSP (PS3.7 9.3.5.2), status Success.
P_DATA_TF_C_ECHO_RSP = (
    b"\x04\x00"                               #   0: PDU type 04H (P-DATA-TF), reserved
    b"\x00\x00\x00\x54"                       #   2: PDU length 84: the bytes after this field
    # -- PDV item (PS3.8 9.3.5.1, Table 9-23; control header PS3.8 E.2)
    b"\x00\x00\x00\x50"                       #   6: PDV item length 80
    b"\x01"                                   #  10: presentation context ID 1
    #  11: message control header 03H: command, last fragment
    b"\x03"
    # ---- (0000,0000) CommandGroupLength, UL
    b"\x00\x00\x00\x00"                       #  12: tag (0000,0000), little endian
    b"\x04\x00\x00\x00"                       #  16: value length 4
    b"\x42\x00\x00\x00"                       #  20: 66: bytes of the command set after this element
    # ---- (0000,0002) AffectedSOPClassUID, UI
    b"\x00\x00\x02\x00"                       #  24: tag (0000,0002), little endian
    b"\x12\x00\x00\x00"                       #  28: value length 18
    b"1.2.840.10008.1.1"                      #  32: Verification SOP Class
    b"\x00"                                   #  49: NUL pad to an even length (PS3.5 6.2, UI)
    # ---- (0000,0100) CommandField, US
    b"\x00\x00\x00\x01"                       #  50: tag (0000,0100), little endian
    b"\x02\x00\x00\x00"                       #  54: value length 2
    b"\x30\x80"                               #  58: 8030H: C-ECHO-RSP
    # ---- (0000,0120) MessageIDBeingRespondedTo, US
    b"\x00\x00\x20\x01"                       #  60: tag (0000,0120), little endian
    b"\x02\x00\x00\x00"                       #  64: value length 2
    b"\x01\x00"                               #  68: 1
    # ---- (0000,0800) CommandDataSetType, US
    b"\x00\x00\x00\x08"                       #  70: tag (0000,0800), little endian
    b"\x02\x00\x00\x00"                       #  74: value length 2
    b"\x01\x01"                               #  78: 0101H: no data set
    # ---- (0000,0900) Status, US
    b"\x00\x00\x00\x09"                       #  80: tag (0000,0900), little endian
    b"\x02\x00\x00\x00"                       #  84: value length 2
    b"\x00\x00"                               #  88: 0000H: Success
)


#: P-DATA-TF carrying a C-FIND-RQ (PS3.7 9.1.2.1) and its STUDY-level identifier in
#: two PDVs of one PDU, context 3, implicit VR LE.
P_DATA_TF_C_FIND_RQ = (
    b"\x04\x00"                               #   0: PDU type 04H (P-DATA-TF), reserved
    b"\x00\x00\x00\x82"                       #   2: PDU length 130: the bytes after this field
    # -- PDV item (PS3.8 9.3.5.1, Table 9-23; control header PS3.8 E.2)
    b"\x00\x00\x00\x5a"                       #   6: PDV item length 90
    b"\x03"                                   #  10: presentation context ID 3
    #  11: message control header 03H: command, last fragment
    b"\x03"
    # ---- (0000,0000) CommandGroupLength, UL
    b"\x00\x00\x00\x00"                       #  12: tag (0000,0000), little endian
    b"\x04\x00\x00\x00"                       #  16: value length 4
    b"\x4c\x00\x00\x00"                       #  20: 76: bytes of the command set after this element
    # ---- (0000,0002) AffectedSOPClassUID, UI
    b"\x00\x00\x02\x00"                       #  24: tag (0000,0002), little endian
    b"\x1c\x00\x00\x00"                       #  28: value length 28
    b"1.2.840.10008.5.1.4.1.2.2.1"            #  32: Study Root Q/R FIND
    b"\x00"                                   #  59: NUL pad to an even length (PS3.5 6.2, UI)
    # ---- (0000,0100) CommandField, US
    b"\x00\x00\x00\x01"                       #  60: tag (0000,0100), little endian
    b"\x02\x00\x00\x00"                       #  64: value length 2
    b"\x20\x00"                               #  68: 0020H: C-FIND-RQ
    # ---- (0000,0110) MessageID, US
    b"\x00\x00\x10\x01"                       #  70: tag (0000,0110), little endian
    b"\x02\x00\x00\x00"                       #  74: value length 2
    b"\x01\x00"                               #  78: 1
    # ---- (0000,0700) Priority, US
    b"\x00\x00\x00\x07"                       #  80: tag (0000,0700), little endian
    b"\x02\x00\x00\x00"                       #  84: value length 2
    b"\x00\x00"                               #  88: 0000H: MEDIUM
    # ---- (0000,0800) CommandDataSetType, US
    b"\x00\x00\x00\x08"                       #  90: tag (0000,0800), little endian
    b"\x02\x00\x00\x00"                       #  94: value length 2
    b"\x01\x00"                               #  98: 0001H: a data set follows
    # -- PDV item (PS3.8 9.3.5.1, Table 9-23; control header PS3.8 E.2)
    b"\x00\x00\x00\x20"                       # 100: PDV item length 32
    b"\x03"                                   # 104: presentation context ID 3
    # 105: message control header 02H: data set, last fragment
    b"\x02"
    # ---- (0008,0020) StudyDate, DA
    b"\x08\x00\x20\x00"                       # 106: tag (0008,0020), little endian
    b"\x00\x00\x00\x00"                       # 110: value length 0 (empty: universal matching)
    # ---- (0008,0052) QueryRetrieveLevel, CS
    b"\x08\x00\x52\x00"                       # 114: tag (0008,0052), little endian
    b"\x06\x00\x00\x00"                       # 118: value length 6
    b"STUDY "                                 # 122: STUDY, space-padded
    # ---- (0020,000D) StudyInstanceUID, UI
    b"\x20\x00\x0d\x00"                       # 128: tag (0020,000D), little endian
    b"\x00\x00\x00\x00"                       # 132: value length 0 (empty: return key)
)


#: Issue 11's hostile command set (no PDU around it: put it in a PDV): CommandField
#: C-FIND-RQ and then C-ECHO-RQ. DCMTK acts on the first, pydicom on the last; the gateway's
#: strict reader refuses it. Implicit VR LE, group 0000.
C_FIND_RQ_COMMAND_FIELD_TWICE = (
    # -- (0000,0000) CommandGroupLength, UL
    b"\x00\x00\x00\x00"                       #   0: tag (0000,0000), little endian
    b"\x04\x00\x00\x00"                       #   4: value length 4
    b"\x56\x00\x00\x00"                       #   8: 86: bytes of the command set after this element
    # -- (0000,0002) AffectedSOPClassUID, UI
    b"\x00\x00\x02\x00"                       #  12: tag (0000,0002), little endian
    b"\x1c\x00\x00\x00"                       #  16: value length 28
    b"1.2.840.10008.5.1.4.1.2.1.1"            #  20: Patient Root Q/R FIND
    b"\x00"                                   #  47: NUL pad to an even length (PS3.5 6.2, UI)
    # -- (0000,0100) CommandField, US
    b"\x00\x00\x00\x01"                       #  48: tag (0000,0100), little endian
    b"\x02\x00\x00\x00"                       #  52: value length 2
    b"\x20\x00"                               #  56: 0020H: C-FIND-RQ (DCMTK acts on this one)
    # -- (0000,0100) CommandField, again, US
    b"\x00\x00\x00\x01"                       #  58: tag (0000,0100), little endian
    b"\x02\x00\x00\x00"                       #  62: value length 2
    b"\x30\x00"                               #  66: 0030H: C-ECHO-RQ (pydicom keeps this)
    # -- (0000,0110) MessageID, US
    b"\x00\x00\x10\x01"                       #  68: tag (0000,0110), little endian
    b"\x02\x00\x00\x00"                       #  72: value length 2
    b"\x01\x00"                               #  76: 1
    # -- (0000,0700) Priority, US
    b"\x00\x00\x00\x07"                       #  78: tag (0000,0700), little endian
    b"\x02\x00\x00\x00"                       #  82: value length 2
    b"\x00\x00"                               #  86: 0000H: MEDIUM
    # -- (0000,0800) CommandDataSetType, US
    b"\x00\x00\x00\x08"                       #  88: tag (0000,0800), little endian
    b"\x02\x00\x00\x00"                       #  92: value length 2
    b"\x01\x00"                               #  96: 0001H: a data set follows
)


#: A-RELEASE-RQ: always these 10 bytes.
A_RELEASE_RQ = (
    b"\x05\x00"                               #   0: PDU type 05H (A-RELEASE-RQ), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00\x00\x00\x00"                       #   6: reserved
)


#: A-RELEASE-RP: always these 10 bytes.
A_RELEASE_RP = (
    b"\x06\x00"                               #   0: PDU type 06H (A-RELEASE-RP), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00\x00\x00\x00"                       #   6: reserved
)


#: A-ABORT (2, 6): service provider, invalid PDU parameter value (the gateway's answer
#: to a request it refuses mid-association).
A_ABORT_INVALID_PARAMETER = (
    b"\x07\x00"                               #   0: PDU type 07H (A-ABORT), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00\x00"                               #   6: reserved x2
    b"\x02"                                   #   8: source 2: service-provider
    b"\x06"                                   #   9: reason/diag. 6: invalid-PDU-parameter-value
)


#: A-ABORT (2, 2): service provider, unexpected PDU.
A_ABORT_UNEXPECTED_PDU = (
    b"\x07\x00"                               #   0: PDU type 07H (A-ABORT), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00\x00"                               #   6: reserved x2
    b"\x02"                                   #   8: source 2: service-provider
    b"\x02"                                   #   9: reason/diag. 2: unexpected-PDU
)


#: A-ABORT (0, 0): the service user aborted.
A_ABORT_SERVICE_USER = (
    b"\x07\x00"                               #   0: PDU type 07H (A-ABORT), reserved
    b"\x00\x00\x00\x04"                       #   2: PDU length 4: the bytes after this field
    b"\x00\x00"                               #   6: reserved x2
    b"\x00"                                   #   8: source 0: service-user
    b"\x00"                                   #   9: reason/diag. 0: not significant (service user)
)
