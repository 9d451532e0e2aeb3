"""Benchmark: the HTML report of a large survey - generation, rendering, loading in chromium.

For each size it generates a synthetic scan database (dicomguard.report.tests.synthetic: every
kind of endpoint, geoip fields), renders the HTML report, opens it in headless chromium and
prints the seconds each step took, the file size and the number of DOM elements after load;
``--screenshots DIR`` also saves a screenshot of the top of the page and of the endpoint table.

    python bench/bench_report.py [--sizes 100,10000,100000] [--screenshots out/]

Nothing is contacted: the records are rows in a file, and chromium opens a file:// page with a
dead proxy (report/tests/chromium.py), inside a loopback-only network namespace.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))


def one(size: int, work: Path, shots: Path | None) -> dict[str, float]:
    from dicomguard.report.html import render_html
    from dicomguard.report.tests import chromium
    from dicomguard.report.tests.synthetic import make_db
    from dicomguard.store.read import load_scan

    out: dict[str, float] = {"endpoints": size}
    t = time.monotonic()
    db = make_db(work / f"s{size}.db", size, geo=True)
    out["generate_s"] = time.monotonic() - t
    t = time.monotonic()
    scan = load_scan(db)
    out["load_db_s"] = time.monotonic() - t
    t = time.monotonic()
    html = render_html(scan)
    out["render_s"] = time.monotonic() - t
    page_file = work / f"s{size}.html"
    page_file.write_text(html, encoding="utf-8")
    out["html_mb"] = page_file.stat().st_size / 1e6
    with chromium.Page(1400, 2400) as page:
        t = time.monotonic()
        page.open(page_file.as_uri())
        out["chromium_load_s"] = time.monotonic() - t
        out["dom_elements"] = page.evaluate("document.getElementsByTagName('*').length")
        t = time.monotonic()
        page.evaluate("document.querySelector('#ep-table th[data-sort=\"12\"]').click()")
        out["sort_by_studies_s"] = time.monotonic() - t
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            page.evaluate("window.scrollTo(0, 0)")
            (shots / f"report-{size}-top.png").write_bytes(page.screenshot())
            page.evaluate("document.getElementById('endpoints').scrollIntoView()")
            (shots / f"report-{size}-endpoints.png").write_bytes(page.screenshot())
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100,10000,100000")
    ap.add_argument("--screenshots", type=Path, default=None)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="dg-bench-report-") as tmp:
        for size in sizes:
            r = one(size, Path(tmp), args.screenshots)
            print(" ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in r.items()), flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    from dicomguard.testing.netns import reexec_isolated

    reexec_isolated()
    raise SystemExit(main())
