"""Charts of the HTML report, drawn with matplotlib and returned as inline SVG text.

Guarantees:

* Every function returns one ``<svg>`` element as text, ready to be inlined in
  an HTML page: no XML declaration, no DOCTYPE, no metadata block, and no
  reference to anything outside the element (text stays text: ``svg.fonttype``
  is ``none``, so no glyph is fetched and no font is embedded).
* Element ids are prefixed with the chart's own ``chart_id``, so several charts
  in one page never share an id (matplotlib numbers its ids per figure).
* The figure is sized by its ``viewBox`` only: it scales to its container.
* Every axis says what it shows and in which unit; durations are scaled to
  s, ms or µs by the magnitude of the data, never stored converted.
* Pure: no pyplot state, no global rcParams change outside a ``rc_context``.

Why one module: every chart draws through the same private machinery, the rc settings
(``_RC``), the fixed-margin figure (``_figure``, ``_label_margin``) and the SVG clean-up that
makes the guarantees above true (``_svg``: ids prefixed, metadata stripped, sized by its
``viewBox``); a module per chart would import those private helpers.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.figure import Figure

__all__ = [
    "Bar",
    "ForestRow",
    "PairBar",
    "TrendPoint",
    "bar_chart",
    "distribution_chart",
    "forest_chart",
    "pair_chart",
    "scale_for",
    "trend_chart",
]

# Colours chosen to stay apart in grey-scale print too (dark blue vs light grey).
POOLED = "#1f5fad"
LEGACY = "#a3acb9"
BOUND = "#b42318"
PASS_FILL = "#e7f5ec"
PERCENTILE_COLOURS = {"p50": "#1b7837", "p95": "#c2730a", "p99": "#b42318"}
# Line styles tell the percentiles apart in grey-scale print as well.
_PERCENTILE_STYLES = {"p50": "-", "p95": "--", "p99": ":"}

# Keys typed loosely: matplotlib's stubs want a Literal of every rc name.
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"],
    "font.size": 9.0,
    "axes.titlesize": 10.0,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#d8dee4",
    "grid.linewidth": 0.6,
    "axes.axisbelow": True,
    "legend.frameon": False,
    "legend.fontsize": 8.0,
}
_STRIP = (
    re.compile(r"<\?xml[^>]*\?>\s*"),
    re.compile(r"<!DOCTYPE[^>]*>\s*", re.DOTALL),
    re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL),
)
_ROOT_SIZE = re.compile(r'<svg([^>]*?)\swidth="[^"]*"\sheight="[^"]*"')
_ID = re.compile(r'\bid="([^"]+)"')
_REFERENCE = re.compile(r'(href="#|url\(#)([^")]+)')


def scale_for(unit: str, values: Sequence[float]) -> tuple[float, str]:
    """The factor to multiply ``values`` by for display, and the unit label after it.

    Seconds become s, ms or µs by the largest magnitude; ``per_hour`` reads
    "per hour"; anything else is shown as is.
    """
    if unit == "s":
        finite = [abs(v) for v in values if math.isfinite(v)]
        largest = max(finite, default=1.0)
        if largest >= 1.0 or largest == 0.0:
            return 1.0, "s"
        if largest >= 1e-3:
            return 1e3, "ms"
        return 1e6, "µs"
    if unit == "per_hour":
        return 1.0, "per hour"
    return 1.0, unit


# Approximate width of one character of a 9 pt tick label, for the left margin.
_CHAR_IN = 0.068


def _figure(
    width_in: float,
    height_in: float,
    *,
    left_in: float = 0.62,
    bottom_in: float = 0.48,
    top_in: float = 0.3,
    right_in: float = 0.18,
) -> Figure:
    """A figure with fixed margins (in inches): a layout engine would cost 3x the drawing."""
    figure = Figure(figsize=(width_in, height_in))
    figure.subplots_adjust(
        left=left_in / width_in,
        right=1.0 - right_in / width_in,
        bottom=bottom_in / height_in,
        top=1.0 - top_in / height_in,
    )
    return figure


def _label_margin(labels: Sequence[str]) -> float:
    """The left margin (inches) that fits the longest y tick label."""
    longest = max((len(line) for label in labels for line in label.splitlines()), default=4)
    return min(3.2, 0.25 + _CHAR_IN * longest)


def _svg(figure: Figure, chart_id: str, label: str) -> str:
    """The figure as inline SVG text (call inside the chart's ``rc_context``: it applies
    at draw time too)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    for pattern in _STRIP:
        text = pattern.sub("", text, count=1)
    prefix = re.sub(r"[^A-Za-z0-9_-]", "-", chart_id)
    text = _ID.sub(lambda m: f'id="{prefix}-{m.group(1)}"', text)
    text = _REFERENCE.sub(lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", text)
    escaped = label.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    root = rf'<svg\1 class="chart" role="img" aria-label="{escaped}"'
    text = _ROOT_SIZE.sub(root + ' preserveAspectRatio="xMidYMid meet"', text, count=1)
    return text.strip()


def distribution_chart(
    chart_id: str,
    values: Sequence[float],
    *,
    unit: str,
    title: str,
    quantity: str,
) -> str:
    """A histogram of ``values`` with p50, p95 and p99 drawn as labelled vertical lines."""
    factor, unit_label = scale_for(unit, values)
    shown = np.asarray(values, dtype=float) * factor
    with mpl.rc_context(_RC):
        figure = _figure(6.2, 2.6)
        axes = figure.add_subplot()
        bins = min(60, max(10, int(math.sqrt(len(shown)))))
        axes.hist(shown, bins=bins, color=POOLED, alpha=0.75, edgecolor="white", linewidth=0.4)
        for name, percent in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0)):
            position = float(np.percentile(shown, percent))
            axes.axvline(
                position,
                color=PERCENTILE_COLOURS[name],
                linewidth=1.4,
                linestyle=_PERCENTILE_STYLES[name],
                label=f"{name} = {position:.3g} {unit_label}",
            )
        axes.legend(loc="upper right", frameon=True, framealpha=0.92, edgecolor="#d8dee4")
        axes.set_title(title, loc="left")
        axes.set_xlabel(f"{quantity} ({unit_label})")
        axes.set_ylabel("count")
        return _svg(figure, chart_id, title)


