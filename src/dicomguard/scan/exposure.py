"""Exposure: how many patients and studies a stranger can list, without keeping who they are.

Shape of the ``exposure`` record (output contract in /work/shared/scan-output.md)::

    {"patients": int | None, "studies": int | None, "earliest_study_date": "YYYYMMDD" | None,
     "latest_study_date": ..., "modalities": [...], "studies_by_year": {...},
     "complete": bool,                    # the Q/R counts are exact (False = lower bounds)
     "result_cap": int | None, "refuses_broad_queries": bool,
     "patient_level": {"state": "complete" | "capped" | "refused" | "not-offered" | ...,
                       "status": int | None, "matches": int | None},
     "placeholder_matches": int,          # matches without the level's unique key
     "inconsistencies": [str, ...],       # impossible combinations, never reported complete
     "answers_impossible_query": bool | None, "studies_all_on_scan_day": bool,
     "worklist": {"items", "patients", "earliest_scheduled_date", "latest_scheduled_date",
                  "complete", "status", "error"} | absent,
     "queries": int, "error": str | absent}

Identifiers (issue 10, item 3). Each query level is asked for its *unique key* (PS3.4 C.6.1.1:
PatientID at PATIENT level, StudyInstanceUID at STUDY level), because servers answer a level
without its unique key with nothing (DCMTK dcmqrscp) or with an error, and because counting
distinct patients needs an identity to de-duplicate by. So PatientID *is* requested now (the
earlier design asked for no identifying attribute and could then only sum, which over-counts
overlapping partitions). What comes back is reduced at once to a keyed hash,
``blake2b(value, key=K)``, where K is 32 random bytes drawn per :class:`ExposureMeter`, i.e.
per endpoint and per scan, held in memory only and never stored, logged or written: the hashes
cannot be reversed or linked across endpoints or scans, and they die with the meter. Only
counts, date spans and modalities leave this module. The one exception is the explicit
``collect_identifiers`` option, which adds salted SHA-256 hashes (``patient_id_hashes``).
Patient names are sent as *matching* keys when a capped day has to be split by initial; the
values returned are never read.

Counting. Matches are de-duplicated by the keyed hash of their unique key across every query of
the endpoint, so partitions that overlap (or a server repeating a match) never add up to more
than the truth; a match without the key (a stub C-FIND SCP's placeholder answer) is not a
record. Patients are the union of the PATIENT-level answers and the patients the study answers
revealed. A refused level gives ``None`` for that level, never 0.

Caps. Servers that cap results (Orthanc's LimitFindResults, vendor limits) or refuse broad
queries ("more than N would match": 0xA700/0xC000 with no match) are counted by partitioning the
date range recursively (a single day by patient-name initial) within a query budget. A silent
cap is learnt from the universal answer (tails compared) or, when the universal query is
refused, from a Success answer that a split shows to be short; a range whose answer reaches the
cap is split, never taken as complete. What the budget does not reach leaves ``complete:
false``: a lower bound.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import secrets
import string
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from pydicom.dataset import Dataset

from ..dul import peek
from ..dul.codes import CONTEXT_ACCEPTANCE, STATUS_CANCEL, STATUS_SUCCESS, is_c_warning
from ..dul.dimse import decode_dataset, values_unvalidated
from ..dul.errors import DulError
from ..dul.scu import Association
from ..knowledge import sopclasses as sc
from . import operations
from .probe import Need, ProbeResult, Session, Stage, Target
from .result import EndpointResult, Exposure, Finding


def _finished(status: int | None) -> bool:
    """The server says it sent every match: Success, or a Warning (0x0001, 0xBxxx).

    PS3.4 C.4.1.1.4 allows no Warning for C-FIND, but servers send one (dcm4che #586:
    0xB100 "relational behaviour not negotiated") after their last match; taking it as a cut
    would split every range until the budget is gone.
    """
    return status is None or status == STATUS_SUCCESS or is_c_warning(status)
FIRST_DAY = date(1900, 1, 1)
#: a study-date range no real archive holds: a server that answers it answers anything
IMPOSSIBLE_RANGE = "18000101-18000102"
#: a Success answer at least this long that is the largest seen is checked for a silent cap
MIN_CAP_GUESS = 5
#: refused queries (none ever answered) after which a server is taken to refuse every query
REFUSALS_BEFORE_GIVING_UP = 4


@dataclass(frozen=True)
class ExposureOptions:
    #: at most this many C-FIND operations per endpoint
    query_budget: int = 100
    #: seconds the count may take per endpoint; a server answering every query with tens of
    #: thousands of matches (100 queries x 20000 matches: measured 465 s against one hostile
    #: loopback peer) is then left as a flagged lower bound instead of holding the scan; the
    #: CLI uses at most half of ``--endpoint-budget`` (120 s) so the count ends first
    time_budget: float = 300.0
    #: a single query never returns more than this many matches to us (C-CANCEL after)
    max_results_per_query: int = 20000
    collect_identifiers: bool = False
    salt: bytes = b""


@dataclass
class _Query:
    """One C-FIND outcome: distinct records by the level's unique key, and how it ended."""

    count: int  # new or old records with the level's unique key
    status: int | None
    truncated: bool  # we cancelled at our own cap, or the server ended with a non-success status
    dates: list[str] = field(default_factory=list)
    modalities: set[str] = field(default_factory=set)
    #: matches received, keyed or not (what a silent cap limits)
    answered: int = 0
    #: matches without the level's unique key
    keyless: int = 0
    #: ... of which carried data (a date or a patient ID): a record with its key stripped
    keyless_with_data: int = 0

    @property
    def refused(self) -> bool:
        """Ended with a failure and no match at all (a refusal, e.g. too broad)."""
        return (not _finished(self.status) and self.status != STATUS_CANCEL
                and self.answered == 0)


