"""Figures as people read them: times, durations, rates, cut-short text. Shared by the command line and the
dashboard; imports nothing of the package."""
import datetime
from typing import Any, Optional


def fmt_time(ms: Any) -> str:
    """Unix ms as local ``YYYY-MM-DD HH:MM:SS.mmm``; ``-`` for none."""
    if ms is None or ms == "":
        return "-"
    try:
        return datetime.datetime.fromtimestamp(int(ms) / 1000).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    except (ValueError, OverflowError, OSError):
        return str(ms)


def fmt_ms(ms: Any) -> str:
    """A duration in ms in the unit that reads best (ms, s, min, h); ``-`` for none."""
    if ms is None:
        return "-"
    try:
        v = float(ms)
    except (TypeError, ValueError):
        return str(ms)
    if v < 1000:
        return f"{v:g} ms"
    if v < 60_000:
        return f"{v / 1000:.3g} s"
    if v < 3_600_000:
        return f"{v / 60_000:.3g} min"
    return f"{v / 3_600_000:.3g} h"


def fmt_rate(v: Optional[float]) -> str:
    return "-" if v is None else f"{v:.1f}/s"


def short(value: Any, n: int = 60) -> str:
    """One line of at most ``n`` characters (newlines shown as ⏎)."""
    s = "" if value is None else str(value)
    s = s.replace("\n", "⏎")
    return s if len(s) <= n else s[: n - 1] + "…"
