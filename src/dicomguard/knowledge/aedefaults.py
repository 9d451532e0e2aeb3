"""Vendor-default AE titles (data/ae_defaults.toml): tried before generic words.

A server that checks AE titles most often still uses its product's default, or admits the default
calling title of the tools its staff use, so these few titles find most checks cheaply. The data
file cites a source for every title; this module only loads and validates it and merges the
called titles in front of the generic wordlist.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

__all__ = [
    "AeDefault",
    "AeDefaults",
    "default_called_titles",
    "default_calling_titles",
    "load_ae_defaults",
    "load_wordlist",
    "merge_titles",
]


@dataclass(frozen=True)
class AeDefault:
    title: str
    product: str
    source: str


@dataclass(frozen=True)
class AeDefaults:
    called: tuple[AeDefault, ...]
    calling: tuple[AeDefault, ...]

    @property
    def called_titles(self) -> tuple[str, ...]:
        return tuple(d.title for d in self.called)

    @property
    def calling_titles(self) -> tuple[str, ...]:
        return tuple(d.title for d in self.calling)


def _entries(doc: dict[str, Any], key: str, origin: str) -> tuple[AeDefault, ...]:
    out = []
    for i, e in enumerate(doc.get(key, [])):
        where = f"{origin}: {key}[{i}]"
        if not isinstance(e, dict) or set(e) != {"title", "product", "source"}:
            raise ValueError(f"{where}: needs exactly title, product and source")
        title = e["title"]
        if not isinstance(title, str) or not 1 <= len(title.strip()) <= 16:
            raise ValueError(f"{where}: title must be 1 to 16 characters")
        if not str(e["source"]).strip():
            raise ValueError(f"{where}: source must say where the title comes from")
        out.append(AeDefault(title.strip(), str(e["product"]), str(e["source"])))
    return tuple(out)


def parse_ae_defaults(text: str, origin: str = "<string>") -> AeDefaults:
    doc = tomllib.loads(text)
    if doc.get("schema_version") != 1:
        raise ValueError(f"{origin}: schema_version must be 1")
    return AeDefaults(_entries(doc, "called", origin), _entries(doc, "calling", origin))


@lru_cache(maxsize=1)
def load_ae_defaults() -> AeDefaults:
    """The packaged defaults (validated once per process)."""
    text = resources.files("dicomguard").joinpath("data/ae_defaults.toml").read_text("utf-8")
    return parse_ae_defaults(text, "dicomguard/data/ae_defaults.toml")


def merge_titles(first: tuple[str, ...], then: tuple[str, ...]) -> tuple[str, ...]:
    """``first`` in order, then the titles of ``then`` not already tried."""
    return tuple(dict.fromkeys((*first, *then)))


def load_wordlist(text: str | None = None) -> tuple[str, ...]:
    """Called-AE guesses: the packaged list, or the given file's text; comments dropped."""
    if text is None:
        text = resources.files("dicomguard").joinpath("data/aet_wordlist.txt").read_text()
    words = []
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip()
        if word and len(word) <= 16 and word not in words:
            words.append(word)
    return tuple(words)


def default_called_titles() -> tuple[str, ...]:
    """Vendor defaults (data/ae_defaults.toml) first, then the generic wordlist."""
    return merge_titles(load_ae_defaults().called_titles, load_wordlist())


def default_calling_titles() -> tuple[str, ...]:
    """Calling titles servers commonly admit (data/ae_defaults.toml), tried on reason 3."""
    return load_ae_defaults().calling_titles
