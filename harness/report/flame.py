"""Flame graphs of the hot paths' call trees, as inline SVG icicles (the root on top).

A box is a frame: as wide as its share of the profile's time, under the frame that
called it. :func:`flame_svg` colours a profile by whose code a frame is (the
runtime, the workloads and harness, everything else); :func:`diff_flame_svg`
draws the candidate's tree of a comparison coloured by how each frame's own time
changed: red is more own time in the candidate, blue less, pale no change.

Guarantees:

* Each function returns one ``<svg class="flame">`` element as text that references
  nothing outside itself: no script, no link, no font (labels use the system's
  monospace family), no image. Its ids start with the graph's own ``ident``.
* Every drawn frame carries a ``<title>`` (the hover text): function,
  ``file:line``, time and share of the total (and, differential, the own time on
  each side and the change).
* Labels never overflow their box: cut to the box's width with an ellipsis, left
  out when fewer than :data:`MIN_LABEL_CHARS` characters fit. A frame narrower than
  :data:`MIN_BOX_WIDTH` is not drawn, nor anything it called (its time stays in
  its caller's box); nor is a frame deeper than :data:`MAX_DEPTH`. The element's
  ``data-hidden`` attribute counts the frames left out.
* Sized by its ``viewBox`` only: it scales to its container. Deterministic.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from markupsafe import escape

from harness.bundle.files import HotPathProfile
from harness.errors import BundleError
from harness.judge.where import CallNode, CallTree, DiffNode, format_seconds, parse_tree

__all__ = [
    "LEGACY_SUFFIX",
    "MAX_DEPTH",
    "MIN_BOX_WIDTH",
    "MIN_LABEL_CHARS",
    "WIDTH",
    "FlameCard",
    "ProfileGroup",
    "diff_flame_svg",
    "fit_label",
    "flame_svg",
    "profile_groups",
]

WIDTH = 1120.0
ROW_HEIGHT = 17.0
FONT_SIZE = 11.0
# The width of one monospace character, in font sizes (0.6 in the common monospace faces).
CHAR_WIDTH = 0.62 * FONT_SIZE
LABEL_PADDING = 3.0
MIN_BOX_WIDTH = 1.5
MIN_LABEL_CHARS = 3
MAX_DEPTH = 64
LEGEND_HEIGHT = 20.0
MONOSPACE = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'Liberation Mono', monospace"
# A legacy profile's path is its pooled path's with this suffix (harness.measure.profiles).
LEGACY_SUFFIX = "_legacy"
# Our own packages: the runtime under test, and the benchmark code that drives it.
RUNTIME = ("reference_impl/",)
DRIVERS = ("workloads/", "harness/")


# A drawable frame: a profile's (CallNode) or a comparison's (DiffNode).
_FrameT = TypeVar("_FrameT", CallNode, DiffNode)


@dataclass(frozen=True, slots=True)
class _Box:
    x: float
    depth: int
    width: float
    label: str
    tooltip: str
    fill: str


def fit_label(text: str, width: float) -> str:
    """``text`` cut to fit ``width`` (an ellipsis marks the cut); "" when too little fits."""
    room = int((width - 2 * LABEL_PADDING) // CHAR_WIDTH)
    if room >= len(text):
        return text
    if room < MIN_LABEL_CHARS:
        return ""
    return text[: room - 1] + "…"


def _layout(
    root: _FrameT,
    width: float,
    fill: Callable[[_FrameT], str],
    tooltip: Callable[[_FrameT], str],
) -> tuple[list[_Box], int]:
    """The boxes to draw, depth-first, and how many frames were left out."""
    total = root.time_s
    if total <= 0:
        return [], 0
    scale = width / total
    boxes: list[_Box] = []
    hidden = 0
    stack: list[tuple[_FrameT, float, int]] = [(root, 0.0, 0)]
    while stack:
        frame, x, depth = stack.pop()
        box_width = min(frame.time_s * scale, width - x)
        if box_width < MIN_BOX_WIDTH or depth >= MAX_DEPTH:
            hidden += _count(frame)
            continue
        label = fit_label(frame.function, box_width)
        boxes.append(_Box(x, depth, box_width, label, tooltip(frame), fill(frame)))
        placed: list[tuple[_FrameT, float, int]] = []
        child_x = x
        for child in frame.children:
            placed.append((child, child_x, depth + 1))
            child_x += child.time_s * scale
        stack.extend(reversed(placed))  # drawn left to right, largest first
    return boxes, hidden


def _count(frame: CallNode | DiffNode) -> int:
    count = 0
    stack: list[CallNode | DiffNode] = [frame]
    while stack:
        node = stack.pop()
        count += 1
        stack.extend(node.children)
    return count


def _svg(
    ident: str,
    label: str,
    boxes: Sequence[_Box],
    hidden: int,
    width: float,
    legend: Sequence[tuple[str, str]] = (),
) -> str:
    depth = max((box.depth for box in boxes), default=0) + 1
    height = depth * ROW_HEIGHT + (LEGEND_HEIGHT if legend else 0.0)
    parts = [
        f'<svg class="flame" id="{escape(ident)}" xmlns="http://www.w3.org/2000/svg" '
        f'viewBox="0 0 {width:g} {height:g}" role="img" aria-labelledby="{escape(ident)}-title" '
        f'font-family="{MONOSPACE}" font-size="{FONT_SIZE:g}" data-hidden="{hidden}">',
        f'<title id="{escape(ident)}-title">{escape(label)}</title>',
    ]
    for box in boxes:
        y = box.depth * ROW_HEIGHT
        parts.append(
            f"<g><title>{escape(box.tooltip)}</title>"
            f'<rect x="{box.x:.2f}" y="{y:g}" width="{box.width:.2f}" height="{ROW_HEIGHT - 1:g}" '
            f'fill="{box.fill}" rx="1.5"/>'
            + (
                f'<text x="{box.x + LABEL_PADDING:.2f}" y="{y + ROW_HEIGHT - 5:g}">'
                f"{escape(box.label)}</text>"
                if box.label
                else ""
            )
            + "</g>"
        )
    x = 0.0
    for fill, text in legend:
        y = depth * ROW_HEIGHT + 4
        parts.append(
            f'<rect x="{x:g}" y="{y:g}" width="12" height="12" fill="{fill}" rx="1.5"/>'
            f'<text x="{x + 16:g}" y="{y + 10:g}">{escape(text)}</text>'
        )
        x += 16 + len(text) * CHAR_WIDTH + 18
    parts.append("</svg>")
    return "\n".join(parts)


def _stable_unit(text: str) -> float:
    """A number in [0, 1) fixed by ``text`` (crc32: stable across runs, unlike hash())."""
    return (zlib.crc32(text.encode("utf-8")) % 1000) / 1000.0


def _kind_fill(where: str, function: str = "") -> str:
    """Warm for the runtime's own code, yellow for workloads and harness, grey-blue else."""
    jitter = _stable_unit(function)
    if where.startswith(RUNTIME):
        return f"hsl({14 + 22 * jitter:.0f}, 85%, {62 + 8 * jitter:.0f}%)"
    if where.startswith(DRIVERS):
        return f"hsl({44 + 10 * jitter:.0f}, 85%, {66 + 8 * jitter:.0f}%)"
    return f"hsl({205 + 15 * jitter:.0f}, 18%, {78 + 8 * jitter:.0f}%)"


