"""Automated retraining: drift → new data version → search → validate → canary → promote or roll back."""

from workbench.automation._loop import Automation, RetrainPolicy
from workbench.automation._policy import (
    Budget,
    CronSchedule,
    DriftTrigger,
    Gate,
    GateVerdict,
    LoopPolicy,
    PerformanceTrigger,
    ScheduleTrigger,
    admission,
    compute_used,
    drift_trigger_ids,
    performance_dropped,
    search_budget,
    snapshot_rows,
    warm_start_space,
)

__all__ = [
    "Automation",
    "RetrainPolicy",
    "LoopPolicy",
    "DriftTrigger",
    "ScheduleTrigger",
    "PerformanceTrigger",
    "Budget",
    "Gate",
    "GateVerdict",
    "CronSchedule",
    "admission",
    "compute_used",
    "search_budget",
    "drift_trigger_ids",
    "performance_dropped",
    "snapshot_rows",
    "warm_start_space",
]
