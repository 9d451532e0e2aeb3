"""Bar charts as inline SVG text, for a report that must open offline with nothing fetched.

Hand-written instead of a charting library because every such library either needs JavaScript
from a CDN (forbidden: the report must make no network request) or pulls a heavy dependency
(matplotlib) for a few rectangles; two small functions draw what the report needs.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

FONT = "font-family:system-ui,sans-serif;font-size:12px"


def hbars(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    color: str = "#2a6fdb",
    colors: Sequence[str] | None = None,
    width: int = 520,
    label_width: int = 190,
) -> str:
    """Horizontal bars, one row per (label, value); values printed at the end of each bar."""
    row = 22
    height = 30 + row * max(len(items), 1)
    top = max((v for _, v in items), default=0) or 1
    span = width - label_width - 60
    parts = [
        f'<svg role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" style="{FONT}"><title>{escape(title)}</title>',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append('<text x="0" y="40" fill="#666">nothing to show</text>')
    for i, (label, value) in enumerate(items):
        y = 26 + i * row
        w = span * value / top
        fill = colors[i] if colors else color
        parts.append(
            f'<text x="{label_width - 6}" y="{y + 14}" text-anchor="end">'
            f"{escape(_clip(label, 30))}</text>"
            f'<rect x="{label_width}" y="{y + 3}" width="{w:.1f}" height="{row - 6}"'
            f' fill="{fill}"><title>{escape(label)}: {_num(value)}</title></rect>'
            f'<text x="{label_width + w + 4:.1f}" y="{y + 14}">{_num(value)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def columns(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    color: str = "#c0392b",
    width: int = 520,
    height: int = 220,
) -> str:
    """Vertical columns over an ordered axis (years); labels thinned so they never overlap."""
    parts = [
        f'<svg role="img" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" style="{FONT}"><title>{escape(title)}</title>',
        f'<text x="0" y="16" font-weight="bold">{escape(title)}</text>',
    ]
    if not items:
        parts.append('<text x="0" y="40" fill="#666">nothing to show</text></svg>')
        return "".join(parts)
    top = max(v for _, v in items) or 1
    left, bottom, plot_h = 30, height - 24, height - 60
    step = (width - left - 10) / len(items)
    every = max(1, int(len(items) / ((width - left) / 36)))
    parts.append(
        f'<text x="{left - 4}" y="{bottom - plot_h + 4}" text-anchor="end">{_num(top)}</text>'
        f'<line x1="{left}" y1="{bottom}" x2="{width - 10}" y2="{bottom}" stroke="#999"/>'
    )
    for i, (label, value) in enumerate(items):
        h = plot_h * value / top
        x = left + i * step
        parts.append(
            f'<rect x="{x + step * 0.1:.1f}" y="{bottom - h:.1f}" width="{step * 0.8:.1f}"'
            f' height="{h:.1f}" fill="{color}"><title>{escape(label)}: {_num(value)}</title></rect>'
        )
        if i % every == 0:
            parts.append(
                f'<text x="{x + step / 2:.1f}" y="{bottom + 14}" text-anchor="middle">'
                f"{escape(label)}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _num(v: float) -> str:
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}"


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
