"""The act-first view groups endpoints by finding, and geoip fields give per-IP charts.

A synthetic survey with geoip enrichment (``country``, ``asn``, ``as_org`` per record, as
``scan --geoip`` writes them) opened in headless chromium.
"""

from __future__ import annotations

import random
from pathlib import Path

from dicomguard.report.html import ACT_FIRST, PER_FINDING, render_html
from dicomguard.report.stats import aggregate, is_service
from dicomguard.store.read import load_scan

from . import chromium
from .synthetic import record, write_db


def _page(tmp_path: Path, geo: bool) -> tuple[Path, dict]:
    rng = random.Random(11)
    db = write_db(tmp_path / f"g{geo}.db", [record(i, rng, geo=geo) for i in range(400)])
    assert db == (tmp_path / f"g{geo}.html").with_suffix(".db")
    scan = load_scan(db)
    out = tmp_path / f"g{geo}.html"
    out.write_text(render_html(scan), encoding="utf-8")
    return out, aggregate(scan)


def test_act_first_groups_endpoints_by_finding(tmp_path: Path) -> None:
    chromium.need()
    html, data = _page(tmp_path, geo=False)
    with chromium.Page(1400, 1600) as page:
        page.open(html.as_uri())
        worst = page.evaluate(
            "[...document.querySelectorAll('#act-first-table tbody tr')]"
            ".map(r => r.cells[2].textContent.trim())"
        )
        assert len(worst) == ACT_FIRST and worst[0] == "critical"
        groups = page.evaluate(
            "[...document.querySelectorAll('#act-by-finding details')].map(d => [d.id,"
            " d.querySelectorAll('tbody tr').length,"
            " d.querySelector('a[href^=\"#fix-\"]').getAttribute('href')])"
        )
        expected = [f for f in data["findings"] if f["severity"] != "info"]
        assert [g[0] for g in groups] == [f"group-{f['id']}" for f in expected]
        for (gid, rows, fix), f in zip(groups, expected, strict=True):
            assert rows == min(PER_FINDING, f["endpoints"]), gid
            assert fix == f"#fix-{f['id']}"
            assert page.evaluate(f"!!document.getElementById('{fix[1:]}')")
        # the group's "list all" shows exactly that finding's endpoints in the table
        n = page.evaluate(
            "(() => { document.querySelector('#group-DG-005 a[data-show-finding]').click();"
            " return window.dicomguardReport.view().length; })()"
        )
        # the table lists honeypots too (the finding counts are of real-looking endpoints)
        scan = load_scan(html.with_suffix(".db"))
        assert n == sum(
            1
            for r in scan.records
            if is_service(r) and "DG-005" in {f["id"] for f in r["findings"]}
        )


def test_geoip_fields_give_country_and_as_charts(tmp_path: Path) -> None:
    chromium.need()
    html, data = _page(tmp_path, geo=True)
    geo = data["geo"]
    assert (
        geo
        and sum(v["servers"] for v in geo["by_country"].values()) == (data["headline"]["servers"])
    )  # per IP address, honeypots apart
    with chromium.Page(1400, 1600) as page:
        page.open(html.as_uri())
        for chart in ("chart-country", "chart-as"):
            box = page.evaluate(
                f"(() => {{ const r = document.getElementById('{chart}')"
                ".getBoundingClientRect(); return [r.width, r.height]; })()"
            )
            assert box[0] > 100 and box[1] > 50, chart
        rows = page.evaluate(
            "[...document.querySelectorAll('#geo-countries tbody tr')]"
            ".map(r => [r.cells[0].textContent, +r.cells[1].textContent])"
        )
        assert dict(rows) == {c: v["servers"] for c, v in geo["by_country"].items()}
        locations = page.evaluate(
            "[...document.querySelectorAll('#ep-table tbody tr')].map(r => r.lastChild.textContent)"
        )
        assert sum(bool(x) for x in locations) > len(locations) // 2  # per endpoint too
    plain, _ = _page(tmp_path, geo=False)
    assert 'id="chart-country"' not in plain.read_text()
