"""Monitoring: drift detectors (alibi-detect, or scipy as a permissive stand-in) on windows of logged requests."""

from workbench.monitoring._detectors import (
    AlibiTabularDrift,
    DriftDetector,
    ScipyKSDrift,
    make_detector,
)
from workbench.monitoring._monitor import DriftMonitor, Monitoring

__all__ = [
    "DriftDetector",
    "AlibiTabularDrift",
    "ScipyKSDrift",
    "make_detector",
    "DriftMonitor",
    "Monitoring",
]
