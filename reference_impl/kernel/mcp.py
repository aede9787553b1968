"""The MCP tool adapter: pre-hooks, the tool call, post-hooks, per-run contexts.

Guarantees (each one is a test in ``tests/reference_impl/kernel/test_mcp.py``):

* **Same decisions in both modes.** For the same hook configuration, tools and
  calls, :attr:`Mode.LEGACY <reference_impl.mode.Mode.LEGACY>` and
  :attr:`Mode.POOLED <reference_impl.mode.Mode.POOLED>` return equal
  :class:`ToolCallResult` values (equality ignores the timings); only time differs.
* **First deny in declared order decides.** Hooks of a phase are judged in the
  order they are declared; when several deny, the earliest-declared one is
  reported, never the first one to finish. A denied pre-phase skips the tool and
  the post-hooks.
* **Hook scheduling.** Legacy runs every hook one at a time, in declared order.
  Pooled mode splits a phase into *segments*: a run of consecutive hooks marked
  ``independent`` runs concurrently (through an :class:`OrderedPool`, fail-fast,
  so later-declared hooks are cancelled once an earlier one denied); a hook not
  marked independent is a barrier: it starts after every earlier-declared hook
  of its phase ended, and before any later-declared one starts.
* **Hook construction.** Legacy builds every hook on every call (paying each
  ``build_cost``); pooled mode builds a configuration's hooks once and keeps them
  in an LRU cache keyed by the configuration's content hash.
* **Contexts.** Legacy keeps a run's context until :meth:`McpAdapter.cleanup_context`
  (unbounded when never cleaned: today's behaviour). Pooled mode keeps at most
  ``context_max`` contexts and none older than ``context_ttl_s`` on the injected
  clock; a call on a run whose context was evicted opens a fresh one.
* **Denials are data.** A hook's deny, a tool's :class:`DeniedError` and an
  unknown tool are returned as :attr:`CallOutcome.DENIED` with the rule in
  ``denied_by``; any other exception of the tool is :attr:`CallOutcome.FAILED`.
  Nothing of the kind is raised to the caller.
* **Bounded samples.** The per-call hook latency (pre + post, seconds) is kept for
  the last ``hook_samples_max`` calls only (default
  :data:`HOOK_LATENCY_SAMPLES_MAX` = 65 536 doubles, 512 KiB), in a ring buffer.

Hook subjects (what ``deny_if`` is searched in, with :func:`re.search`): a pre-hook
sees ``"<tool> <canonical JSON of args>"``; a post-hook sees the same followed by
``" -> <result text>"``, where the result text is the canonical JSON of the tool's
value (its ``repr`` when the value is not JSON data).

Why one module: the hooks and the adapter are one mechanism. The adapter runs the segments
the private builder cuts (``_build_config``, ``_segments``, ``_BuiltConfig``) and carries a
deny through the pool's fail-fast as the private ``_Denial``; and both modes' paths sit side
by side in :class:`McpAdapter`, where "same decisions in both modes" can be read off. Apart,
the adapter would import the hooks' private helpers.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import math
import re
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reference_impl.cache import LRUCache
from reference_impl.errors import ConfigError, DeniedError
from reference_impl.events import canonical_json
from reference_impl.mode import Mode
from reference_impl.pool import OrderedPool, PoolItemError

__all__ = [
    "HOOK_CONFIG_SCHEMA_VERSION",
    "HOOK_LATENCY_SAMPLES_MAX",
    "BuiltHook",
    "CallOutcome",
    "HookConfig",
    "HookDecision",
    "HookOutcome",
    "HookPhase",
    "HookSpec",
    "HookWait",
    "McpAdapter",
    "McpStatistics",
    "RunContext",
    "ToolCallResult",
    "ToolFn",
    "build_hook",
]

# What the content hash of a HookConfig covers.
# 1: sha256(canonical_json({"schema": 1, "hooks": [spec fields, declared order]})).
HOOK_CONFIG_SCHEMA_VERSION = 1

# Default bound of the hook latency ring buffer: 65 536 doubles = 512 KiB per adapter.
HOOK_LATENCY_SAMPLES_MAX = 65_536

UNKNOWN_TOOL_RULE = "mcp.unknown_tool"

ToolFn = Callable[[Mapping[str, Any]], Awaitable[Any]]
"""A tool: awaits its arguments, returns its value (JSON data, ideally)."""

HookWait = Callable[["HookSpec"], Awaitable[None]]
"""The simulated run time of a hook; by default ``asyncio.sleep(spec.duration_s)``."""


class HookPhase(enum.Enum):
    """When a hook runs: before the tool (``PRE``) or after it, seeing its value (``POST``)."""

    PRE = "pre"
    POST = "post"


class HookDecision(enum.Enum):
    """A hook's verdict on one call."""

    ALLOW = "allow"
    DENY = "deny"


