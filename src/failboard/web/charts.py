"""Small server-side SVG charts. Built from numbers only, so the markup is safe to mark up."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

__all__ = ["bars", "sparkline"]


def sparkline(values: Sequence[int], width: int = 120, height: int = 24, label: str = "") -> Markup:
    """A tiny bar sparkline (bars read better than a line for sparse failure counts)."""
    n = max(1, len(values))
    top = max(values, default=0) or 1
    step = width / n
    rects = []
    for i, value in enumerate(values):
        if not value:
            continue
        h = max(1.5, value / top * (height - 2))
        rects.append(
            f'<rect x="{i * step:.2f}" y="{height - h:.2f}" width="{max(step - 0.6, 0.8):.2f}" '
            f'height="{h:.2f}"><title>{value}</title></rect>'
        )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}">'
        f'<line x1="0" y1="{height - 0.5}" x2="{width}" y2="{height - 0.5}" class="axis"/>'
        + "".join(rects)
        + "</svg>"
    )


def bars(
    values: Sequence[int],
    labels: Sequence[str],
    *,
    width: int = 720,
    height: int = 140,
    label: str = "",
    tick_every: int = 6,
) -> Markup:
    """A bar chart with a max line and sparse x labels (UTC hours or days)."""
    n = max(1, len(values))
    pad_left, pad_bottom, pad_top = 34, 18, 8
    inner_w, inner_h = width - pad_left, height - pad_bottom - pad_top
    top = max(values, default=0)
    scale = top or 1
    step = inner_w / n
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(label)}" preserveAspectRatio="none">',
        f'<text x="{pad_left - 4}" y="{pad_top + 4}" class="tick" text-anchor="end">{top}</text>',
        f'<text x="{pad_left - 4}" y="{pad_top + inner_h}" class="tick" text-anchor="end">0</text>',
        f'<line x1="{pad_left}" y1="{pad_top + inner_h + 0.5}" x2="{width}" '
        f'y2="{pad_top + inner_h + 0.5}" class="axis"/>',
    ]
    for i, value in enumerate(values):
        x = pad_left + i * step
        if value:
            h = max(1.0, value / scale * inner_h)
            parts.append(
                f'<rect x="{x + 0.5:.2f}" y="{pad_top + inner_h - h:.2f}" '
                f'width="{max(step - 1, 0.8):.2f}" height="{h:.2f}">'
                f"<title>{escape(labels[i])}: {value}</title></rect>"
            )
        if i % tick_every == 0:
            parts.append(
                f'<text x="{x:.2f}" y="{height - 4}" class="tick">{escape(labels[i])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
