"""Map what a DICOM server says about itself in its A-ASSOCIATE-AC to a product and version.

The acceptor's User Information carries an Implementation Class UID (mandatory per PS3.7 D.3.3.2),
usually an Implementation Version Name, and a Maximum Length. Toolkits fill these with constants
that encode the product and often its release, so they are the cheapest identification a scanner
gets: one association, no DIMSE traffic. The knowledge lives in
``dicomguard/data/fingerprints.toml`` (every entry cites where its values come from); this module
only loads, validates and matches it.

Usage::

    from dicomguard.knowledge.fingerprint import load_database
    fp = load_database().match("1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", 16384)
    fp.product, fp.product_version, fp.confidence   # ("DCMTK", "3.6.7", "exact")
"""

from __future__ import annotations

import datetime as _dt
import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "Fingerprint",
    "FingerprintDB",
    "FingerprintDBError",
    "FingerprintRule",
    "ProductInfo",
    "ProductRelease",
    "load_database",
]

SCHEMA_VERSION = 1

# Confidence levels, strongest first. "exact": an exact class UID or a version-name pattern matched;
# "prefix": only a UID prefix matched (a product built on the toolkit may have changed the name);
# "heuristic": only indirect evidence (absent UID, PDU size); "unknown": nothing matched.
CONFIDENCE_EXACT = "exact"
CONFIDENCE_PREFIX = "prefix"
CONFIDENCE_HEURISTIC = "heuristic"
CONFIDENCE_UNKNOWN = "unknown"

_VERSION_SOURCES = ("class_uid_suffix", "version_name")
_VERSION_SUFFIX_RE = re.compile(r"\d+(?:\.\d+)*")

_FINGERPRINT_KEYS = {
    "id",
    "product",
    "vendor",
    "source",
    "notes",
    "embedded_in",
    "honeypot",
    "version_from",
    "version_format",
    "match",
}
_MATCH_KEYS = {"class_uid", "class_uid_prefix", "class_uid_absent", "version_name_regex", "max_pdu"}
_PRODUCT_KEYS = {"name", "vendor", "source", "notes", "release"}
_RELEASE_KEYS = {"version", "released", "end_of_life", "cves", "source", "notes"}


