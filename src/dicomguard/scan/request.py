"""What a scan was asked to do: a typed, versioned request, validated, stored as JSON for resume.

:class:`ScanRequest` holds every option of ``dicomguard scan`` that changes what is scanned or
written, with its default and unit; the flags of ``dicomguard scan`` map one to one onto its
fields (``--per-host`` -> ``per_host``, ``--no-tls`` -> ``no_tls``), so the stored JSON reads
like the command line and ``dicomguard merge`` names a differing option by its flag. Options that
only change what one run shows (``--no-progress``, ``-q``, ``--fail-on``) and where the scan
database lives (``--db``, ``--resume``) are not part of it.

The scan database stores :meth:`ScanRequest.to_dict` (paths made absolute by
:meth:`ScanRequest.resolved`) in ``scan.options``; ``--resume`` reads it back with
:meth:`ScanRequest.from_dict`, which also migrates what older versions stored.

Versions of the stored JSON (``request_version``):

* 0 (no ``request_version`` key): dicomguard up to issue 16 stored the parsed argparse
  namespace: the same keys, ``workers`` as text (``"auto"``, ``"4"``), lists for repeated
  options; options added since are missing (their defaults apply) and options of its time no
  longer known are ignored.
* 1: this class.

Errors (one line each, named; the command turns them into exit status 2)::

    ScanRequestError (ValueError)
    ├── OptionOutOfRange      a number outside its bounds (issue 12: --timeout 0)
    ├── InvalidChoice         a value outside an option's choices
    ├── InvalidAETitle        --calling-aet outside PS3.5 6.2's AE repertoire or length
    ├── InvalidPortList       -p / --web-ports not a port list
    ├── NoTargets             neither targets nor -iL files
    ├── MalformedRequest      stored JSON of the wrong shape (a damaged database)
    └── UnsupportedVersion    stored by a newer dicomguard
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

__all__ = [
    "REQUEST_VERSION",
    "Bound",
    "InvalidAETitle",
    "InvalidChoice",
    "InvalidPortList",
    "MalformedRequest",
    "NoTargets",
    "OptionOutOfRange",
    "ScanRequest",
    "ScanRequestError",
    "UnsupportedVersion",
    "flag_of",
]

#: version of :meth:`ScanRequest.to_dict`'s shape; raise it when a field changes meaning
REQUEST_VERSION = 1


class ScanRequestError(ValueError):
    """A scan request that cannot be run as given; ``str()`` is one line naming the flag."""


class OptionOutOfRange(ScanRequestError):
    """A numeric option outside its :class:`Bound` (or not a finite number)."""


class InvalidChoice(ScanRequestError):
    """An option outside its choices (``--sweep``, ``--order``, ``--workers``)."""


class InvalidAETitle(ScanRequestError):
    """``--calling-aet`` is not 1-16 characters of PS3.5 6.2's AE repertoire (printable
    ASCII without backslash)."""


class InvalidPortList(ScanRequestError):
    """``-p`` or ``--web-ports`` is not an nmap-style port list."""


class NoTargets(ScanRequestError):
    """Neither targets nor ``-iL`` files were named."""


class MalformedRequest(ScanRequestError):
    """Stored JSON that is not a scan request: wrong types, unknown keys in a known version."""


class UnsupportedVersion(ScanRequestError):
    """Stored by a newer dicomguard (a ``request_version`` above :data:`REQUEST_VERSION`)."""


def flag_of(name: str) -> str:
    """The command-line flag of field ``name``: ``per_host`` -> ``--per-host``."""
    return {"input_files": "-iL", "ports": "-p"}.get(name, "--" + name.replace("_", "-"))


@dataclass(frozen=True)
class Bound:
    """Accepted values of a numeric option: ``kind`` in [low, high], (low, high] if
    ``low_open``; ``what`` names the unit in messages."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    what: str = ""

    def accepts(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        return (
            math.isfinite(value)
            and (value > self.low if self.low_open else value >= self.low)
            and value <= self.high
        )

    def message(self, text: str) -> str:
        """``a number of seconds above 0 and at most 3600 is needed, not '0'``."""
        side = "above" if self.low_open else "at least"
        noun = "a whole number" if self.kind is int else "a number"
        return (
            f"{noun}{' of ' + self.what if self.what else ''} {side} {self.low:g} and at most "
            f"{self.high:g} is needed, not {text!r}"
        )

    def parse(self, text: str) -> float | int:
        """``text`` as a number within the bound; raises :class:`OptionOutOfRange`."""
        try:
            value = self.kind(text)
        except ValueError:
            raise OptionOutOfRange(self.message(text)) from None
        if not self.accepts(value):
            raise OptionOutOfRange(self.message(text))
        return value  # type: ignore[no-any-return]


#: bounds of every numeric scan option (issue 12: --timeout 0 made every server look silent)
SECONDS = Bound(float, 0, 3600, low_open=True, what="seconds")
RATE = Bound(float, 0, 10_000_000, what="connections per second (0 = unlimited)")
COUNT = Bound(int, 1, 1_000_000)
GUESSES = Bound(int, 0, 100_000)
BUDGET = Bound(float, 0, 86_400, low_open=True, what="seconds")
RETRIES = Bound(int, 0, 10)
GREETING = Bound(float, 0, 3600, what="seconds (0 = no retry)")

#: most worker processes (``--workers``); "auto" chooses (scan/parallel.py)
MAX_WORKERS = 64

Sweep = Literal["auto", "syn", "connect"]
Order = Literal["sequential", "spread"]
Workers = int | Literal["auto"]


def _bound(b: Bound) -> dict[str, Any]:
    return {"bound": b}


@dataclass(frozen=True)
class ScanRequest:
    """Every option of one scan; field names are the flags' (``--per-host`` -> ``per_host``).

    Paths are text as typed (``"-"`` is stdin for ``input_files``); :meth:`resolved` makes
    them absolute for storage. Build one directly, from flags (``dicomguard.cli.scan``) or from
    a database (:meth:`from_dict`); :meth:`validate` before running it.
    """

    #: what to scan: addresses, CIDRs, ranges (``127.0.0.1-50``), host names
    targets: tuple[str, ...] = ()
    #: ``-iL`` files of targets (``"-"`` = stdin; gzip too): lists, host:port, CSV, masscan...
    input_files: tuple[str, ...] = ()
    #: comma-separated target specs never to touch
    exclude: tuple[str, ...] = ()
    #: files of target specs never to touch
    exclude_file: tuple[str, ...] = ()
    #: ``-p`` port list (nmap syntax); None = 104,11112,4242,2761,2762 and the web ports
    ports: str | None = None
    #: JSON Lines output file, one record per endpoint (``"-"`` = stdout); None = none
    jsonl: str | None = None
    #: also store/write closed and filtered endpoints (otherwise only counted)
    all: bool = False
    #: new connections per second (at most this many in every second); 0 = unlimited
    rate: float = field(default=300.0, metadata=_bound(RATE))
    #: endpoints in flight at once
    concurrency: int = field(default=256, metadata=_bound(COUNT))
    #: endpoints of one host at once, across all workers
    per_host: int = field(default=2, metadata=_bound(COUNT))
    #: seconds allowed for each protocol step (A-ASSOCIATE, DIMSE answers: twice this)
    timeout: float = field(default=5.0, metadata=_bound(SECONDS))
    #: seconds allowed for a TCP connect
    connect_timeout: float = field(default=3.0, metadata=_bound(SECONDS))
    #: most seconds one endpoint's assessment may take (waits for ``rate`` excluded)
    endpoint_budget: float = field(default=120.0, metadata=_bound(BUDGET))
    #: most connections (associations, TLS handshakes, HTTP requests) per endpoint
    endpoint_connections: int = field(default=200, metadata=_bound(COUNT))
    #: re-assessments of an endpoint that answered A-ASSOCIATE-RJ transient (busy)
    retries: int = field(default=2, metadata=_bound(RETRIES))
    #: seconds of the one longer A-ASSOCIATE wait for a port silent through ``timeout``;
    #: 0 = no retry
    slow_greeting: float = field(default=20.0, metadata=_bound(GREETING))
    #: our calling AE title (1-16 characters, PS3.5 6.2)
    calling_aet: str = "DICOMGUARD"
    #: product whose implementation class UID/version name we announce (fingerprints.toml);
    #: None = dicomguard's own identity
    impersonate: str | None = None
    #: folder for the PDUs exchanged with each endpoint (identifiers redacted); None = none
    evidence: str | None = None
    #: file of called AE titles to try when one is enforced; None = the built-in list
    wordlist: str | None = None
    #: most called AE titles guessed per endpoint
    max_aet_guesses: int = field(default=30, metadata=_bound(GUESSES))
    #: do not try DICOM inside TLS
    no_tls: bool = False
    #: only find DICOM services and fingerprint them (one association each)
    discovery: bool = False
    #: do not count the patients/studies a stranger can list
    no_exposure: bool = False
    #: C-FIND operations (and web requests) allowed per endpoint for counting
    query_budget: int = field(default=100, metadata=_bound(COUNT))
    #: keep keyed hashes of patient IDs seen (never the IDs)
    collect_identifiers: bool = False
    #: HTTP(S) ports checked for Orthanc REST / QIDO-RS; None = 8042,8080,80,443,3000,8443
    #: without ``ports``, none with it
    web_ports: str | None = None
    #: skip the web/DICOMweb checks
    no_web: bool = False
    #: also C-STORE a labelled synthetic object and C-MOVE to a random AE title (changes the
    #: server: only with the owner's permission)
    intrusive: bool = False
    #: worker processes: 1-64, or "auto" (one per core from 2,048 endpoints)
    workers: Workers = "auto"
    #: how open ports are found: "syn" (raw sockets), "connect", or "auto"
    sweep: Sweep = "auto"
    #: order of the endpoints: "sequential" or "spread" (a permutation)
    order: Order = "sequential"
    #: scan only part K of N of the targets ("K/N", K from 0) or "auto" (from Kubernetes /
    #: Slurm); stored resolved as "K/N"; None = all
    shard: str | None = None
    #: look up host names read from ``input_files`` (typed names are always looked up)
    resolve_names: bool = False
    #: MaxMind-format databases adding country/asn/as_org to each record
    geoip: tuple[str, ...] = ()

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "sweep": ("auto", "syn", "connect"),
        "order": ("sequential", "spread"),
    }
    #: fields holding file or folder paths (made absolute by :meth:`resolved`)
    PATHS: ClassVar[tuple[str, ...]] = (
        "input_files",
        "exclude_file",
        "wordlist",
        "evidence",
        "geoip",
        "jsonl",  # a resume from another directory appends to the scan's own file
    )

    # --- checks ------------------------------------------------------------------------------

    def validate(self) -> ScanRequest:
        """Check every value without touching files or the network; returns self.

        Raises the first :class:`ScanRequestError` found (order: ports, targets, numbers,
        choices, AE title). Files, name lookups and outputs are checked when the scan starts
        (:mod:`dicomguard.runner.session`).
        """
        from .targets import TargetError, parse_ports

        for name in ("ports", "web_ports"):
            text = getattr(self, name)
            if text:  # "" is the default, as an empty -p always was
                try:
                    parse_ports(text)
                except TargetError as exc:
                    raise InvalidPortList(str(exc)) from None
        if not any(t.strip() for t in self.targets) and not self.input_files:
            # blank words too: `scan ''` (an empty shell variable) scanned nothing and exited 0
            raise NoTargets("no targets: name addresses, CIDRs or ranges, or use -iL FILE")
        for f in dataclasses.fields(self):
            bound = f.metadata.get("bound")
            value = getattr(self, f.name)
            if bound is not None and not bound.accepts(value):
                raise OptionOutOfRange(f"{flag_of(f.name)}: {bound.message(str(value))}")
        for name, choices in self.CHOICES.items():
            if getattr(self, name) not in choices:
                raise InvalidChoice(
                    f"{flag_of(name)} {getattr(self, name)!r}: one of {', '.join(choices)}"
                )
        w = self.workers
        if w != "auto" and (isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= 64):
            raise InvalidChoice(f"--workers takes 'auto' or a number from 1 to {MAX_WORKERS}")
        aet = self.calling_aet
        if not 1 <= len(aet.strip()) <= 16:
            raise InvalidAETitle("--calling-aet must be 1 to 16 characters")
        if any(not (" " <= c <= "~") or c == "\\" for c in aet):
            # PS3.5 6.2 (AE): default character repertoire without backslash or control chars
            raise InvalidAETitle(
                f"--calling-aet {aet!r}: an AE title is printable ASCII without '\\'"
            )
        return self

    def resolved(self, cwd: Path | None = None) -> ScanRequest:
        """The same request with every path absolute (stdin ``"-"`` kept), as stored for
        resume from another directory."""

        def absolute(p: str) -> str:
            if p == "-":
                return p
            path = Path(p)
            return str((cwd / path).resolve() if cwd is not None else path.resolve())

        changes: dict[str, Any] = {}
        for name in self.PATHS:
            value = getattr(self, name)
            if isinstance(value, tuple):
                changes[name] = tuple(absolute(v) for v in value)
            elif value is not None:
                changes[name] = absolute(value)
        return dataclasses.replace(self, **changes)

    # --- JSON ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"request_version": 1, <field>: value, ...}``, tuples as lists."""
        out: dict[str, Any] = {"request_version": REQUEST_VERSION}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (keys sorted; NaN/infinity refused: ValueError)."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ScanRequest:
        """Inverse of :meth:`to_json`; raises :class:`MalformedRequest` for text that is not
        a JSON object, and what :meth:`from_dict` raises."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise MalformedRequest(f"stored scan options are not JSON ({exc})") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: object) -> ScanRequest:
        """A request from stored JSON of any known version (see the module docstring).

        Types are checked, not values (call :meth:`validate`). Raises
        :class:`MalformedRequest` (wrong shape or types) or :class:`UnsupportedVersion`.
        """
        if not isinstance(data, dict):
            raise MalformedRequest("stored scan options are not a JSON object")
        version = data.get("request_version", 0)
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise MalformedRequest(f"stored scan options: request_version {version!r}")
        if version > REQUEST_VERSION:
            raise UnsupportedVersion(
                f"the scan was stored by a newer dicomguard (request version {version}, this "
                f"one reads up to {REQUEST_VERSION}): resume it with that version"
            )
        known = {f.name: f for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k != "request_version"}
        if version == 0:
            values = _migrate_namespace(values, known)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise MalformedRequest(f"stored scan options: unknown option(s) {', '.join(unknown)}")
        kwargs = {name: _typed(known[name], value) for name, value in values.items()}
        return cls(**kwargs)


def _migrate_namespace(values: dict[str, Any], known: dict[str, Any]) -> dict[str, Any]:
    """Version 0 (the argparse namespace, issue 16) -> version 1's keys and types."""
    out = {k: v for k, v in values.items() if k in known}  # options of its time since dropped
    workers = out.get("workers")
    if isinstance(workers, str) and workers.isdigit():
        out["workers"] = int(workers)
    return out


_TEXT_TUPLES = frozenset({"targets", "input_files", "exclude", "exclude_file", "geoip"})
_OPTIONAL_TEXT = frozenset(
    {"ports", "jsonl", "impersonate", "evidence", "wordlist", "web_ports", "shard"}
)


def _typed(f: Any, value: object) -> Any:
    """``value`` of stored field ``f`` in the field's type; MalformedRequest if it has none."""
    name = f.name

    def bad() -> MalformedRequest:
        return MalformedRequest(f"stored scan options: {name} = {value!r} is not a valid value")

    if name in _TEXT_TUPLES:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise bad()
        return tuple(value)
    if name in _OPTIONAL_TEXT:
        if value is not None and not isinstance(value, str):
            raise bad()
        return value
    if name == "workers":
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise bad()
    default = f.default
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad()
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise bad()
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad()
        return value
    raise bad()  # pragma: no cover - every field is one of the kinds above