@dataclass
class _Study:
    date: str
    modalities: tuple[str, ...]
    patient: bytes | None


class _Budget:
    """C-FIND operations left, and the time: ``take`` fails once either is spent."""

    def __init__(self, n: int, seconds: float | None = None) -> None:
        self.left = n
        self.used = 0
        self.deadline = None if seconds is None else time.monotonic() + seconds
        #: the time ran out before the queries did
        self.timed_out = False

    def take(self) -> bool:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.timed_out = True
            self.left = 0
        if self.left <= 0:
            return False
        self.left -= 1
        self.used += 1
        return True


def _dicom_date(d: date) -> str:
    return d.strftime("%Y%m%d")


def _parse_date(text: str) -> date | None:
    """A study date as PS3.5 6.2 DA ``YYYYMMDD``, within [FIRST_DAY, tomorrow]; else None.

    Servers send anything: "20231341", "", a range "19000101-" where one date belongs, the
    placeholder "99991231" or "00000000". None of them is a study year: such studies are
    counted, their dates are not (no year, no earliest/latest date).
    """
    return _parse_da(text, date.today() + timedelta(days=1))


def _parse_da(text: str, last: date) -> date | None:
    """A PS3.5 DA value ``YYYYMMDD`` (surrounding spaces allowed) within [FIRST_DAY, last]."""
    text = text.strip()
    if len(text) != 8 or not text.isascii() or not text.isdigit():
        return None
    try:
        d = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return d if FIRST_DAY <= d <= last else None


def _scheduled_date(text: str) -> date | None:
    """A worklist's scheduled start date: in the future by nature, but not the placeholders
    ("99991231") a study date may not be either; up to five years ahead."""
    today = date.today()
    return _parse_da(text, today.replace(year=today.year + 5, day=min(today.day, 28)))


@functools.lru_cache(maxsize=256)
def _study_identifier(date_range: str, name: str | None) -> Dataset:
    """A STUDY-level identifier (shared and never modified: pydicom's attribute validation made
    building one per query cost as much as encoding it)."""
    q = Dataset()
    q.QueryRetrieveLevel = "STUDY"
    q.StudyInstanceUID = ""
    q.StudyDate = date_range
    q.ModalitiesInStudy = ""
    q.PatientID = ""  # return key: reduced to a keyed hash on arrival (module docstring)
    if name is not None:
        q.PatientName = name  # a matching key only: the value returned is never read
    return q


