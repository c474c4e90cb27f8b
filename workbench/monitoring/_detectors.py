"""Drift detectors behind one small interface.

alibi-detect is the default engine. Since 0.11.5 it is under the Business
Source License (free for non-production use); :class:`ScipyKSDrift` runs the
same per-feature tests on scipy (BSD) for users who need a permissive backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np

from workbench.exceptions import ConfigError

__all__ = ["DriftDetector", "AlibiTabularDrift", "ScipyKSDrift", "make_detector", "encode_matrix"]


class DriftDetector(Protocol):
    """Fit on reference data; test a window. Results follow alibi-detect's ``{"data", "meta"}`` shape."""

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> DriftDetector: ...

    def test(self, x: np.ndarray) -> dict[str, Any]: ...


def encode_matrix(
    rows: list[Mapping[str, Any]], kinds: Mapping[str, str], vocab: dict[str, dict[Any, int]]
) -> np.ndarray:
    """Numbers as floats, categories as integer codes from the reference vocabulary (unseen → new code)."""
    out = np.empty((len(rows), len(kinds)), dtype=np.float64)
    for j, (col, kind) in enumerate(kinds.items()):
        if kind == "number":
            out[:, j] = [np.nan if r.get(col) is None else float(r[col]) for r in rows]
        else:
            codes = vocab.setdefault(col, {})
            out[:, j] = [codes.setdefault(r.get(col), len(codes)) for r in rows]
    return out


class AlibiTabularDrift:
    """alibi-detect ``TabularDrift``: KS per numeric feature, Chi-square per categorical, Bonferroni-corrected."""

    backend = "alibi-detect"

    def __init__(self, *, p_val: float = 0.05, correction: str = "bonferroni"):
        self.p_val = p_val
        self.correction = correction
        self._cd: Any = None

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> AlibiTabularDrift:
        try:
            from alibi_detect.cd import TabularDrift
        except ImportError as exc:  # optional engine
            raise ConfigError(
                "alibi-detect is not installed; pip install 'alibi-detect>=0.13,<0.14' or use backend='scipy'."
            ) from exc
        self._cd = TabularDrift(
            _impute(x_ref, x_ref).astype(np.float32),
            p_val=self.p_val,
            categories_per_feature={i: None for i in categorical},
            correction=self.correction,
        )
        self._ref = x_ref
        return self

    def test(self, x: np.ndarray) -> dict[str, Any]:
        if self._cd is None:
            raise ConfigError("fit the detector before testing a window")
        pred = self._cd.predict(
            _impute(x, self._ref).astype(np.float32),
            drift_type="batch",
            return_p_val=True,
            return_distance=True,
        )
        data = pred["data"]
        return {
            "data": {
                "is_drift": bool(data["is_drift"]),
                "p_val": [float(p) for p in np.atleast_1d(data["p_val"])],
                "threshold": float(data["threshold"]),
                "distance": [float(d) for d in np.atleast_1d(data["distance"])],
            },
            "meta": {
                "backend": self.backend,
                "test": "KS/Chi2 per feature",
                "correction": self.correction,
            },
        }


class ScipyKSDrift:
    """Per-feature two-sample KS (numbers) and Chi-square (categories) with Bonferroni correction, on scipy."""

    backend = "scipy"

    def __init__(self, *, p_val: float = 0.05):
        self.p_val = p_val
        self._ref: np.ndarray | None = None
        self._categorical: list[int] = []

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> ScipyKSDrift:
        self._ref = _impute(x_ref, x_ref)
        self._categorical = list(categorical)
        return self

    def test(self, x: np.ndarray) -> dict[str, Any]:
        from scipy import stats

        if self._ref is None:
            raise ConfigError("fit the detector before testing a window")
        x = _impute(x, self._ref)
        p_vals, dists = [], []
        for j in range(x.shape[1]):
            if j in self._categorical:
                cats = np.union1d(self._ref[:, j], x[:, j])
                ref_counts = np.array([(self._ref[:, j] == c).sum() for c in cats])
                new_counts = np.array([(x[:, j] == c).sum() for c in cats])
                res = stats.chi2_contingency(np.vstack([ref_counts, new_counts]) + 0.5)
                p_vals.append(float(res.pvalue))
                dists.append(float(res.statistic))
            else:
                res = stats.ks_2samp(self._ref[:, j], x[:, j])
                p_vals.append(float(res.pvalue))
                dists.append(float(res.statistic))
        threshold = self.p_val / max(len(p_vals), 1)
        return {
            "data": {
                "is_drift": bool(min(p_vals) < threshold),
                "p_val": p_vals,
                "threshold": threshold,
                "distance": dists,
            },
            "meta": {
                "backend": self.backend,
                "test": "KS/Chi2 per feature",
                "correction": "bonferroni",
            },
        }


def _impute(x: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Replace NaN by the reference column median so the tests see finite values."""
    if not np.isnan(x).any():
        return x
    med = np.nanmedian(ref, axis=0)
    return np.where(np.isnan(x), med, x)


def make_detector(backend: str = "alibi", *, p_val: float = 0.05) -> DriftDetector:
    if backend in ("alibi", "alibi-detect"):
        return AlibiTabularDrift(p_val=p_val)
    if backend == "scipy":
        return ScipyKSDrift(p_val=p_val)
    raise ConfigError(f"unknown drift backend {backend!r}; use 'alibi' or 'scipy'")
