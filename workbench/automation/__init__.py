"""Automated retraining: policies turn events into jobs; a job retrains, gates, canaries, promotes or rolls back."""

from workbench.automation._automation import Automation
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
from workbench.status import TERMINAL, JobStatus

__all__ = [
    "Automation",
    "JobStatus",
    "TERMINAL",
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
