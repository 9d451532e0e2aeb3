"""Country and autonomous-system enrichment from MaxMind-format databases the user supplies.

``--geoip FILE.mmdb`` (repeatable: a country database and an ASN database are separate files
at MaxMind) adds three top-level fields to each record (docs/scan-output.md):

* ``country``: ISO 3166-1 alpha-2 code, from ``country.iso_code`` (GeoLite2/GeoIP2 Country
  and City), else ``registered_country.iso_code``, else a flat ``country_code`` (IPinfo,
  DB-IP style databases);
* ``asn``: int, from ``autonomous_system_number`` (GeoLite2 ASN) or ``asn`` (``"AS64500"`` or
  an int);
* ``as_org``: str, from ``autonomous_system_organization``, ``as_name`` or ``as_org``.

Each is null when unknown (no database of that kind, address not in it, a host name). The
first database that knows a field wins. Read with the maxminddb library (MODE_AUTO: its C
extension when available). No database ships with dicomguard: it needs a licence from its
vendor, and lookups happen offline on this machine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["GEO_FIELDS", "GeoIP", "GeoIPError"]

#: the fields added to every record, null when unknown
GEO_FIELDS = ("country", "asn", "as_org")


class GeoIPError(Exception):
    """A database file cannot be opened or is not in MaxMind DB format."""


def _country(rec: dict[str, Any]) -> str | None:
    for key in ("country", "registered_country"):
        node = rec.get(key)
        if isinstance(node, dict) and isinstance(node.get("iso_code"), str):
            return node["iso_code"].upper()
    code = rec.get("country_code")
    if isinstance(code, str) and len(code) == 2:
        return code.upper()
    if isinstance(rec.get("country"), str) and len(rec["country"]) == 2:
        return rec["country"].upper()
    return None


def _asn(rec: dict[str, Any]) -> int | None:
    for key in ("autonomous_system_number", "asn"):
        value = rec.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            digits = value.upper().removeprefix("AS")
            if digits.isdigit():
                return int(digits)
    return None


def _as_org(rec: dict[str, Any]) -> str | None:
    for key in ("autonomous_system_organization", "as_name", "as_org", "as_organization"):
        if isinstance(rec.get(key), str) and rec[key]:
            return str(rec[key])
    return None


class GeoIP:
    """One or more MaxMind DB files, looked up in order. Close it (or use ``with``)."""

    def __init__(self, paths: Sequence[str | Path]) -> None:
        import maxminddb

        self.paths = [str(p) for p in paths]
        self._readers: list[Any] = []
        for path in self.paths:
            try:
                self._readers.append(maxminddb.open_database(path))
            except FileNotFoundError:
                self.close()
                raise GeoIPError(f"--geoip {path}: no such file") from None
            except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
                self.close()
                raise GeoIPError(f"--geoip {path}: not a MaxMind DB file ({exc})") from None
        self._cache: dict[str, dict[str, Any]] = {}

    def lookup(self, host: str) -> dict[str, Any]:
        """``{"country", "asn", "as_org"}`` for an address (all None for a name/unknown)."""
        found = self._cache.get(host)
        if found is not None:
            return found
        out: dict[str, Any] = dict.fromkeys(GEO_FIELDS)
        try:
            addr = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            return out
        for reader in self._readers:
            try:
                rec = reader.get(addr)
            except ValueError:  # an IPv6 address in an IPv4-only database
                continue
            if not isinstance(rec, dict):
                continue
            for field, pick in (("country", _country), ("asn", _asn), ("as_org", _as_org)):
                if out[field] is None:
                    out[field] = pick(rec)
        if len(self._cache) < 65536:  # scans list each host once per port: a small cache
            self._cache[host] = out
        return out

    def enrich(self, record: dict[str, Any]) -> dict[str, Any]:
        """Set the three fields of ``record`` (in place) from its ``host``; returns it."""
        record.update(self.lookup(str(record.get("host", ""))))
        return record

    def enrich_all(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            self.enrich(rec)

    def close(self) -> None:
        for reader in self._readers:
            reader.close()
        self._readers = []

    def __enter__(self) -> GeoIP:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