class ExposureMeter:
    """Counts what one association can list; one instance per endpoint (and its hash key)."""

    def __init__(self, assoc: Association, opts: ExposureOptions) -> None:
        self.assoc = assoc
        self.opts = opts
        self.budget = _Budget(opts.query_budget, opts.time_budget)
        self.universal: _Query | None = None
        #: study dates of the measurement (all of them when it is complete)
        self.study_dates: list[str] = []
        #: salted SHA-256 of patient IDs, only with ``collect_identifiers``
        self.hashes: set[str] = set()
        # The per-endpoint key of the in-memory hashes: never stored, logged or returned.
        self._key = secrets.token_bytes(32)
        #: keyed hash of Study Instance UID -> what the count needs of that study
        self.studies: dict[bytes, _Study] = {}
        #: keyed hashes of patient IDs seen at PATIENT level
        self.patients: set[bytes] = set()
        self.keyless_studies = 0
        self.keyless_with_data = 0

    def _keyed(self, value: str) -> bytes:
        data = value.encode("utf-8", "replace")
        return hashlib.blake2b(data, key=self._key, digest_size=16).digest()

    # -- one query --------------------------------------------------------------------------
    async def _find(
        self, sop_class: str, identifier: Dataset, level: str = "STUDY"
    ) -> _Query | None:
        """One C-FIND; records are kept by their keyed unique key (``level``: STUDY, PATIENT)."""
        if not self.budget.take():
            return None
        cap = self.opts.max_results_per_query
        out = _Query(0, None, False)
        seen: set[bytes] = set()
        _cid, ts = self.assoc._context(sop_class)
        async for data in self.assoc.find_raw(sop_class, identifier, max_results=cap):
            out.answered += 1
            uid, date_, modalities, patient_id = _read_match(data, ts)
            patient = self._keyed(patient_id) if patient_id else None
            if patient_id and self.opts.collect_identifiers:
                self.hashes.add(self._hash(patient_id))
            key = uid if level == "STUDY" else patient_id
            if not key:
                out.keyless += 1  # a placeholder answer, not a record
                out.keyless_with_data += bool(date_.strip() or patient_id)
                continue
            k = self._keyed(key)
            if k in seen:
                continue  # a server repeating a match must not inflate the count
            seen.add(k)
            out.count += 1
            if level == "STUDY":
                valid = date_.strip() if _parse_date(date_) else ""
                self.studies.setdefault(k, _Study(valid, tuple(modalities), patient))
                if valid:
                    out.dates.append(valid)
                out.modalities.update(modalities)
            else:
                self.patients.add(k)
        out.status = self.assoc.last_status
        out.truncated = out.answered >= cap or not _finished(out.status)
        if level == "STUDY":
            self.keyless_studies += out.keyless
            self.keyless_with_data += out.keyless_with_data
        return out

    def _hash(self, value: str) -> str:
        return hashlib.sha256(self.opts.salt + value.encode("utf-8", "replace")).hexdigest()

    # -- studies ------------------------------------------------------------------------------
    def _study_identifier(self, date_range: str = "", name: str | None = None) -> Dataset:
        return _study_identifier(date_range, name)

    def _study_summary(self, complete: bool, cap: int | None) -> dict[str, Any]:
        dates = [s.date for s in self.studies.values()]
        mods = {m for s in self.studies.values() for m in s.modalities}
        return _summary(len(self.studies), dates, mods, complete, cap)

    async def count_studies(self, sop_class: str) -> dict[str, Any]:
        """Studies, date span and modalities; partitions when the server caps its answers."""
        universal = await self._find(sop_class, self._study_identifier())
        self.universal = universal
        if universal is None:
            return {"studies": None, "complete": False}
        today = date.today()
        # A query that ends with a failure and no matches was refused as too broad (0xA700 and
        # the like): the cap is unknown, but narrower queries may pass.
        cap: int | None = (
            universal.answered if universal.truncated and universal.answered else None
        )
        if (
            cap is None
            and universal.answered > 1
            and not universal.truncated
            and await self._silently_capped(sop_class, universal)
        ):
            cap = universal.answered
        if cap is None and not universal.truncated:
            summary = self._study_summary(True, None)
            self.study_dates = [s.date for s in self.studies.values()]
            summary["refuses_broad_queries"] = False
            summary["refuses_every_query"] = False
            return summary

        complete = True
        largest_ok = 0  # the longest Success answer not yet shown to be short
        not_caps: set[int] = set()
        # accepted leaves: (lo, hi, answered), re-split when a cap is learnt later
        leaves: list[tuple[date, date, int]] = []
        stack = list(_split(FIRST_DAY, today, universal.dates))
        refusals = int(universal.refused)
        answered_once = not universal.refused
        while stack:
            lo, hi = stack.pop()
            rng = f"{_dicom_date(lo)}-{_dicom_date(hi)}" if lo != hi else _dicom_date(lo)
            part = await self._find(sop_class, self._study_identifier(rng))
            if part is None:
                complete = False
                stack.append((lo, hi))
                break
            refusals += part.refused
            answered_once = answered_once or not part.refused
            if not answered_once and refusals >= REFUSALS_BEFORE_GIVING_UP:
                # every query refused, even narrow ones: not "too broad", refused outright
                # (per-operation access control); splitting further only burns the budget
                return {"studies": None, "complete": False, "result_cap": None,
                        "refuses_broad_queries": True, "refuses_every_query": True,
                        "refusal_status": part.status}
            saturated = part.truncated or (cap is not None and part.answered >= cap)
            if (
                not saturated
                and cap is None
                and lo != hi
                and part.answered >= max(MIN_CAP_GUESS, largest_ok)
                and part.answered not in not_caps
            ):
                # The largest Success answer so far: is it a silent cap? Split it once; the
                # halves are partitions we need anyway if it is.
                halves = _split(lo, hi, part.dates)
                found = 0
                sub: list[tuple[date, date, _Query]] = []
                for a, b in halves:
                    r2 = f"{_dicom_date(a)}-{_dicom_date(b)}" if a != b else _dicom_date(a)
                    q2 = await self._find(sop_class, self._study_identifier(r2))
                    if q2 is None:
                        break
                    sub.append((a, b, q2))
                    found += q2.answered
                if len(sub) < 2:
                    complete = False
                    stack.append((lo, hi))
                    break
                if found > part.answered:
                    cap = part.answered  # the whole answered less than its halves: capped
                    for a, b, n in leaves:
                        if n >= cap:
                            stack.append((a, b))
                    leaves = [leaf for leaf in leaves if leaf[2] < cap]
                elif all(q2.answered < part.answered for _a, _b, q2 in sub):
                    not_caps.add(part.answered)
                    largest_ok = max(largest_ok, part.answered)
                # else one half holds the whole answer: undecided, that half is asked again
                for a, b, q2 in sub:
                    sat2 = q2.truncated or (cap is not None and q2.answered >= cap)
                    undecided = cap is None and q2.answered == part.answered > 0
                    if sat2 or (undecided and part.answered not in not_caps):
                        stack.append((a, b))
                    else:
                        leaves.append((a, b, q2.answered))
                continue
            if not saturated:
                largest_ok = max(largest_ok, part.answered)
                leaves.append((lo, hi, part.answered))
                continue
            if lo == hi:
                done = await self._by_initial(sop_class, rng, cap)
                complete = complete and done
                if self.budget.left <= 0:
                    break
                continue
            stack.extend(reversed(_split(lo, hi, part.dates)))
        if stack:
            complete = False
        self.study_dates = [s.date for s in self.studies.values()]
        summary = self._study_summary(complete, cap)
        summary["refuses_broad_queries"] = universal.refused
        summary["refuses_every_query"] = False
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

    async def _by_initial(self, sop_class: str, rng: str, cap: int | None) -> bool:
        """A capped single day, split by patient-name initial. Never complete: names starting
        with digits or other characters are not reached (True only if nothing was cut)."""
        for letter in string.ascii_uppercase:
            part = await self._find(sop_class, self._study_identifier(rng, f"{letter}*"))
            if part is None:
                return False
        return False

    # -- patients -----------------------------------------------------------------------------
    async def count_patients(
        self, cap: int | None = None, studies_complete: bool = False
    ) -> dict[str, Any]:
        """Distinct patients: the PATIENT level's answers united with the study answers'.

        Returns ``{"patients": int | None, "complete": bool, "patient_level": {...}}``. The
        PATIENT level is asked for its unique key only (PatientID, reduced to a keyed hash).
        ``cap`` is the silent result cap the study count found, if any. A refused level gives
        no count of its own (``None``), never 0.
        """
        q = Dataset()
        q.QueryRetrieveLevel = "PATIENT"
        q.PatientID = ""
        res = await self._find(sc.PATIENT_ROOT_FIND, q, "PATIENT")
        from_studies = {s.patient for s in self.studies.values() if s.patient is not None}
        studies_know_patients = (
            studies_complete
            and self.keyless_studies == 0
            and all(s.patient is not None for s in self.studies.values())
        )
        level: dict[str, Any] = {"state": "not-asked", "status": None, "matches": None}
        level_complete = False
        if res is not None:
            level["status"] = res.status
            level["matches"] = res.count
            if res.refused:
                level["state"] = "refused"
            elif res.truncated or (cap is not None and res.answered >= cap):
                level["state"] = "capped"
            elif from_studies - self.patients:
                level["state"] = "capped"  # the studies named patients this answer lacks
            else:
                level["state"] = "complete"
                level_complete = True
            if level["state"] == "capped" and not studies_know_patients:
                await self._patients_by_initial(q)
        union = self.patients | from_studies
        complete = level_complete or studies_know_patients
        if union:
            patients: int | None = len(union)
        elif level_complete or (studies_know_patients and not self.studies):
            patients = 0
        else:
            patients = None
        return {"patients": patients, "complete": complete, "patient_level": level}

    async def _patients_by_initial(self, q: Dataset) -> None:
        """A capped PATIENT level, partitioned by name initial; overlaps de-duplicate."""
        for letter in string.ascii_uppercase:
            q.PatientName = f"{letter}*"
            if await self._find(sc.PATIENT_ROOT_FIND, q, "PATIENT") is None:
                return

    # -- worklist -----------------------------------------------------------------------------
    async def count_worklist(self) -> dict[str, Any]:
        """Scheduled procedure steps a stranger can list from the Modality Worklist.

        Returns ``{"items", "patients", "earliest_scheduled_date", "latest_scheduled_date",
        "complete", "status"}``; patients are distinct keyed hashes of PatientID.
        """
        q = Dataset()
        sps = Dataset()
        sps.Modality = ""
        sps.ScheduledProcedureStepStartDate = ""
        q.ScheduledProcedureStepSequence = [sps]
        q.AccessionNumber = ""
        q.PatientID = ""  # return key: reduced to a keyed hash on arrival
        if not self.budget.take():
            return {"items": None, "patients": None, "complete": False, "status": None,
                    "earliest_scheduled_date": None, "latest_scheduled_date": None}
        items = 0
        patients: set[bytes] = set()
        dates: list[str] = []
        cap = self.opts.max_results_per_query
        sop = sc.MODALITY_WORKLIST_FIND
        async for ds in self.assoc.find(sop, q, max_results=cap):
            items += 1
            try:
                with values_unvalidated():  # pydicom would quote invalid values on stderr
                    pid = str(ds.get("PatientID", "") or "").strip()
                    steps = list(ds.get("ScheduledProcedureStepSequence", None) or [])
                    starts = [
                        str(st.get("ScheduledProcedureStepStartDate", "") or "") for st in steps
                    ]
            except Exception:  # a malformed item still counts; its text is never kept
                continue
            if pid:
                patients.add(self._keyed(pid))
                if self.opts.collect_identifiers:
                    self.hashes.add(self._hash(pid))
            dates.extend(d.strip() for d in starts if _scheduled_date(d))
        status = self.assoc.last_status
        ok = _finished(status) and items < cap
        refused = not _finished(status) and status != STATUS_CANCEL and items == 0
        dates.sort()
        return {
            "items": None if refused else items,
            "patients": None if refused else len(patients),
            "earliest_scheduled_date": dates[0] if dates else None,
            "latest_scheduled_date": dates[-1] if dates else None,
            "complete": ok,
            "status": status,
        }


