"""Retrain-job states: one enum and one terminal set, for every layer (imports nothing of workbench)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["JobStatus", "TERMINAL"]


class JobStatus(StrEnum):
    """The ``status`` of a retrain job; the values are what the lineage store and JSON hold.

    A job is created ``SCHEDULED`` (or ``PENDING_APPROVAL`` until a person answers, then
    ``APPROVED`` or ``REJECTED``; ``SKIPPED`` when cooldown or budget refuse it), runs
    ``RUNNING`` and ends in one of :data:`TERMINAL`. A job that holds out its own evidence
    waits ``WAITING_FOR_DATA`` until enough labelled requests arrived, and runs again then.

    Examples
    --------
    >>> JobStatus("PROMOTED") is JobStatus.PROMOTED and JobStatus.PROMOTED == "PROMOTED"
    True
    >>> sorted(str(s) for s in TERMINAL)
    ['FAILED', 'INTERRUPTED', 'PROMOTED', 'REJECTED', 'ROLLED_BACK', 'SKIPPED']
    """

    SCHEDULED = "SCHEDULED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    RUNNING = "RUNNING"
    WAITING_FOR_DATA = "WAITING_FOR_DATA"
    PROMOTED = "PROMOTED"
    ROLLED_BACK = "ROLLED_BACK"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"
    INTERRUPTED = "INTERRUPTED"


#: states a job never leaves; a job in one of them has its ``ended_at``
TERMINAL: frozenset[JobStatus] = frozenset(
    {
        JobStatus.PROMOTED,
        JobStatus.ROLLED_BACK,
        JobStatus.REJECTED,
        JobStatus.FAILED,
        JobStatus.SKIPPED,
        JobStatus.INTERRUPTED,
    }
)