def flame_svg(tree: CallTree, *, ident: str, title: str, width: float = WIDTH) -> str:
    """The icicle graph of ``tree`` (see the module's guarantees)."""
    total = tree.total_s

    def tooltip(frame: CallNode) -> str:
        share = frame.time_s / total if total > 0 else 0.0
        return (
            f"{frame.function}\n{frame.where}\n"
            f"time {format_seconds(frame.time_s)} ({share:.1%} of {tree.path}), "
            f"own {format_seconds(frame.self_s)}"
        )

    def fill(frame: CallNode) -> str:
        return _kind_fill(frame.where, frame.function)

    boxes, hidden = _layout(tree.root, width, fill, tooltip)
    legend = (
        (_kind_fill(RUNTIME[0]), "runtime (reference_impl)"),
        (_kind_fill(DRIVERS[0]), "workloads, harness"),
        (_kind_fill(""), "Python, libraries"),
    )
    return _svg(ident, title, boxes, hidden, width, legend)


MORE = (0.0, 80.0)  # hue and saturation of "more own time in the candidate"
LESS = (215.0, 80.0)


def _change_fill(delta_s: float, largest_s: float) -> str:
    if largest_s <= 0 or delta_s == 0:
        return "hsl(0, 0%, 94%)"
    strength = min(1.0, abs(delta_s) / largest_s)
    hue, saturation = MORE if delta_s > 0 else LESS
    # Light at no change, down to 56 % lightness: dark labels stay readable.
    return f"hsl({hue:.0f}, {saturation:.0f}%, {96 - 40 * math.sqrt(strength):.0f}%)"