_STUDY_UID = peek.tag(0x0020, 0x000D)
_STUDY_DATE = peek.tag(0x0008, 0x0020)
_MODALITIES = peek.tag(0x0008, 0x0061)
_MODALITY = peek.tag(0x0008, 0x0060)
_PATIENT_ID = peek.tag(0x0010, 0x0020)
_WANTED = frozenset({_STUDY_UID, _STUDY_DATE, _MODALITIES, _MODALITY, _PATIENT_ID})


def _read_match(data: bytes, ts: str) -> tuple[str, str, list[str], str]:
    """(study UID, study date, modalities, patient ID) of one match; fast path, then pydicom.

    The patient ID is turned into a keyed hash by the caller at once; it never leaves this
    module.
    """
    values = peek.peek(data, ts, _WANTED)
    if values is not None:
        text = {t: v.decode("ascii", "replace") for t, v in values.items()}
        mods = text.get(_MODALITIES) or text.get(_MODALITY) or ""
        return (
            text.get(_STUDY_UID, "").strip(),
            text.get(_STUDY_DATE, ""),
            [m.strip() for m in mods.split("\\") if m.strip()],
            text.get(_PATIENT_ID, "").strip(),
        )
    ds = decode_dataset(data, ts)
    with values_unvalidated():  # pydicom would quote invalid values on stderr
        return (
            str(ds.get("StudyInstanceUID", "") or "").strip(),
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
    port's earliest and latest study day (two small queries; for an entry rebuilt from an old
    database's record, two date ranges: store.db.rebuilt_archive); if both counts match, the
    first port's measurement is reused and marked ``same_archive_as`` instead of paying for the
    universal query and every partition query again.
    """

    def __init__(self) -> None:
        self._entries: dict[str, list[tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Any]]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, host: str) -> asyncio.Lock:
        return self._locks.setdefault(host, asyncio.Lock())

    def lookup(self, host: str, key: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], dict]]:
        """The (signature, exposure) of ``host``'s entries whose key is ``key``: (implementation
        class UID, version name, accepted abstract syntaxes sorted). An entry rebuilt from a
        stored record (store.db.rebuilt_archive: a database from before the archives table)
        knows the services, not the syntaxes: its key is (UID, version name, None, service
        names), compared with :func:`context_services` of ``key``'s syntaxes."""
        found = []
        for k, sig, exp in self._entries.get(host, []):
            if k == key or (
                len(k) == 4
                and k[2] is None
                and tuple(k[:2]) == tuple(key[:2])
                and tuple(k[3]) == context_services(key[2])
            ):
                found.append((sig, exp))
        return found

    def remember(
        self, host: str, key: tuple[Any, ...], signature: tuple[Any, ...], exposure: dict
    ) -> None:
        self._entries.setdefault(host, []).append((key, signature, exposure))


