"""Automated retraining: drift → new data version → search → validate → canary → promote or roll back."""

from workbench.automation._loop import Automation, RetrainPolicy

__all__ = ["Automation", "RetrainPolicy"]