def diff_flame_svg(
    diff: DiffNode, *, ident: str, title: str, per: str = "", width: float = WIDTH
) -> str:
    """The candidate's tree coloured by each frame's change of own time (red more, blue less).

    ``per`` names the unit the times are per (``"task"``), empty for a whole run.
    """
    total = diff.time_s
    largest = 0.0
    stack: list[DiffNode] = [diff]
    while stack:
        node = stack.pop()
        largest = max(largest, abs(node.delta_s))
        stack.extend(node.children)
    suffix = f" per {per}" if per else ""

    def tooltip(frame: DiffNode) -> str:
        share = frame.time_s / total if total > 0 else 0.0
        return (
            f"{frame.function}\n{frame.where}\n"
            f"own time{suffix}: base {format_seconds(frame.base_self_s)} → candidate "
            f"{format_seconds(frame.self_s)} ({'+' if frame.delta_s >= 0 else ''}"
            f"{format_seconds(frame.delta_s)})\n"
            f"time in the candidate {format_seconds(frame.time_s)} ({share:.1%})"
        )

    def fill(frame: DiffNode) -> str:
        return _change_fill(frame.delta_s, largest)

    boxes, hidden = _layout(diff, width, fill, tooltip)
    legend = (
        (_change_fill(1.0, 1.0), "more own time in the candidate"),
        (_change_fill(-1.0, 1.0), "less own time"),
        (_change_fill(0.0, 1.0), "no change"),
    )
    return _svg(ident, title, boxes, hidden, width, legend)


# -- the report's profiles section -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FlameCard:
    """One profile as the report shows it: its flame graph (or why none), a caption line."""

    profile: HotPathProfile
    mode: str
    svg: str
    caption: str


@dataclass(frozen=True, slots=True)
class ProfileGroup:
    """One hot path's profiles: legacy beside pooled when the bundle has both."""

    path: str
    cards: tuple[FlameCard, ...]


def _card(profile: HotPathProfile, mode: str, width: float) -> FlameCard:
    if not profile.tree:
        return FlameCard(
            profile,
            mode,
            "",
            "No call tree in this bundle (a run by a harness without call trees, or a tree "
            "above the bundle's size bound): the text view only.",
        )
    try:
        tree = parse_tree(profile.tree, path=profile.path, where=f"profile {profile.path}")
    except BundleError as exc:
        return FlameCard(profile, mode, "", f"The call tree cannot be drawn: {exc}.")
    svg = flame_svg(
        tree,
        ident=f"flame-{profile.path}",
        title=f"Flame graph of {profile.path} ({mode}): {profile.description}",
        width=width,
    )
    caption = f"Sampled time {format_seconds(tree.total_s)}"
    if tree.work is not None:
        per = format_seconds(tree.total_s / tree.work.count)
        caption += f" for {tree.work.count:g} {tree.work.unit}s: {per} per {tree.work.unit}"
    return FlameCard(profile, mode, svg, caption + ".")


def profile_groups(profiles: Sequence[HotPathProfile]) -> tuple[ProfileGroup, ...]:
    """The bundle's profiles by hot path, in the bundle's order; legacy first in a pair."""
    grouped: dict[str, list[HotPathProfile]] = {}
    for profile in profiles:
        grouped.setdefault(profile.path.removesuffix(LEGACY_SUFFIX), []).append(profile)
    groups = []
    for path, members in grouped.items():
        members.sort(key=lambda p: not p.path.endswith(LEGACY_SUFFIX))
        width = WIDTH / 2 if len(members) > 1 else WIDTH
        groups.append(
            ProfileGroup(
                path,
                tuple(
                    _card(p, "legacy" if p.path.endswith(LEGACY_SUFFIX) else "pooled", width)
                    for p in members
                ),
            )
        )
    return tuple(groups)
