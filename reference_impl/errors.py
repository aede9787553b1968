"""The exception hierarchy of the reference implementation.

Every error the reference runtime raises on purpose derives from
:class:`ReferenceImplError`, and carries the input that caused it, so that the
harness CLI can turn it into one line (what, where, what was expected) in one
place.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeniedError",
    "EvidenceError",
    "ReferenceImplError",
]


class ReferenceImplError(Exception):
    """Base class of every deliberate error of the reference implementation."""


class ConfigError(ReferenceImplError):
    """A configuration value (environment variable, profile, argument) is invalid.

    ``source`` names where the value came from (a variable name, ``file:line``).
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source
        self.message = message


class DeniedError(ReferenceImplError):
    """A tool call was refused by an allowlist or a hook.

    ``rule`` names the rule that denied (``fs.traversal``, ``shell.executable``,
    ``http.host``, ``hook:<name>``); ``subject`` is the offending input.
    """

    def __init__(self, rule: str, subject: str, detail: str = "") -> None:
        text = f"denied by {rule}: {subject!r}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)
        self.rule = rule
        self.subject = subject
        self.detail = detail


class EvidenceError(ReferenceImplError):
    """An evidence chain failed verification; ``index`` is the first bad record."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"evidence record {index}: {reason}")
        self.index = index
        self.reason = reason
