"""Data ingestion and validation into immutable, content-hashed dataset versions."""

from workbench.datasets._checks import Checks, Column, Custom, infer_checks
from workbench.datasets._datasets import Datasets, DatasetVersion
from workbench.datasets._diff import DatasetDiff, diff
from workbench.datasets._files import DeltaSource, FileSource
from workbench.datasets._hashing import content_hash, short_hash
from workbench.datasets._http import HttpSource
from workbench.datasets._mqtt import MqttSource
from workbench.datasets._samples import write_breast_cancer_csv
from workbench.datasets._schedules import IngestionSchedule
from workbench.datasets._sources import Fetched, FrameSource, Source, as_source, source_from_spec
from workbench.datasets._sql import SqlSource
from workbench.datasets._validation import format_report, validate

__all__ = [
    "Datasets",
    "DatasetVersion",
    "DatasetDiff",
    "diff",
    "Source",
    "Fetched",
    "FrameSource",
    "FileSource",
    "DeltaSource",
    "content_hash",
    "short_hash",
    "SqlSource",
    "HttpSource",
    "MqttSource",
    "as_source",
    "source_from_spec",
    "IngestionSchedule",
    "Checks",
    "Column",
    "Custom",
    "infer_checks",
    "validate",
    "format_report",
    "write_breast_cancer_csv",
]