def context_services(contexts: Iterable[str]) -> tuple[str, ...]:
    """The output contract's service names (``EndpointResult.services_negotiated``) that
    accepted abstract syntaxes prove, plus ``"canary"`` for the canary SOP class, sorted."""
    accepted = set(contexts)
    names = {name for name, uids in sc.SERVICES.items() if accepted.intersection(uids)}
    if sc.CANARY in accepted:
        names.add("canary")
    return tuple(sorted(names))


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
        tuple(sorted(u for u, code in accept.results.items() if code == CONTEXT_ACCEPTANCE)),
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
        "complete": study_class is not None,
        "placeholder_matches": 0,
        "inconsistencies": [],
    }
    try:
        if study_class is not None:
            out.update(await meter.count_studies(study_class))
            studies_complete = bool(out["complete"])
            out.update(await _honesty_checks(meter, study_class))
            out["placeholder_matches"] = meter.keyless_studies
        if accept.accepts(sc.PATIENT_ROOT_FIND):
            counted = await meter.count_patients(out.get("result_cap"), studies_complete)
            out["patients"] = counted["patients"]
            out["patient_level"] = counted["patient_level"]
            out["complete"] = out["complete"] and counted["complete"]
        elif study_class is not None:
            out["patient_level"] = {"state": "not-offered", "status": None, "matches": None}
            known = {s.patient for s in meter.studies.values() if s.patient is not None}
            out["patients"] = len(known) if known else None
            out["complete"] = out["complete"] and bool(known) and meter.keyless_studies == 0
    except DulError as exc:
        out["complete"] = False
        out["error"] = f"{type(exc).__name__}: {exc}"
        if out["studies"] is None and meter.studies:
            # what the answers held before the peer failed is a lower bound, not nothing
            out.update(meter._study_summary(False, None))
            out["placeholder_matches"] = meter.keyless_studies
    out["inconsistencies"] = _inconsistencies(out, studies_complete)
    if "no patients beside studies" in out["inconsistencies"]:
        out["patients"] = None  # what the server said is impossible: unknown, never 0
    if meter.keyless_with_data:
        # PS3.4 C.4.1.2.1: every match holds the level's unique key; dated matches without
        # one are records whose key was lost (a proxy, dcm4chee-arc-light #1263): uncounted
        out["inconsistencies"].append("matches with data but no Study Instance UID")
    if out["inconsistencies"]:
        out["complete"] = False
    if has_mwl:
        # its own completeness and error: a refused worklist says nothing about Q/R counts
        try:
            wl = await meter.count_worklist()
        except DulError as exc:
            wl = {"items": None, "patients": None, "complete": False,
                  "earliest_scheduled_date": None, "latest_scheduled_date": None,
                  "status": None, "error": f"{type(exc).__name__}: {exc}"}
        out["worklist"] = wl
        out["worklist_items"] = wl["items"]
        if study_class is None:
            out["complete"] = bool(wl["complete"])
    out["queries"] = meter.budget.used
    if meter.budget.timed_out:
        out["time_budget_spent"] = True
        out["complete"] = False
    if opts.collect_identifiers:
        out["patient_id_hashes"] = sorted(meter.hashes)
    return out, (meter.study_dates if studies_complete else None)