class CallOutcome(enum.Enum):
    """How one tool call ended."""

    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class HookSpec:
    """The configuration of one hook; validated on construction (:class:`ConfigError`).

    ``build_cost`` is the number of sha256 rounds that building the hook costs
    (real CPU work); ``duration_s`` its own simulated run time; ``independent``
    lets it run concurrently with the neighbouring independent hooks of its phase;
    ``deny_if`` is a regular expression: the hook denies when it is found in the
    call's subject (see the module docstring), and always allows when it is None.
    """

    name: str
    phase: HookPhase
    build_cost: int = 0
    duration_s: float = 0.0
    independent: bool = False
    deny_if: str | None = None

    def __post_init__(self) -> None:
        source = f"hook {self.name!r}"
        if not self.name:
            raise ConfigError("hook", "a hook needs a non-empty name")
        if self.build_cost < 0:
            raise ConfigError(source, f"build_cost must be >= 0, got {self.build_cost}")
        if not (math.isfinite(self.duration_s) and self.duration_s >= 0):
            raise ConfigError(source, f"duration_s must be finite and >= 0, got {self.duration_s}")
        if self.deny_if is not None:
            try:
                re.compile(self.deny_if)
            except re.error as exc:
                raise ConfigError(source, f"deny_if is not a valid regex: {exc}") from None

    def as_json(self) -> dict[str, Any]:
        """The spec as plain JSON data (what the configuration hash covers)."""
        return {
            "name": self.name,
            "phase": self.phase.value,
            "build_cost": self.build_cost,
            "duration_s": self.duration_s,
            "independent": self.independent,
            "deny_if": self.deny_if,
        }


@dataclass(frozen=True, slots=True)
class HookConfig:
    """The hooks of an adapter, in declared order; names are unique.

    Hashable, and ``content_hash`` is a stable sha256 of the content (the same in
    every process): two configs with equal hooks share built hooks in pooled mode.
    """

    hooks: tuple[HookSpec, ...]
    content_hash: str = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.hooks:
            if spec.name in seen:
                raise ConfigError(f"hook {spec.name!r}", "hook names must be unique")
            seen.add(spec.name)
        document = {
            "schema": HOOK_CONFIG_SCHEMA_VERSION,
            "hooks": [spec.as_json() for spec in self.hooks],
        }
        digest = hashlib.sha256(canonical_json(document)).hexdigest()
        object.__setattr__(self, "content_hash", digest)  # frozen: set once, here

    @classmethod
    def of(cls, hooks: Iterable[HookSpec]) -> HookConfig:
        """A config of ``hooks`` in the given order."""
        return cls(tuple(hooks))

    def phase(self, phase: HookPhase) -> tuple[HookSpec, ...]:
        """The hooks of ``phase``, in declared order."""
        return tuple(spec for spec in self.hooks if spec.phase is phase)


@dataclass(frozen=True, slots=True)
class HookOutcome:
    """One hook's verdict: the decision, the hook's name and a deterministic reason."""

    decision: HookDecision
    hook: str
    reason: str


async def _sleep_for(spec: HookSpec) -> None:
    await asyncio.sleep(spec.duration_s)


class BuiltHook:
    """A constructed hook, ready to run; made only by :func:`build_hook`.

    ``fingerprint`` is the result of the construction work (deterministic for a
    spec), kept so that the work cannot be optimised away and can be checked.
    """

    __slots__ = ("fingerprint", "pattern", "spec")

    def __init__(self, spec: HookSpec, pattern: re.Pattern[str] | None, fingerprint: str) -> None:
        self.spec = spec
        self.pattern = pattern
        self.fingerprint = fingerprint

    async def run(self, subject: str, wait: HookWait = _sleep_for) -> HookOutcome:
        """Await the hook's run time through ``wait``, then judge ``subject``; never raises
        by itself (only ``wait`` may)."""
        await wait(self.spec)
        name = self.spec.name
        if self.pattern is not None and (match := self.pattern.search(subject)) is not None:
            reason = f"deny_if {self.pattern.pattern!r} matched {match.group(0)!r}"
            return HookOutcome(HookDecision.DENY, name, reason)
        return HookOutcome(HookDecision.ALLOW, name, "no rule matched")


