"""Exposure: how many patients and studies a stranger can list, without keeping what they are.

The queries ask only for what a count needs (study UIDs, dates, modalities); names are used as
*matching* keys when a capped server forces partitioning, but what comes back is counted and
dropped. Nothing identifying leaves this module unless ``collect_identifiers`` is set, and then
only as salted SHA-256 hashes.

Servers that cap results (Orthanc's LimitFindResults, vendor limits) or refuse universal queries
are detected by comparing a universal query with a date split, then counted by partitioning the
date range recursively (and a single day by patient-name initial) within a query budget; the
result says ``complete: false`` when it is a lower bound.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydicom.dataset import Dataset

from ..dul import peek
from ..dul.client import Association
from ..dul.dimse import decode_dataset
from ..dul.errors import DulError
from . import sopclasses as sc

SUCCESS = 0x0000
CANCEL = 0xFE00
FIRST_DAY = date(1900, 1, 1)


@dataclass(frozen=True)
class ExposureOptions:
    #: at most this many C-FIND operations per endpoint
    query_budget: int = 100
    #: a single query never returns more than this many matches to us (C-CANCEL after)
    max_results_per_query: int = 20000
    collect_identifiers: bool = False
    salt: bytes = b""


@dataclass
class _Query:
    """One C-FIND outcome: matches counted, and whether the answer is known to be partial."""

    count: int
    status: int | None
    truncated: bool  # we cancelled at our own cap, or the server ended with a non-success status
    dates: list[str] = field(default_factory=list)
    modalities: set[str] = field(default_factory=set)


class _Budget:
    def __init__(self, n: int) -> None:
        self.left = n
        self.used = 0

    def take(self) -> bool:
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


def _dicom_date(d: date) -> str:
    return d.strftime("%Y%m%d")


def _parse_date(text: str) -> date | None:
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except (ValueError, IndexError):
        return None


@functools.lru_cache(maxsize=256)
def _study_identifier(date_range: str, name: str | None, collect_identifiers: bool) -> Dataset:
    """A STUDY-level identifier (shared and never modified: pydicom's attribute validation made
    building one per query cost as much as encoding it)."""
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    q.StudyDate = date_range
    q.ModalitiesInStudy = ""
    if name is not None:
        q.PatientName = name  # a matching key only: the value returned is never read
    if collect_identifiers:
        q.PatientID = ""
    return q


class ExposureMeter:
    """Counts what one association can list; one instance per endpoint."""

    def __init__(self, assoc: Association, opts: ExposureOptions) -> None:
        self.assoc = assoc
        self.opts = opts
        self.budget = _Budget(opts.query_budget)
        self.universal: _Query | None = None
        #: study dates of the measurement (all of them when it is complete)
        self.study_dates: list[str] = []
        self.hashes: set[str] = set()

    # -- one query --------------------------------------------------------------------------
    async def _find(self, sop_class: str, identifier: Dataset) -> _Query | None:
        if not self.budget.take():
            return None
        cap = self.opts.max_results_per_query
        count = 0
        dates: list[str] = []
        mods: set[str] = set()
        seen: set[str] = set()
        _cid, ts = self.assoc._context(sop_class)
        async for data in self.assoc.find_raw(sop_class, identifier, max_results=cap):
            uid, date_, modalities, patient_id = _read_match(data, ts)
            if uid:
                if uid in seen:
                    continue  # a server repeating a match must not inflate the count
                seen.add(uid)
            count += 1
            if len(date_) >= 8:
                dates.append(date_[:8])
            mods.update(modalities)
            if self.opts.collect_identifiers and patient_id:
                self.hashes.add(self._hash(patient_id))
        status = self.assoc.last_status
        truncated = count >= cap or status not in (SUCCESS, None)
        return _Query(count, status, truncated, dates, mods)

    def _hash(self, value: str) -> str:
        return hashlib.sha256(self.opts.salt + value.encode("utf-8", "replace")).hexdigest()

    # -- studies ------------------------------------------------------------------------------
    def _study_identifier(self, date_range: str = "", name: str | None = None) -> Dataset:
        return _study_identifier(date_range, name, self.opts.collect_identifiers)

    async def count_studies(self, sop_class: str) -> dict[str, Any]:
        """Studies, date span and modalities; partitions when the server caps its answers."""
        universal = await self._find(sop_class, self._study_identifier())
        self.universal = universal
        if universal is None:
            return {"studies": None, "complete": False}
        today = date.today()
        # A query that ends with a failure and no matches was refused as too broad (0xA700 and
        # the like): the cap is unknown, but narrower queries may pass.
        cap: int | None = universal.count if universal.truncated and universal.count else None
        if (
            cap is None
            and universal.count > 1
            and await self._silently_capped(sop_class, universal)
        ):
            cap = universal.count
        if cap is None and not universal.truncated:
            self.study_dates = universal.dates
            return _summary(universal.count, universal.dates, universal.modalities, True, None)

        def saturated(q: _Query) -> bool:
            return q.truncated or (cap is not None and q.count >= cap)

        # capped: count by recursive date partition
        total = 0
        dates: list[str] = []
        mods: set[str] = set()
        complete = True
        # The universal answer is the root's (saturated) result: split it straight away, at
        # the median of the dates that came back, so the tree follows the data and empty
        # decades cost one query instead of a cascade of calendar halves.
        stack = list(_split(FIRST_DAY, today, universal.dates))
        while stack:
            lo, hi = stack.pop()
            rng = f"{_dicom_date(lo)}-{_dicom_date(hi)}" if lo != hi else _dicom_date(lo)
            part = await self._find(sop_class, self._study_identifier(rng))
            if part is None:
                complete = False
                break
            if not saturated(part):
                total += part.count
                dates += part.dates
                mods |= part.modalities
                continue
            if lo == hi:
                by_name = await self._by_initial(sop_class, rng, saturated)
                total += by_name.count
                dates += by_name.dates
                mods |= by_name.modalities
                complete = complete and not by_name.truncated
                if self.budget.left <= 0:
                    break
                continue
            stack.extend(reversed(_split(lo, hi, part.dates)))
        if stack:
            complete = False
        self.study_dates = dates
        summary = _summary(total, dates, mods, complete, cap)
        summary["refuses_broad_queries"] = cap is None
        return summary

    async def _silently_capped(self, sop_class: str, universal: _Query) -> bool:
        """Does a 'successful' universal answer hide more? Compare its two tails.

        Uncapped, a query for the dates up to the sample's 25th percentile (and one from its
        75th) returns exactly the studies of the sample in that range. Capped, the archive
        beyond the sample shows up in at least one tail. Tails cost half of what re-reading
        the whole archive in two halves would.
        """
        known = sorted(d for d in universal.dates if _parse_date(d))
        if len(known) < 2:
            return False
        low, high = known[len(known) // 4], known[(3 * len(known)) // 4]
        for rng, expected in (
            (f"-{low}", sum(1 for d in known if d <= low)),
            (f"{high}-", sum(1 for d in known if d >= high)),
        ):
            tail = await self._find(sop_class, self._study_identifier(rng))
            if tail is None:
                return False
            if tail.truncated or tail.count > expected:
                return True
        return False

    async def _by_initial(
        self, sop_class: str, rng: str, saturated: Callable[[_Query], bool]
    ) -> _Query:
        """A capped single day: split by patient-name initial (a lower bound if still capped)."""
        out = _Query(0, SUCCESS, False)
        for letter in string.ascii_uppercase:
            part = await self._find(sop_class, self._study_identifier(rng, f"{letter}*"))
            if part is None:
                out.truncated = True
                break
            out.count += part.count
            out.dates += part.dates
            out.modalities |= part.modalities
            if saturated(part):
                out.truncated = True
        # names starting with digits or other characters are not reached: never claim complete
        out.truncated = True
        return out

    # -- patients -----------------------------------------------------------------------------
    async def count_patients(self, cap: int | None = None) -> tuple[int | None, bool]:
        """Patient count from a PATIENT-level query asking for no identifying attribute.

        ``cap`` is the silent result cap the study count found, if any: a patient count that
        reaches it is a lower bound too.
        """
        q = Dataset()
        q.QueryRetrieveLevel = "PATIENT"
        q.NumberOfPatientRelatedStudies = ""
        if self.opts.collect_identifiers:
            q.PatientID = ""
        res = await self._find(sc.PATIENT_ROOT_FIND, q)
        if res is None:
            return None, False
        if not res.truncated and (cap is None or res.count < cap):
            return res.count, True
        # capped: by name initial, a lower bound
        total = 0
        for letter in string.ascii_uppercase:
            q.PatientName = f"{letter}*"
            part = await self._find(sc.PATIENT_ROOT_FIND, q)
            if part is None:
                break
            total += part.count
        return max(total, res.count), False

    async def count_worklist(self) -> tuple[int | None, bool]:
        """Scheduled procedure steps a stranger can list from the Modality Worklist."""
        q = Dataset()
        sps = Dataset()
        sps.Modality = ""
        sps.ScheduledProcedureStepStartDate = ""
        q.ScheduledProcedureStepSequence = [sps]
        q.AccessionNumber = ""
        res = await self._find(sc.MODALITY_WORKLIST_FIND, q)
        if res is None:
            return None, False
        return res.count, not res.truncated


_STUDY_UID = peek.tag(0x0020, 0x000D)
_STUDY_DATE = peek.tag(0x0008, 0x0020)
_MODALITIES = peek.tag(0x0008, 0x0061)
_MODALITY = peek.tag(0x0008, 0x0060)
_PATIENT_ID = peek.tag(0x0010, 0x0020)
_WANTED = frozenset({_STUDY_UID, _STUDY_DATE, _MODALITIES, _MODALITY, _PATIENT_ID})


def _read_match(data: bytes, ts: str) -> tuple[str, str, list[str], str]:
    """(study UID, study date, modalities, patient ID) of one match; fast path, then pydicom.

    The patient ID is only read when the caller hashes it (``collect_identifiers``); it never
    leaves this module otherwise.
    """
    values = peek.peek(data, ts, _WANTED)
    if values is not None:
        text = {t: v.decode("ascii", "replace") for t, v in values.items()}
        mods = text.get(_MODALITIES) or text.get(_MODALITY) or ""
        return (
            text.get(_STUDY_UID, ""),
            text.get(_STUDY_DATE, ""),
            [m.strip() for m in mods.split("\\") if m.strip()],
            text.get(_PATIENT_ID, "").strip(),
        )
    ds = decode_dataset(data, ts)
    return (
        str(ds.get("StudyInstanceUID", "") or ""),
        str(ds.get("StudyDate", "") or ""),
        _modalities(ds),
        str(ds.get("PatientID", "") or "").strip(),
    )


def _split(lo: date, hi: date, sample: list[str]) -> tuple[tuple[date, date], ...]:
    """Two date ranges covering [lo, hi], split at the median of ``sample`` inside it
    (the calendar midpoint when the sample says nothing, e.g. a refused query)."""
    inside = sorted(d for d in (_parse_date(x) for x in sample) if d and lo <= d <= hi)
    mid = inside[(len(inside) - 1) // 2] if inside else lo + (hi - lo) / 2
    if mid >= hi:
        mid = hi - timedelta(days=1)
    mid = max(mid, lo)
    return (lo, mid), (mid + timedelta(days=1), hi)


def _modalities(ds: Dataset) -> list[str]:
    value = ds.get("ModalitiesInStudy", None) or ds.get("Modality", None)
    if not value:
        return []
    if isinstance(value, str):
        return [v for v in value.split("\\") if v]
    return [str(v) for v in value if v]


def _summary(
    count: int, dates: list[str], mods: set[str], complete: bool, cap: int | None
) -> dict[str, Any]:
    valid = sorted(d for d in dates if _parse_date(d))
    by_year: dict[str, int] = {}
    for d in valid:
        by_year[d[:4]] = by_year.get(d[:4], 0) + 1
    return {
        "studies": count,
        "studies_by_year": by_year,
        "earliest_study_date": valid[0] if valid else None,
        "latest_study_date": valid[-1] if valid else None,
        "modalities": sorted(mods),
        "complete": complete,
        "result_cap": cap,
    }


class ArchiveCache:
    """What one scan counted behind each host, keyed by what the server said about itself.

    PACS often answer on several ports (104, 11112, 4242) for one archive. A later port with
    the same implementation, contexts and AE outcome is asked for the studies of the first
    port's earliest and latest study day (two small queries); if both counts match, the first
    port's measurement is reused and marked ``same_archive_as`` instead of paying for the
    universal query and every partition query again.
    """

    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Any]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, host: str) -> asyncio.Lock:
        return self._locks.setdefault(host, asyncio.Lock())

    def lookup(self, host: str, key: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], dict]]:
        return [(sig, exp) for k, sig, exp in self._entries.get(host, []) if k == key]

    def remember(
        self, host: str, key: tuple[Any, ...], signature: tuple[Any, ...], exposure: dict
    ) -> None:
        self._entries.setdefault(host, []).append((key, signature, exposure))


async def measure(
    assoc: Association,
    opts: ExposureOptions,
    *,
    archives: ArchiveCache | None = None,
    where: tuple[str, int] | None = None,
) -> dict[str, Any] | None:
    """The ``exposure`` record for an accepted association, or None if no query service."""
    if archives is None or where is None:
        return (await _measure(assoc, opts))[0]
    accept = assoc.accept
    key = (
        accept.implementation_class_uid,
        accept.implementation_version_name,
        tuple(sorted(u for u, code in accept.results.items() if code == 0)),
    )
    host, port = where
    async with archives.lock(host):
        candidates = archives.lookup(host, key)
        if candidates:
            study_class = next(
                (u for u in (sc.STUDY_ROOT_FIND, sc.PATIENT_ROOT_FIND) if accept.accepts(u)),
                None,
            )
            meter = ExposureMeter(assoc, opts)
            for signature, exposure in candidates:
                if study_class is not None and await _confirms(meter, study_class, signature):
                    return {**exposure, "queries": meter.budget.used}
        out, dates = await _measure(assoc, opts)
        signature = _signature(dates)
        if out is not None and signature is not None:
            first = {**out, "same_archive_as": f"{host}:{port}"}
            archives.remember(host, key, signature, first)
        return out


async def _confirms(meter: ExposureMeter, study_class: str, signature: tuple[Any, ...]) -> bool:
    """Do this port's first and last study days hold as many studies as the first port's?"""
    for day, count in ((signature[0], signature[1]), (signature[2], signature[3])):
        q = await meter._find(study_class, meter._study_identifier(day))
        if q is None or q.truncated or q.count != count:
            return False
    return True


def _signature(dates: list[str] | None) -> tuple[Any, ...] | None:
    """(earliest day, studies on it, latest day, studies on it) of a measurement."""
    known = sorted(d for d in dates or [] if _parse_date(d))
    if not known:
        return None
    return (known[0], known.count(known[0]), known[-1], known.count(known[-1]))


async def _measure(
    assoc: Association, opts: ExposureOptions
) -> tuple[dict[str, Any] | None, list[str] | None]:
    """The exposure record and the study dates it saw (None when they are not all known)."""
    accept = assoc.accept
    study_class = next(
        (u for u in (sc.STUDY_ROOT_FIND, sc.PATIENT_ROOT_FIND) if accept.accepts(u)), None
    )
    has_mwl = accept.accepts(sc.MODALITY_WORKLIST_FIND)
    if study_class is None and not has_mwl:
        return None, None
    meter = ExposureMeter(assoc, opts)
    studies_complete = False
    out: dict[str, Any] = {
        "patients": None,
        "studies": None,
        "earliest_study_date": None,
        "latest_study_date": None,
        "modalities": [],
        "complete": True,
    }
    try:
        if study_class is not None:
            out.update(await meter.count_studies(study_class))
            studies_complete = bool(out["complete"])
        if accept.accepts(sc.PATIENT_ROOT_FIND):
            patients, complete = await meter.count_patients(out.get("result_cap"))
            out["patients"] = patients
            out["complete"] = out["complete"] and complete
        if has_mwl:
            items, complete = await meter.count_worklist()
            out["worklist_items"] = items
            out["complete"] = out["complete"] and complete
    except DulError as exc:
        out["complete"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["queries"] = meter.budget.used
    if opts.collect_identifiers:
        out["patient_id_hashes"] = sorted(meter.hashes)
    return out, (meter.study_dates if studies_complete else None)