@dataclass(frozen=True, slots=True)
class PairBar:
    """One legacy/pooled pair: its label, the medians and the p95s of both sides."""

    label: str
    legacy_median: float
    pooled_median: float
    legacy_p95: float
    pooled_p95: float
    pooled_label: str = "pooled"


def pair_chart(chart_id: str, pairs: Sequence[PairBar], *, unit: str, title: str) -> str:
    """Horizontal bars, legacy beside pooled: the bar is the median, the whisker the p95."""
    numbers = [
        v for p in pairs for v in (p.legacy_median, p.pooled_median, p.legacy_p95, p.pooled_p95)
    ]
    factor, unit_label = scale_for(unit, numbers)
    positions = np.arange(len(pairs))
    height = 0.38
    with mpl.rc_context(_RC):
        figure = _figure(
            5.6,
            1.5 + 0.55 * len(pairs),
            left_in=_label_margin([p.label for p in pairs]),
            bottom_in=0.85,
        )
        axes = figure.add_subplot()
        for offset, side, colour in (
            (-height / 2, "legacy", LEGACY),
            (height / 2, "pooled", POOLED),
        ):
            medians = [getattr(p, f"{side}_median") * factor for p in pairs]
            p95s = [getattr(p, f"{side}_p95") * factor for p in pairs]
            upper = [max(0.0, high - mid) for mid, high in zip(medians, p95s, strict=True)]
            label = side if side == "legacy" else pairs[0].pooled_label
            axes.barh(
                positions + offset,
                medians,
                height=height,
                color=colour,
                label=f"{label} (median; whisker: p95)",
                xerr=[[0.0] * len(medians), upper],
                error_kw={"ecolor": "#24292f", "capsize": 2.5, "elinewidth": 0.8},
            )
            for y, value in zip(positions + offset, medians, strict=True):
                axes.annotate(
                    f"{value:.3g}",
                    (value, y),
                    xytext=(3, 0),
                    textcoords="offset points",
                    va="center",
                    fontsize=7.5,
                )
        axes.set_yticks(positions, [p.label for p in pairs])
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.set_xlabel(f"median ({unit_label})")
        axes.set_title(title, loc="left")
        figure.legend(loc="lower center", ncol=2, bbox_to_anchor=(0.5, 0.0))
        axes.margins(x=0.15)
        return _svg(figure, chart_id, title)


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """One run's value of a target: a short label (the sha), the value and its interval."""

    label: str
    value: float
    low: float | None
    high: float | None
    current: bool = False


