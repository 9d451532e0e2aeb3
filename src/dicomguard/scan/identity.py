"""Who the scanner says it is in its A-ASSOCIATE-RQ: dicomguard, unless the user asks otherwise.

A scan that announces its own implementation class UID (under a 2.25 UUID root) and version name
``DICOMGUARD_<version>`` can be recognised in a server's log and attributed, which is what a
researcher owes the owners of the machines scanned. ``--impersonate PRODUCT`` borrows the
identity of a product listed in data/fingerprints.toml instead; it exists for testing one's own
servers against product-specific rules and is never the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..dul.acse import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME
from ..knowledge.fingerprint import FingerprintDB, FingerprintRule, load_database

__all__ = ["OWN", "Identity", "ImpersonationError", "impersonable", "impersonation"]


@dataclass(frozen=True)
class Identity:
    """Implementation items of our A-ASSOCIATE-RQ; ``impersonating`` names the borrowed product."""

    implementation_class_uid: str
    implementation_version_name: str | None
    impersonating: str | None = None


#: dicomguard's own identity (the default of every scan)
OWN = Identity(IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME)


class ImpersonationError(ValueError):
    """The product named for --impersonate has no usable identity in the fingerprint data."""


_UNESCAPE = re.compile(r"\\(.)")


def _literal(pattern: str | None) -> str | None:
    """The one string a version-name regex matches, when it is a plain literal (else None)."""
    if pattern is None:
        return None
    text = _UNESCAPE.sub(r"\1", pattern)
    if re.fullmatch(pattern, text) and re.escape(text).replace("\\ ", " ") in (pattern, text):
        return text
    return None


def _identity_of(rule: FingerprintRule) -> Identity | None:
    if rule.class_uid is None:
        return None  # prefix or heuristic rules name no single class UID to announce
    regex = rule.version_name_regex.pattern if rule.version_name_regex else None
    return Identity(rule.class_uid, _literal(regex)[:16] if _literal(regex) else None, rule.id)


def impersonable(db: FingerprintDB | None = None) -> dict[str, Identity]:
    """Rule id and product name -> identity, for every rule with an exact class UID."""
    out: dict[str, Identity] = {}
    for rule in (db or load_database()).rules:
        ident = _identity_of(rule)
        if ident is None:
            continue
        out.setdefault(rule.id.lower(), ident)
        # the product name picks its most specific rule (a version name beats none)
        current = out.get(rule.product.lower())
        if current is None or (
            current.implementation_version_name is None and ident.implementation_version_name
        ):
            out[rule.product.lower()] = ident
    return out


def impersonation(name: str, db: FingerprintDB | None = None) -> Identity:
    """The identity of a product (or fingerprint rule id) from fingerprints.toml."""
    table = impersonable(db)
    ident = table.get(name.strip().lower())
    if ident is None:
        raise ImpersonationError(
            f"no exact identity for {name!r} in fingerprints.toml; one of: "
            + ", ".join(sorted(table))
        )
    return Identity(ident.implementation_class_uid, ident.implementation_version_name, name)
