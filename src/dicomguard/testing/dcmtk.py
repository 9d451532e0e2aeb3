"""DCMTK 3.6.7 servers on loopback: ``dcmqrscp`` (a Q/R archive with an AE table),
``storescp`` (a store-only sink, optionally inside TLS or mutual TLS) and ``wlmscpfs`` (a
Modality Worklist from files).

Neither program can choose its listening address in 3.6.7 (no bind option in ``--help``), so
they listen on all interfaces at a random port: they only start inside a loopback-only network
namespace (``testing/netns.py``; ``scripts/test`` runs the tests in one).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from pydicom import dcmwrite
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom.sop_class import ModalityWorklistInformationFind

from dicomguard.knowledge.synthetic import SyntheticPatient, all_instances
from dicomguard.lab.tls import LabCertificates, make_certificates
from dicomguard.testing.base import (
    REASON_CALLED_AET,
    ProcessServer,
    ServerStartError,
    default_patients,
    find_binary,
)

#: Measured with pynetdicom as SCU (testing/tests/test_dcmtk.py).
DCMQRSCP_EXPECTED = {
    "called_aet_enforced": True,
    "calling_aet_enforced": True,
    "verification": True,
    "find_patient_root": True,
    "find_study_root": True,
    "move": True,
    "get": True,
    "worklist": False,
    "storage": True,
}

STORESCP_EXPECTED = {
    "called_aet_enforced": False,
    "calling_aet_enforced": False,
    "verification": True,
    "find_patient_root": False,
    "find_study_root": False,
    "move": False,
    "get": False,
    "worklist": False,
    "storage": True,
}


def _require(name: str) -> str:
    path = find_binary(name)
    if path is None:
        raise FileNotFoundError(f"{name} is not installed (apt-get install dcmtk)")
    return path


class DcmqrscpServer(ProcessServer):
    """dcmqrscp with one AE title and a peer list (preset ``aetable``).

    Measured behaviour of DCMTK 3.6.7 (testing/tests/test_dcmtk.py):

    * called AE not in the AETable → A-ASSOCIATE-RJ, reason 7;
    * calling AE not among the AE's peers → also reason **7** (dcmqrscp says "BadAEService"
      and never uses reason 3), so a scanner cannot tell the two checks apart by reason code;
    * now and then (mostly after an association was accepted and a child forked) a rejection
      fails inside dcmqrscp ("Association Reject Failed ... state 1 event 7") and the caller
      sees the connection dropped instead of an A-ASSOCIATE-RJ. Treat "not established" as the
      refusal; only the reason code is unreliable.
    * ``--single-process`` is not an option: it segfaults in DUL_DropAssociation after the
      first association.

    Peers are declared at 127.0.0.1 and host lookup is off (``-dhl``), so the peer check compares
    the literal source address; Linux picks 127.0.0.1 as source for every 127.x destination.
    """

    kind = "dcmqrscp"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        aet: str = "DGQRSCP",
        calling_aets: Sequence[str] = ("DGVIEWER",),
        patients: Sequence[SyntheticPatient] | None = None,
        seed: int = 2,
        move_destinations: Sequence[tuple[str, int]] = (),
        access: str = "RW",
    ) -> None:
        #: (AE title, port on 127.0.0.1) of C-MOVE destinations, added to the peers
        self.move_destinations = tuple(move_destinations)
        if access not in ("R", "RW", "W"):
            raise ValueError(f"access must be R, RW or W, not {access!r}")
        #: the AETable access column: ``R`` read-only (C-STORE refused), ``RW``, ``W``
        self.access = access
        super().__init__(
            host,
            port,
            called_aets=[aet],
            calling_aets=calling_aets,
            patients=default_patients(seed) if patients is None else patients,
            expected=DCMQRSCP_EXPECTED,
            reject_reasons={"called_aet": REASON_CALLED_AET, "calling_aet": REASON_CALLED_AET},
        )

    def config_text(self) -> str:
        """dcmqrscp.cfg: one storage AE whose peers are exactly :attr:`calling_aets` (and the
        C-MOVE destinations, which may also call it); no calling AEs and no destinations: peers
        ``ANY`` (dcmqrscp.cfg's keyword for "any calling AE")."""
        hosts = [(aet, 0) for aet in self.calling_aets] + list(self.move_destinations)
        peers = [f"dgpeer{i} = ({aet}, 127.0.0.1, {port})" for i, (aet, port) in enumerate(hosts)]
        group = "dgpeers = " + ", ".join(f"dgpeer{i}" for i in range(len(hosts)))
        if not hosts:
            peers, group = [], ""
        storage = self.workdir / self.aet
        return "\n".join(
            [
                f"NetworkTCPPort  = {self.port}",
                "MaxPDUSize      = 16384",
                "MaxAssociations = 16",
                "HostTable BEGIN",
                *peers,
                group,
                "HostTable END",
                "VendorTable BEGIN",
                "VendorTable END",
                "AETable BEGIN",
                f"{self.aet} {storage} {self.access} (500, 1024mb) "
                + ("dgpeers" if hosts else "ANY"),
                "AETable END",
                "",
            ]
        )

    def _start(self) -> None:
        binary, indexer = _require("dcmqrscp"), _require("dcmqridx")
        work = self._new_workdir()
        storage = work / self.aet
        storage.mkdir()
        files = []
        for n, ds in enumerate(all_instances(self.patients)):
            path = storage / f"dg{n:05d}.dcm"
            dcmwrite(path, ds, enforce_file_format=True)
            files.append(str(path))
        # dcmqridx adds files in place to the storage area's index.dcm: no network, no AE needed.
        if files:
            done = subprocess.run(
                [indexer, str(storage), *files], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise ServerStartError(f"dcmqridx failed: {done.stderr}")
        cfg = work / "dcmqrscp.cfg"
        cfg.write_text(self.config_text())
        # Default fork mode (see the class docstring); the group kill ends the children too.
        argv = [binary, "-c", str(cfg), "-dhl", "-ta", "10", "-td", "30", str(self.port)]
        self._spawn(argv, cwd=work, wait_ports=[self.port])


class StorescpServer(ProcessServer):
    """storescp as a store-only sink: Verification + storage, any AE titles, files to a temp dir.

    DCMTK's storescp never checks the called or the calling AE title (measured), so
    :attr:`called_aets` only lists the title it announces.
    """

    kind = "storescp"

    def __init__(self, host: str, port: int | None = None, *, aet: str = "DGSTORE",
                 max_pdu: int | None = None, tls: str = "none",
                 tls_profile: str | None = None, promiscuous: bool = False) -> None:
        super().__init__(host, port, called_aets=[aet], patients=[], expected=STORESCP_EXPECTED)
        self.max_pdu = max_pdu
        #: ``--promiscuous``: accept presentation contexts of unknown SOP classes (storage)
        self.promiscuous = promiscuous
        if tls not in ("none", "tls", "mutual"):
            raise ValueError(f"tls must be none, tls or mutual, not {tls!r}")
        #: ``tls``: DICOM inside TLS (``+tls key crt``, peer certificate ignored: ``-ic``);
        #: ``mutual``: a client certificate signed by the test CA is required
        #: (``+tls key crt +cf ca -rc``); RSA keys, DCMTK's default BCP 195 ND profile
        self.tls = tls
        #: a storescp security-profile option, e.g. ``+pa`` (the retired AES profile: TLS 1.2
        #: only, so a missing client certificate fails the handshake itself, alert 40)
        self.tls_profile = tls_profile
        self.certs: LabCertificates | None = None

    @property
    def output_dir(self) -> str:
        """Where received objects land."""
        return str(self.workdir / "received")

    def _start(self) -> None:
        binary = _require("storescp")
        work = self._new_workdir()
        (work / "received").mkdir()
        argv = [binary, "--aetitle", self.aet, "--fork", "-ta", "10", "-td", "30",
                "-od", self.output_dir, str(self.port)]
        if self.max_pdu:
            argv[1:1] = ["-pdu", str(self.max_pdu)]
        if self.promiscuous:
            argv[1:1] = ["--promiscuous"]
        if self.tls != "none":
            self.certs = make_certificates(work / "tls", [self.host], rsa_bits=2048, client=True)
            tls_args = ["+tls", str(self.certs.key), str(self.certs.cert)]
            if self.tls == "mutual":
                tls_args += ["+cf", str(self.certs.ca_cert), "-rc"]
            else:
                tls_args += ["-ic"]
            if self.tls_profile:
                tls_args.append(self.tls_profile)
            argv[1:1] = tls_args
        self._spawn(argv, cwd=work, wait_ports=[self.port])


WLMSCPFS_EXPECTED = {
    "called_aet_enforced": True,
    "calling_aet_enforced": False,
    "verification": True,
    "find_patient_root": False,
    "find_study_root": False,
    "move": False,
    "get": False,
    "worklist": True,
    "storage": False,
}


def worklist_dataset(patient: SyntheticPatient, study_index: int) -> Dataset:
    """One worklist file (a scheduled procedure step) for a synthetic patient's study.

    The attributes of DCMTK's example worklist (examples/wlistdb/OFFIS/wklist1.dump), so that
    wlmscpfs with its default ``--enable-file-reject`` accepts the file as complete.
    """
    study = patient.studies[study_index]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.AccessionNumber = study.accession_number
    ds.PatientName = patient.patient_name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    ds.StudyInstanceUID = study.study_instance_uid
    ds.RequestingPhysician = "DGFAKE^DOCTOR"
    ds.RequestedProcedureDescription = study.description
    ds.RequestedProcedureID = f"DGRP{study_index}"
    ds.RequestedProcedurePriority = "LOW"
    step = Dataset()
    step.Modality = study.modality
    step.ScheduledStationAETitle = "DGMODALITY"
    step.ScheduledProcedureStepStartDate = study.study_date
    step.ScheduledProcedureStepStartTime = "120000"
    step.ScheduledPerformingPhysicianName = "DGFAKE^TECH"
    step.ScheduledProcedureStepDescription = study.description
    step.ScheduledProcedureStepID = f"DGSPS{study_index}"
    step.ScheduledStationName = "DGSTATION"
    step.ScheduledProcedureStepLocation = "DGROOM"
    step.PreMedication = ""
    step.CommentsOnTheScheduledProcedureStep = ""
    ds.ScheduledProcedureStepSequence = [step]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ModalityWorklistInformationFind
    meta.MediaStorageSOPInstanceUID = f"{study.study_instance_uid}.99"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


class WlmscpfsServer(ProcessServer):
    """DCMTK wlmscpfs: Modality Worklist from ``.wl`` files, one worklist per study.

    wlmscpfs answers only called AE titles that name a sub-directory of its data path (the
    shipped example is ``OFFIS``); any calling AE title is accepted. Its responses go out one
    DIMSE message per P-DATA-TF (measured with our requestor's recorder).
    """

    kind = "wlmscpfs"

    def __init__(
        self,
        host: str,
        port: int | None = None,
        *,
        aet: str = "OFFIS",
        patients: Sequence[SyntheticPatient] | None = None,
        seed: int = 6,
        incomplete: int = 0,
        reject_incomplete: bool = True,
    ) -> None:
        super().__init__(
            host,
            port,
            called_aets=[aet],
            patients=default_patients(seed, 4) if patients is None else patients,
            expected=WLMSCPFS_EXPECTED,
            reject_reasons={"called_aet": REASON_CALLED_AET},
        )
        #: extra worklist files of the first patient's first study lacking the step's
        #: Modality (type 1 in the Modality Worklist return keys): "incomplete" to wlmscpfs
        self.incomplete = incomplete
        #: False runs ``-dfr`` (--disable-file-reject): incomplete files are served too
        self.reject_incomplete = reject_incomplete

    def _start(self) -> None:
        binary = _require("wlmscpfs")
        work = self._new_workdir()
        db = work / "wlistdb" / self.aet
        db.mkdir(parents=True)
        (db / "lockfile").write_bytes(b"")
        n = 0
        for p in self.patients:
            for i in range(len(p.studies)):
                dcmwrite(db / f"dg{n:05d}.wl", worklist_dataset(p, i), enforce_file_format=True)
                n += 1
        for k in range(self.incomplete if self.patients else 0):
            ds = worklist_dataset(self.patients[0], 0)
            del ds.ScheduledProcedureStepSequence[0].Modality
            ds.AccessionNumber = f"DGINC{k}"
            ds.file_meta.MediaStorageSOPInstanceUID += f".{k}"
            dcmwrite(db / f"dginc{k:05d}.wl", ds, enforce_file_format=True)
        argv = [binary, "-dfp", str(work / "wlistdb"), "-ta", "10", "-td", "30", str(self.port)]
        if not self.reject_incomplete:
            argv.insert(1, "-dfr")
        self._spawn(argv, cwd=work, wait_ports=[self.port])