async def _honesty_checks(meter: ExposureMeter, study_class: str) -> dict[str, Any]:
    """Does the server answer *any* query? (issue 10, item 9: honeypots with canned data)

    One query for an impossible date range (:data:`IMPOSSIBLE_RANGE`): a real archive has
    nothing there; a decoy that ignores matching keys answers it. And: is every study dated the
    day of the scan (a decoy stamping its canned studies with today's date)?
    """
    out: dict[str, Any] = {"answers_impossible_query": None}
    q = meter._study_identifier(IMPOSSIBLE_RANGE)
    saved = dict(meter.studies), meter.keyless_studies, meter.keyless_with_data
    res = await meter._find(study_class, q)
    if res is not None:
        # records (with a Study Instance UID) where none can be; a stub's placeholder is not one
        out["answers_impossible_query"] = res.count > 0
        # what it answered is not a study of the archive's truth: forget it for the counts
        meter.studies, meter.keyless_studies, meter.keyless_with_data = saved
    dates = [s.date for s in meter.studies.values()]
    today = _dicom_date(date.today())
    out["studies_all_on_scan_day"] = len(dates) >= 3 and all(d == today for d in dates)
    return out


def _inconsistencies(out: dict[str, Any], studies_complete: bool) -> list[str]:
    """Combinations no archive can hold; the counts are then never reported complete."""
    found = []
    patients, studies = out.get("patients"), out.get("studies")
    if patients == 0 and studies:
        found.append("no patients beside studies")
    if patients is not None and studies is not None and patients > studies and studies_complete:
        found.append("more patients than studies at study level")
    return found


