"""Data ingestion and validation into immutable, content-hashed dataset versions."""

from workbench.datasets._checks import Checks, format_report, validate
from workbench.datasets._datasets import Datasets, DatasetVersion
from workbench.datasets._files import FileSource
from workbench.datasets._samples import write_breast_cancer_csv
from workbench.datasets._sources import Fetched, FrameSource, Source, as_source, source_from_spec

__all__ = [
    "Datasets",
    "DatasetVersion",
    "Source",
    "Fetched",
    "FrameSource",
    "FileSource",
    "as_source",
    "source_from_spec",
    "Checks",
    "validate",
    "format_report",
    "write_breast_cancer_csv",
]
