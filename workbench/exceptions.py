"""Errors raised by workbench; every message says what to do next."""

from __future__ import annotations

__all__ = [
    "WorkbenchError",
    "ConfigError",
    "DatasetValidationError",
    "SourceError",
    "NotFoundError",
    "ArtifactCorruptError",
    "InvalidRequestError",
    "ExperimentError",
    "DeploymentError",
    "PermissionDenied",
    "TamperedError",
    "UnsafeHomeError",
    "VersionMismatchError",
    "VersionMismatchWarning",
]


class WorkbenchError(Exception):
    """Root of every error workbench raises on purpose."""


class ConfigError(WorkbenchError):
    """A setting or argument is invalid."""


class DatasetValidationError(WorkbenchError):
    """A dataset failed one or more validation checks.

    ``report`` holds the full validation report (a list of check results).
    """

    def __init__(self, message: str, report: list[dict] | None = None):
        super().__init__(message)
        self.report = report or []


class SourceError(WorkbenchError):
    """A data source could not be read: unreachable, refused, malformed, or cut off mid-read.

    The message names the source (secrets masked) and what to do; nothing was recorded.
    """


class NotFoundError(WorkbenchError):
    """A named thing (dataset, model version, deployment...) does not exist."""


class ArtifactCorruptError(WorkbenchError):
    """An artifact's bytes do not match the SHA-256 recorded for it."""


class InvalidRequestError(WorkbenchError):
    """A prediction request does not match the model's signature.

    ``field`` names the offending feature when there is one.
    """

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


class ExperimentError(WorkbenchError):
    """A search could not run or produced no usable trial."""


class DeploymentError(WorkbenchError):
    """A deployment could not be created, changed or reached."""


class PermissionDenied(WorkbenchError):
    """The acting identity lacks the role an action needs, claims another identity, or would
    approve its own request under the four-eyes rule. Nothing was changed.

    ``user``, ``action`` and ``role`` say who tried what and which role it needs.
    """

    def __init__(self, message: str, *, user: str = "", action: str = "", role: str = ""):
        super().__init__(message)
        self.user = user
        self.action = action
        self.role = role


class TamperedError(WorkbenchError):
    """A record no longer matches what was written: an edited audit entry, a model version row
    whose artifact hash was swapped, a Tune state file that changed since it was recorded."""


class UnsafeHomeError(ConfigError):
    """``WORKBENCH_HOME`` is owned by another user or writable by group or others."""


class VersionMismatchError(WorkbenchError):
    """A model bundle was trained under another major version of a package it needs (scikit-learn,
    numpy, torch) than the one installed; the message names both and the version to install."""


class VersionMismatchWarning(UserWarning):
    """A model bundle was trained under another minor or patch version of a package it needs; it
    loaded, but its predictions may differ slightly."""