class ExposureProbe:
    """The exposure count as a probe (scan.probe) on the assessment association: where a probe
    C-FIND was answered (or failed without a refusal) and the C-ECHO was not left unanswered,
    count what a stranger can list (:func:`measure`) into the record's ``exposure``; refused
    query contexts are hidden first (:func:`operations.hide_refused_contexts`), and a probe
    operation that failed is credited when records came back
    (:func:`operations.credit_exposure`)."""

    name = "exposure"
    stage = Stage.ASSOCIATION
    needs = frozenset({Need.ASSOCIATION})
    #: filled in place (what was counted stays in the record if a later step fails)
    field = None
    result_type = Exposure

    def applies(self, session: Session) -> bool:
        opts = session.opts
        return (
            opts.exposure is not None
            and not opts.discovery
            and operations.worth_counting(session.operations)
        )

    async def run(self, target: Target, session: Session) -> ProbeResult[dict[str, Any]]:
        current = await session.live_association()
        if current is None:
            return ProbeResult.ok(None)
        ops, r = session.operations, session.record
        operations.hide_refused_contexts(current, ops)
        r.exposure = await measure(
            current, session.opts.exposure, archives=session.archives,
            where=(target.host, target.port),
        )
        if r.exposure is not None and r.exposure.get("error"):
            await current.abort()  # a query failed on the wire: the association is gone
        operations.credit_exposure(ops, r.exposure, current.accept)
        return ProbeResult.ok(r.exposure)

    def findings(self, record: EndpointResult) -> list[Finding]:
        return []  # DG-005/DG-007 follow from the services the operations found open


PROBE = ExposureProbe()
