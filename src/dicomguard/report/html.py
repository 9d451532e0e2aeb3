"""The HTML report a hospital CISO or a researcher reads: one self-contained file, opens offline.

Rendered by jinja2 with autoescaping on (``templates/report.html.j2``): AE titles, version names,
HTTP banners and certificate fields come from strangers' servers, and escaping by hand at every
interpolation is one forgotten spot away from stored XSS. Everything is inline - CSS, SVG charts
(geometry from :mod:`.svg`), a small script - and a Content-Security-Policy forbids every fetch,
so the file can be mailed, archived and opened on an air-gapped workstation.

Scale: an internet survey has 10^4-10^5 endpoints. The server-rendered parts are bounded (the
"act first" list, findings grouped with their worst endpoints, top products and ports); every
endpoint is in a JSON block that the page's script draws :data:`PAGE_SIZE` rows at a time, with
filters, sorting and per-host detail on click, all without network. Repeated strings (products,
verdict wordings) are interned into one table: about 270 bytes an endpoint, 27 MB for 10^5
(bench/bench_report.py), which chromium opens in about a second.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from ..knowledge.findings import catalog, severity_rank
from ..knowledge.fingerprint import load_database
from ..store.read import StoredScan, load_scan
from . import svg
from . import verdict as V
from .stats import Analysis, analyse, release_info, worst

SEVERITY_COLOR = {
    "critical": "#7b1020",
    "high": "#c0392b",
    "medium": "#e67e22",
    "low": "#2a6fdb",
    "info": "#7f8c8d",
    "none": "#27ae60",
}
#: rows of the endpoint table drawn at once
PAGE_SIZE = 100
#: bounded server-rendered lists
ACT_FIRST = 25
PER_FINDING = 10
MAX_SOFTWARE = 40
MAX_FLAGGED = 50
MAX_CLUSTERS = 20
MAX_PORTS = 40


#: characters a server's string must not carry into the page as themselves: C0/C1 controls
#: (a NUL is an HTML parse error) and the Unicode bidi controls (UAX #9) that reorder what a
#: reader sees around them ("Trojan Source", CVE-2021-42574); each is shown as ``<U+XXXX>``
_INVISIBLE = {
    c: f"<U+{c:04X}>"
    for c in (
        *range(0x00, 0x09),
        0x0B,
        0x0C,
        *range(0x0E, 0x20),
        *range(0x7F, 0xA0),
        0x061C,
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
}


def visible(value: Any) -> Any:
    """``value`` with control and bidi characters in every string made visible (recursing into
    dicts and lists); other values unchanged."""
    if isinstance(value, str):
        return value.translate(_INVISIBLE)
    if isinstance(value, list):
        return [visible(v) for v in value]
    if isinstance(value, dict):
        return {k: visible(v) for k, v in value.items()}
    return value


@cache
def environment() -> jinja2.Environment:
    """The template environment: package templates, autoescaping on, undefined names fatal,
    every printed string through :func:`visible`."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("dicomguard.report", "templates"),
        autoescape=True,
        finalize=visible,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _ip_key(host: str, port: int) -> int | None:
    """A number that sorts IPv4 endpoints numerically (text order puts .10 before .9)."""
    parts = host.split(".")
    if len(parts) == 4 and all(p.isdigit() for p in parts):
        n = 0
        for p in parts:
            n = n * 256 + int(p)
        return n * 65536 + int(port)
    return None


def _exposure(rec: dict[str, Any]) -> dict[str, Any]:
    return rec.get("exposure") or V.web_exposure(rec)


def _counts(rec: dict[str, Any]) -> tuple[str, str]:
    exp = _exposure(rec)
    complete = bool(exp.get("complete", True))
    return V.count_text(exp.get("patients"), complete), V.count_text(exp.get("studies"), complete)


def _dates(rec: dict[str, Any]) -> str:
    exp = _exposure(rec)
    first, last = exp.get("earliest_study_date"), exp.get("latest_study_date")
    return f"{first}–{last}" if first else ""


