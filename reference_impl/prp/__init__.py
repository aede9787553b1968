"""The reference PRP runner: quality gates through an adaptive spool, with approvals,
enforcement profiles, evidence, an orchestrator of sub-agents and a concurrent executor.

The public face; each concept lives in the module named after it.
"""

from reference_impl.prp.adaptive import AdaptiveConcurrency
from reference_impl.prp.approvals import (
    ApprovalDecision,
    ApprovalProtocolError,
    ApprovalProvider,
    ApprovalRequest,
    ApprovalVerdict,
    ApprovalWait,
    TraceApprovalProvider,
)
from reference_impl.prp.config import PrpConfig
from reference_impl.prp.evidence import verify_evidence_file
from reference_impl.prp.executor import (
    ConcurrentExecutor,
    ExecutorPolicy,
    ExecutorStatistics,
    TaskFailedError,
    TransientError,
)
from reference_impl.prp.gates import (
    GateGraphError,
    GateKind,
    GatePlan,
    GateSpec,
    load_gates,
    plan_gates,
)
from reference_impl.prp.orchestrator import (
    Orchestrator,
    OrchestratorResult,
    OrchestratorStatistics,
    SubAgentError,
    SubAgentSpec,
)
from reference_impl.prp.outcomes import (
    FailureReason,
    GateOutcome,
    GateTiming,
    OutcomeKind,
    SpoolStatus,
)
from reference_impl.prp.profile import EnforcementProfile, ProfileSource, Severity, parse_profile
from reference_impl.prp.runner import PrpRunner, PrpRunResult, PrpStatistics, RunnerState
from reference_impl.prp.spool import GateSpool, GateState

__all__ = [
    "AdaptiveConcurrency",
    "ApprovalDecision",
    "ApprovalProtocolError",
    "ApprovalProvider",
    "ApprovalRequest",
    "ApprovalVerdict",
    "ApprovalWait",
    "ConcurrentExecutor",
    "EnforcementProfile",
    "ExecutorPolicy",
    "ExecutorStatistics",
    "FailureReason",
    "GateGraphError",
    "GateKind",
    "GateOutcome",
    "GatePlan",
    "GateSpec",
    "GateSpool",
    "GateState",
    "GateTiming",
    "Orchestrator",
    "OrchestratorResult",
    "OrchestratorStatistics",
    "OutcomeKind",
    "ProfileSource",
    "PrpConfig",
    "PrpRunResult",
    "PrpRunner",
    "PrpStatistics",
    "RunnerState",
    "Severity",
    "SpoolStatus",
    "SubAgentError",
    "SubAgentSpec",
    "TaskFailedError",
    "TraceApprovalProvider",
    "TransientError",
    "load_gates",
    "parse_profile",
    "plan_gates",
    "verify_evidence_file",
]
