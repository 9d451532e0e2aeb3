"""Every report format stays valid when a server's strings are hostile.

Beyond the markup of synthetic.XSS: ``</textarea>``, ``</script>`` split across fields,
``javascript:`` URLs, Unicode bidi overrides (U+202E, U+2066), NULs, lone surrogates are not
possible in stored JSON so are left out, and a 100,000-character version name. JSON, SARIF
(2.1.0 schema) and DefectDojo (its generic parser's rules) must parse; the HTML must run
nothing in headless chromium.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import pytest

from dicomguard.report import render

from . import chromium
from .synthetic import record, write_db
from .test_defectdojo_import import defectdojo_problems

SCHEMA = Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json"
HOSTILE = (
    "</textarea><script>window.__xss=1</script>",
    "javascript:window.__xss=1",
    "\u202egnp.exe\u2066<svg onload=window.__xss=1>",
    "a\x00b</script><script>window.__xss=1//",
    "=cmd|' /C calc'!A0",
    "X" * 100_000,
)


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(11)
    recs = []
    for i in range(24):
        r = record(i, rng, hostile=True, geo=True)
        p = HOSTILE[i % len(HOSTILE)]
        for key in ("implementation_version_name", "product", "product_version", "error"):
            r[key] = p
        web = r.get("web")
        if isinstance(web, dict):
            web["server"] = p
        for f in r.get("findings") or []:
            f["detail"] = p
        recs.append(r)
    return write_db(tmp_path_factory.mktemp("hostile") / "h.db", recs)


def test_json_sarif_defectdojo_stay_valid(db: Path) -> None:
    json.loads(render(db, "json"))
    sarif = json.loads(render(db, "sarif"))
    errors = list(jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).iter_errors(sarif))
    assert not errors, str(errors[0])[:500]
    dojo = json.loads(render(db, "defectdojo"))
    assert dojo["findings"] and defectdojo_problems(dojo) == []


def test_html_runs_nothing(db: Path, tmp_path: Path) -> None:
    html = render(db, "html")
    assert "</textarea><script>" not in html and "<svg onload" not in html and "\x00" not in html
    if not chromium.available():
        pytest.skip("chromium missing")
    out = tmp_path / "h.html"
    out.write_text(html, encoding="utf-8")
    with chromium.Page(1400, 1600) as page:
        page.open(out.as_uri())
        page.evaluate(
            "(() => { document.querySelectorAll('#ep-table tbody tr.row').forEach(r => r.click());"
            " document.querySelectorAll('details').forEach(d => d.open = true); })()"
        )
        assert page.evaluate("window.__xss === undefined")
        assert page.evaluate("document.scripts.length") == 2
        assert page.requested_urls() == [out.as_uri()]


def test_html_shows_control_and_bidi_characters_visibly(db: Path) -> None:
    """A NUL is an HTML parse error and a U+202E/U+2066 reorders the text around it
    (CVE-2021-42574); both, in page text and in the endpoint data, are shown as <U+XXXX>."""
    html = render(db, "html")
    for ch in ("\x00", "\u202e", "\u2066"):
        assert ch not in html, repr(ch)
    data = html.split('id="endpoint-data">', 1)[1].split("</script>", 1)[0]
    for esc in ("\\u0000", "\\u202e", "\\u2066"):  # what tojson would write for them
        assert esc not in data, esc
    assert "U+202E" in html and "U+0000" in html
