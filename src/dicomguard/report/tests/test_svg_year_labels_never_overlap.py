"""Year labels under the study-year chart never run into each other.

A 12 px system-ui "1996" is about 28 px wide; shown labels must be at least 36 px apart at any
number of years. The lab demo's 30 years (1996-2025) printed every second year 30.7 px apart:
"19961998200020022004..." in chromium.
"""

from __future__ import annotations

import itertools

from dicomguard.report.svg import columns


def test_shown_year_labels_are_at_least_36_px_apart() -> None:
    for n in range(1, 130):
        chart = columns([(str(1900 + i), i) for i in range(n)], title="t")
        xs = [c["cx"] for c in chart["cols"] if c["show"]]
        assert xs, n
        gaps = [b - a for a, b in itertools.pairwise(xs)]
        assert not gaps or min(gaps) >= 36 - 0.2, (n, min(gaps))
