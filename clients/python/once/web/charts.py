"""Small SVG charts drawn on the server: no JavaScript library, nothing fetched from elsewhere.

Every value drawn is a number; the only text (labels) goes through ``markupsafe.escape``.
"""
import math
from typing import List, Optional, Sequence, Tuple

from markupsafe import Markup, escape

COLORS = {"ready": "#2b8a3e", "delayed": "#5c7cfa", "reserved": "#f08c00", "dead": "#e03131",
          "in": "#1971c2", "out": "#2f9e44", "fail": "#e8590c"}


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _fmt(v: float) -> str:
    if v >= 1000:
        return f"{v / 1000:.3g}k"
    if v == int(v):
        return str(int(v))
    return f"{v:.2g}"


def line_chart(series: Sequence[Tuple[str, Sequence[Tuple[float, Optional[float]]]]], *, width: int = 420,
               height: int = 140, unit: str = "", title: str = "", span_s: Optional[float] = None,
               spark: bool = False) -> Markup:
    """Lines of ``(t, value)`` points (t in seconds, a None value leaves a gap), t axis ending now."""
    pad_l, pad_r, pad_t, pad_b = (2, 2, 2, 2) if spark else (38, 8, 18, 18)
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    ts = [t for _, pts in series for t, v in pts if v is not None]
    vs = [v for _, pts in series for t, v in pts if v is not None]
    t1 = max(ts) if ts else 0.0
    t0 = (t1 - span_s) if span_s else (min(ts) if ts else 0.0)
    if t1 <= t0:
        t0 = t1 - 1
    vmax = _nice_max(max(vs) if vs else 0.0)
    out = [f'<svg class="chart{" spark" if spark else ""}" xmlns="http://www.w3.org/2000/svg" '
           f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
           f'aria-label="{escape(title)}">']
    if not spark:
        out.append(f'<text x="{pad_l}" y="12" class="chart-title">{escape(title)}</text>')
        for frac in (0, 0.5, 1):
            y = pad_t + h - frac * h
            out.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + w}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{pad_l - 4}" y="{y + 3:.1f}" class="axis" text-anchor="end">'
                       f'{escape(_fmt(vmax * frac))}{escape(unit)}</text>')
        secs = t1 - t0
        ago = f"-{int(round(secs))} s" if secs < 120 else f"-{_fmt(round(secs / 60.0, 1))} min"
        out.append(f'<text x="{pad_l}" y="{height - 4}" class="axis">{escape(ago)}</text>')
        out.append(f'<text x="{pad_l + w}" y="{height - 4}" class="axis" text-anchor="end">now</text>')
    legend_x = pad_l + 7 * len(title) + 16
    for name, pts in series:
        color = COLORS.get(name, "#495057")
        segs: List[List[str]] = [[]]
        for t, v in pts:
            if v is None or t < t0:
                if segs[-1]:
                    segs.append([])
                continue
            x = pad_l + (t - t0) / (t1 - t0) * w
            y = pad_t + h - (v / vmax) * h
            segs[-1].append(f"{x:.1f},{y:.1f}")
        for seg in segs:
            if len(seg) == 1:
                cx, cy = seg[0].split(",")
                out.append(f'<circle cx="{cx}" cy="{cy}" r="1.8" fill="{color}"/>')
            elif seg:
                out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.6" points="{" ".join(seg)}"/>')
        if not spark:
            out.append(f'<rect x="{legend_x}" y="5" width="9" height="9" fill="{color}"/>'
                       f'<text x="{legend_x + 12}" y="13" class="legend">{escape(name)}</text>')
            legend_x += 12 + 7 * len(name) + 12
    out.append("</svg>")
    return Markup("".join(out))


def _bound_label(ms: float) -> str:
    if math.isinf(ms):
        return "inf"
    if ms < 1000:
        return f"{ms:g}ms"
    if ms < 60_000:
        return f"{ms / 1000:g}s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.3g}m"
    return f"{ms / 3_600_000:.3g}h"


def histogram_chart(buckets: Sequence[Tuple[float, int]], *, title: str, width: int = 420,
                    height: int = 150) -> Markup:
    """Bars of per-bucket counts (``buckets``: ``(upper_bound_ms, count_in_bucket)``), trimmed to the busy part."""
    nz = [i for i, (_, c) in enumerate(buckets) if c]
    pad_l, pad_r, pad_t, pad_b = 38, 8, 18, 30
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    out = [f'<svg class="chart histogram" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
           f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">',
           f'<text x="{pad_l}" y="12" class="chart-title">{escape(title)}</text>']
    if not nz:
        out.append(f'<text x="{pad_l + w / 2}" y="{pad_t + h / 2}" class="axis" text-anchor="middle">'
                   f'no jobs yet</text></svg>')
        return Markup("".join(out))
    lo, hi = max(0, nz[0] - 1), min(len(buckets) - 1, nz[-1] + 1)
    shown = list(buckets[lo:hi + 1])
    total = sum(c for _, c in buckets)
    cmax = _nice_max(max(c for _, c in shown))
    bw = w / len(shown)
    for frac in (0, 0.5, 1):
        y = pad_t + h - frac * h
        out.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{pad_l + w}" y2="{y:.1f}" class="grid"/>'
                   f'<text x="{pad_l - 4}" y="{y + 3:.1f}" class="axis" text-anchor="end">'
                   f'{escape(_fmt(cmax * frac))}</text>')
    step = max(1, math.ceil(len(shown) / 8))
    for i, (bound, c) in enumerate(shown):
        x = pad_l + i * bw
        bh = (c / cmax) * h
        out.append(f'<rect x="{x + 1:.1f}" y="{pad_t + h - bh:.1f}" width="{max(1.0, bw - 2):.1f}" '
                   f'height="{bh:.1f}" class="bar"><title>&#8804; {escape(_bound_label(bound))}: {c} of '
                   f'{total}</title></rect>')
        if i % step == 0:
            out.append(f'<text x="{x + bw / 2:.1f}" y="{pad_t + h + 12}" class="axis" text-anchor="middle">'
                       f'{escape(_bound_label(bound))}</text>')
    out.append(f'<text x="{pad_l + w}" y="{height - 3}" class="axis" text-anchor="end">upper bound of the bucket; '
               f'{total} jobs</text></svg>')
    return Markup("".join(out))