class FingerprintDBError(ValueError):
    """The fingerprint data file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Fingerprint:
    """Result of matching one A-ASSOCIATE-AC against the database.

    ``product`` is None when nothing matched (``confidence == "unknown"``). ``honeypot`` marks
    entries for known decoy servers, so a report can say the finding is probably a trap.
    """

    product: str | None
    product_version: str | None
    vendor: str | None
    confidence: str
    rule_id: str | None
    honeypot: bool = False
    embedded_in: tuple[str, ...] = ()
    notes: str | None = None


@dataclass(frozen=True)
class FingerprintRule:
    """One ``[[fingerprint]]`` entry, validated and with its regex compiled."""

    id: str
    product: str
    vendor: str | None
    sources: tuple[str, ...]
    notes: str | None
    embedded_in: tuple[str, ...]
    honeypot: bool
    version_from: tuple[str, ...]
    version_format: str | None
    class_uid: str | None
    class_uid_prefix: str | None
    class_uid_absent: bool
    version_name_regex: re.Pattern[str] | None
    max_pdu: int | None

    @property
    def specificity(self) -> int:
        """Rank used to prefer one matching rule over another (higher wins).

        Weights make "exact UID + version name" beat "exact UID" beat "version name" beat
        "UID prefix" beat heuristics, as the data file's header promises.
        """
        score = 0
        if self.class_uid is not None:
            score += 8
        if self.version_name_regex is not None:
            score += 4
        if self.class_uid_prefix is not None:
            score += 2
        if self.class_uid_absent:
            score += 1
        if self.max_pdu is not None:
            score += 1
        return score

    @property
    def confidence(self) -> str:
        if self.class_uid is not None or self.version_name_regex is not None:
            return CONFIDENCE_EXACT
        if self.class_uid_prefix is not None:
            return CONFIDENCE_PREFIX
        return CONFIDENCE_HEURISTIC

    def matches(
        self, uid: str | None, name: str | None, max_pdu: int | None
    ) -> re.Match[str] | bool:
        """True (or the version-name match object) when every criterion holds."""
        if self.class_uid is not None and uid != self.class_uid:
            return False
        if self.class_uid_prefix is not None and (
            uid is None or not uid.startswith(self.class_uid_prefix)
        ):
            return False
        if self.class_uid_absent and uid is not None:
            return False
        if self.max_pdu is not None and max_pdu != self.max_pdu:
            return False
        if self.version_name_regex is not None:
            if name is None:
                return False
            m = self.version_name_regex.fullmatch(name)
            return m if m is not None else False
        return True

    def derive_version(self, uid: str | None, name_match: re.Match[str] | None) -> str | None:
        """Version from the sources listed in ``version_from``, first one that yields a value."""
        for how in self.version_from:
            if how == "class_uid_suffix" and uid is not None and self.class_uid_prefix:
                suffix = uid[len(self.class_uid_prefix) :]
                if _VERSION_SUFFIX_RE.fullmatch(suffix):
                    return suffix
            elif how == "version_name" and name_match is not None:
                version = self._format_version(name_match)
                if version:
                    return version
        return None

    def _format_version(self, m: re.Match[str]) -> str | None:
        groups = m.groupdict()
        if self.version_format is not None:
            try:
                return self.version_format.format(**groups)
            except (KeyError, IndexError):
                return None
        if groups.get("version"):
            return groups["version"]
        return m.group(1) if m.re.groups else None


@dataclass(frozen=True)
class ProductRelease:
    """Optional per-release facts (filled by a later task: release year, end of life, CVEs)."""

    version: str
    released: int | _dt.date | None = None
    end_of_life: int | _dt.date | None = None
    cves: tuple[str, ...] = ()
    source: str | None = None
    notes: str | None = None


@dataclass(frozen=True)
class ProductInfo:
    """Optional ``[[product]]`` table: metadata keyed by the product name used in fingerprints."""

    name: str
    vendor: str | None = None
    source: str | None = None
    notes: str | None = None
    releases: tuple[ProductRelease, ...] = ()

    def release(self, version: str | None) -> ProductRelease | None:
        return next((r for r in self.releases if r.version == version), None)


@dataclass(frozen=True)
class FingerprintDB:
    """Validated fingerprint rules plus optional product metadata."""

    rules: tuple[FingerprintRule, ...]
    products: dict[str, ProductInfo] = field(default_factory=dict)
    path: str = "<memory>"
    #: answers already worked out: a scan meets the same few identities thousands of times
    _memo: dict[tuple[Any, ...], Fingerprint] = field(
        default_factory=dict, compare=False, repr=False
    )

    def match(
        self,
        implementation_class_uid: str | None,
        implementation_version_name: str | None,
        max_pdu: int | None = None,
    ) -> Fingerprint:
        """Best fingerprint for the values an acceptor announced; product None when unknown."""
        key = (implementation_class_uid, implementation_version_name, max_pdu)
        known = self._memo.get(key)
        if known is None:
            known = self._match(implementation_class_uid, implementation_version_name, max_pdu)
            if len(self._memo) < 4096:  # bounded: a hostile fleet may announce anything
                self._memo[key] = known
        return known

    def _match(
        self,
        implementation_class_uid: str | None,
        implementation_version_name: str | None,
        max_pdu: int | None,
    ) -> Fingerprint:
        uid = _clean(implementation_class_uid)
        name = _clean(implementation_version_name)
        best: tuple[int, FingerprintRule, re.Match[str] | None] | None = None
        for rule in self.rules:
            hit = rule.matches(uid, name, max_pdu)
            if hit is False:
                continue
            # Strictly greater keeps the first rule in file order on a tie.
            if best is None or rule.specificity > best[0]:
                best = (rule.specificity, rule, hit if isinstance(hit, re.Match) else None)
        if best is None:
            return Fingerprint(None, None, None, CONFIDENCE_UNKNOWN, None)
        _, rule, name_match = best
        return Fingerprint(
            product=rule.product,
            product_version=rule.derive_version(uid, name_match),
            vendor=rule.vendor,
            confidence=rule.confidence,
            rule_id=rule.id,
            honeypot=rule.honeypot,
            embedded_in=rule.embedded_in,
            notes=rule.notes,
        )

    def product(self, name: str) -> ProductInfo | None:
        """Metadata for a product name, when the data file has a ``[[product]]`` table for it."""
        return self.products.get(name)


def _clean(value: Any) -> str | None:
    """Normalise a value as it comes off the wire: UIDs may be NUL padded, names space padded."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    text = str(value).strip(" \x00")
    return text or None


