"""Chart geometry for inline SVG, for a report that must open offline with nothing fetched.

Hand-written instead of a charting library because every such library either needs JavaScript
from a CDN (forbidden: the report must make no network request) or pulls a heavy dependency
(matplotlib) for a few rectangles. These functions only compute positions; the template
``templates/charts.html.j2`` draws them, so every label goes through jinja2's autoescaping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

ROW = 22


def hbars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    color: str = "#2a6fdb",
    colors: Sequence[str] | None = None,
    width: int = 520,
    label_width: int = 190,
) -> dict[str, Any]:
    """Horizontal bars, one row per (label, value); the value printed at the end of each bar.

    Returns ``{"kind": "hbars", "title", "width", "height", "label_x", "rows": [{"label",
    "short", "value", "y", "x", "w", "fill"}]}`` (pixels).
    """
    top = max((v for _, v in items), default=0) or 1
    span = width - label_width - 60
    rows = []
    for i, (label, value) in enumerate(items):
        rows.append(
            {
                "label": str(label),
                "short": _clip(str(label), 30),
                "value": num(value),
                "y": 26 + i * ROW,
                "x": label_width,
                "w": round(span * value / top, 1),
                "fill": colors[i] if colors else color,
            }
        )
    return {
        "kind": "hbars",
        "title": title,
        "width": width,
        "height": 30 + ROW * max(len(items), 1),
        "label_x": label_width - 6,
        "rows": rows,
    }


def columns(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    color: str = "#c0392b",
    width: int = 520,
    height: int = 220,
) -> dict[str, Any]:
    """Vertical columns over an ordered axis (years); labels thinned so they never overlap.

    Returns ``{"kind": "columns", "title", "width", "height", "left", "bottom", "top_y",
    "top_text", "right", "cols": [{"label", "value", "x", "y", "w", "h", "cx", "show"}]}``.
    """
    left, bottom, plot_h = 50, height - 24, height - 60
    top = max((v for _, v in items), default=0) or 1
    step = (width - left - 10) / max(len(items), 1)
    every = max(1, int(len(items) / ((width - left) / 36))) if items else 1
    cols = []
    for i, (label, value) in enumerate(items):
        h = plot_h * value / top
        x = left + i * step
        cols.append(
            {
                "label": str(label),
                "value": num(value),
                "x": round(x + step * 0.1, 1),
                "y": round(bottom - h, 1),
                "w": round(step * 0.8, 1),
                "h": round(h, 1),
                "cx": round(x + step / 2, 1),
                "show": i % every == 0,
            }
        )
    return {
        "kind": "columns",
        "title": title,
        "width": width,
        "height": height,
        "left": left,
        "bottom": bottom,
        "top_y": bottom - plot_h + 4,
        "top_text": num(top),
        "right": width - 10,
        "color": color,
        "cols": cols,
    }


def num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
