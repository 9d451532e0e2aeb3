"""The HTML report a hospital CISO reads: one self-contained file, opens offline.

Everything is inline: CSS, charts (SVG drawn by :mod:`.svg`) and a few lines of JavaScript that
sort the endpoint table. Nothing is fetched - no fonts, scripts, images or styles from anywhere -
so the file can be mailed, archived and opened on an air-gapped workstation, and opening it tells
no third party that a scan report is being read. Every value from the scan is HTML-escaped: banner
strings (version names, AE titles) come from untrusted servers.
"""

from __future__ import annotations

import datetime as dt
import json
from html import escape
from pathlib import Path
from typing import Any

from ..scan.fingerprint import load_database
from ..store.read import StoredScan, load_scan
from . import svg
from .stats import aggregate, leaks, release_info, worst

SEVERITY_COLOR = {
    "critical": "#7b1020",
    "high": "#c0392b",
    "medium": "#e67e22",
    "low": "#2a6fdb",
    "info": "#7f8c8d",
    "none": "#27ae60",
}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d2330;
 background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px} header p{margin:2px 0;color:#c9cfdb;font-size:13px}
main{padding:20px 28px}
.warn{background:#fff3cd;border:1px solid #e0c36a;padding:8px 12px;margin-bottom:14px}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:18px}
.card{background:#fff;border-radius:6px;padding:12px 18px;min-width:150px;
 box-shadow:0 1px 2px #0002}
.card .num{font-size:28px;font-weight:700} .card .lbl{font-size:13px;color:#555}
.charts{display:flex;flex-wrap:wrap;gap:14px}
.chart{background:#fff;border-radius:6px;padding:10px;box-shadow:0 1px 2px #0002}
h2{font-size:18px;margin:26px 0 8px}
table{border-collapse:collapse;background:#fff;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e3e5ea;padding:5px 8px;text-align:left;vertical-align:top}
th{background:#e9ecf2;position:sticky;top:0}
table.sortable th{cursor:pointer;user-select:none}
table.sortable th:after{content:" \\2195";color:#999}
.sev{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px;white-space:nowrap}
.fid{white-space:nowrap} .muted{color:#777} td.n{text-align:right;font-variant-numeric:tabular-nums}
details{margin:4px 0} summary{cursor:pointer}
"""

# Sorting by the data-v attribute when present (numbers), else by the cell text.
SORT_JS = """
document.querySelectorAll('table.sortable').forEach(function(t){
  t.querySelectorAll('th').forEach(function(th,i){
    th.addEventListener('click',function(){
      var body=t.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      var asc=th.getAttribute('data-dir')!=='asc';th.setAttribute('data-dir',asc?'asc':'desc');
      function key(r){var c=r.cells[i],v=c.getAttribute('data-v');
        return v!==null&&v!==''&&!isNaN(v)?parseFloat(v):c.textContent.trim().toLowerCase();}
      rows.sort(function(a,b){var x=key(a),y=key(b);
        if(typeof x!==typeof y){x=String(x);y=String(y);}
        return (x<y?-1:x>y?1:0)*(asc?1:-1);});
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _sev(severity: str | None) -> str:
    if not severity:
        return '<span class="muted">-</span>'
    color = SEVERITY_COLOR.get(severity, "#555")
    return f'<span class="sev" style="background:{color}">{escape(severity)}</span>'


def _card(key: str, value: str, label: str) -> str:
    return (
        f'<div class="card"><div class="num" id="h-{key}">{escape(value)}</div>'
        f'<div class="lbl">{escape(label)}</div></div>'
    )


def _services(rec: dict[str, Any]) -> str:
    on = [k for k, v in (rec.get("services") or {}).items() if v]
    refused = sorted(
        k for k, op in (rec.get("operations") or {}).items() if op.get("state") == "refused"
    )
    text = ", ".join(on) or "-"
    if refused:  # negotiated, then refused to a stranger (per-operation access control)
        text += f" (refused per operation: {', '.join(refused)})"
    return text


def _aet(rec: dict[str, Any]) -> tuple[str, str]:
    called = rec.get("called_aet") or {}
    calling = rec.get("calling_aet") or {}
    if called.get("accepted"):
        c = f"guessed {called['accepted']}"
    elif called.get("enforced"):
        c = "enforced"
    else:
        c = "any accepted"
    if calling.get("enforced"):
        return c, "enforced"
    if calling.get("per_operation"):
        return c, "checked per operation"
    return c, "any accepted" if calling.get("verified") else "unknown"


def render_html(scan: StoredScan) -> str:
    """The whole report as one HTML string."""
    data = aggregate(scan)
    fingerprints = load_database()
    when = dt.date.fromisoformat((scan.meta.get("started_at") or "1970-01-01")[:10])
    h = data["headline"]
    meta = data["scan"]
    approx = "≥ " if h["counts_are_lower_bounds"] else ""
    years = h["study_years"]
    out: list[str] = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        # a CSP that forbids every fetch makes "no network requests" a property of the file
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none';"
        " style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>dicomguard report - {escape(str(meta['started_at']))}</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>DICOM exposure report</h1>",
        f"<p>scan started {escape(str(meta['started_at']))}, "
        f"finished {escape(str(meta['finished_at'] or 'not yet'))}"
        f" &middot; dicomguard {escape(str(meta['dicomguard_version']))}"
        f" &middot; database {escape(Path(meta['database']).name)}</p>",
        f"<p>command: <code>{escape(' '.join(meta['argv'] or []))}</code></p></header><main>",
    ]
    if not meta["complete"]:
        out.append(
            "<div class='warn'>This scan has not finished (interrupted or still running): "
            "the figures cover the endpoints done so far. Continue it with "
            "<code>dicomguard scan --resume</code>.</div>"
        )
    out.append("<section class='cards' id='headline'>")
    out += [
        _card("probed", f"{h['endpoints_probed']:,}", "endpoints probed"),
        _card("dicom", f"{h['dicom_services']:,}", "DICOM services found"),
        _card(
            "leaking",
            f"{h['leaking_share'] * 100:.0f}%",
            f"leak patient data ({h['leaking']:,} of {h['dicom_services']:,})",
        ),
        _card("patients", f"{approx}{h['patients_exposed']:,}", "patients exposed"),
        _card("studies", f"{approx}{h['studies_exposed']:,}", "studies exposed"),
        _card("years", f"{years[0]}–{years[1]}" if years else "-", "span of study years"),
    ]
    out.append("</section>")
    out.append(_classification_html(data["classification"]))
    if h["counts_are_lower_bounds"]:
        out.append(
            "<p class='muted'>≥: some servers capped their answers or the query budget ran "
            "out, so patient and study counts are lower bounds.</p>"
        )

    prod_items = [
        (f"{p['product']} {p['version'] or ''}".strip(), p["endpoints"])
        for p in data["by_product"][:15]
    ]
    sev = data["by_worst_severity"]
    port_items = [(f"port {p}", v["dicom"]) for p, v in data["by_port"].items() if v["dicom"]]
    year_items = [(y, n) for y, n in data["by_study_year"].items()]
    out += [
        "<h2>Overview</h2><section class='charts'>",
        "<div class='chart'>"
        + svg.hbars(prod_items, title="DICOM services by product and version")
        + "</div>",
        "<div class='chart'>"
        + svg.hbars(
            [(s, n) for s, n in sev.items()],
            title="DICOM services by worst finding",
            colors=[SEVERITY_COLOR[s] for s in sev],
        )
        + "</div>",
        "<div class='chart'>"
        + svg.hbars(port_items, title="DICOM services by port", color="#16a085")
        + "</div>",
        "<div class='chart'>"
        + svg.columns(year_items, title="Leaking servers holding studies from each year")
        + "</div></section>",
    ]

    out.append("<h2>How outdated is the exposed software</h2>")
    known = [p for p in data["by_product"] if p["release"]]
    if known:
        out.append(
            "<table class='sortable' id='software'><thead><tr><th>product</th><th>version</th>"
            "<th>services</th><th>leaking</th><th>released</th><th>age (years)</th>"
            "<th>newer releases</th><th>known CVEs</th></tr></thead><tbody>"
        )
        for p in known:
            r = p["release"]
            out.append(
                f"<tr><td>{escape(p['product'])}</td><td>{escape(p['version'] or '')}</td>"
                f"<td class='n' data-v='{p['endpoints']}'>{p['endpoints']}</td>"
                f"<td class='n' data-v='{p['leaking']}'>{p['leaking']}</td>"
                f"<td>{escape(r['released'] or '-')}</td>"
                f"<td class='n' data-v='{r['age_years'] or ''}'>{r['age_years'] or '-'}</td>"
                f"<td>{escape(', '.join(r['newer_releases']) or 'none')}</td>"
                f"<td data-v='{len(r['cves'])}'>{len(r['cves'])}"
                + (
                    f"<details><summary>list</summary>{escape(', '.join(r['cves']))}"
                    f"<br><span class='muted'>source: {escape(r['source'] or '')}</span>"
                    "</details>"
                    if r["cves"]
                    else ""
                )
                + "</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append("<p class='muted'>No identified product version has release data.</p>")

    out.append("<h2>Findings and what to do</h2>")
    if data["findings"]:
        out.append(
            "<table id='findings'><thead><tr><th>severity</th><th>finding</th><th>services</th>"
            "<th>remediation</th></tr></thead><tbody>"
        )
        for f in data["findings"]:
            out.append(
                f"<tr><td>{_sev(f['severity'])}</td><td class='fid'>{escape(f['id'])}<br>"
                f"{escape(f['title'])}</td><td class='n'>{f['endpoints']}</td>"
                f"<td>{escape(f['remediation'] or '')}</td></tr>"
            )
        out.append("</tbody></table>")
    else:
        out.append("<p class='muted'>No findings.</p>")

    out.append(
        "<h2>Endpoints</h2><p class='muted'>Click a column heading to sort.</p>"
        "<table class='sortable' id='endpoints'><thead><tr><th>endpoint</th><th>product</th>"
        "<th>released</th><th>TLS</th><th>called AE</th><th>calling AE</th><th>services</th>"
        "<th>patients</th><th>studies</th><th>study dates</th><th>worst</th><th>findings</th>"
        "</tr></thead><tbody>"
    )
    ranks = {s: i for i, s in enumerate(("info", "low", "medium", "high", "critical"))}
    for r in scan.records:
        if not r.get("dicom") or r.get("state", "open") != "open":
            continue
        exp = r.get("exposure") or {}
        rel = release_info(r, fingerprints, when)
        called, calling = _aet(r)
        w = worst(r)
        dates = (
            f"{exp.get('earliest_study_date')}–{exp.get('latest_study_date')}"
            if exp.get("earliest_study_date")
            else "-"
        )
        findings_html = " ".join(  # IDs keep the row short; the title shows on hover
            f"<span class='fid' title='{escape(f.get('title', ''))}'>{escape(f['id'])}</span>"
            for f in r.get("findings") or []
        )
        ip_key = _ip_sort_key(r["host"], r["port"])
        product = " ".join(x for x in (r.get("product"), r.get("product_version")) if x) or "?"
        out.append(
            f"<tr class='{'leak' if leaks(r) else ''}'><td data-v='{ip_key}'>"
            f"{escape(r['host'])}:{r['port']}</td>"
            f"<td>{escape(product)}</td>"
            f"<td>{escape((rel or {}).get('released') or '-')}</td>"
            f"<td>{'yes' if r.get('tls') else 'no'}</td><td>{escape(called)}</td>"
            f"<td>{escape(calling)}</td><td>{escape(_services(r))}</td>"
            f"<td class='n' data-v='{exp.get('patients') or 0}'>{_count(exp, 'patients')}</td>"
            f"<td class='n' data-v='{exp.get('studies') or 0}'>{_count(exp, 'studies')}</td>"
            f"<td>{escape(dates)}</td><td data-v='{ranks.get(w or '', -1)}'>{_sev(w)}</td>"
            f"<td>{findings_html}</td></tr>"
        )
    out.append("</tbody></table>")
    out.append(
        "<h2>Raw figures</h2><details><summary>aggregate statistics (same as "
        "<code>--format json</code>)</summary><pre id='stats-json'>"
        + escape(json.dumps(data, indent=1))
        + "</pre></details>"
    )
    out.append(f"</main><script>{SORT_JS}</script></body></html>\n")
    return "".join(out)


def _classification_html(c: dict[str, Any]) -> str:
    """Confirmed, likely and flagged (honeypot) endpoints, and clusters of identical ones."""
    out = [
        "<h2>Confirmed, likely and flagged endpoints</h2><section class='cards' id='classes'>",
        _card("confirmed", f"{c['confirmed']:,}", "confirmed: accepted us, nothing decoy-like"),
        _card("likely", f"{c['likely']:,}", "likely: DICOM, but checks incomplete or a weak hint"),
        _card("flagged", f"{c['flagged']:,}", "flagged as probable honeypots"),
        _card(
            "real-leaking",
            f"{c['real_looking_leaking']:,}",
            f"real-looking servers leaking data ({c['real_looking_patients_exposed']:,} patients)",
        ),
        "</section><p class='muted'>Figures to publish are the real-looking ones (confirmed +"
        " likely); flagged endpoints behave like known DICOM honeypots (DICOMHawk, dicompot)"
        " or hold canned data identical to other endpoints.</p>",
    ]
    if c["flagged_endpoints"]:
        out.append(
            "<table id='flagged'><thead><tr><th>endpoint</th><th>confidence</th>"
            "<th>signals</th></tr></thead><tbody>"
        )
        for f in c["flagged_endpoints"]:
            out.append(
                f"<tr><td>{escape(f['endpoint'])}</td><td>{escape(f['confidence'])}</td>"
                f"<td>{escape(', '.join(f['signals']))}</td></tr>"
            )
        out.append("</tbody></table>")
    if c["clusters"]:
        out.append(
            "<h3>Clusters of identical endpoints</h3><table id='clusters'><thead><tr>"
            "<th>endpoints</th><th>identity</th><th>patients / studies</th><th>study dates</th>"
            "<th>canned data</th></tr></thead><tbody>"
        )
        for cl in c["clusters"]:
            ident = " ".join(
                str(x) for x in (cl["implementation_version_name"], cl["max_pdu"]) if x
            )
            dates = "–".join(str(d) for d in cl["study_dates"] if d) or "-"
            out.append(
                f"<tr><td class='n' data-v='{cl['size']}'>{cl['size']}: "
                f"{escape(', '.join(cl['endpoints'][:6]))}"
                f"{' …' if cl['size'] > 6 else ''}</td><td>{escape(ident or '-')}</td>"
                f"<td>{cl['patients'] or 0} / {cl['studies'] or 0}</td><td>{escape(dates)}</td>"
                f"<td>{'yes' if cl['canned_data'] else 'no'}</td></tr>"
            )
        out.append("</tbody></table>")
    return "".join(out)


def _count(exp: dict[str, Any], key: str) -> str:
    v = exp.get(key)
    if v is None:
        return "-"
    return f"{'≥' if not exp.get('complete', True) else ''}{v:,}"


def _ip_sort_key(host: str, port: int) -> str:
    """A number that sorts IPv4 endpoints numerically (text order puts .10 before .9)."""
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        n = 0
        for p in parts:
            n = n * 256 + int(p)
        return str(n * 65536 + int(port))
    return ""


def write_html(db: str | Path, out: str | Path) -> Path:
    """Render the database's report into ``out``; returns the path written."""
    path = Path(out)
    path.write_text(render_html(load_scan(db)), encoding="utf-8")
    return path
