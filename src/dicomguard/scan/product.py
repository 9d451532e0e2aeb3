"""Which product an endpoint is: the fingerprint of its A-ASSOCIATE-AC, as a probe.

The implementation class UID and version name (and the maximum PDU length: dicompot announces
no UID and 4 MiB) are matched against the fingerprint database (knowledge.fingerprint). Where the
AC names a toolkit that products embed unchanged (DCMTK inside Orthanc), the product itself
is looked for on the same host's Orthanc REST API first, then in the behaviour seen.
"""

from __future__ import annotations

from ..knowledge.fingerprint import Fingerprint, load_database
from . import operations
from .probe import Need, ProbeResult, Session, Stage, Target
from .result import EndpointResult, Finding, ProductEvidence


async def identify_embedding_product(
    r: EndpointResult, toolkit: str | None, session: Session
) -> None:
    """The AC named a toolkit that products embed unchanged (DCMTK inside Orthanc): look for
    the product itself, on the same host's REST API first, then in the behaviour seen.

    Behaviour: Orthanc accepts every Q/R presentation context and then refuses a stranger's
    C-FIND with an A-ABORT (testing/tests/test_orthanc_access.py); DCMTK's own dcmqrscp
    judges peers at association time (A-ASSOCIATE-RJ) and never aborts an accepted FIND.
    """
    named = " ".join(x for x in (toolkit, r.product_version) if x) or None
    rest = await session.rest_identity()
    # Orthanc has one DICOM port: a /system whose DicomPort is another port describes another
    # service of the host (a dcmqrscp beside an Orthanc named it "Orthanc 1.10.1"); a port
    # mapping (Docker -p 104:4242) is left to the host-level join (knowledge.host_identity),
    # which sees whether the named port answered DICOM itself
    if rest is not None and rest.get("same_instance") is not False:
        r.toolkit = named
        r.product, r.product_version = "Orthanc", rest["version"]
        r.product_evidence = ProductEvidence(
            source=f"Orthanc REST API /system on port {rest['port']}",
            confidence="observed" if rest["same_instance"] else "inferred",
            rest=rest,
        )
        return
    aborted = [
        n
        for n, o in r.operations.items()
        if o.state == operations.REFUSED and o.detail.startswith("A-ABORT")
    ]
    if aborted and r.services_negotiated.get("find_study_root"):
        r.toolkit = named
        r.product, r.product_version = "Orthanc", None
        r.product_evidence = ProductEvidence(
            source="behaviour: DCMTK identity, Q/R contexts accepted from any calling AE,"
            f" then {', '.join(sorted(aborted))} refused with A-ABORT",
            confidence="inferred",
        )


class ProductProbe:
    """Product and version from the AC's identity (result: the matched
    :class:`~dicomguard.knowledge.fingerprint.Fingerprint`, None when the AC carried nothing to
    match); fills ``product``, ``product_version``, ``toolkit``, ``product_evidence``."""

    name = "product"
    stage = Stage.VERDICT
    needs = frozenset({Need.HTTP})
    field = None
    result_type = None

    def applies(self, session: Session) -> bool:
        r = session.record
        # an AC without any identity item still matches heuristics (dicompot: no UID, 4 MiB)
        return bool(r.implementation_class_uid or r.implementation_version_name or r.max_pdu)

    async def run(self, target: Target, session: Session) -> ProbeResult[Fingerprint]:
        r = session.record
        fp = (session.fingerprints or load_database()).match(
            r.implementation_class_uid, r.implementation_version_name, r.max_pdu
        )
        r.product, r.product_version = fp.product, fp.product_version
        if r.dicom and "Orthanc" in fp.embedded_in and not session.opts.discovery:
            await identify_embedding_product(r, fp.product, session)
        return ProbeResult.ok(fp)

    def findings(self, record: EndpointResult) -> list[Finding]:
        return []  # DG-010 (identity announced) is the association probe's


PROBE = ProductProbe()
