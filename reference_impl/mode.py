"""The switch between today's behaviour and the improved one."""

from __future__ import annotations

import enum

__all__ = ["Mode"]


class Mode(enum.Enum):
    """``LEGACY``: sequential, no caches, unbounded history (today's runtime).

    ``POOLED``: the ordered pool, caches and bounded history (the improvement).
    Both modes commit the same records in the same order; only time differs.
    """

    LEGACY = "legacy"
    POOLED = "pooled"

    @classmethod
    def parse(cls, text: str) -> Mode:
        """The mode named ``text`` (``ValueError`` naming the choices otherwise)."""
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(m.value for m in cls)
            raise ValueError(f"unknown mode {text!r}; expected one of: {choices}") from None
