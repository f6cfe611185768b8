"""The report's charts, drawn on the server as SVG: no chart library, no script, nothing fetched;
they print as they show. Presentation attributes only (``fill=``, not ``style=``: the pane's
Content-Security-Policy refuses inline styles), every text escaped, each chart titled for screen
readers (``role="img"``), and its figures are in the tables beside it too."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from markupsafe import Markup, escape

# Colour-blind safe (Okabe–Ito), then greys.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#555555", "#999999")
INK, MUTED, GRID = "#1d232a", "#5b6670", "#d9dee3"


def _axis(left: int, y: int, right: int) -> str:
    return f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="{GRID}"/>'


def _svg(width: int, height: int, title: str, body: list[str], css_class: str) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart {css_class}" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{label}" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" '
        f'font-size="12"><title>{label}</title>{"".join(body)}</svg>'
    )


def _text(
    x: float, y: float, text: object, *, anchor: str = "middle", fill: str = INK, size: int = 12
) -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" fill="{fill}" font-size="{size}">'
        f"{escape(str(text))}</text>"
    )


def histogram(buckets: Sequence[tuple[str, int]], *, title: str) -> Markup:
    """Leads per bucket of first-answer time; the last bucket (never answered) stands apart."""
    width, height, left, bottom, top = 640, 240, 36, 40, 16
    peak = max([n for _, n in buckets] + [1])
    slot = (width - left - 8) / max(len(buckets), 1)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" stroke="{GRID}"/>'
    ]
    for index, (label, n) in enumerate(buckets):
        never = index == len(buckets) - 1
        bar = (height - bottom - top) * n / peak
        x = left + index * slot + slot * 0.15
        y = height - bottom - bar
        fill = PALETTE[5] if never else PALETTE[0]
        body.append(
            f'<rect class="bar" data-value="{n}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{bar:.1f}" fill="{fill}"><title>{escape(label)}: {n}</title></rect>'
        )
        body.append(_text(x + slot * 0.35, y - 4, n))
        body.append(_text(x + slot * 0.35, height - bottom + 16, label, fill=MUTED, size=11))
    return _svg(width, height, title, body, "histogram")


def days_by_source(
    days: Sequence[date],
    counts: dict[tuple[str, str], int],
    sources: Sequence[str],
    *,
    title: str,
    day_label: Any,
) -> Markup:
    """Leads per day, stacked by source, with a legend."""
    width, height, left, bottom, top = 640, 260, 36, 56, 16
    totals = [sum(counts.get((d.isoformat(), s), 0) for s in sources) for d in days]
    peak = max([*totals, 1])
    slot = (width - left - 8) / max(len(days), 1)
    body = [
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 4}" y2="{height - bottom}" stroke="{GRID}"/>'
    ]
    body.append(_text(left - 6, top + 4, peak, anchor="end", fill=MUTED, size=10))
    body.append(_text(left - 6, height - bottom, 0, anchor="end", fill=MUTED, size=10))
    step = max(1, len(days) // 8)  # a date label every few bars
    for index, day in enumerate(days):
        x = left + index * slot + slot * 0.1
        y = float(height - bottom)
        for s_index, source in enumerate(sources):
            n = counts.get((day.isoformat(), source), 0)
            if not n:
                continue
            bar = (height - bottom - top) * n / peak
            y -= bar
            colour = PALETTE[s_index % len(PALETTE)]
            body.append(
                f'<rect class="bar" data-day="{day.isoformat()}" data-value="{n}" x="{x:.1f}" y="{y:.1f}" '
                f'width="{max(slot * 0.8, 1):.1f}" height="{bar:.1f}" fill="{colour}">'
                f"<title>{escape(day_label(day))} · {escape(source)}: {n}</title></rect>"
            )
        if index % step == 0:
            body.append(_text(x + slot * 0.4, height - bottom + 14, day_label(day), fill=MUTED, size=10))
    legend_y = height - 16
    for s_index, source in enumerate(sources):
        lx = left + s_index * 130
        colour = PALETTE[s_index % len(PALETTE)]
        body.append(f'<rect x="{lx}" y="{legend_y - 9}" width="10" height="10" fill="{colour}"/>')
        body.append(_text(lx + 14, legend_y, source, anchor="start", size=11))
    return _svg(width, height, title, body, "per-day")


def shares(rows: Sequence[tuple[str, float | None, int]], *, title: str, percent: Any) -> Markup:
    """One horizontal bar per row: the answered share (0–100 %), with the number of leads."""
    row_height, left, width = 26, 150, 640
    height = max(len(rows), 1) * row_height + 24
    span = width - left - 90
    body = []
    for tick in (0, 0.5, 1):
        x = left + span * tick
        body.append(f'<line x1="{x:.1f}" y1="4" x2="{x:.1f}" y2="{height - 18}" stroke="{GRID}"/>')
        body.append(_text(x, height - 4, percent(tick), fill=MUTED, size=10))
    for index, (label, value, leads) in enumerate(rows):
        y = 6 + index * row_height
        body.append(_text(left - 8, y + 14, label, anchor="end"))
        bar = span * (value or 0)
        body.append(
            f'<rect class="bar" data-value="{value if value is not None else ""}" x="{left}" y="{y}" '
            f'width="{bar:.1f}" height="18" fill="{PALETTE[2]}">'
            f"<title>{escape(label)}: {escape(percent(value))}</title></rect>"
        )
        body.append(_text(left + bar + 6, y + 14, f"{percent(value)} ({leads})", anchor="start", fill=MUTED))
    return _svg(width, height, title, body, "shares")


def day_range(first: date, last: date, limit: int = 400) -> list[date]:
    """Every local date of the period (at most ``limit``: a longer period shows its end)."""
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    return days[-limit:]