def trend_chart(
    chart_id: str,
    points: Sequence[TrendPoint],
    *,
    bound: float,
    direction: str,
    unit: str,
    title: str,
) -> str:
    """A target's value run after run, its 95 % interval, and the bound as a dashed line.

    The passing side of the bound is shaded; the current run is drawn larger.
    """
    numbers = [p.value for p in points] + [bound]
    factor, unit_label = scale_for(unit, numbers)
    xs = np.arange(len(points))
    values = np.asarray([p.value for p in points]) * factor
    lows = np.asarray([p.value if p.low is None else p.low for p in points]) * factor
    highs = np.asarray([p.value if p.high is None else p.high for p in points]) * factor
    with mpl.rc_context(_RC):
        figure = _figure(4.6, 2.4, bottom_in=0.78)
        axes = figure.add_subplot()
        axes.errorbar(
            xs,
            values,
            yerr=[np.maximum(values - lows, 0.0), np.maximum(highs - values, 0.0)],
            color=POOLED,
            marker="o",
            markersize=3.5,
            linewidth=1.2,
            capsize=2,
            elinewidth=0.8,
            label="value (95% CI)",
        )
        current = [i for i, p in enumerate(points) if p.current]
        if current:
            axes.plot(xs[current], values[current], "o", color=POOLED, markersize=7, zorder=5)
        shown_bound = bound * factor
        axes.axhline(shown_bound, color=BOUND, linestyle="--", linewidth=1.2, label="bound")
        low_limit, high_limit = axes.get_ylim()
        low_limit = min(low_limit, shown_bound)
        high_limit = max(high_limit, shown_bound)
        span = (high_limit - low_limit) or abs(shown_bound) or 1.0
        low_limit, high_limit = low_limit - 0.08 * span, high_limit + 0.08 * span
        if direction == "max":
            axes.axhspan(low_limit, shown_bound, color=PASS_FILL, zorder=0)
        else:
            axes.axhspan(shown_bound, high_limit, color=PASS_FILL, zorder=0)
        axes.set_ylim(low_limit, high_limit)
        step = max(1, math.ceil(len(points) / 8))
        axes.set_xticks(xs[::step], [p.label for p in points][::step], rotation=30, ha="right")
        axes.set_xlim(-0.5, max(len(points) - 0.5, 0.5))
        axes.set_xlabel("run (git sha, oldest left)")
        axes.set_ylabel(unit_label)
        axes.set_title(title, loc="left")
        # No legend: the report's text says what the line, the band and the dots are.
        return _svg(figure, chart_id, title)


@dataclass(frozen=True, slots=True)
class ForestRow:
    """One comparison row: its label, the ratio candidate/base and its interval."""

    label: str
    ratio: float
    low: float | None
    high: float | None
    verdict: str


_VERDICT_COLOURS = {
    "regression": BOUND,
    "slower": "#c2730a",
    "faster": "#1b7837",
    "improvement": "#1b7837",
}


def forest_chart(
    chart_id: str, rows: Sequence[ForestRow], *, threshold: float | None, title: str
) -> str:
    """Ratios candidate/base with their intervals, the line of no change at 1 and ±threshold."""
    ys = np.arange(len(rows))
    with mpl.rc_context(_RC):
        figure = _figure(
            6.2, 1.1 + 0.42 * len(rows), left_in=_label_margin([r.label for r in rows])
        )
        axes = figure.add_subplot()
        if threshold:
            axes.axvspan(
                1.0 - threshold,
                1.0 + threshold,
                color="#eef1f4",
                zorder=0,
                label=f"±{threshold:.0%} threshold",
            )
        axes.axvline(1.0, color="#57606a", linewidth=1.0)
        for y, row in zip(ys, rows, strict=True):
            colour = _VERDICT_COLOURS.get(row.verdict, "#24292f")
            low = row.ratio if row.low is None else row.low
            high = row.ratio if row.high is None else row.high
            axes.plot([low, high], [y, y], color=colour, linewidth=1.6)
            axes.plot([row.ratio], [y], "s", color=colour, markersize=5)
        axes.set_yticks(ys, [r.label for r in rows])
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.set_xlabel("ratio candidate / base (95% interval; 1 = no change)")
        axes.set_title(title, loc="left")
        if threshold:
            axes.legend(loc="lower right")
        return _svg(figure, chart_id, title)


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its label, its value and an optional interval (low, high)."""

    label: str
    value: float
    low: float | None = None
    high: float | None = None


def bar_chart(
    chart_id: str, bars: Sequence[Bar], *, xlabel: str, title: str, reference: float | None
) -> str:
    """Horizontal bars with optional whiskers and a reference line (e.g. 1 = parity)."""
    ys = np.arange(len(bars))
    values = np.asarray([b.value for b in bars])
    lower = [max(0.0, b.value - b.low) if b.low is not None else 0.0 for b in bars]
    upper = [max(0.0, b.high - b.value) if b.high is not None else 0.0 for b in bars]
    with mpl.rc_context(_RC):
        figure = _figure(
            6.2, 1.0 + 0.45 * len(bars), left_in=_label_margin([b.label for b in bars])
        )
        axes = figure.add_subplot()
        axes.barh(
            ys,
            values,
            height=0.55,
            color=POOLED,
            xerr=[lower, upper],
            error_kw={"ecolor": "#24292f", "capsize": 2.5, "elinewidth": 0.8},
        )
        for y, value in zip(ys, values, strict=True):
            axes.annotate(
                f"{value:.3g}",
                (value, y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7.5,
            )
        if reference is not None:
            axes.axvline(reference, color=BOUND, linestyle="--", linewidth=1.1)
        axes.set_yticks(ys, [b.label for b in bars])
        axes.invert_yaxis()
        axes.grid(axis="y", visible=False)
        axes.set_xlabel(xlabel)
        axes.set_title(title, loc="left")
        axes.margins(x=0.15)
        return _svg(figure, chart_id, title)
