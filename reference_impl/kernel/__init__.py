"""The kernel: deterministic scheduler, graph runner, MCP adapter, allowlisted tools, proofs."""

from reference_impl.kernel.graph import GraphRunner, GraphSpec, PRPState
from reference_impl.kernel.mcp import HookConfig, HookSpec, McpAdapter, ToolCallResult
from reference_impl.kernel.scheduler import Scheduler, SchedulerError, SchedulerResult, TaskSpec

__all__ = [
    "GraphRunner",
    "GraphSpec",
    "HookConfig",
    "HookSpec",
    "McpAdapter",
    "PRPState",
    "Scheduler",
    "SchedulerError",
    "SchedulerResult",
    "TaskSpec",
    "ToolCallResult",
]