def _detail(rec: dict[str, Any], entry: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Label/value pairs shown when a row is opened: every string the server sent us."""
    out: list[tuple[str, Any]] = [
        ("implementation version name", rec.get("implementation_version_name")),
        ("implementation class UID", rec.get("implementation_class_uid")),
        ("max PDU", rec.get("max_pdu")),
        ("called AE", V.called_aet(rec)),
        ("calling AE", V.calling_aet(rec)),
        ("A-ASSOCIATE-RJ", (rec.get("reject") or {}).get("text")),
        ("not DICOM because", rec.get("error")),
    ]
    web = rec.get("web") or {}
    if web:
        orthanc = web.get("orthanc") or {}
        qido = web.get("qido") or {}
        out += [
            ("HTTP server", web.get("server")),
            (
                "web product",
                " ".join(x for x in (web.get("product"), web.get("product_version")) if x),
            ),
            ("Orthanc name", orthanc.get("name")),
            ("Orthanc DICOM AE title", orthanc.get("dicom_aet")),
            ("QIDO-RS path", qido.get("path")),
        ]
    tls = rec.get("tls_details") or {}
    cert = tls.get("certificate") or {}
    if tls:
        accepted = [v for v, d in (tls.get("versions") or {}).items() if (d or {}).get("accepted")]
        out += [
            ("TLS versions", " ".join(accepted)),
            ("certificate subject", cert.get("subject")),
            ("certificate issuer", cert.get("issuer")),
            ("certificate valid until", cert.get("not_after")),
            ("certificate error", cert.get("error")),
        ]
    exp = rec.get("exposure") or {}
    if exp.get("same_archive_as"):
        out.append(("same archive as", exp["same_archive_as"]))
    if exp.get("modalities"):
        out.append(("modalities", " ".join(map(str, exp["modalities"]))))
    hp = (entry or {}).get("honeypot") or {}
    if hp.get("signals"):
        out.append(("honeypot signals", ", ".join(s["id"] for s in hp["signals"])))
    for key in ("measured_at", "scan_id"):
        out.append((key.replace("_", " "), rec.get(key)))
    for f in rec.get("findings") or []:
        if f.get("detail"):
            out.append((f"{f['id']} detail", f["detail"]))
    return [(k, str(v)) for k, v in out if v not in (None, "", [])]


class _Interned:
    """One table of repeated strings; rows hold indices (-1 for none)."""

    def __init__(self) -> None:
        self.strings: list[str] = []
        self._index: dict[str, int] = {}

    def __call__(self, s: str | None) -> int:
        if s is None or s == "":
            return -1
        i = self._index.get(s)
        if i is None:
            i = self._index[s] = len(self.strings)
            self.strings.append(s)
        return i


def endpoint_data(a: Analysis, when: dt.date) -> dict[str, Any]:
    """Every DICOM or DICOM-web endpoint as a compact row for the page's script (report.js)."""
    fingerprints = load_database()
    cat = catalog()
    s = _Interned()
    findex: dict[str, int] = {}
    findings: list[list[str]] = []
    rel_cache: dict[tuple[Any, Any], str | None] = {}
    rows = []
    for r in a.services:
        key = (r.get("product"), r.get("product_version"))
        if key not in rel_cache:
            rel_cache[key] = (release_info(r, fingerprints, when) or {}).get("released")
        fids = []
        for f in sorted(
            r.get("findings") or [], key=lambda f: -severity_rank(f.get("severity", "info"))
        ):
            fid = f["id"]
            if fid not in findex:
                findex[fid] = len(findings)
                d = cat.get(fid)
                findings.append(
                    [fid, d.severity if d else f.get("severity", "info"), d.title if d else fid]
                )
            fids.append(findex[fid])
        exp = _exposure(r)
        pat, st = _counts(r)
        w = worst(r)
        detail: list[Any] = []
        for label, value in _detail(r, a.entry.get(f"{r['host']}:{r['port']}")):
            detail += [s(label), value]
        rows.append(
            [
                r["host"],
                int(r["port"]),
                _ip_key(r["host"], r["port"]),
                s(V.product(r)),
                s(rel_cache[key]),
                s(V.transport(r)),
                s(V.called_aet(r) if r.get("dicom") else "-"),
                s(V.calling_aet(r) if r.get("dicom") else "-"),
                s(V.user_identity(r) if r.get("dicom") else "-"),
                s(V.services_text(r) if r.get("dicom") else "web API"),
                exp.get("patients"),
                pat,
                exp.get("studies"),
                st,
                _dates(r),
                severity_rank(w) if w else -1,
                fids,
                s(a.class_of(r)),
                s(r.get("country")),
                r.get("asn"),
                s(r.get("as_org")),
                detail,
            ]
        )
    return {
        "strings": s.strings,
        "findings": findings,
        "rows": rows,
        "page_size": PAGE_SIZE,
        "geo": a.data["geo"] is not None,
    }


def _ranked(a: Analysis) -> list[dict[str, Any]]:
    """Real-looking endpoints with a finding of low severity or above, worst first."""
    out = []
    for r in a.services:
        if a.class_of(r) != V.REAL:
            continue
        w = worst(r)
        if w is None or severity_rank(w) < severity_rank("low"):
            continue
        exp = _exposure(r)
        out.append((-severity_rank(w), -(exp.get("studies") or 0), -(exp.get("patients") or 0), r))
    out.sort(key=lambda t: (t[0], t[1], t[2], _ip_key(t[3]["host"], t[3]["port"]) or 0))
    return [t[3] for t in out]


def _row(rec: dict[str, Any]) -> dict[str, Any]:
    cat = catalog()
    pat, st = _counts(rec)
    findings = sorted(
        {f["id"] for f in rec.get("findings") or []},
        key=lambda fid: -severity_rank(cat[fid].severity if fid in cat else "info"),
    )
    return {
        "endpoint": V.endpoint(rec),
        "product": V.product(rec),
        "worst": worst(rec),
        "patients": pat,
        "studies": st,
        "findings": [
            {
                "id": fid,
                "severity": cat[fid].severity if fid in cat else "info",
                "title": cat[fid].title if fid in cat else fid,
            }
            for fid in findings
        ],
    }


def _by_finding(ranked: list[dict[str, Any]], findings: list[dict[str, Any]]) -> list[dict]:
    """Act-first groups: each finding of low severity or above with its worst endpoints."""
    top: dict[str, list[dict[str, Any]]] = {}
    for r in ranked:  # already worst first, most records first
        for fid in {f["id"] for f in r.get("findings") or []}:
            lst = top.setdefault(fid, [])
            if len(lst) < PER_FINDING:
                lst.append(r)
    out = []
    for f in findings:
        if severity_rank(f["severity"]) < severity_rank("low") or f["id"] not in top:
            continue
        by_records = sorted(top[f["id"]], key=lambda r: -(_exposure(r).get("studies") or 0))
        out.append({**f, "top": [_row(r) for r in by_records]})
    return out


def _of(s: dict[str, Any]) -> str:
    return f"{s['n']:,} of {s['of']:,}"


def _cards(a: Analysis) -> tuple[list[dict], list[dict], list[dict], bool]:
    h = a.data["headline"]
    e = a.data["endpoints"]
    years = h["study_years"]

    def pct(s: dict[str, Any]) -> str:
        return "-" if s["share"] is None else f"{s['share'] * 100:.0f}%"

    headline = [
        {"key": "servers", "value": f"{h['servers']:,}", "label": "servers (IP addresses)"},
        {
            "key": "leaking",
            "value": pct(h["leaking"]),
            "label": f"leak patient data ({_of(h['leaking'])} servers)",
        },
        {
            "key": "tls",
            "value": pct(h["tls"]),
            "label": f"offer TLS ({_of(h['tls'])}; "
            f"{h['client_cert_required']['n']:,} require a client certificate)",
        },
        {
            "key": "validating",
            "value": pct(h["validating_ae"]),
            "label": f"validate AE titles ({_of(h['validating_ae'])} where observed)",
        },
        {
            "key": "patients",
            "value": V.count_text(h["patients_exposed"], h["patients_complete"]),
            "label": "patients exposed",
        },
        {
            "key": "studies",
            "value": V.count_text(h["studies_exposed"], h["studies_complete"]),
            "label": "studies exposed",
        },
        {
            "key": "years",
            "value": f"{years[0]}–{years[1]}" if years else "-",
            "label": "span of study years",
        },
    ]
    apart = [
        {"key": "honeypots", "value": f"{h['honeypots']:,}", "label": "honeypots, set apart"},
        {
            "key": "likely-honeypots",
            "value": f"{h['likely_honeypots']:,}",
            "label": "likely honeypots, set apart",
        },
    ]
    ports = [
        {"key": "probed", "value": f"{h['endpoints_probed']:,}", "label": "endpoints probed"},
        {"key": "open", "value": f"{e['open']:,}", "label": "open"},
        {"key": "dicom", "value": f"{e['dicom_services']:,}", "label": "DICOM services (ports)"},
        {"key": "web", "value": f"{e['web_services']:,}", "label": "DICOM web APIs (ports)"},
        {
            "key": "leaking",
            "value": f"{e['leaking']:,}",
            "label": "real-looking ports leaking data",
        },
    ]
    lower = not (h["patients_complete"] and h["studies_complete"])
    return headline, apart, ports, lower


def _charts(a: Analysis) -> list[dict[str, Any]]:
    d = a.data
    prod = [
        (f"{p['product']} {p['version'] or ''}".strip(), p["endpoints"]) for p in d["by_product"]
    ][:15]
    sev = d["by_worst_severity"]
    ports = sorted(
        ((f"port {p}", v["dicom"] + v["web"]) for p, v in d["by_port"].items()),
        key=lambda kv: -kv[1],
    )
    ports = [(k, n) for k, n in ports if n][:15]
    years = list(d["headline"]["studies_by_year"].items())
    charts = [
        {"id": "chart-product", "chart": svg.hbars(prod, title="Services by product and version")},
        {
            "id": "chart-severity",
            "chart": svg.hbars(
                list(sev.items()),
                title="Services by worst finding",
                colors=[SEVERITY_COLOR[s] for s in sev],
            ),
        },
        {
            "id": "chart-port",
            "chart": svg.hbars(ports, title="Services by port", color="#16a085"),
        },
        {
            "id": "chart-years",
            "chart": svg.columns(years, title="Studies exposed, by study year (real servers)"),
        },
    ]
    geo = d["geo"]
    if geo:
        countries = [(c, v["servers"]) for c, v in geo["by_country"].items()][:15]
        ases = [
            (f"AS{x['asn']} {x['as_org'] or ''}".strip() if x["asn"] else "unknown", x["servers"])
            for x in geo["by_as"]
        ][:15]
        charts += [
            {
                "id": "chart-country",
                "chart": svg.hbars(countries, title="Servers by country", color="#8e44ad"),
            },
            {
                "id": "chart-as",
                "chart": svg.hbars(
                    ases, title="Servers by autonomous system", color="#34495e", label_width=230
                ),
            },
        ]
    return charts


def _short_stats(data: dict[str, Any]) -> str:
    """The aggregate as JSON for the page, its per-endpoint lists cut to a few entries."""
    c = dict(data["classification"])
    for key, n in (("flagged_endpoints", 20), ("clusters", 10)):
        if len(c[key]) > n:
            c[key] = [*c[key][:n], f"... {len(c[key]) - n} more"]
    short = {**data, "classification": c, "by_product": data["by_product"][:30]}
    return json.dumps(short, indent=1)


def context(scan: StoredScan) -> dict[str, Any]:
    """Everything the template needs (all plain data; the template escapes it)."""
    a = analyse(scan)
    d = a.data
    when = dt.date.fromisoformat((scan.meta.get("started_at") or "1970-01-01")[:10])
    ranked = _ranked(a)
    headline, apart, port_cards, lower = _cards(a)
    known = [p for p in d["by_product"] if p["release"]]
    c = d["classification"]
    clusters = []
    for cl in c["clusters"][:MAX_CLUSTERS]:
        ident = " ".join(str(x) for x in (cl["implementation_version_name"], cl["max_pdu"]) if x)
        clusters.append(
            {
                "size": cl["size"],
                "endpoints": ", ".join(cl["endpoints"][:6]) + (" …" if cl["size"] > 6 else ""),
                "identity": ident or "-",
                "counts": f"{cl['patients'] or 0} / {cl['studies'] or 0}",
                "dates": "–".join(str(x) for x in cl["study_dates"] if x) or "-",
                "canned_data": cl["canned_data"],
            }
        )
    geo = None
    if d["geo"]:
        geo = {
            "countries": [
                {"country": k, **v} for k, v in list(d["geo"]["by_country"].items())[:50]
            ],
            "ases": d["geo"]["by_as"][:25],
        }
    ports = [{"port": p, **v} for p, v in d["by_port"].items()]
    ports.sort(key=lambda p: -(p["dicom"] + p["web"]))
    return {
        "scan": d["scan"],
        "database_name": Path(d["scan"]["database"]).name,
        "command": " ".join(d["scan"]["argv"] or []),
        "headline_cards": headline,
        "apart_cards": apart,
        "port_cards": port_cards,
        "lower_bound_note": lower,
        "act_first": [_row(r) for r in ranked[:ACT_FIRST]],
        "by_finding": _by_finding(ranked, d["findings"]),
        "findings": d["findings"],
        "charts": _charts(a),
        "geo": geo,
        "software": known[:MAX_SOFTWARE],
        "software_more": max(0, len(known) - MAX_SOFTWARE),
        "classes": {
            **c,
            "honeypot_endpoints": d["endpoints"]["honeypot_endpoints"],
            "likely_honeypot_endpoints": d["endpoints"]["likely_honeypot_endpoints"],
        },
        "flagged": c["flagged_endpoints"][:MAX_FLAGGED],
        "flagged_more": max(0, len(c["flagged_endpoints"]) - MAX_FLAGGED),
        "clusters": clusters,
        "clusters_more": max(0, len(c["clusters"]) - MAX_CLUSTERS),
        "ports": ports[:MAX_PORTS],
        "ports_more": max(0, len(ports) - MAX_PORTS),
        "page_size": PAGE_SIZE,
        "endpoint_data": visible(endpoint_data(a, when)),
        "stats_json": _short_stats(d),
    }


def render_html(scan: StoredScan) -> str:
    """The whole report as one HTML string."""
    return environment().get_template("report.html.j2").render(**context(scan)) + "\n"


def write_html(db: str | Path, out: str | Path) -> Path:
    """Render the database's report into ``out``; returns the path written."""
    path = Path(out)
    path.write_text(render_html(load_scan(db)), encoding="utf-8")
    return path
