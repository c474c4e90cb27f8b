"""Monitoring: drift, performance and operational monitors on logged requests, with alerts (alibi-detect or scipy)."""

from workbench.monitoring._alerts import (
    SEVERITIES,
    Alerts,
    AlertSink,
    CallbackSink,
    LogSink,
    NotebookSink,
    WebhookSink,
)
from workbench.monitoring._detectors import (
    AlibiMMDDrift,
    AlibiTabularDrift,
    DriftDetector,
    ScipyKSDrift,
    ScipyMMDDrift,
    correct_p_values,
    make_detector,
)
from workbench.monitoring._encode import VERDICTS, Encoder
from workbench.monitoring._monitor import (
    DriftMonitor,
    Monitoring,
    OnlineDriftMonitor,
    OperationalMonitor,
    PerformanceMonitor,
)
from workbench.monitoring._online import (
    AlibiCVMDriftOnline,
    ScipyCVMDriftOnline,
    make_online_detector,
)
from workbench.monitoring._persist import load_detector, save_detector
from workbench.monitoring._windows import WindowSpec, parse_window

__all__ = [
    "DriftDetector",
    "AlibiTabularDrift",
    "ScipyKSDrift",
    "AlibiMMDDrift",
    "ScipyMMDDrift",
    "AlibiCVMDriftOnline",
    "ScipyCVMDriftOnline",
    "make_detector",
    "make_online_detector",
    "correct_p_values",
    "save_detector",
    "load_detector",
    "Encoder",
    "VERDICTS",
    "WindowSpec",
    "parse_window",
    "DriftMonitor",
    "OnlineDriftMonitor",
    "PerformanceMonitor",
    "OperationalMonitor",
    "Monitoring",
    "Alerts",
    "AlertSink",
    "LogSink",
    "NotebookSink",
    "WebhookSink",
    "CallbackSink",
    "SEVERITIES",
]
