"""The torch MLP as a scikit-learn classifier: the ``torch_mlp`` model family a registered bundle holds.

``register_best`` on a ``torch_mlp_trainable`` search refits the best trial's config with
:class:`TorchMLPClassifier`, which trains with the trial's own code
(``workbench.experiments._torch``: ``_prepare`` then ``_train_epochs``), so the refit on the
searched dataset with the same seed is the best trial again, epoch for epoch.

Loaded only when the family is used (``FAMILIES["torch_mlp"]`` names it by import path);
torch itself loads in ``fit``/``predict``.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator, ClassifierMixin

from workbench.exceptions import ConfigError
from workbench.experiments import _torch

__all__ = ["TorchMLPClassifier"]


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """An MLP classifier over tabular features, trained as one ``torch_mlp_trainable`` trial.

    ``fit`` holds out a stratified, seeded ``val_fraction`` of its rows, fits the workbench
    preprocessing (``build_preprocessor(kinds)``) on the rest, and trains ``epochs`` epochs
    on the device torch offers (``cuda`` when available), exactly as a trial does; the
    learned network is kept on the CPU, so the fitted estimator pickles and predicts on a
    machine without a GPU. The preprocessing is part of the estimator (the trial fits it on
    its training split only), so a pipeline holding it needs no ``preprocess`` step.

    Parameters
    ----------
    kinds
        Feature name -> kind (``number``, ``string``, ``boolean``); ``None``: every column
        of ``X`` is a number.
    hidden, lr, weight_decay, batch_size, epochs
        The trial's config keys (see ``torch_mlp_space``).
    random_state
        The trial's seed: split, initialisation and shuffling.
    val_fraction
        The share of rows held out for the per-epoch validation metrics (``history_``).

    Attributes
    ----------
    classes_, preprocessor_, module_, history_, device_
        Class labels; the fitted preprocessing; the network (CPU, eval mode); the metrics
        of each epoch on the held-out rows (what the trial reported); where it trained.

    Examples
    --------
    >>> clf = TorchMLPClassifier(kinds={"a": "number"}, hidden="8", epochs=2)  # doctest: +SKIP
    >>> clf.fit(X, y).predict_proba(X).shape                                     # doctest: +SKIP
    (100, 2)
    """

    def __init__(
        self,
        kinds: dict[str, str] | None = None,
        hidden: Any = "64-32",
        lr: float = 1e-2,
        weight_decay: float = 0.0,
        batch_size: int = 32,
        epochs: int = 10,
        random_state: int = 0,
        val_fraction: float = _torch.VAL_FRACTION,
    ) -> None:
        self.kinds = kinds
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.epochs = epochs
        self.random_state = random_state
        self.val_fraction = val_fraction

    def _frame(self, X: Any) -> Any:
        import pandas as pd

        if isinstance(X, pd.DataFrame):
            return X
        frame = pd.DataFrame(X)
        frame.columns = [str(c) for c in frame.columns]
        return frame

    def fit(self, X: Any, y: Any) -> TorchMLPClassifier:
        import numpy as np

        X = self._frame(X)
        y = np.asarray(y)
        if y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0):
            raise ConfigError(
                "the torch MLP is a classifier and this target has fractional values; "
                "fit a scikit-learn regression family (ridge, random_forest_regressor...) instead"
            )
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ConfigError("the torch MLP needs at least two classes in its target")
        kinds = dict(self.kinds) if self.kinds is not None else dict.fromkeys(X.columns, "number")
        data = {
            "X": X[list(kinds)],
            "y": codes,
            "kinds": kinds,
            "classes": [str(c) for c in self.classes_],
            "val_fraction": self.val_fraction,
        }
        config = {
            "hidden": self.hidden,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
        }
        seed = int(self.random_state)
        device = _torch._device()
        with _torch._trial_threads(device):  # as a trial: the same numbers as the search reported
            prepared = _torch._prepare(data, seed)
            history: list[dict[str, Any]] = []
            state: dict[str, Any] | None = None
            for metrics, epoch_state in _torch._train_epochs(
                config, prepared, seed=seed, device=device
            ):
                history.append(metrics)
                state = epoch_state
        if state is None:
            raise ConfigError(f"epochs must be at least 1, got {self.epochs!r}")
        module = _torch._build_model(
            prepared["X_tr"].shape[1], _torch.parse_hidden(self.hidden), prepared["n_classes"]
        )
        module.load_state_dict({k: v.detach().cpu() for k, v in state["model"].items()})
        self.module_ = module.eval()
        self.preprocessor_ = prepared["preprocessor"]
        self.history_ = history
        self.device_ = str(device)
        self.feature_names_in_ = np.asarray(list(kinds), dtype=object)
        return self

    def _logits(self, X: Any) -> Any:
        import numpy as np
        import torch
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        X = self._frame(X)[list(self.feature_names_in_)]
        features = np.asarray(self.preprocessor_.transform(X), dtype=np.float32)
        with torch.no_grad():
            return self.module_(torch.as_tensor(features))

    def predict_proba(self, X: Any) -> Any:
        import torch

        return torch.softmax(self._logits(X), dim=1).numpy()

    def predict(self, X: Any) -> Any:
        return self.classes_[self._logits(X).argmax(dim=1).numpy()]
