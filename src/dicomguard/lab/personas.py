"""The lab's server personas: each one a way a real DICOM endpoint behaves (or misbehaves).

A persona is pure configuration; :mod:`dicomguard.lab.fleet` turns it into a listening acceptor
(or a hostile raw behaviour) and into the ground truth a scanner's verdict is judged against.
Names are stable: the scanner tests and the benchmark refer to them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pynetdicom.presentation import StoragePresentationContexts

from .. import __version__
from ..knowledge import sopclasses as sc

# --- services: the names of the scan output contract and the SOP classes behind them ----------

VERIFICATION = sc.VERIFICATION
#: what the lab's servers offer: the scan's services (knowledge.sopclasses.SERVICES) without
#: MPPS and storage commitment, and every storage SOP class pynetdicom knows
SERVICE_SOP_CLASSES: dict[str, tuple[str, ...]] = {
    "verification": sc.SERVICES["verification"],
    "find_patient_root": sc.SERVICES["find_patient_root"],
    "find_study_root": sc.SERVICES["find_study_root"],
    "move": sc.SERVICES["move"],
    "get": sc.SERVICES["get"],
    "worklist": sc.SERVICES["worklist"],
    "storage": tuple(str(cx.abstract_syntax) for cx in StoragePresentationContexts),
}
SERVICES = tuple(SERVICE_SOP_CLASSES)
ALL_SERVICES = frozenset(SERVICES)
QUERY_SERVICES = frozenset({"find_patient_root", "find_study_root", "worklist"})


@dataclass(frozen=True)
class Product:
    """What a persona says it is in its A-ASSOCIATE-AC, and what the truth file says it claims."""

    name: str
    version: str
    #: None: the AC carries no Implementation Class UID at all (as dicompot's)
    implementation_class_uid: str | None
    implementation_version_name: str | None
    #: maximum PDU length the product announces by default
    max_pdu: int = 16384


#: OFFIS DCMTK 3.6.7, the values storescp/dcmqrscp announce (harmless to mimic: public, common).
DCMTK_367 = Product("DCMTK", "3.6.7", "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367")
#: DCMTK 3.6.5, which Orthanc builds of that era announce (Orthanc speaks through DCMTK).
DCMTK_365 = Product("DCMTK", "3.6.5", "1.2.276.0.7230010.3.0.3.6.5", "OFFIS_DCMTK_365")
PYNETDICOM_304 = Product(
    "pynetdicom", "3.0.4", "1.2.826.0.1.3680043.9.3811.3.0.4", "PYNETDICOM_304", 16382
)
#: The lab's own identity, for personas that imitate no product (2.25 root of the lab's UIDs).
DGLAB = Product(
    "dicomguard-lab",
    __version__,
    "2.25.4242.0.1",
    ("DGLAB_" + __version__.replace(".", ""))[:16],
    65536,
)

#: DICOMHawk's default identity (honeynet/DICOMHawk dicom_server/config.py): version name
#: ORTHANC on pynetdicom 2.0.1's class UID, pynetdicom's maximum PDU
DICOMHAWK = Product(
    "DICOMHawk (default identity)", "default", "1.2.826.0.1.3680043.9.3811.2.0.1", "ORTHANC", 16382
)
#: dicompot (nsmfoo/dicompot): no class UID, no version name, go-netdicom's 4 MiB maximum PDU
DICOMPOT = Product("dicompot", "0.1", None, None, 4 << 20)

# --- hostile (non-DICOM) behaviours, implemented in dicomguard.lab.hostile ----------------------
HOSTILE_BEHAVIOURS = ("http", "ssh", "silent", "abort", "garbage", "giant-length")
#: issue 12's hostile peers (lab.hostile.behaviour); not in the default fleet, which keeps its
#: personas: the scanner-integrity tests start them beside a fleet
INTEGRITY_BEHAVIOURS = (
    "accept-then-silence",
    "endless-pending",
    "slow-pending",
    "malformed-ac-context-id-0",
    "malformed-ac-sub-item-0x10",
    "tls-junk",
    "busy",
)

#: the guessable called AE title (present in every scanner's wordlist)
GUESSABLE_CALLED_AET = "PACS"
#: the calling AE title an allow-listing persona admits
ALLOWED_CALLING_AET = "VIEWER01"
#: credentials of the user-identity persona (a lab default, like a vendor default password)
LAB_USERNAME = "dgadmin"
LAB_PASSCODE = "dgadmin"
DEFAULT_FIND_CAP = 50
#: the capped-refusing persona: silent cap, and refusal above REFUSE_ABOVE
SILENT_CAP = 40
REFUSE_ABOVE = 200
DEFAULT_SLOW_DELAY = 1.0
#: the slow-greeting persona's delay: longer than a scanner's first associate timeout (5 s),
#: as an archive resolving the caller's name with a dead resolver (issue 10, item 5)
DEFAULT_SLOW_GREETING = 7.0
TLS_PORT = 2762


@dataclass(frozen=True)
class Persona:
    """One behaviour. Only the fields that matter for the persona differ from the defaults."""

    name: str
    description: str
    product: Product | None = DGLAB
    services: frozenset[str] = frozenset()
    #: the only called AE title accepted; None = any
    called_aet: str | None = None
    #: the called AE title is drawn at random per fleet (never in a wordlist)
    called_aet_secret: bool = False
    #: calling AE titles allowed; None = anyone
    calling_aets: tuple[str, ...] | None = None
    #: (username, passcode) required as a user identity item; None = not required
    credentials: tuple[str, str] | None = None
    tls: bool = False
    #: ports this persona listens on besides the fleet's ports (TLS personas add 2762)
    extra_ports: tuple[int, ...] = ()
    #: C-FIND result cap; None = every match
    find_cap: int | None = None
    #: True: above the cap answer 0xA700 with no result; False: stop silently at the cap
    cap_refuses: bool = False
    #: refuse (0xA700, no result) a C-FIND matching more than this, *besides* a silent
    #: ``find_cap`` below it: the cap is never announced by the broad query (issue 10, item 6)
    refuse_above: int | None = None
    #: how C-FIND responses go on the wire (see ``AcceptorPolicy.pack_find_responses``):
    #: "query" packs every response of a query into one P-DATA-TF (issue 10, item 4)
    pack_find_responses: str = ""
    #: queries failed with 0xC000 (Unable to process) although their context was accepted:
    #: "PATIENT" (that Q/R level) and/or "worklist" (every Modality Worklist query)
    refused_queries: frozenset[str] = frozenset()
    #: C-FIND answers that are not records: "anything" (five made-up studies for any query,
    #: dated as asked, fo-dicom #574) or "placeholder" (one match with no key and no data)
    find_answers: str | None = None
    #: seconds before the A-ASSOCIATE-RQ is answered
    answer_delay: float = 0.0
    #: a non-DICOM behaviour from HOSTILE_BEHAVIOURS; None = a DICOM acceptor
    hostile: str | None = None
    #: bounds of the synthetic patient count (inclusive) for personas that hold data
    patients: tuple[int, int] = (5, 200)
    #: a honeypot imitation (ground truth: the scan should flag it)
    honeypot: bool = False
    #: accept every proposed presentation context, even made-up SOP classes (dicompot)
    accepts_everything: bool = False
    #: fixed synthetic data seed: every host of the persona serves the same canned patients
    canned_seed: int | None = None
    #: services whose operations a stranger gets refused with an A-ABORT although their
    #: presentation contexts are accepted (Orthanc at its defaults)
    refuses_operations: frozenset[str] = frozenset()
    #: TLS that requires a client certificate signed by the lab CA
    mutual_tls: bool = False
    #: answer_delay is the fleet's slow-greeting delay (not its short "slow" delay)
    slow_greeting: bool = False
    #: (name, version) a correct scan names when the AC carries an embedded toolkit's identity
    claimed_product: tuple[str, str | None] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def speaks_dicom(self) -> bool:
        return self.hostile is None

    @property
    def holds_patients(self) -> bool:
        return (
            self.speaks_dicom
            and bool(self.services & QUERY_SERVICES)
            and self.find_answers is None
        )

    def abstract_syntaxes(self) -> tuple[str, ...]:
        out: list[str] = []
        for service in SERVICES:
            if service in self.services:
                out.extend(SERVICE_SOP_CLASSES[service])
        return tuple(out)


_ARCHIVE = frozenset(
    {"verification", "find_patient_root", "find_study_root", "move", "get", "storage"}
)

PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in (
        Persona(
            "open",
            "Any AE title, every Q/R service, worklist and storage: the classic exposed archive",
            product=DCMTK_367,
            services=ALL_SERVICES,
        ),
        Persona(
            "called-aet-guessable",
            f"Enforces the called AE title, but it is the common {GUESSABLE_CALLED_AET!r}",
            services=_ARCHIVE,
            called_aet=GUESSABLE_CALLED_AET,
        ),
        Persona(
            "called-aet-secret",
            "Enforces a random called AE title no wordlist holds",
            services=_ARCHIVE,
            called_aet_secret=True,
        ),
        Persona(
            "calling-aet-allowlist",
            f"Only calling AE {ALLOWED_CALLING_AET!r} may associate (others: reject reason 3)",
            services=_ARCHIVE,
            calling_aets=(ALLOWED_CALLING_AET,),
        ),
        Persona(
            "echo-only",
            "Verification only, like a modality's or a router's listener",
            product=DCMTK_367,
            services=frozenset({"verification"}),
        ),
        Persona(
            "user-identity-required",
            "Rejects associations without a valid username+passcode user identity",
            services=_ARCHIVE,
            credentials=(LAB_USERNAME, LAB_PASSCODE),
        ),
        Persona(
            "tls-only",
            "DICOM inside TLS with a self-signed lab CA; plain TCP gets a TLS error",
            services=_ARCHIVE,
            tls=True,
            extra_ports=(TLS_PORT,),
        ),
        Persona(
            "store-only",
            "Verification and storage: a store SCP that cannot be queried",
            product=PYNETDICOM_304,
            services=frozenset({"verification", "storage"}),
        ),
        Persona(
            "capped",
            f"Answers C-FIND with at most {DEFAULT_FIND_CAP} matches then success, silently",
            product=DCMTK_365,
            services=_ARCHIVE,
            find_cap=DEFAULT_FIND_CAP,
            patients=(80, 200),
        ),
        Persona(
            "capped-refuse",
            f"Refuses a C-FIND matching over {DEFAULT_FIND_CAP} records with 0xA700",
            services=_ARCHIVE,
            find_cap=DEFAULT_FIND_CAP,
            cap_refuses=True,
            patients=(80, 200),
        ),
        Persona(
            "capped-refuse-silent",
            f"Refuses a C-FIND matching over {REFUSE_ABOVE} records (0xA700) and answers at"
            f" most {SILENT_CAP} with Success below that: the cap is never announced",
            product=DCMTK_367,
            services=_ARCHIVE,
            find_cap=SILENT_CAP,
            refuse_above=REFUSE_ABOVE,
            patients=(120, 200),
        ),
        Persona(
            "worklist-packed",
            "A Modality Worklist that sends every C-FIND-RSP of a query in one P-DATA-TF PDU",
            product=DGLAB,
            services=frozenset({"verification", "worklist"}),
            pack_find_responses="query",
            patients=(5, 30),
        ),
        Persona(
            "patient-level-refused",
            "Q/R open at STUDY level, but every PATIENT-level C-FIND fails (0xC000); the"
            " worklist context is accepted and every worklist query fails too",
            product=DCMTK_367,
            services=_ARCHIVE | {"worklist"},
            refused_queries=frozenset({"PATIENT", "worklist"}),
            patients=(5, 40),
        ),
        Persona(
            "stub-find",
            "A stub C-FIND SCP: one placeholder match (no Study Instance UID, no data) per query",
            product=PYNETDICOM_304,
            services=frozenset({"verification", "find_patient_root", "find_study_root"}),
            find_answers="placeholder",
            patients=(0, 0),
        ),
        Persona(
            "honeypot-answers-anything",
            "Stock pynetdicom identity; answers any C-FIND with made-up studies dated as asked",
            product=PYNETDICOM_304,
            services=_ARCHIVE,
            honeypot=True,
            find_answers="anything",
            patients=(0, 0),
        ),
        Persona("not-dicom", "An HTTP server on a DICOM port", product=None, hostile="http"),
        Persona("not-dicom-ssh", "An SSH banner on a DICOM port", product=None, hostile="ssh"),
        Persona("silent", "Accepts TCP, never says a word", product=None, hostile="silent"),
        Persona("aborting", "Answers every A-ASSOCIATE-RQ with an A-ABORT", hostile="abort"),
        Persona("garbage", "Answers with random bytes", product=None, hostile="garbage"),
        Persona(
            "giant-length",
            "Answers with an A-ASSOCIATE-AC header announcing 4 GiB",
            product=None,
            hostile="giant-length",
        ),
        Persona(
            "slow",
            "Answers the association after a delay shorter than a scanner's timeout",
            services=frozenset({"verification", "find_study_root"}),
            answer_delay=DEFAULT_SLOW_DELAY,
        ),
        Persona(
            "honeypot-dicomhawk",
            "DICOMHawk's defaults: version name ORTHANC on pynetdicom, any AE title, canned data",
            product=DICOMHAWK,
            services=_ARCHIVE,
            honeypot=True,
            canned_seed=4242,
            patients=(12, 12),
        ),
        Persona(
            "honeypot-dicompot",
            "dicompot-like: no class UID, 4 MiB max PDU, accepts every SOP class, canned data",
            product=DICOMPOT,
            services=ALL_SERVICES,  # it accepts whatever is proposed
            honeypot=True,
            accepts_everything=True,
            canned_seed=4343,
            patients=(9, 9),
        ),
        Persona(
            "orthanc-default",
            "Orthanc at its defaults: contexts accepted, a stranger's C-FIND/C-MOVE/C-GET "
            "aborted, C-ECHO and C-STORE allowed; its AC says DCMTK",
            product=DCMTK_367,
            services=_ARCHIVE,
            refuses_operations=frozenset({"find_patient_root", "find_study_root", "move", "get"}),
            claimed_product=("Orthanc", None),
            patients=(5, 40),
        ),
        Persona(
            "mutual-tls",
            "DICOM inside TLS that requires a client certificate of the lab CA",
            services=_ARCHIVE,
            tls=True,
            mutual_tls=True,
            extra_ports=(TLS_PORT,),
        ),
        Persona(
            "slow-greeting",
            f"Accepts TCP at once, answers the A-ASSOCIATE-RQ after {DEFAULT_SLOW_GREETING:g} s"
            " (reverse DNS of the caller)",
            services=frozenset({"verification", "find_study_root"}),
            answer_delay=DEFAULT_SLOW_GREETING,
            slow_greeting=True,
        ),
    )
}

#: one of each, in this order, on hosts .1, .2, ... of a fleet
PERSONA_ORDER: tuple[str, ...] = tuple(PERSONAS)

#: what fills a fleet beyond one of each: mostly ordinary servers, some odd ones
FILL_CYCLE: tuple[str, ...] = (
    "open",
    "echo-only",
    "open",
    "called-aet-guessable",
    "store-only",
    "open",
    "capped",
    "calling-aet-allowlist",
    "echo-only",
    "not-dicom",
    "open",
    "silent",
    "user-identity-required",
    "called-aet-secret",
)
