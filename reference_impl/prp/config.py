"""The PRP runner's three knobs, read from the environment or passed explicitly.

Guarantees:

* Defaults keep today's behaviour until a user opts in: the spool starts at
  ``PRP_SPOOL_CONCURRENCY=1``; it may grow up to ``PRP_SPOOL_MAX_CONCURRENCY=4``
  (the number of slots today's orchestrator hard-coded), and human approvals are
  decided ``PRP_APPROVAL_BATCH_SIZE=2`` at a time.
* A :class:`PrpConfig` that exists is valid: every value is a positive integer
  and the base concurrency is not above the maximum. Anything else raises
  :class:`~reference_impl.errors.ConfigError` whose ``source`` is the variable's
  name and whose message quotes the offending value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from reference_impl.errors import ConfigError

__all__ = [
    "APPROVAL_BATCH_SIZE_VAR",
    "SPOOL_CONCURRENCY_VAR",
    "SPOOL_MAX_CONCURRENCY_VAR",
    "PrpConfig",
]

SPOOL_CONCURRENCY_VAR = "PRP_SPOOL_CONCURRENCY"
SPOOL_MAX_CONCURRENCY_VAR = "PRP_SPOOL_MAX_CONCURRENCY"
APPROVAL_BATCH_SIZE_VAR = "PRP_APPROVAL_BATCH_SIZE"


def _positive(variable: str, value: object) -> int:
    # bool is an int to Python, never to a user.
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(variable, f"expected a positive integer, got {value!r}")
    return value


def _parse_positive(variable: str, text: str) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or int(stripped) < 1:
        raise ConfigError(variable, f"expected a positive integer, got {text!r}")
    return int(stripped)


@dataclass(frozen=True, slots=True)
class PrpConfig:
    """Spool concurrency (base and maximum) and the human-approval batch size.

    Construction validates: a value that is not a positive integer, or a base
    above the maximum, raises :class:`ConfigError` naming the variable and value.
    """

    spool_concurrency: int = 1
    spool_max_concurrency: int = 4
    approval_batch_size: int = 2

    def __post_init__(self) -> None:
        _positive(SPOOL_CONCURRENCY_VAR, self.spool_concurrency)
        _positive(SPOOL_MAX_CONCURRENCY_VAR, self.spool_max_concurrency)
        _positive(APPROVAL_BATCH_SIZE_VAR, self.approval_batch_size)
        if self.spool_concurrency > self.spool_max_concurrency:
            raise ConfigError(
                SPOOL_CONCURRENCY_VAR,
                f"base concurrency {self.spool_concurrency} is above "
                f"{SPOOL_MAX_CONCURRENCY_VAR}={self.spool_max_concurrency}",
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        spool_concurrency: int | None = None,
        spool_max_concurrency: int | None = None,
        approval_batch_size: int | None = None,
    ) -> PrpConfig:
        """Read the three variables from ``environ`` (``os.environ`` by default).

        An explicit argument wins over the environment; an absent or empty
        variable takes its default. Raises :class:`ConfigError` on a bad value.
        """
        env = os.environ if environ is None else environ
        defaults = cls()

        def pick(variable: str, explicit: int | None, default: int) -> int:
            if explicit is not None:
                return _positive(variable, explicit)
            text = env.get(variable)
            if text is None or text.strip() == "":
                return default
            return _parse_positive(variable, text)

        return cls(
            spool_concurrency=pick(
                SPOOL_CONCURRENCY_VAR, spool_concurrency, defaults.spool_concurrency
            ),
            spool_max_concurrency=pick(
                SPOOL_MAX_CONCURRENCY_VAR, spool_max_concurrency, defaults.spool_max_concurrency
            ),
            approval_batch_size=pick(
                APPROVAL_BATCH_SIZE_VAR, approval_batch_size, defaults.approval_batch_size
            ),
        )
