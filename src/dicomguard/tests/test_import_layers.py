"""The parts of dicomguard import each other only downwards (docs/ARCHITECTURE.md, "Layers").

::

    cli, every part's __main__          entry points: may import any part but the test kit
    runner                              use cases joining the parts: the scan session, merge
    testing                             test kit: any part but the entry points
    scan    report    gateway    lab    the four uses; none imports another of the four
      |       |  \\       |       |
      |       |   store   |       |     report reads scans through store
      |       |  /        |       |
      +-------+-- knowledge ------+     DICOM knowledge: fingerprints, findings, SOP classes,
                     |                  AE-title defaults, verdict names, synthetic patients
                    dul                 DICOM upper layer (PS3.8) and DIMSE (PS3.7), both roles
    geoip: no part; report and cli use it.   dicomguard/__init__ (__version__): anyone.
    tokenbucket: no part; scan (connection rate) and gateway (operation rate) share it.

The rule is checked on the package's own modules, ``tests`` folders and the pytest
``conftest.py`` excluded: tests may drive any part as a peer (a scan test starts a lab fleet).
Every ``import`` and ``from ... import`` counts, also inside functions and under
``TYPE_CHECKING``: a lazy import is still a dependency. Relative imports are resolved against the
importing module. A new top-level part (a folder or module under ``dicomguard/``) fails this test
until it is given its place in ``ALLOWED``: where it sits is a decision, not an accident.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]

#: part -> the other parts its modules may import (itself and the root package always)
ALLOWED: dict[str, frozenset[str]] = {
    "dul": frozenset(),
    "knowledge": frozenset({"dul"}),
    "geoip": frozenset(),
    "tokenbucket": frozenset(),
    "store": frozenset({"knowledge"}),
    "scan": frozenset({"dul", "knowledge", "tokenbucket"}),
    "report": frozenset({"knowledge", "store", "geoip"}),
    "gateway": frozenset({"dul", "knowledge", "tokenbucket"}),
    "lab": frozenset({"dul", "knowledge"}),
    "testing": frozenset(
        {"dul", "knowledge", "geoip", "tokenbucket", "store", "scan", "report", "gateway", "lab",
         "runner"}
    ),
    "runner": frozenset({"dul", "knowledge", "geoip", "tokenbucket", "store", "scan", "report"}),
    "cli": frozenset(
        {"dul", "knowledge", "geoip", "tokenbucket", "store", "scan", "report", "gateway", "lab",
         "runner"}
    ),
}
#: modules directly under dicomguard/ that are not parts
NOT_PARTS = {"__init__", "conftest"}


def _module_name(path: Path) -> tuple[str, ...]:
    parts = ("dicomguard", *path.relative_to(PACKAGE).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _part(module: tuple[str, ...]) -> str | None:
    """The part a module belongs to; ``__main__`` modules are entry points (part "cli")."""
    if module[-1] == "__main__":
        return "cli"
    return module[1] if len(module) > 1 else None


def _imported(
    source: str, module: tuple[str, ...], is_package: bool
) -> list[tuple[int, tuple[str, ...]]]:
    """(line, absolute module) of every dicomguard import in ``source``, in line order."""
    package = module if is_package else module[:-1]
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [tuple(a.name.split(".")) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else ()
            base = (*base, *(node.module.split(".") if node.module else ()))
            # ``from . import scan`` names a module, ``from .x import name`` a name in x
            targets = [base] if node.module else [(*base, a.name) for a in node.names]
        else:
            continue
        out += [(node.lineno, t) for t in targets if t[:1] == ("dicomguard",)]
    return sorted(out)


def _violations(modules: list[tuple[str, tuple[str, ...], bool, str]]) -> list[str]:
    """One line per import that breaks ``ALLOWED``; ``modules`` as (where, name, is_package,
    source)."""
    out = []
    for where, module, is_package, source in modules:
        part = _part(module)
        for line, target in _imported(source, module, is_package):
            if len(target) == 1 or target[1] == "__version__":
                continue  # the root package: metadata only (checked below)
            other = _part(target)
            if part is None or other == part:
                continue
            if other not in ALLOWED.get(part, frozenset()):
                out.append(f"{where}:{line}: {part} imports {'.'.join(target)}")
    return out


def _package_modules() -> list[tuple[str, tuple[str, ...], bool, str]]:
    return [
        (
            str(p.relative_to(PACKAGE.parent)),
            _module_name(p),
            p.name == "__init__.py",
            p.read_text(encoding="utf-8"),
        )
        for p in sorted(PACKAGE.rglob("*.py"))
        if "tests" not in p.relative_to(PACKAGE).parts and p.name != "conftest.py"
    ]


def test_every_part_has_a_place_in_the_layers() -> None:
    parts = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and p.name != "tests"
    } - NOT_PARTS
    parts.discard("__main__")
    assert parts - set(ALLOWED) == set(), "give each new part its place in ALLOWED"


def test_parts_import_only_the_layers_below_them() -> None:
    violations = _violations(_package_modules())
    assert not violations, "\n".join(violations)


def test_the_root_package_imports_no_part() -> None:
    """``dicomguard/__init__.py`` holds metadata only, so importing it from dul costs nothing."""
    init = PACKAGE / "__init__.py"
    assert _imported(init.read_text(encoding="utf-8"), ("dicomguard",), True) == []


def test_the_checker_sees_lazy_relative_and_dotted_imports() -> None:
    """A relative import two levels up inside a function, ``from . import x`` and a dotted
    absolute import all name their module, and each breach is reported with its line."""
    source = (
        "from . import sibling\n"
        "def f():\n"
        "    from ..lab.fleet import Fleet\n"
        "import dicomguard.report.html\n"
        "from ..knowledge import findings\n"
    )
    module = ("dicomguard", "scan", "probe")
    assert [t for _, t in _imported(source, module, False)] == [
        ("dicomguard", "scan", "sibling"),
        ("dicomguard", "lab", "fleet"),
        ("dicomguard", "report", "html"),
        ("dicomguard", "knowledge"),  # ``from pkg import name``: the package is enough
    ]
    assert _violations([("scan/probe.py", module, False, source)]) == [
        "scan/probe.py:3: scan imports dicomguard.lab.fleet",
        "scan/probe.py:4: scan imports dicomguard.report.html",
    ]
    entry = ("dicomguard", "lab", "__main__")  # an entry point may import the CLI
    assert _violations([("lab/__main__.py", entry, False, "from ..cli.lab import main\n")]) == []


#: modules that do network or process I/O; knowledge/ is data and pure functions
IO_MODULES = frozenset(
    {"asyncio", "socket", "ssl", "selectors", "subprocess", "http", "urllib", "multiprocessing"}
)


def test_the_knowledge_layer_does_no_network_or_process_io() -> None:
    """knowledge/ reads its packaged data files and nothing else: every part can use it
    without opening a socket or starting a process (its only dul import is a constant)."""
    found = []
    for path in sorted((PACKAGE / "knowledge").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
            found += [f"{path.name}:{node.lineno}: {n}" for n in names
                      if n.split(".")[0] in IO_MODULES]
    assert not found, "\n".join(found)
