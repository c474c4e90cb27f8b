"""One model's predictions on one holdout, row for row: what every metric, test and fairness figure
is computed from (pure, no Ray)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench.exceptions import ConfigError

__all__ = ["Predictions", "same_label"]


def same_label(a: Any, b: Any) -> bool:
    """Whether two class labels (a prediction and a label, or two versions' predictions) are the
    same class: equal, or equal as text.

    Models keep their target's type (a prediction is ``1``, not ``"1"``), while models
    registered before that answer with strings and a label may be recorded either way; the
    text comparison lets each meet the other, as the metrics (:meth:`Predictions.of`) do.

    Examples
    --------
    >>> same_label(1, 1), same_label("1", 1), same_label(True, "True"), same_label(2, 10)
    (True, True, True, False)
    """
    return a == b or (a is not None and b is not None and str(a) == str(b))


@dataclass(frozen=True)
class Predictions:
    """A model's predictions on the rows of one holdout, in the holdout's row order.

    Attributes
    ----------
    task
        ``"classification"`` or ``"regression"``.
    y_true, y_pred
        numpy arrays of length ``n``: class labels as strings for a classifier (the model's
        ``classes``), floats for a regressor.
    classes
        The class labels, in the column order of ``proba`` (empty for regression).
    proba
        ``(n, len(classes))`` float array of class probabilities, or None when the estimator
        gives none (then the probability metrics are left out).
    sensitive
        Sensitive feature name → array of length ``n`` of its group values (as strings), for
        fairness figures; empty when none were asked for.

    Two ``Predictions`` of two models on the same holdout are *paired*: row ``i`` of each is the
    same record, which is what the statistical gate relies on (:meth:`check_paired`).
    """

    task: str
    y_true: Any
    y_pred: Any
    classes: list[str] = field(default_factory=list)
    proba: Any = None
    sensitive: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import numpy as np

        if self.task not in ("classification", "regression"):
            raise ConfigError(f"task must be 'classification' or 'regression', got {self.task!r}")
        n = len(self.y_true)
        if len(self.y_pred) != n:
            raise ConfigError(f"{len(self.y_pred)} predictions for {n} true values")
        if self.proba is not None and np.shape(self.proba) != (n, len(self.classes)):
            raise ConfigError(
                f"proba has shape {np.shape(self.proba)}, expected ({n}, {len(self.classes)})"
            )
        for name, groups in self.sensitive.items():
            if len(groups) != n:
                raise ConfigError(
                    f"sensitive feature {name!r} has {len(groups)} values for {n} rows"
                )

    @property
    def n(self) -> int:
        return len(self.y_true)

    @classmethod
    def of(
        cls,
        task: str,
        y_true: Sequence[Any],
        y_pred: Sequence[Any],
        *,
        classes: Sequence[Any] = (),
        proba: Any = None,
        sensitive: Mapping[str, Sequence[Any]] | None = None,
    ) -> Predictions:
        """Build from plain sequences: labels become strings (classification) or floats.

        Examples
        --------
        >>> p = Predictions.of("classification", ["a", "b"], ["a", "a"], classes=["a", "b"])
        >>> p.n, list(p.y_pred)
        (2, ['a', 'a'])
        """
        import numpy as np

        if task == "regression":
            yt = np.asarray(y_true, dtype=float)
            yp = np.asarray(y_pred, dtype=float)
        else:
            yt = np.asarray([str(v) for v in y_true], dtype=object)
            yp = np.asarray([str(v) for v in y_pred], dtype=object)
        return cls(
            task=task,
            y_true=yt,
            y_pred=yp,
            classes=[str(c) for c in classes],
            proba=None if proba is None else np.asarray(proba, dtype=float),
            sensitive={
                k: np.asarray([str(v) for v in vs], dtype=object)
                for k, vs in (sensitive or {}).items()
            },
        )

    def check_paired(self, other: Predictions) -> None:
        """Raise :class:`ConfigError` unless ``other`` holds predictions on the same rows."""
        import numpy as np

        if other.task != self.task or other.n != self.n:
            raise ConfigError(
                f"the two models were not scored on the same holdout ({self.task}, {self.n} rows "
                f"vs {other.task}, {other.n} rows); evaluate both on one dataset version."
            )
        same = (
            np.allclose(self.y_true, other.y_true, equal_nan=True)
            if self.task == "regression"
            else bool(np.all(self.y_true == other.y_true))
        )
        if not same:
            raise ConfigError(
                "the two models' true values differ row for row: they were not scored on the "
                "same holdout rows in the same order."
            )