def build_hook(spec: HookSpec) -> BuiltHook:
    """Construct ``spec``'s hook: ``spec.build_cost`` sha256 rounds, and its regex compiled."""
    digest = hashlib.sha256(canonical_json(spec.as_json())).digest()
    for _ in range(spec.build_cost):
        digest = hashlib.sha256(digest).digest()
    pattern = re.compile(spec.deny_if) if spec.deny_if is not None else None
    return BuiltHook(spec, pattern, digest.hex())


# One phase's hooks as segments: a tuple of one dependent hook, or of consecutive
# independent hooks that may run concurrently.
_Segments = tuple[tuple[BuiltHook, ...], ...]


@dataclass(frozen=True, slots=True)
class _BuiltConfig:
    pre: _Segments
    post: _Segments


def _segments(hooks: Iterable[BuiltHook]) -> _Segments:
    segments: list[tuple[BuiltHook, ...]] = []
    group: list[BuiltHook] = []
    for hook in hooks:
        if hook.spec.independent:
            group.append(hook)
            continue
        if group:
            segments.append(tuple(group))
            group = []
        segments.append((hook,))
    if group:
        segments.append(tuple(group))
    return tuple(segments)


def _build_config(config: HookConfig) -> _BuiltConfig:
    built = [build_hook(spec) for spec in config.hooks]
    return _BuiltConfig(
        pre=_segments(h for h in built if h.spec.phase is HookPhase.PRE),
        post=_segments(h for h in built if h.spec.phase is HookPhase.POST),
    )


class _Denial(Exception):
    """A hook denied: carried through the pool's fail-fast path (never escapes)."""

    def __init__(self, outcome: HookOutcome) -> None:
        super().__init__(outcome.hook)
        self.outcome = outcome


class RunContext:
    """The adapter's state of one run: its id, when it was opened, its calls so far.

    A context recreated after an eviction (pooled mode) starts from zero.
    """

    __slots__ = ("calls", "denials", "opened_at_s", "run_id")

    def __init__(self, run_id: str, opened_at_s: float) -> None:
        self.run_id = run_id
        self.opened_at_s = opened_at_s
        self.calls = 0
        self.denials = 0

    def __repr__(self) -> str:
        return f"RunContext({self.run_id!r}, calls={self.calls}, denials={self.denials})"


@dataclass(frozen=True, slots=True)
class ToolCallResult:
    """What one :meth:`McpAdapter.call_tool` did.

    ``denied_by`` names the deciding rule (``hook:<name>``, the tool's own
    :attr:`DeniedError.rule`, or ``mcp.unknown_tool``); ``value_digest`` is the
    sha256 of the value's text (OK calls only); ``detail`` is the deny reason or
    the failure. Equality ignores ``hook_s``, ``tool_s`` and ``value`` (covered by
    its digest), so results of the two modes compare equal when they agree.
    """

    tool: str
    outcome: CallOutcome
    denied_by: str | None = None
    value_digest: str | None = None
    detail: str | None = None
    hook_s: float = field(default=0.0, compare=False)
    tool_s: float = field(default=0.0, compare=False)
    value: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class McpStatistics:
    """A snapshot of an adapter's counters; levels are those of the moment it was taken.

    ``denials`` is ``(rule, count)`` pairs sorted by rule. ``hooks_built`` counts
    hook constructions. ``live_contexts`` may include expired contexts not yet
    dropped (see :meth:`McpAdapter.purge_expired_contexts`); it never exceeds
    ``context_max`` in pooled mode (``context_max`` is None in legacy mode).
    Legacy has no hook cache: its hits and misses stay 0.
    """

    mode: Mode
    calls: int
    denials: tuple[tuple[str, int], ...]
    failures: int
    live_contexts: int
    context_max: int | None
    contexts_opened: int
    hooks_built: int
    hook_cache_hits: int
    hook_cache_misses: int
    hook_seconds_total: float
    tool_seconds_total: float
    hook_samples: int


def _text(value: Any) -> str:
    try:
        return canonical_json(value).decode("utf-8")
    except (TypeError, ValueError):
        # Not JSON data: its repr is the best stable text we have.
        return repr(value)


