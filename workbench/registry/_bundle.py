"""What a model version's artifact holds: the fitted preprocessing + estimator pipeline and its signature."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.features import coerce_records

__all__ = ["ModelBundle"]


@dataclass
class ModelBundle:
    """A fitted sklearn ``Pipeline`` (preprocess → model) with the signature it was trained on.

    The same object is used to evaluate the model and to serve it, so the
    preprocessing applied at serving time is exactly the one fitted at training.

    Attributes
    ----------
    pipeline : sklearn.pipeline.Pipeline
        Steps ``preprocess`` (ColumnTransformer) and ``model``.
    features : dict
        Feature name → kind (``number``, ``string``, ``boolean``), in input order.
    target : str
        Name of the label column.
    classes : list
        Label values, indexed by the estimator's integer classes (empty for regression).
    task : str
        ``classification`` or ``regression``.
    """

    pipeline: Any
    features: dict[str, str]
    target: str
    classes: list[Any]
    task: str = "classification"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> dict[str, Any]:
        return {
            "features": dict(self.features),
            "target": self.target,
            "classes": list(self.classes),
            "task": self.task,
        }

    def predict_frame(self, frame: Any) -> list[Any]:
        """Predict for a pandas frame of features; returns label values (floats for regression)."""
        out = self.pipeline.predict(frame)
        if self.task == "regression":
            return [float(v) for v in out]
        return [self.classes[int(i)] for i in out]

    def predict_records(self, records: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Validate JSON-like records against the signature and predict (raises InvalidRequestError)."""
        return self.predict_frame(coerce_records(records, self.features, allow_missing=True))
