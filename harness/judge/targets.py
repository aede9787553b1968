"""Performance targets: the targets file, and its thresholds.

The file (``workloads/targets.toml``) is a contract: a top-level ``schema = 1``
and one ``[[target]]`` table per target (the file's own comment lists the
fields). Guarantees of :func:`load_targets`:

* Every field is checked (presence, type, allowed values); unknown fields are
  refused, so a typo is never silently ignored.
* A target naming a workload that :data:`workloads.registry.WORKLOADS` lacks, or
  a metric its workload does not record, is an error; so is a clock that is not
  the workload's.
* An optional ``[thresholds]`` table maps a workload to the relative change
  ``harness compare`` treats as a regression (a number in (0, 1); the default is
  ``--threshold``); :func:`load_thresholds` reads it, with the same checks.
* Every error is a :class:`~harness.errors.TargetsError` naming the file, the
  line (of the offending field when it can be found, else of the target's
  ``[[target]]`` header; TOML syntax errors carry the parser's line), the field
  and what was expected.

The verdict of a target on a run is computed by :mod:`harness.judge.verdict`.
"""

from __future__ import annotations

import enum
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from harness.bundle.verdicts import (
    PYPERF_METRIC,
    Clock,
    Direction,
    Statistic,
    Target,
    Unit,
)
from harness.errors import TargetsError
from workloads import registry
from workloads.registry import WorkloadInfo

__all__ = [
    "DEFAULT_TARGETS_PATH",
    "SCHEMA_VERSION",
    "load_targets",
    "load_thresholds",
    "parse_targets",
    "parse_thresholds",
]

DEFAULT_TARGETS_PATH = Path(registry.__file__).resolve().parent / "targets.toml"
# Schema history:
# 1: name, workload, metric, statistic, clock, unit, bound, direction, description.
#    Amended, still 1: an optional top-level [thresholds] table (workload = fraction).
SCHEMA_VERSION = 1


_ALLOWED: dict[str, type[enum.StrEnum]] = {
    "statistic": Statistic,
    "clock": Clock,
    "unit": Unit,
    "direction": Direction,
}
_FIELDS = (
    "name",
    "workload",
    "metric",
    "statistic",
    "clock",
    "unit",
    "bound",
    "direction",
    "description",
)
_HEADER = re.compile(r"^\s*\[\[\s*target\s*\]\]")
_THRESHOLDS = re.compile(r"^\s*\[\s*thresholds\s*\]")
_TOML_LINE = re.compile(r"at line (\d+)")
_NAME = re.compile(r"^[a-z][a-z0-9_.-]*$")
# A duration or a rate is never negative: such a bound is a typo that would pass
# (min) or fail (max) every run whatever it measured. A ratio may be anything.
_NON_NEGATIVE_UNITS = frozenset({Unit.SECONDS, Unit.PER_HOUR})


def load_targets(
    path: Path | str = DEFAULT_TARGETS_PATH,
    workloads: Mapping[str, WorkloadInfo] | None = None,
) -> tuple[Target, ...]:
    """Every target of the file at ``path``, validated against ``workloads``.

    ``workloads`` defaults to :data:`workloads.registry.WORKLOADS`.
    """
    path = Path(path)
    return parse_targets(_read(path), str(path), workloads)


def load_thresholds(
    path: Path | str = DEFAULT_TARGETS_PATH,
    workloads: Mapping[str, WorkloadInfo] | None = None,
) -> dict[str, float]:
    """The ``[thresholds]`` table of the file at ``path``: workload -> fraction (may be empty)."""
    path = Path(path)
    return parse_thresholds(_read(path), str(path), workloads)


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetsError(
            f"cannot read the targets file: {exc}", where=str(path), expected="a UTF-8 TOML file"
        ) from None


