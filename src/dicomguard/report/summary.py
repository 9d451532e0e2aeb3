"""The terminal summary people read at the end of a scan (rich tables, plain text off a TTY)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..knowledge.findings import catalog, severity_rank
from ..knowledge.honeypot import classify
from . import verdict as V
from .stats import is_service, leaks, per_ip, share_text, worst

#: endpoint rows printed at most (the worst first); the HTML report pages through every one
MAX_ROWS = 200

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


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
    shown = dicom
    if len(dicom) > MAX_ROWS:
        shown = sorted(dicom, key=lambda r: -severity_rank(worst(r) or "info"))
        shown = shown[:MAX_ROWS]
        table.caption = f"the {MAX_ROWS} worst of {len(dicom)}; every one is in the HTML report"
    for r in sorted(shown, key=lambda r: (r["host"], r["port"])):
        exp = r.get("exposure") or {}
        exp_txt = "-"
        if exp.get("studies") is not None or exp.get("patients") is not None:
            complete = bool(exp.get("complete", True))
            exp_txt = (
                f"{V.count_text(exp.get('patients'), complete)} pat / "
                f"{V.count_text(exp.get('studies'), complete)} st"
            )
        w = worst(r)
        transport = V.transport(r)
        table.add_row(
            # strings from the server (product, titles) never as rich markup
            Text(V.endpoint(r)),
            Text(V.product(r)),
            "[red]no[/]" if transport == "plain" else transport,
            Text(V.called_aet(r)),
            Text(V.calling_aet(r)),
            Text(V.user_identity(r)),
            Text(V.services_text(r)),
            exp_txt,
            f"[{SEVERITY_STYLE[w]}]{w}[/]" if w else "-",
        )
    if dicom:
        console.print(table)
    web = [r for r in recs if not r.get("dicom") and V.web_service(r)]
    if web:
        console.print(
            f"{len(web)} web port(s) identified as a DICOM web API: "
            + ", ".join(escape(_web_text(r)) for r in web[:12])
            + (" ..." if len(web) > 12 else ""),
            highlight=False,
        )
    other = [r for r in recs if not is_service(r)]
    # silence is "DICOM unknown" (DG-016), never "not DICOM"
    silent = [r for r in other if (r.get("error") or "").startswith("silent")]
    spoke = [r for r in other if not (r.get("error") or "").startswith("silent")]
    for group, label in ((spoke, "did not speak DICOM"), (silent, "stayed silent (DICOM unknown)")):
        if not group:
            continue
        console.print(
            f"[dim]{len(group)} open port(s) {label}:[/] "
            + ", ".join(
                escape(f"{V.endpoint(r)} ({(r.get('error') or '?').split(':')[0]})")
                for r in group[:12]
            )
            + (" ..." if len(group) > 12 else ""),
            highlight=False,
        )

    # the honeypot classes the HTML/JSON use: findings and per-port figures count real-looking
    # endpoints (stats.analyse "findings", endpoints.leaking), honeypots said apart
    cls = {ep: V.honeypot_class(e) for ep, e in classify(dicom)["endpoints"].items()}
    counts: Counter[str] = Counter()
    on_honeypots: Counter[str] = Counter()
    for r in recs:
        real_ep = cls.get(f"{r['host']}:{r['port']}", V.REAL) == V.REAL
        for fid in {f["id"] for f in r.get("findings") or []}:
            (counts if real_ep else on_honeypots)[fid] += 1
    cat = catalog()
    if counts or on_honeypots:
        console.print()
        console.print("[bold]Findings[/] (real-looking endpoints affected, remediation)")
        for fid in sorted(
            counts | on_honeypots, key=lambda i: (-severity_rank(cat[i].severity), i)
        ):
            d = cat[fid]
            apart = f" (+{on_honeypots[fid]} on honeypots)" if on_honeypots[fid] else ""
            console.print(
                f"  [{SEVERITY_STYLE[d.severity]}]{d.severity:>8}[/] {fid} x{counts[fid]}{apart}: "
                f"[bold]{d.title}[/]"
            )
            console.print(f"           [dim]fix:[/] {d.remediation}", highlight=False)

    # per port: patient/study totals only per IP, below
    real = [
        r for r in recs if is_service(r) and cls.get(f"{r['host']}:{r['port']}", V.REAL) == V.REAL
    ]
    leaking = sum(leaks(r) for r in real)
    set_apart = sum(c != V.REAL for c in cls.values())
    console.print()
    states = stats.get("states", {})
    console.print(
        f"[bold]Scanned[/] {stats.get('endpoints', 0)} endpoint(s) "
        f"in {stats.get('elapsed', 0):.1f}s"
        f" ({stats.get('rate', 0):.0f}/s): {states.get('open', 0)} open, "
        f"{states.get('closed', 0)} closed, {states.get('filtered', 0)} filtered; "
        f"[bold]{len(dicom)}[/] DICOM ({sum(1 for r in dicom if r.get('tls'))} TLS), "
        f"{leaking} real-looking port(s) leaking data, {set_apart} honeypot port(s) set "
        "apart (per port; per-IP figures below)."
    )
    h = per_ip(recs, int(stats.get("endpoints", 0)))
    years = h["study_years"]
    console.print(
        f"[bold]Per IP[/] (honeypots set apart): [bold]{h['servers']:,}[/] server(s); "
        f"leaking {share_text(h['leaking'])}; TLS {share_text(h['tls'])}; "
        f"validating AE titles {share_text(h['validating_ae'])}; "
        f"{V.count_text(h['patients_exposed'], h['patients_complete'])} patients / "
        f"{V.count_text(h['studies_exposed'], h['studies_complete'])} studies exposed"
        + (f" from {years[0]}-{years[1]}" if years else "")
        + f"; {h['honeypots']} honeypot(s), {h['likely_honeypots']} likely honeypot(s).",
        highlight=False,
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
    flagged = [(ep, v) for ep, v in sorted(c["endpoints"].items()) if v["category"] == "flagged"]
    for ep, v in flagged[:20]:
        ids = ", ".join(s["id"] for s in v["honeypot"]["signals"])
        console.print(f"  [magenta]flagged[/] {ep} ({v['honeypot']['confidence']}): {ids}")
    if len(flagged) > 20:
        console.print(f"  ... and {len(flagged) - 20} more (HTML report)")


def _web_text(rec: dict[str, Any]) -> str:
    """``host:port Orthanc 1.10.1 (REST open, 12 studies)`` for a web API port."""
    web = rec.get("web") or {}
    exp = V.web_exposure(rec)
    what = V.product(rec) if rec.get("product") else (web.get("server") or "HTTP")
    bits = []
    orthanc = web.get("orthanc") or {}
    if orthanc:
        bits.append("REST " + ("needs login" if orthanc.get("auth_required") else "open"))
    qido = web.get("qido") or {}
    if qido:
        bits.append("QIDO-RS " + ("needs login" if qido.get("auth_required") else "open"))
    if exp.get("studies") is not None:
        bits.append(f"{V.count_text(exp.get('studies'), exp.get('complete', True))} studies")
    return f"{V.endpoint(rec)} {what}" + (f" ({', '.join(bits)})" if bits else "")
