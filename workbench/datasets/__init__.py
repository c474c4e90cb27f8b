"""Data ingestion and validation into immutable, content-hashed dataset versions."""

from workbench.datasets._checks import Checks, format_report, validate
from workbench.datasets._datasets import Datasets, DatasetVersion
from workbench.datasets._samples import write_breast_cancer_csv

__all__ = [
    "Datasets",
    "DatasetVersion",
    "Checks",
    "validate",
    "format_report",
    "write_breast_cancer_csv",
]
