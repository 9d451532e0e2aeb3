"""``dicomguard lab``: a fleet of simulated DICOM servers on loopback, with its ground truth.

Every host of a 127.x network gets a persona (see :mod:`dicomguard.lab.personas`) and listens on
its own loopback address, so a scanner sweeping the network meets them as distinct machines. All
listeners share one asyncio event loop: hundreds of them cost a few file descriptors each and
no threads. The ground truth says, per ``host:port``, what an honest scan should conclude, in
the field names of the scan output contract.

Use in-process (``async with Fleet(...) as fleet``), from sync code (``with FleetThread(...)``),
or as a command (``dicomguard lab`` / ``python -m dicomguard.lab``: :mod:`dicomguard.cli.lab`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import itertools
import json
import logging
import os
import random
import string
import tempfile
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset

from ..dul.acse import UserIdentityType
from ..dul.codes import STATUS_OUT_OF_RESOURCES, STATUS_PENDING, STATUS_UNABLE_TO_PROCESS
from ..dul.scp import (
    AcceptorPolicy,
    FindRequest,
    Handlers,
    StoreRequest,
    serve_association,
)
from ..knowledge.synthetic import SyntheticPatient, ground_truth, make_patients
from . import hostile
from .decoy import serve_accept_everything
from .personas import (
    DEFAULT_FIND_CAP,
    DEFAULT_SLOW_DELAY,
    DEFAULT_SLOW_GREETING,
    FILL_CYCLE,
    PERSONA_ORDER,
    PERSONAS,
    SERVICES,
    Persona,
)
from .query import WORKLIST_FIND, Archive, QueryError
from .services import delayed, discarding_store, retrieving_nothing

if TYPE_CHECKING:
    from .tls import LabCertificates

LOG = logging.getLogger(__name__)

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
DEFAULT_NETWORK = "127.42.0.0/24"
DEFAULT_PORTS = (11112,)
DEFAULT_CLI_SIZE = 32
TRUTH_FORMAT = "dicomguard-lab-truth/1"

class LabError(ValueError):
    """The fleet cannot be planned or started (bad network, port in use, unknown persona)."""


def loopback_network(network: str) -> ipaddress.IPv4Network:
    """Parse ``network`` and refuse anything outside 127.0.0.0/8: the lab never leaves lo."""
    try:
        net = ipaddress.ip_network(network, strict=False)
    except ValueError as exc:
        raise LabError(f"not a network: {network!r} ({exc})") from None
    if not isinstance(net, ipaddress.IPv4Network) or not net.subnet_of(LOOPBACK):
        raise LabError(
            f"refusing network {network}: the lab only binds loopback addresses (127.0.0.0/8)"
        )
    return net


@dataclass(frozen=True)
class HostPlan:
    """One simulated server: where it listens, what it is, what it holds."""

    index: int
    host: str
    persona: Persona
    ports: tuple[int, ...]
    #: the called AE title it enforces (None = any)
    called_aet: str | None
    patient_seed: int
    n_patients: int

    def patients(self) -> list[SyntheticPatient]:
        if not self.persona.holds_patients:
            return []
        return make_patients(self.patient_seed, self.n_patients)


def _persona_names(
    personas: Sequence[str] | Mapping[str, int] | None, size: int | None
) -> list[str]:
    if personas is None:
        names = list(PERSONA_ORDER)
    elif isinstance(personas, Mapping):
        names = [name for name, count in personas.items() for _ in range(count)]
    else:
        names = list(personas)
    unknown = sorted(set(names) - set(PERSONAS))
    if unknown:
        raise LabError(f"unknown persona(s): {', '.join(unknown)}; known: {', '.join(PERSONAS)}")
    if size is not None:
        if size < 1:
            raise LabError("a fleet needs at least one host")
        fill = itertools.cycle(FILL_CYCLE)
        names = names[:size] + [next(fill) for _ in range(size - len(names))]
    return names


def _secret_title(seed: int, index: int) -> str:
    """A 6-character title no wordlist holds (letters and at least two digits)."""
    rng = random.Random(f"dglab-aet-{seed}-{index}")
    chars = [rng.choice(string.ascii_uppercase) for _ in range(4)]
    chars += [rng.choice(string.digits) for _ in range(2)]
    rng.shuffle(chars)
    return "".join(chars)


def plan_fleet(
    network: str = DEFAULT_NETWORK,
    personas: Sequence[str] | Mapping[str, int] | None = None,
    *,
    size: int | None = None,
    ports: Sequence[int] = DEFAULT_PORTS,
    seed: int = 0,
    slow_delay: float = DEFAULT_SLOW_DELAY,
    find_cap: int = DEFAULT_FIND_CAP,
    max_patients: int | None = None,
    slow_greeting_delay: float = DEFAULT_SLOW_GREETING,
) -> list[HostPlan]:
    """Assign personas to hosts .1, .2, ... of ``network``; deterministic for the arguments.

    ``max_patients`` lowers the top of every persona's patient range (tests use it to keep
    C-FIND answers short), except that capped personas keep enough data to exceed their cap.
    """
    net = loopback_network(network)
    names = _persona_names(personas, size)
    hosts = list(itertools.islice(net.hosts(), len(names)))
    if len(hosts) < len(names):
        raise LabError(f"{network} has room for {len(hosts)} hosts, {len(names)} requested")
    if not ports:
        raise LabError("at least one port is needed")
    plans = []
    for index, (host, name) in enumerate(zip(hosts, names, strict=True), start=1):
        persona = PERSONAS[name]
        if persona.answer_delay:
            delay = slow_greeting_delay if persona.slow_greeting else slow_delay
            persona = dataclasses.replace(persona, answer_delay=delay)
        if persona.find_cap is not None:
            persona = dataclasses.replace(persona, find_cap=find_cap)
        host_ports = tuple(dict.fromkeys([*ports, *persona.extra_ports]))
        called = persona.called_aet
        if persona.called_aet_secret:
            called = _secret_title(seed, index)
        low, high = persona.patients
        if max_patients is not None and persona.find_cap is None:
            high = max(1, min(high, max_patients))
            low = min(low, high)
        rng = random.Random(seed * 7919 + index)
        n = rng.randint(low, high)
        patient_seed = seed + index if persona.canned_seed is None else persona.canned_seed
        plans.append(HostPlan(index, str(host), persona, host_ports, called, patient_seed, n))
    return plans


# --- ground truth -------------------------------------------------------------------------------


def _endpoint_truth(plan: HostPlan, port: int) -> dict[str, Any]:
    p = plan.persona
    dicom = p.speaks_dicom
    product = p.product if dicom else None
    gates = []
    if p.called_aet_secret:
        gates.append("called_aet_secret")
    if p.calling_aets is not None:
        gates.append("calling_aet")
    if p.credentials is not None:
        gates.append("user_identity")
    if p.mutual_tls:
        gates.append("client_certificate")
    refused = p.refuses_operations
    exposure = None
    # what a stranger can query: services offered and not refused per operation
    qr = bool({"find_patient_root", "find_study_root"} & (p.services - refused))
    stranger_queries = qr or ("worklist" in p.services and "worklist" not in refused)
    if p.holds_patients and stranger_queries and not p.mutual_tls:
        patients = plan.patients()
        gt = ground_truth(patients)
        capped = p.find_cap is not None and max(gt.patients, gt.studies) > p.find_cap
        exposure = {
            "patients": gt.patients if qr else None,
            "studies": gt.studies if qr else None,
            "earliest_study_date": gt.earliest_study_date if qr else None,
            "latest_study_date": gt.latest_study_date if qr else None,
            "modalities": list(gt.modalities) if qr else [],
            # false when a single universal query cannot reveal everything (result caps)
            "complete": not capped,
        }
        if "worklist" in p.refused_queries:
            exposure["worklist"] = {"items": None, "patients": None, "complete": False}
        elif "worklist" in p.services:
            # the lab's worklist mirrors its archive: one scheduled step per study
            dates = sorted(st.study_date for pt in patients for st in pt.studies)
            exposure["worklist"] = {
                "items": gt.studies,
                "patients": gt.patients,
                "earliest_scheduled_date": dates[0] if dates else None,
                "latest_scheduled_date": dates[-1] if dates else None,
            }
    elif p.find_answers == "placeholder":
        # a stub's placeholder is not a record: nothing is exposed
        exposure = {"patients": 0, "studies": 0, "earliest_study_date": None,
                    "latest_study_date": None, "modalities": [], "complete": True}
    return {
        "host": plan.host,
        "port": port,
        "index": plan.index,
        "persona": p.name,
        "description": p.description,
        "dicom": dicom,
        "tls": p.tls,
        "hostile": p.hostile,
        "implementation_class_uid": product.implementation_class_uid if product else None,
        "implementation_version_name": product.implementation_version_name if product else None,
        "max_pdu": product.max_pdu if product else None,
        "product": (p.claimed_product[0] if p.claimed_product else product.name)
        if product
        else None,
        "product_version": (p.claimed_product[1] if p.claimed_product else product.version)
        if product
        else None,
        #: the toolkit whose identity the AC carries when the product embeds it
        "toolkit": f"{product.name} {product.version}" if product and p.claimed_product else None,
        "called_aet": {
            "enforced": plan.called_aet is not None,
            "accepted": plan.called_aet,
            "guessable": plan.called_aet is None or not p.called_aet_secret,
        },
        "calling_aet": {
            "enforced": p.calling_aets is not None,
            "allowed": list(p.calling_aets) if p.calling_aets is not None else None,
        },
        "user_identity": {
            "required": p.credentials is not None,
            "accepted_with": "username+passcode" if p.credentials else None,
            "username": p.credentials[0] if p.credentials else None,
            "passcode": p.credentials[1] if p.credentials else None,
        },
        # open to a stranger (an operation answered); negotiated = context accepted
        "services": {
            s: dicom
            and s in p.services
            and s not in refused
            and s not in p.refused_queries  # every query of it fails (e.g. the worklist)
            and not p.mutual_tls
            for s in SERVICES
        },
        "services_negotiated": {s: dicom and s in p.services for s in SERVICES},
        "access_enforced_per_operation": bool(refused),
        "tls_client_certificate_required": p.mutual_tls,
        "exposure": exposure,
        "find_cap": p.find_cap,
        "cap_mode": None
        if p.find_cap is None
        else "refuse"
        if p.cap_refuses
        else "refuse+silent"
        if p.refuse_above is not None
        else "silent",
        "refuse_above": p.refuse_above,
        "pack_find_responses": p.pack_find_responses or None,
        "find_answers": p.find_answers,
        "refused_queries": sorted(p.refused_queries),
        "answer_delay": p.answer_delay,
        "gated_by": gates,
        "honeypot": p.honeypot,
    }


def fleet_truth(
    plans: Sequence[HostPlan],
    *,
    network: str,
    seed: int,
    ports: Sequence[int],
    certs: LabCertificates | None = None,
) -> dict[str, Any]:
    """The ground truth document of a planned fleet (see the module docstring of the report)."""
    endpoints: dict[str, Any] = {}
    for plan in plans:
        for port in plan.ports:
            endpoints[f"{plan.host}:{port}"] = _endpoint_truth(plan, port)
    return {
        "format": TRUTH_FORMAT,
        "network": str(loopback_network(network)),
        "seed": seed,
        "ports": list(ports),
        "size": len(plans),
        "hosts": [
            {"index": p.index, "host": p.host, "persona": p.persona.name, "ports": list(p.ports)}
            for p in plans
        ],
        "personas": {name: PERSONAS[name].description for name in PERSONA_ORDER},
        "tls": None
        if certs is None
        else {"ca_pem": certs.ca_pem, "cert_sha256": certs.cert_sha256},
        "endpoints": endpoints,
    }


def write_truth(truth: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write atomically, so a watcher that sees the file sees all of it."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(truth, indent=2, sort_keys=False) + "\n")
    tmp.replace(target)


# --- behaviour ----------------------------------------------------------------------------------


def _find_handler(
    archive: Archive | None,
    cap: int | None,
    refuses: bool,
    refuse_above: int | None = None,
    answers: str | None = None,
    refused: frozenset[str] = frozenset(),
) -> Any:
    async def find(request: FindRequest) -> AsyncIterator[tuple[int, Dataset | None]]:
        level = str(request.identifier.get("QueryRetrieveLevel", "") or "")
        if level in refused or ("worklist" in refused and request.sop_class == WORKLIST_FIND):
            yield STATUS_UNABLE_TO_PROCESS, None
            return
        if answers is not None:
            for ds in _not_records(answers, request.identifier):
                yield STATUS_PENDING, ds
            return
        assert archive is not None
        try:
            matches = archive.find_encoded(
                request.sop_class, request.identifier, request.transfer_syntax
            )
        except QueryError as exc:
            yield exc.status, None
            return
        limit = cap if refuses else refuse_above
        if limit is not None:
            head = list(itertools.islice(matches, limit + 1))
            if len(head) > limit:
                yield STATUS_OUT_OF_RESOURCES, None
                return
            matches = iter(head)
        for i, ds in enumerate(matches):
            if cap is not None and i >= cap:
                return  # stop silently, like Orthanc's LimitFindResults
            yield STATUS_PENDING, ds

    return find


def _not_records(kind: str, identifier: Dataset) -> list[Dataset]:
    """Answers of decoys and stubs: made-up studies for any query, or one empty placeholder."""
    level = str(identifier.get("QueryRetrieveLevel", "") or "STUDY")
    if kind == "placeholder":
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        return [ds]
    asked = str(identifier.get("StudyDate", "") or "").split("-")
    # a day after the 28th: never a synthetic birth date (PHI checks stay meaningful)
    day = next((d for d in asked if len(d) == 8), "20200130")
    out = []
    for i in range(5):
        ds = Dataset()
        ds.QueryRetrieveLevel = level
        ds.StudyInstanceUID = f"2.25.4242.9.{random.getrandbits(64)}"
        ds.StudyDate = day
        ds.PatientID = f"DGSYNDECOY{i}"
        out.append(ds)
    return out


def _identity_check(credentials: tuple[str, str]) -> Any:
    user, passcode = credentials[0].encode(), credentials[1].encode()

    def check(kind: int, primary: bytes, secondary: bytes) -> bool:
        return kind == UserIdentityType.USERNAME_PASSCODE and (primary, secondary) == (
            user,
            passcode,
        )

    return check


class Fleet:
    """The simulated servers of one lab, started and stopped together.

    ``personas``: None (one of each persona, in catalogue order), a list of persona names (one
    host each, in order) or a mapping name → count. ``size`` trims or fills (from FILL_CYCLE)
    that list. ``truth`` is available at once; its ``tls`` part once the fleet has started.
    """

    def __init__(
        self,
        network: str = DEFAULT_NETWORK,
        personas: Sequence[str] | Mapping[str, int] | None = None,
        *,
        size: int | None = None,
        ports: Sequence[int] = DEFAULT_PORTS,
        seed: int = 0,
        slow_delay: float = DEFAULT_SLOW_DELAY,
        find_cap: int = DEFAULT_FIND_CAP,
        max_patients: int | None = None,
        idle_timeout: float = 60.0,
        slow_greeting_delay: float = DEFAULT_SLOW_GREETING,
    ) -> None:
        self.network = network
        self.seed = seed
        self.ports = tuple(ports)
        self.idle_timeout = idle_timeout
        self.plan = plan_fleet(
            network,
            personas,
            size=size,
            ports=self.ports,
            seed=seed,
            slow_delay=slow_delay,
            find_cap=find_cap,
            max_patients=max_patients,
            slow_greeting_delay=slow_greeting_delay,
        )
        self.certs: LabCertificates | None = None
        self.truth = fleet_truth(self.plan, network=network, seed=seed, ports=self.ports)
        #: connections accepted per "host:port"
        self.connections: Counter[str] = Counter()
        #: C-STORE requests accepted (and discarded) per host
        self.stored: Counter[str] = Counter()
        #: C-MOVE requests received per host (answered, never carried out)
        self.moved: Counter[str] = Counter()
        self._servers: list[asyncio.Server] = []
        self._conns: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        #: negotiation outcomes shared by hosts whose policies are equal (see _callback)
        self._outcomes: dict[tuple[Any, ...], dict[bytes, Any]] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._started = False

    # -- addresses ---------------------------------------------------------------------------
    def endpoints(self) -> list[tuple[str, int]]:
        return [(p.host, port) for p in self.plan for port in p.ports]

    def hosts_of(self, persona: str) -> list[HostPlan]:
        return [p for p in self.plan if p.persona.name == persona]

    def host_of(self, persona: str) -> HostPlan:
        """The first host playing ``persona`` (KeyError if none)."""
        for p in self.plan:
            if p.persona.name == persona:
                return p
        raise KeyError(persona)

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Fleet:
        if self._started:
            return self
        self._started = True
        try:
            tls_hosts = [p.host for p in self.plan if p.persona.tls]
            ssl_ctx = None
            if tls_hosts:
                # imported here: `cryptography` is only needed by fleets with TLS personas
                from .tls import make_certificates, mutual_server_context, server_context

                self._tmp = tempfile.TemporaryDirectory(prefix="dicomguard-lab-tls-")
                self.certs = make_certificates(Path(self._tmp.name), tls_hosts, client=True)
                ssl_ctx = server_context(self.certs)
                mutual_ctx = mutual_server_context(self.certs)
                self.truth["tls"] = {
                    "ca_pem": self.certs.ca_pem,
                    "cert_sha256": self.certs.cert_sha256,
                }
            for plan in self.plan:
                callback = self._callback(plan)
                for port in plan.ports:
                    kwargs: dict[str, Any] = {"reuse_address": True, "backlog": 128}
                    if plan.persona.tls:
                        ctx = mutual_ctx if plan.persona.mutual_tls else ssl_ctx
                        kwargs.update(ssl=ctx, ssl_handshake_timeout=5.0)
                    try:
                        server = await asyncio.start_server(
                            self._tracked(callback, f"{plan.host}:{port}"),
                            plan.host,
                            port,
                            **kwargs,
                        )
                    except OSError as exc:
                        raise LabError(
                            f"cannot listen on {plan.host}:{port} ({plan.persona.name}): "
                            f"{exc.strerror or exc}"
                        ) from None
                    self._servers.append(server)
        except BaseException:
            await self.stop()
            raise
        LOG.info("lab fleet up: %d endpoints on %s", len(self._servers), self.network)
        return self

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for task, writer in list(self._conns.items()):
            task.cancel()
            with contextlib.suppress(Exception):
                writer.transport.abort()
        if self._conns:
            await asyncio.wait(list(self._conns), timeout=2.0)
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers.clear()
        self._conns.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self._started = False

    async def __aenter__(self) -> Fleet:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def write_truth(self, path: str | os.PathLike[str]) -> None:
        write_truth(self.truth, path)

    # -- per-host behaviour --------------------------------------------------------------------
    def _tracked(self, callback: hostile.RawHandler, key: str) -> hostile.RawHandler:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._conns[task] = writer
            self.connections[key] += 1
            try:
                await callback(reader, writer)
            except asyncio.CancelledError:
                pass  # fleet stopping
            except Exception:  # a hostile behaviour must never take the loop down
                LOG.exception("lab connection on %s failed", key)
            finally:
                self._conns.pop(task, None)
                with contextlib.suppress(Exception):
                    writer.transport.abort()

        return on_connect

    def _callback(self, plan: HostPlan) -> hostile.RawHandler:
        p = plan.persona
        if p.hostile is not None:
            return hostile.behaviour(p.hostile, self.seed + plan.index)
        product = p.product
        assert product is not None
        policy = AcceptorPolicy(
            ae_title=plan.called_aet or "DGLAB",
            called_aets=frozenset({plan.called_aet}) if plan.called_aet else None,
            calling_aets=frozenset(p.calling_aets) if p.calling_aets is not None else None,
            require_user_identity=p.credentials is not None,
            user_identity_check=_identity_check(p.credentials) if p.credentials else None,
            abstract_syntaxes=p.abstract_syntaxes(),
            # a product without a class UID (dicompot) gets a placeholder the decoy strips
            implementation_class_uid=product.implementation_class_uid or "2.25.4242.0.9",
            implementation_version_name=product.implementation_version_name,
            max_pdu=product.max_pdu,
            max_associations=64,
            idle_timeout=self.idle_timeout,
            pack_find_responses=p.pack_find_responses,
        )
        if policy.user_identity_check is None:
            # Hosts of one persona answer an A-ASSOCIATE-RQ identically, and the outcome is a
            # function of the request bytes and the policy's compared fields: share the cache,
            # or a fleet of thousands negotiates through pynetdicom once per host (~3 ms each,
            # more than the scanner under test spends on the association; issue 13).
            key = tuple(
                getattr(policy, f.name) for f in dataclasses.fields(policy) if f.compare
            )
            policy.outcomes = self._outcomes.setdefault(key, policy.outcomes)
        archive = Archive.from_patients(plan.patients()) if p.holds_patients else None
        host = plan.host

        def stored(request: StoreRequest) -> None:
            self.stored[host] += 1  # accepted and discarded: the lab keeps no pixels

        def moved(destination: str, info: object) -> None:
            self.moved[host] += 1

        refused_kinds = {
            kind
            for kind, services in (
                ("find", {"find_patient_root", "find_study_root", "worklist"}),
                ("move", {"move"}),
                ("get", {"get"}),
            )
            if services & p.refuses_operations
        }

        def refuse(kind: str, info: object) -> bool:
            return kind in refused_kinds  # every caller is a stranger to this persona

        answers_find = archive is not None or p.find_answers is not None
        handlers = Handlers(
            find=_find_handler(
                archive, p.find_cap, p.cap_refuses, p.refuse_above, p.find_answers,
                p.refused_queries,
            )
            if answers_find
            else None,
            store=discarding_store(stored),
            move=retrieving_nothing(on_move=moved),
            get=retrieving_nothing(),
            refuse=refuse if refused_kinds else None,
        )

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if p.accepts_everything:
                await serve_accept_everything(reader, writer, policy, handlers)
            else:
                await serve_association(reader, writer, policy, handlers)

        return delayed(serve, p.answer_delay)


# --- running it ----------------------------------------------------------------------------------


async def run_fleet(
    network: str = DEFAULT_NETWORK,
    personas: Sequence[str] | Mapping[str, int] | None = None,
    *,
    size: int | None = DEFAULT_CLI_SIZE,
    truth_path: str | os.PathLike[str] | None = None,
    duration: float | None = None,
    stop: asyncio.Event | None = None,
    ready: Callable[[Fleet], None] | None = None,
    **fleet_options: Any,
) -> dict[str, Any]:
    """Run a fleet until ``stop`` is set or ``duration`` seconds pass; return its truth.

    ``fleet_options`` are :class:`Fleet` keywords (ports, seed, slow_delay, find_cap,
    max_patients, idle_timeout). The truth file is written once every listener is up, so a
    watcher can wait for it; ``ready`` is called with the fleet at the same moment.
    """
    stop = stop or asyncio.Event()
    async with Fleet(network, personas, size=size, **fleet_options) as fleet:
        if truth_path is not None:
            fleet.write_truth(truth_path)
        if ready is not None:
            ready(fleet)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), duration)
    return fleet.truth


class FleetThread:
    """A :class:`Fleet` on its own event loop in a daemon thread, for synchronous callers.

    ``with FleetThread(size=20, network="127.42.3.0/24") as lab: lab.truth ...``
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.fleet = Fleet(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def truth(self) -> dict[str, Any]:
        return self.fleet.truth

    def start(self, timeout: float = 60.0) -> FleetThread:
        self._thread = threading.Thread(target=self._run, name="dicomguard-lab", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise LabError(f"lab fleet did not start within {timeout:g}s")
        if self._error is not None:
            self._thread.join(5.0)
            raise self._error
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # reported to start(); the thread must end quietly
            if not self._ready.is_set():
                self._error = exc
                self._ready.set()
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self.fleet.start()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.fleet.stop()

    def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> FleetThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