@lru_cache(maxsize=8)
def _load_cached(path: str | None) -> FingerprintDB:
    if path is None:
        ref = resources.files("dicomguard").joinpath("data", "fingerprints.toml")
        text = ref.read_text(encoding="utf-8")
        return parse_database(text, origin="dicomguard/data/fingerprints.toml")
    p = Path(path)
    return parse_database(p.read_text(encoding="utf-8"), origin=str(p))


def load_database(path: Path | None = None) -> FingerprintDB:
    """Load (once per path) and validate the fingerprint database; default is the packaged file."""
    return _load_cached(None if path is None else str(Path(path).resolve()))


def parse_database(text: str, origin: str = "<string>") -> FingerprintDB:
    """Parse and validate TOML text; raises FingerprintDBError naming the offending entry."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FingerprintDBError(f"{origin}: not valid TOML: {exc}") from exc
    unknown = set(doc) - {"schema_version", "fingerprint", "product"}
    if unknown:
        raise FingerprintDBError(f"{origin}: unknown top-level keys {sorted(unknown)}")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise FingerprintDBError(
            f"{origin}: schema_version must be {SCHEMA_VERSION}, got {doc.get('schema_version')!r}"
        )
    entries = doc.get("fingerprint")
    if not isinstance(entries, list) or not entries:
        raise FingerprintDBError(f"{origin}: needs at least one [[fingerprint]] table")
    rules: list[FingerprintRule] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        rule = _parse_rule(entry, f"{origin}: fingerprint[{index}]")
        if rule.id in seen:
            raise FingerprintDBError(f"{origin}: fingerprint[{index}]: duplicate id {rule.id!r}")
        seen.add(rule.id)
        rules.append(rule)
    products: dict[str, ProductInfo] = {}
    for index, entry in enumerate(doc.get("product", [])):
        info = _parse_product(entry, f"{origin}: product[{index}]")
        if info.name in products:
            raise FingerprintDBError(f"{origin}: product[{index}]: duplicate name {info.name!r}")
        products[info.name] = info
    return FingerprintDB(rules=tuple(rules), products=products, path=origin)


def _parse_rule(entry: Any, where: str) -> FingerprintRule:
    if not isinstance(entry, dict):
        raise FingerprintDBError(f"{where}: must be a table")
    rid = entry.get("id")
    if isinstance(rid, str) and rid:
        where = f"{where} (id={rid!r})"
    _no_unknown(entry, _FINGERPRINT_KEYS, where)
    rid = _req_str(entry, "id", where)
    product = _req_str(entry, "product", where)
    vendor = _opt_str(entry, "vendor", where)
    notes = _opt_str(entry, "notes", where)
    sources = _str_list(entry.get("source"), "source", where)
    if not sources:
        raise FingerprintDBError(f"{where}: 'source' is required: say where the values come from")
    embedded_in = _str_list(entry.get("embedded_in", []), "embedded_in", where)
    honeypot = entry.get("honeypot", False)
    if not isinstance(honeypot, bool):
        raise FingerprintDBError(f"{where}: 'honeypot' must be true or false")
    version_from = _str_list(entry.get("version_from", []), "version_from", where)
    for how in version_from:
        if how not in _VERSION_SOURCES:
            raise FingerprintDBError(
                f"{where}: version_from value {how!r} is not one of {list(_VERSION_SOURCES)}"
            )
    version_format = _opt_str(entry, "version_format", where)

    match = entry.get("match")
    if not isinstance(match, dict) or not match:
        raise FingerprintDBError(f"{where}: needs a non-empty [fingerprint.match] table")
    _no_unknown(match, _MATCH_KEYS, f"{where}.match")
    class_uid = _opt_str(match, "class_uid", where)
    prefix = _opt_str(match, "class_uid_prefix", where)
    absent = match.get("class_uid_absent", False)
    if not isinstance(absent, bool):
        raise FingerprintDBError(f"{where}: match.class_uid_absent must be true or false")
    if sum([class_uid is not None, prefix is not None, absent]) > 1:
        raise FingerprintDBError(
            f"{where}: use only one of match.class_uid, match.class_uid_prefix, "
            "match.class_uid_absent"
        )
    max_pdu = match.get("max_pdu")
    bad_pdu = isinstance(max_pdu, bool) or not isinstance(max_pdu, int) or max_pdu < 0
    if max_pdu is not None and bad_pdu:
        raise FingerprintDBError(f"{where}: match.max_pdu must be a non-negative integer")
    regex_text = _opt_str(match, "version_name_regex", where)
    regex = None
    if regex_text is not None:
        try:
            regex = re.compile(regex_text)
        except re.error as exc:
            raise FingerprintDBError(
                f"{where}: bad version_name_regex {regex_text!r}: {exc}"
            ) from exc
    if "class_uid_suffix" in version_from and prefix is None:
        raise FingerprintDBError(
            f"{where}: version_from 'class_uid_suffix' needs match.class_uid_prefix"
        )
    if "version_name" in version_from:
        if regex is None:
            raise FingerprintDBError(
                f"{where}: version_from 'version_name' needs match.version_name_regex"
            )
        if version_format is None and regex.groups == 0:
            raise FingerprintDBError(
                f"{where}: version_name_regex needs a capture group to derive the version"
            )
        if version_format is not None:
            missing = set(re.findall(r"{(\w+)}", version_format)) - set(regex.groupindex)
            if missing:
                raise FingerprintDBError(
                    f"{where}: version_format refers to groups {sorted(missing)} not in the regex"
                )
    return FingerprintRule(
        id=rid,
        product=product,
        vendor=vendor,
        sources=sources,
        notes=notes,
        embedded_in=embedded_in,
        honeypot=honeypot,
        version_from=version_from,
        version_format=version_format,
        class_uid=class_uid,
        class_uid_prefix=prefix,
        class_uid_absent=absent,
        version_name_regex=regex,
        max_pdu=max_pdu,
    )


def _parse_product(entry: Any, where: str) -> ProductInfo:
    if not isinstance(entry, dict):
        raise FingerprintDBError(f"{where}: must be a table")
    _no_unknown(entry, _PRODUCT_KEYS, where)
    name = _req_str(entry, "name", where)
    releases: list[ProductRelease] = []
    raw_releases = entry.get("release", [])
    if not isinstance(raw_releases, list):
        raise FingerprintDBError(f"{where}: 'release' must be an array of tables")
    for i, rel in enumerate(raw_releases):
        rwhere = f"{where}.release[{i}]"
        if not isinstance(rel, dict):
            raise FingerprintDBError(f"{rwhere}: must be a table")
        _no_unknown(rel, _RELEASE_KEYS, rwhere)
        for key in ("released", "end_of_life"):
            value = rel.get(key)
            bad = isinstance(value, bool) or not isinstance(value, int | _dt.date)
            if value is not None and bad:
                raise FingerprintDBError(f"{rwhere}: {key!r} must be a year or a date")
        releases.append(
            ProductRelease(
                version=_req_str(rel, "version", rwhere),
                released=rel.get("released"),
                end_of_life=rel.get("end_of_life"),
                cves=_str_list(rel.get("cves", []), "cves", rwhere),
                source=_opt_str(rel, "source", rwhere),
                notes=_opt_str(rel, "notes", rwhere),
            )
        )
    return ProductInfo(
        name=name,
        vendor=_opt_str(entry, "vendor", where),
        source=_opt_str(entry, "source", where),
        notes=_opt_str(entry, "notes", where),
        releases=tuple(releases),
    )


def _no_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    # Unknown keys are almost always typos ("class_uid_prefx") that would silently widen a rule.
    unknown = set(table) - allowed
    if unknown:
        raise FingerprintDBError(
            f"{where}: unknown keys {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _req_str(table: dict[str, Any], key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise FingerprintDBError(f"{where}: {key!r} is required and must be a non-empty string")
    return value


def _opt_str(table: dict[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise FingerprintDBError(f"{where}: {key!r} must be a non-empty string")
    return value


def _str_list(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise FingerprintDBError(
            f"{where}: {key!r} must be a string or a list of non-empty strings"
        )
    return tuple(value)