class McpAdapter:
    """Calls tools by name for runs, behind the configured pre- and post-hooks.

    The guarantees are those of the module docstring. ``clock`` is the clock of
    the context TTL; ``timer`` measures hook and tool seconds; ``hook_wait`` is
    each hook's simulated run time (injectable, so that tests order hooks with
    events instead of sleeps). Calls from many tasks at once are safe.
    """

    def __init__(
        self,
        mode: Mode,
        *,
        tools: Mapping[str, ToolFn],
        hook_config: HookConfig,
        context_max: int = 256,
        context_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        hook_cache_max: int = 32,
        hook_samples_max: int = HOOK_LATENCY_SAMPLES_MAX,
        timer: Callable[[], float] = time.perf_counter,
        hook_wait: HookWait = _sleep_for,
    ) -> None:
        if hook_samples_max < 1:
            raise ValueError(f"hook_samples_max must be positive, got {hook_samples_max}")
        self.mode = mode
        self._tools = dict(tools)
        self._config = hook_config
        self._clock = clock
        self._timer = timer
        self._hook_wait = hook_wait
        self._legacy_contexts: dict[str, RunContext] = {}
        self._contexts: LRUCache[str, RunContext] = LRUCache(
            context_max, ttl_s=context_ttl_s, clock=clock, name="mcp.contexts"
        )
        self._hook_cache: LRUCache[str, _BuiltConfig] = LRUCache(hook_cache_max, name="mcp.hooks")
        self._samples: array[float] = array("d")
        self._samples_max = hook_samples_max
        self._sample_count = 0
        self._calls = 0
        self._failures = 0
        self._denials: dict[str, int] = {}
        self._contexts_opened = 0
        self._hooks_built = 0
        self._hook_seconds = 0.0
        self._tool_seconds = 0.0

    @property
    def hook_config(self) -> HookConfig:
        """The configuration applied to the next calls."""
        return self._config

    def reconfigure(self, hook_config: HookConfig) -> None:
        """Apply ``hook_config`` to the next calls; pooled mode reuses hooks already
        built for a config of the same content."""
        self._config = hook_config

    # -- contexts -----------------------------------------------------------------

    def open_context(self, run_id: str) -> RunContext:
        """The live context of ``run_id``, opened now if there is none (idempotent)."""
        if self.mode is Mode.LEGACY:
            context = self._legacy_contexts.get(run_id)
            if context is None:
                context = self._new_context(run_id)
                self._legacy_contexts[run_id] = context
            return context
        found = self._contexts.get(run_id)
        if found is None:
            found = self._new_context(run_id)
            self._contexts.put(run_id, found)
        return found

    def cleanup_context(self, run_id: str) -> bool:
        """Forget ``run_id``'s context; whether there was one."""
        if self.mode is Mode.LEGACY:
            return self._legacy_contexts.pop(run_id, None) is not None
        return self._contexts.pop(run_id) is not None

    def purge_expired_contexts(self) -> int:
        """Drop every context past its TTL now (pooled mode); how many were dropped."""
        if self.mode is Mode.LEGACY:
            return 0
        return self._contexts.purge_expired()

    def _new_context(self, run_id: str) -> RunContext:
        self._contexts_opened += 1
        return RunContext(run_id, self._clock())

    # -- calls ----------------------------------------------------------------------

    async def call_tool(
        self, run_id: str, tool_name: str, args: Mapping[str, Any]
    ) -> ToolCallResult:
        """Run the pre-hooks, the tool, then the post-hooks, for ``run_id``.

        Returns the result whatever the verdict; raises only for arguments that are
        not JSON data (``TypeError``/``ValueError``), a failing ``hook_wait``, or
        cancellation.
        """
        context = self.open_context(run_id)
        context.calls += 1
        self._calls += 1
        tool = self._tools.get(tool_name)
        if tool is None:
            result = ToolCallResult(
                tool_name, CallOutcome.DENIED, UNKNOWN_TOOL_RULE, detail="no such tool"
            )
            return self._count(context, result)
        subject = f"{tool_name} {canonical_json(dict(args)).decode('utf-8')}"
        built = self._built_hooks()
        timer = self._timer

        started = timer()
        denial = await self._run_phase(built.pre, subject)
        hook_s = timer() - started
        if denial is not None:
            return self._finish(context, self._denied(tool_name, denial, hook_s), hook_s)

        started = timer()
        try:
            value = await tool(args)
        except DeniedError as exc:
            tool_s = timer() - started
            result = ToolCallResult(
                tool_name, CallOutcome.DENIED, exc.rule, None, str(exc), hook_s, tool_s
            )
            return self._finish(context, result, hook_s)
        except Exception as exc:  # a tool's failure is data: returned as FAILED, never lost
            tool_s = timer() - started
            detail = f"{type(exc).__name__}: {exc}"
            result = ToolCallResult(
                tool_name, CallOutcome.FAILED, None, None, detail, hook_s, tool_s
            )
            return self._finish(context, result, hook_s)
        tool_s = timer() - started

        value_text = _text(value)
        started = timer()
        denial = await self._run_phase(built.post, f"{subject} -> {value_text}")
        hook_s += timer() - started
        if denial is not None:
            result = self._denied(tool_name, denial, hook_s, tool_s)
            return self._finish(context, result, hook_s)
        digest = hashlib.sha256(value_text.encode("utf-8")).hexdigest()
        result = ToolCallResult(
            tool_name, CallOutcome.OK, None, digest, None, hook_s, tool_s, value
        )
        return self._finish(context, result, hook_s)

    def _built_hooks(self) -> _BuiltConfig:
        config = self._config
        if self.mode is Mode.LEGACY:
            # Today's behaviour: every hook is constructed again for every call.
            self._hooks_built += len(config.hooks)
            return _build_config(config)
        built = self._hook_cache.get(config.content_hash)
        if built is None:
            built = _build_config(config)
            self._hooks_built += len(config.hooks)
            self._hook_cache.put(config.content_hash, built)
        return built

    async def _run_phase(self, segments: _Segments, subject: str) -> HookOutcome | None:
        """The first deny of the phase in declared order, or None when every hook allows."""
        wait = self._hook_wait
        if self.mode is Mode.LEGACY:
            for segment in segments:
                for hook in segment:
                    outcome = await hook.run(subject, wait)
                    if outcome.decision is HookDecision.DENY:
                        return outcome
            return None
        for segment in segments:
            if len(segment) == 1:
                outcome = await segment[0].run(subject, wait)
                if outcome.decision is HookDecision.DENY:
                    return outcome
                continue
            # Fail-fast in input (= declared) order: the pool reports the earliest-declared
            # deny, waits for the hooks before it and cancels the ones after it.
            pool: OrderedPool[HookOutcome] = OrderedPool(len(segment))
            try:
                await pool.run([_judge(hook, subject, wait) for hook in segment])
            except PoolItemError as exc:
                if isinstance(exc.cause, _Denial):
                    return exc.cause.outcome
                raise exc.cause from None
        return None

    def _denied(
        self, tool_name: str, denial: HookOutcome, hook_s: float, tool_s: float = 0.0
    ) -> ToolCallResult:
        rule = f"hook:{denial.hook}"
        return ToolCallResult(
            tool_name, CallOutcome.DENIED, rule, None, denial.reason, hook_s, tool_s
        )

    def _finish(self, context: RunContext, result: ToolCallResult, hook_s: float) -> ToolCallResult:
        self._hook_seconds += hook_s
        self._tool_seconds += result.tool_s
        if len(self._samples) < self._samples_max:
            self._samples.append(hook_s)
        else:
            self._samples[self._sample_count % self._samples_max] = hook_s
        self._sample_count += 1
        return self._count(context, result)

    def _count(self, context: RunContext, result: ToolCallResult) -> ToolCallResult:
        if result.outcome is CallOutcome.DENIED:
            assert result.denied_by is not None
            context.denials += 1
            self._denials[result.denied_by] = self._denials.get(result.denied_by, 0) + 1
        elif result.outcome is CallOutcome.FAILED:
            self._failures += 1
        return result

    # -- observation ----------------------------------------------------------------

    def hook_latency_samples(self) -> array[float]:
        """A copy of the kept per-call hook latencies (pre + post, seconds), oldest first.

        At most ``hook_samples_max`` (the latest calls that ran hooks); calls to an
        unknown tool run no hook and leave no sample.
        """
        samples = self._samples
        if self._sample_count <= self._samples_max:
            return array("d", samples)
        head = self._sample_count % self._samples_max
        return samples[head:] + samples[:head]

    def statistics(self) -> McpStatistics:
        """A frozen snapshot: levels now, totals since the adapter was made."""
        legacy = self.mode is Mode.LEGACY
        cache = self._hook_cache
        return McpStatistics(
            mode=self.mode,
            calls=self._calls,
            denials=tuple(sorted(self._denials.items())),
            failures=self._failures,
            live_contexts=len(self._legacy_contexts) if legacy else len(self._contexts),
            context_max=None if legacy else self._contexts.max_entries,
            contexts_opened=self._contexts_opened,
            hooks_built=self._hooks_built,
            hook_cache_hits=cache.hits,
            hook_cache_misses=cache.misses,
            hook_seconds_total=self._hook_seconds,
            tool_seconds_total=self._tool_seconds,
            hook_samples=len(self._samples),
        )


def _judge(hook: BuiltHook, subject: str, wait: HookWait) -> Callable[[], Awaitable[HookOutcome]]:
    """A pool job running ``hook``; a deny becomes a :class:`_Denial` for fail-fast."""

    async def job() -> HookOutcome:
        outcome = await hook.run(subject, wait)
        if outcome.decision is HookDecision.DENY:
            raise _Denial(outcome)
        return outcome

    return job
