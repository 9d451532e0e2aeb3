"""The terminal summary people read at the end of a scan (rich tables, plain text off a TTY)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table

from ..scan.findings import catalog, severity_rank
from ..scan.honeypot import classify
from .stats import counted_exposure

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def _services(s: dict[str, bool]) -> str:
    short = {
        "verification": "echo",
        "find_patient_root": "find-P",
        "find_study_root": "find-S",
        "move": "move",
        "get": "get",
        "worklist": "mwl",
        "mpps": "mpps",
        "storage_commitment": "commit",
        "storage": "store",
    }
    return " ".join(v for k, v in short.items() if s.get(k)) or "-"


def _refused(r: dict) -> str:
    """Services negotiated but refused to a stranger per operation, e.g. " (refused: find-S)"."""
    ops = r.get("operations") or {}
    names = [n for n in ops if ops[n].get("state") == "refused"]
    if not names:
        return ""
    short = {"find_patient_root": "find-P", "find_study_root": "find-S", "worklist": "mwl",
             "verification": "echo"}
    return " (refused: " + " ".join(short.get(n, n) for n in names) + ")"


def worst(findings: list[dict[str, Any]]) -> str | None:
    sev = [f["severity"] for f in findings]
    return max(sev, key=severity_rank) if sev else None


def render_summary(
    records: Iterable[dict[str, Any]], stats: dict[str, Any], console: Console | None = None
) -> None:
    """Print endpoint table, headline figures and each finding with its remediation."""
    console = console or Console(stderr=False)
    if not console.is_terminal:
        console.width = max(console.width, 150)  # logs and pipes: don't squeeze the table
    recs = [r for r in records if r.get("state", "open") == "open"]
    dicom = [r for r in recs if r.get("dicom")]
    table = Table(title="DICOM endpoints", show_lines=False, header_style="bold")
    for col in (
        "endpoint",
        "product",
        "tls",
        "called AE",
        "calling AE",
        "user id",
        "services",
        "exposure",
        "worst",
    ):
        table.add_column(col)
    for r in sorted(dicom, key=lambda r: (r["host"], r["port"])):
        called = r["called_aet"]
        called_txt = (
            "any"
            if not called.get("enforced") and called.get("verified")
            else (
                f"guessed {called['accepted']}"
                if called.get("accepted")
                else ("enforced" if called.get("enforced") else "?")
            )
        )
        calling = r["calling_aet"]
        calling_txt = (
            "enforced"
            if calling.get("enforced")
            else (
                "per operation"
                if calling.get("per_operation")
                else ("any" if calling.get("verified") else "?")
            )
        )
        ui = r["user_identity"]
        ui_txt = (
            "any " + ui["accepted_with"]
            if ui.get("accepted_with")
            else ("required" if ui.get("required") else "none")
        )
        if r.get("dicom_likelihood"):  # behind a TLS client certificate: nothing was seen
            ui_txt = "?"
        exp = r.get("exposure") or {}
        exp_txt = "-"
        if exp.get("studies") is not None or exp.get("patients") is not None:
            plus = "" if exp.get("complete", True) else "+"
            exp_txt = f"{exp.get('patients') or 0}{plus} pat / {exp.get('studies') or 0}{plus} st"
        w = worst(r.get("findings", []))
        product = " ".join(x for x in (r.get("product"), r.get("product_version")) if x) or (
            r.get("implementation_version_name") or "?"
        )
        table.add_row(
            f"{r['host']}:{r['port']}",
            product,
            "yes" if r.get("tls") else "[red]no[/]",
            called_txt,
            calling_txt,
            ui_txt,
            _services(r.get("services", {})) + _refused(r),
            exp_txt,
            f"[{SEVERITY_STYLE[w]}]{w}[/]" if w else "-",
        )
    if dicom:
        console.print(table)
    other = [r for r in recs if not r.get("dicom")]
    # silence is "DICOM unknown" (DG-016), never "not DICOM"
    silent = [r for r in other if (r.get("error") or "").startswith("silent")]
    spoke = [r for r in other if r not in silent]
    for group, label in ((spoke, "did not speak DICOM"), (silent, "stayed silent (DICOM unknown)")):
        if not group:
            continue
        console.print(
            f"[dim]{len(group)} open port(s) {label}:[/] "
            + ", ".join(
                f"{r['host']}:{r['port']} ({(r.get('error') or '?').split(':')[0]})"
                for r in group[:12]
            )
            + (" ..." if len(group) > 12 else "")
        )

    counts: Counter[str] = Counter(f["id"] for r in recs for f in r.get("findings", []))
    cat = catalog()
    if counts:
        console.print()
        console.print("[bold]Findings[/] (endpoints affected, remediation)")
        for fid in sorted(counts, key=lambda i: (-severity_rank(cat[i].severity), i)):
            d = cat[fid]
            console.print(
                f"  [{SEVERITY_STYLE[d.severity]}]{d.severity:>8}[/] {fid} x{counts[fid]}: "
                f"[bold]{d.title}[/]"
            )
            console.print(f"           [dim]fix:[/] {d.remediation}", highlight=False)

    leaking = [r for r in dicom if (r.get("exposure") or {}).get("studies")]
    patients = sum(counted_exposure(r).get("patients") or 0 for r in leaking)
    studies = sum(counted_exposure(r).get("studies") or 0 for r in leaking)
    console.print()
    states = stats.get("states", {})
    console.print(
        f"[bold]Scanned[/] {stats.get('endpoints', 0)} endpoint(s) "
        f"in {stats.get('elapsed', 0):.1f}s"
        f" ({stats.get('rate', 0):.0f}/s): {states.get('open', 0)} open, "
        f"{states.get('closed', 0)} closed, {states.get('filtered', 0)} filtered; "
        f"[bold]{len(dicom)}[/] DICOM ({sum(1 for r in dicom if r.get('tls'))} TLS), "
        f"{len(leaking)} leaking {patients} patients / {studies} studies."
    )
    _print_classes(dicom, console)


def _print_classes(dicom: list[dict[str, Any]], console: Console) -> None:
    """Confirmed / likely / flagged counts, so nobody publishes a honeypot as a hospital."""
    if not dicom:
        return
    c = classify(dicom)
    counts = c["counts"]
    console.print(
        f"[bold]Of {len(dicom)} DICOM:[/] {counts['confirmed']} confirmed, "
        f"{counts['likely']} likely, [magenta]{counts['flagged']} flagged as honeypots[/]"
        + (f"; {len(c['clusters'])} cluster(s) of identical endpoints" if c["clusters"] else "")
    )
    for ep, v in sorted(c["endpoints"].items()):
        if v["category"] == "flagged":
            ids = ", ".join(s["id"] for s in v["honeypot"]["signals"])
            console.print(f"  [magenta]flagged[/] {ep} ({v['honeypot']['confidence']}): {ids}")