def _decode(text: str, source: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_LINE.search(str(exc))
        where = f"{source}:{found.group(1)}" if found else source
        raise TargetsError(f"not valid TOML: {exc}", where=where) from None


def parse_thresholds(
    text: str, source: str, workloads: Mapping[str, WorkloadInfo] | None = None
) -> dict[str, float]:
    """The ``[thresholds]`` table of TOML ``text``; see :func:`load_thresholds`."""
    known = registry.WORKLOADS if workloads is None else workloads
    return _thresholds(_decode(text, source), text.splitlines(), source, known)


def _thresholds(
    document: Mapping[str, Any],
    lines: Sequence[str],
    source: str,
    known: Mapping[str, WorkloadInfo],
) -> dict[str, float]:
    table = document.get("thresholds", {})
    header = next((n for n, line in enumerate(lines, 1) if _THRESHOLDS.match(line)), 0)
    if not isinstance(table, dict):
        raise TargetsError(
            "`thresholds` is not a table",
            where=f"{source}:{header}" if header else source,
            expected="[thresholds] with lines `workload = 0.05`",
        )
    thresholds: dict[str, float] = {}
    for workload, value in table.items():
        line = _line_of_key(lines, header, len(lines), workload) or header
        where = f"{source}:{line}: field thresholds.{workload}"
        if workload not in known:
            raise TargetsError(
                f"unknown workload {workload!r}", where=where, expected="one of " + ", ".join(known)
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise TargetsError(
                f"threshold {value!r}", where=where, expected="a fraction in (0, 1), e.g. 0.05"
            )
        thresholds[workload] = float(value)
    return thresholds


def parse_targets(
    text: str, source: str, workloads: Mapping[str, WorkloadInfo] | None = None
) -> tuple[Target, ...]:
    """The targets of TOML ``text`` (``source`` names it in errors); see :func:`load_targets`."""
    known = registry.WORKLOADS if workloads is None else workloads
    document = _decode(text, source)
    lines = text.splitlines()
    headers = [number for number, line in enumerate(lines, start=1) if _HEADER.match(line)]
    schema = document.get("schema")
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise TargetsError(
            f"schema version {schema!r}",
            where=f"{source}:{_line_of_key(lines, 0, len(lines), 'schema') or 1}: field schema",
            expected=f"a top-level `schema = {SCHEMA_VERSION}`",
        )
    extra = sorted(set(document) - {"schema", "target", "thresholds"})
    if extra:
        raise TargetsError(
            f"unknown top-level key {extra[0]!r}",
            where=f"{source}:{_line_of_key(lines, 0, len(lines), extra[0]) or 1}",
            expected="only `schema`, [[target]] tables and a [thresholds] table",
        )
    _thresholds(document, lines, source, known)
    tables = document.get("target")
    if not isinstance(tables, list) or not tables:
        raise TargetsError("no targets", where=source, expected="at least one [[target]] table")
    targets: list[Target] = []
    seen: dict[str, int] = {}
    for index, table in enumerate(tables):
        header = headers[index] if index < len(headers) else 0
        end = headers[index + 1] - 1 if index + 1 < len(headers) else len(lines)
        target = _parse_one(table, known, source, lines, header, end)
        if target.name in seen:
            raise TargetsError(
                f"duplicate target name {target.name!r} (first at line {seen[target.name]})",
                where=_where(source, lines, header, end, "name"),
                expected="unique target names",
            )
        seen[target.name] = header
        targets.append(target)
    return tuple(targets)


def _line_of_key(lines: Sequence[str], start: int, end: int, key: str) -> int:
    """The 1-based line of ``key = ...`` within lines ``start..end`` (1-based), or 0."""
    pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
    for number in range(max(start, 1), end + 1):
        if pattern.match(lines[number - 1]):
            return number
    return 0


def _where(source: str, lines: Sequence[str], header: int, end: int, field: str) -> str:
    line = _line_of_key(lines, header, end, field) or header
    return f"{source}:{line}: field {field}" if line else f"{source}: field {field}"


def _parse_one(
    table: Any,
    known: Mapping[str, WorkloadInfo],
    source: str,
    lines: Sequence[str],
    header: int,
    end: int,
) -> Target:
    def fail(field: str, what: str, expected: str) -> TargetsError:
        return TargetsError(
            what, where=_where(source, lines, header, end, field), expected=expected
        )

    if not isinstance(table, dict):
        raise TargetsError(
            "`target` is not an array of tables", where=source, expected="[[target]] tables"
        )
    for field in table:
        if field not in _FIELDS:
            raise fail(field, f"unknown field {field!r}", "one of " + ", ".join(_FIELDS))
    for field in _FIELDS:
        if field not in table:
            raise TargetsError(
                f"missing field {field!r}",
                where=f"{source}:{header}" if header else source,
                expected="every field: " + ", ".join(_FIELDS),
            )
    strings: dict[str, str] = {}
    for field in _FIELDS:
        if field == "bound":
            continue
        value = table[field]
        if not isinstance(value, str) or not value.strip():
            raise fail(field, f"{field} is {value!r}", "a non-empty string")
        strings[field] = value
    for field, kind in _ALLOWED.items():
        if strings[field] not in {member.value for member in kind}:
            choices = ", ".join(member.value for member in kind)
            raise fail(field, f"{field} {strings[field]!r}", f"one of {choices}")
    bound = table["bound"]
    if isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound):
        raise fail("bound", f"bound is {bound!r}", "a finite number")
    name = strings["name"]
    if not _NAME.match(name):
        raise fail("name", f"name {name!r}", "lower-case letters, digits, '_', '.', '-'")
    workload = strings["workload"]
    info = known.get(workload)
    if info is None:
        raise fail("workload", f"unknown workload {workload!r}", "one of " + ", ".join(known))
    metric = strings["metric"]
    clock = Clock(strings["clock"])
    unit = Unit(strings["unit"])
    if unit in _NON_NEGATIVE_UNITS and bound < 0:
        raise fail(
            "bound", f"bound is {bound!r} {unit.value}", f"a bound >= 0 for unit {unit.value}"
        )
    if metric == PYPERF_METRIC:
        if clock is not Clock.WALL or unit is not Unit.SECONDS:
            raise fail("clock", "pyperf values are wall-clock seconds", "clock wall and unit s")
    elif info.metric(metric) is None:
        raise fail(
            "metric",
            f"workload {workload!r} records no metric {metric!r}",
            "one of " + ", ".join((*info.metric_names, PYPERF_METRIC)),
        )
    elif clock.value != info.clock:
        raise fail("clock", f"clock {clock.value!r} but {workload} is on {info.clock}", info.clock)
    return Target(
        name=name,
        workload=workload,
        metric=metric,
        statistic=Statistic(strings["statistic"]),
        clock=clock,
        unit=unit,
        bound=float(bound),
        direction=Direction(strings["direction"]),
        description=strings["description"],
        line=header,
    )
