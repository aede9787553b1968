"""Enforcement profiles: the rules and thresholds of a PRP, written as a markdown file.

The format (``examples/initial.md`` is one)::

    # Enforcement profile: initial      <- the title names the profile (required, first)
    Prose anywhere is ignored.
    ## Rules                            <- gate-id globs, first match wins
    - `docs*`: advisory                 <- a failed advisory gate does not block dependents
    - `*`: required
    ## Thresholds
    - gate_timeout_s: 900               <- numbers; gate_timeout_s bounds every gate's work

Guarantees:

* :func:`parse_profile` accepts exactly this format; anything else raises
  :class:`~reference_impl.errors.ConfigError` whose ``source`` is ``file:line``.
* :class:`ProfileSource` in pooled mode parses a file once for as long as its
  *content* is unchanged, and again after any edit (even one keeping its size
  and modification time), through :class:`~reference_impl.cache.ContentHashCache`.
  In legacy mode it reads and parses the file on every load, as today's runner does.
* An unreadable file raises :class:`ConfigError` naming the file.
"""

from __future__ import annotations

import enum
import fnmatch
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path

from reference_impl.cache import ContentHashCache
from reference_impl.errors import ConfigError
from reference_impl.mode import Mode

__all__ = [
    "EnforcementProfile",
    "ProfileSource",
    "ProfileStatistics",
    "Rule",
    "Severity",
    "Threshold",
    "parse_profile",
]

_TITLE = re.compile(r"^#\s+(?:enforcement profile\s*:\s*)?(?P<name>\S.*?)\s*$", re.IGNORECASE)
_SECTION = re.compile(r"^##\s+(?P<name>.+?)\s*$")
_BULLET = re.compile(r"^[-*]\s+(?P<body>.*)$")
_ENTRY = re.compile(r"^`?(?P<key>[^`:]+?)`?\s*:\s*(?P<value>.*?)\s*$")


class Severity(enum.Enum):
    """What a gate's failure means: ``REQUIRED`` blocks its dependents, ``ADVISORY`` warns."""

    REQUIRED = "required"
    ADVISORY = "advisory"


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule: gates whose id matches ``pattern`` (a shell glob) have ``severity``."""

    pattern: str
    severity: Severity
    line: int


@dataclass(frozen=True, slots=True)
class Threshold:
    """One named numeric threshold, with the line that set it."""

    name: str
    value: float
    line: int


@dataclass(frozen=True, slots=True)
class EnforcementProfile:
    """A parsed profile; ``digest`` is the sha256 of the file's bytes."""

    name: str
    rules: tuple[Rule, ...]
    thresholds: tuple[Threshold, ...]
    digest: str

    def severity_for(self, gate_id: str) -> Severity:
        """The severity of the first rule matching ``gate_id``; ``REQUIRED`` if none does."""
        for rule in self.rules:
            if fnmatch.fnmatchcase(gate_id, rule.pattern):
                return rule.severity
        return Severity.REQUIRED

    def threshold(self, name: str) -> float | None:
        """The threshold ``name``, or None when the profile does not set it."""
        for threshold in self.thresholds:
            if threshold.name == name:
                return threshold.value
        return None

    @property
    def gate_timeout_s(self) -> float | None:
        """The default bound of a gate's work (the ``gate_timeout_s`` threshold)."""
        return self.threshold("gate_timeout_s")


def parse_profile(path: Path, content: bytes) -> EnforcementProfile:
    """Parse a profile's bytes; ``path`` only names the file in errors (``file:line``)."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_line = content[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{bad_line}", "not valid UTF-8") from exc
    name: str | None = None
    section: str | None = None
    rules: list[Rule] = []
    thresholds: list[Threshold] = []
    seen: dict[tuple[str, str], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line:
            continue
        if name is None:
            title = _TITLE.match(line)
            if title is None or line.startswith("##"):
                raise ConfigError(
                    where, f"expected a title '# Enforcement profile: NAME', got {line!r}"
                )
            name = title.group("name")
            continue
        if line.startswith("#"):
            heading = _SECTION.match(line)
            if heading is None:
                raise ConfigError(where, f"only one '# ' title is allowed, got {line!r}")
            section = heading.group("name").lower()
            if section not in ("rules", "thresholds"):
                raise ConfigError(
                    where,
                    f"unknown section {heading.group('name')!r}; expected Rules or Thresholds",
                )
            continue
        bullet = _BULLET.match(line)
        if bullet is None:
            continue  # prose
        if section is None:
            raise ConfigError(where, "a list item outside the Rules and Thresholds sections")
        entry = _ENTRY.match(bullet.group("body"))
        if entry is None or not entry.group("value"):
            raise ConfigError(where, f"expected '- key: value', got {line!r}")
        key, value = entry.group("key").strip(), entry.group("value")
        if (section, key) in seen:
            raise ConfigError(
                where, f"{key!r} is already set on line {seen[(section, key)]} of {section}"
            )
        seen[(section, key)] = number
        if section == "rules":
            try:
                severity = Severity(value.lower())
            except ValueError:
                raise ConfigError(
                    where, f"rule {key!r}: severity {value!r} is not 'required' or 'advisory'"
                ) from None
            rules.append(Rule(key, severity, number))
        else:
            try:
                number_value = float(value)
            except ValueError:
                raise ConfigError(where, f"threshold {key!r}: {value!r} is not a number") from None
            if not math.isfinite(number_value) or number_value <= 0:
                raise ConfigError(where, f"threshold {key!r}: {value!r} must be positive")
            thresholds.append(Threshold(key, number_value, number))
    if name is None:
        raise ConfigError(
            f"{path}:1", "empty profile: expected a title '# Enforcement profile: NAME'"
        )
    return EnforcementProfile(
        name, tuple(rules), tuple(thresholds), hashlib.sha256(content).hexdigest()
    )


@dataclass(frozen=True, slots=True)
class ProfileStatistics:
    """Counters of a :class:`ProfileSource`: loads, real parses and cache hits/misses."""

    loads: int
    parses: int
    cache_hits: int
    cache_misses: int


class ProfileSource:
    """Loads enforcement profiles: cached by content hash (pooled) or parsed every time (legacy).

    One source may be shared by several runners so that they share its cache.
    """

    def __init__(self, mode: Mode, *, max_entries: int = 16) -> None:
        self.mode = mode
        self._cache: ContentHashCache[EnforcementProfile] = ContentHashCache(
            parse_profile, max_entries=max_entries, name="prp.profile"
        )
        self._loads = 0
        self._parses = 0
        self._hits = 0

    def load(self, path: Path) -> EnforcementProfile:
        """The profile in ``path`` now (``ConfigError`` if unreadable or malformed)."""
        self._loads += 1
        parses_before = self._cache.parses
        try:
            if self.mode is Mode.POOLED:
                profile = self._cache.get(path)
                if self._cache.parses == parses_before:
                    self._hits += 1
                else:
                    self._parses += 1
                return profile
            content = path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(str(path), f"cannot read the enforcement profile: {reason}") from exc
        profile = parse_profile(path, content)
        self._parses += 1
        return profile

    def statistics(self) -> ProfileStatistics:
        """A frozen snapshot: a hit is a load served without parsing, a miss one that parsed.

        Legacy sources never hit. A load that failed counts in ``loads`` only.
        """
        return ProfileStatistics(
            loads=self._loads,
            parses=self._parses,
            cache_hits=self._hits,
            cache_misses=self._parses,
        )
