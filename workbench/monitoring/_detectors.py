"""Drift detectors behind one small interface, each with two backends.

alibi-detect is the default engine. Since 0.11.5 it is under the Business
Source License 1.1 (free for non-production use only); every detector here has
a second backend on scipy/numpy (BSD) for users who need a permissive licence.
Both backends are tested against the same cases (``tests/test_monitoring_*``):

================  ===========================================  ============================================
detector          ``backend="alibi"``                          ``backend="scipy"``
================  ===========================================  ============================================
``tabular``       ``TabularDrift``: KS per numeric feature,    the same tests on ``scipy.stats`` (KS
                  Chi-square per categorical one, Bonferroni   asymptotic, ``chi2_contingency``): identical
                  or FDR (Benjamini-Hochberg) over features    p-values, about twice as fast
``mmd``           ``MMDDrift(backend="pytorch")``: kernel MMD  the same statistic and permutation test in
                  with a permutation test                      numpy (own code): same test, other draws
================  ===========================================  ============================================

Online detectors live in :mod:`workbench.monitoring._online`.

Detectors take a float matrix: numbers, and categories as integer codes
(columns listed in ``categorical``). Windows with missing values never reach
them: monitors keep complete records only and give a verdict when too few are
left (:mod:`workbench.monitoring._encode`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from workbench.exceptions import ConfigError

__all__ = [
    "DriftDetector",
    "AlibiTabularDrift",
    "ScipyKSDrift",
    "AlibiMMDDrift",
    "ScipyMMDDrift",
    "make_detector",
    "correct_p_values",
]

CORRECTIONS = ("bonferroni", "fdr")
ALIBI_HINT = (
    "alibi-detect is not installed; pip install 'alibi-detect>=0.13,<0.14' "
    "or use backend='scipy' (same tests, BSD licence)."
)


class DriftDetector(Protocol):
    """Fit on reference data; test a window. Results follow alibi-detect's ``{"data", "meta"}`` shape.

    ``data`` holds ``is_drift``, ``p_val`` (a list: one per feature for
    feature-wise tests, one for multivariate tests), ``threshold`` and
    ``distance``; ``meta`` names the backend, detector and test.
    """

    backend: str
    detector: str

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> DriftDetector: ...

    def test(self, x: np.ndarray) -> dict[str, Any]: ...

    def params(self) -> dict[str, Any]: ...

    def _save(self, path: Path) -> None: ...


def correct_p_values(p_vals: np.ndarray, p_val: float, correction: str) -> tuple[bool, float]:
    """Whether a family of per-feature tests flags drift, and the threshold that decided it.

    ``bonferroni`` compares each p-value with ``p_val / k``; ``fdr`` is
    Benjamini-Hochberg at level ``p_val`` (drift when some ordered
    ``p_(i) < p_val * i / k``; the threshold reported is the largest such
    cut-off, or ``p_val / k`` when none is passed).

    Examples
    --------
    >>> correct_p_values(np.array([0.001, 0.5]), 0.05, "bonferroni")
    (True, 0.025)
    >>> correct_p_values(np.array([0.02, 0.04]), 0.05, "fdr")
    (True, 0.05)
    """
    k = max(len(p_vals), 1)
    if correction == "bonferroni":
        threshold = p_val / k
        return bool((p_vals < threshold).any()), float(threshold)
    if correction == "fdr":
        cutoffs = p_val * np.arange(1, k + 1) / k
        passed = np.sort(p_vals) < cutoffs
        if not passed.any():
            return False, float(cutoffs[0])
        return True, float(cutoffs[np.nonzero(passed)[0].max()])
    raise ConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")


def _check_window(x: np.ndarray, n_features: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_features:
        raise ConfigError(
            f"a window must be a 2-D array with {n_features} columns, got shape {x.shape}"
        )
    if len(x) == 0 or np.isnan(x).any():
        raise ConfigError(
            "a window must be non-empty and hold no NaN; monitors keep complete records only "
            "(use a monitor, or drop incomplete rows first)"
        )
    return x


def _window_seed(x: np.ndarray, seed: int) -> int:
    """A seed drawn from the window's bytes: the same window always gets the same permutations."""
    h = hashlib.blake2b(np.ascontiguousarray(x).tobytes(), digest_size=8, key=str(seed).encode())
    return int.from_bytes(h.digest(), "little") & (2**63 - 1)


# --------------------------------------------------------------------------- feature-wise tests
class _FeatureWise:
    detector = "tabular"

    def __init__(self, *, p_val: float = 0.05, correction: str = "bonferroni"):
        if not 0 < p_val < 1:
            raise ConfigError("p_val must be between 0 and 1")
        if correction not in CORRECTIONS:
            raise ConfigError(f"correction must be one of {CORRECTIONS}, got {correction!r}")
        self.p_val = p_val
        self.correction = correction
        self.categorical_: list[int] = []
        self.n_features_ = 0
        self.n_ref_ = 0

    def params(self) -> dict[str, Any]:
        return {"p_val": self.p_val, "correction": self.correction}

    def _result(self, p_vals: np.ndarray, dists: np.ndarray, n: int) -> dict[str, Any]:
        is_drift, threshold = correct_p_values(p_vals, self.p_val, self.correction)
        return {
            "data": {
                "is_drift": is_drift,
                "p_val": [float(p) for p in p_vals],
                "threshold": threshold,
                "distance": [float(d) for d in dists],
            },
            "meta": {
                "backend": self.backend,  # type: ignore[attr-defined]
                "detector": self.detector,
                "test": "KS per numeric feature, Chi-square per categorical feature",
                "correction": self.correction,
                "feature_level": True,
                "n_ref": self.n_ref_,
                "n": n,
            },
        }


class AlibiTabularDrift(_FeatureWise):
    """alibi-detect ``TabularDrift``: KS per numeric feature, Chi-square per categorical, corrected.

    Examples
    --------
    >>> det = AlibiTabularDrift(p_val=0.05).fit(x_ref, categorical=[3])   # doctest: +SKIP
    >>> det.test(x)["data"]["is_drift"]                                    # doctest: +SKIP
    """

    backend = "alibi"

    def __init__(self, *, p_val: float = 0.05, correction: str = "bonferroni"):
        super().__init__(p_val=p_val, correction=correction)
        self._cd: Any = None

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> AlibiTabularDrift:
        x_ref = _check_window(x_ref, np.asarray(x_ref).shape[1])
        try:
            from alibi_detect.cd import TabularDrift
        except ImportError as exc:  # optional engine
            raise ConfigError(ALIBI_HINT) from exc
        self.categorical_ = sorted(int(j) for j in categorical)
        self.n_features_ = x_ref.shape[1]
        self.n_ref_ = len(x_ref)
        # None: alibi takes each categorical feature's values from the reference itself, so every
        # category it counts has a non-zero reference count (a zero column would break Chi-square).
        self._cd = TabularDrift(
            x_ref,
            p_val=self.p_val,
            categories_per_feature={j: None for j in self.categorical_},
            correction=self.correction,
        )
        return self

    def test(self, x: np.ndarray) -> dict[str, Any]:
        if self._cd is None:
            raise ConfigError("fit the detector before testing a window")
        x = _check_window(x, self.n_features_)
        pred = self._cd.predict(x, drift_type="batch", return_p_val=True, return_distance=True)
        data = pred["data"]
        return self._result(
            np.atleast_1d(data["p_val"]).astype(np.float64),
            np.atleast_1d(data["distance"]).astype(np.float64),
            len(x),
        )

    def _save(self, path: Path) -> None:
        from alibi_detect.saving import save_detector

        with _quiet_alibi():
            save_detector(self._cd, str(path / "alibi"))
        (path / "state.json").write_text(
            json.dumps(
                {
                    "categorical": self.categorical_,
                    "n_features": self.n_features_,
                    "n_ref": self.n_ref_,
                }
            )
        )

    @classmethod
    def _load(cls, path: Path, params: dict[str, Any]) -> AlibiTabularDrift:
        try:
            from alibi_detect.saving import load_detector
        except ImportError as exc:
            raise ConfigError(ALIBI_HINT) from exc
        det = cls(**params)
        state = json.loads((path / "state.json").read_text())
        det.categorical_, det.n_features_, det.n_ref_ = (
            state["categorical"],
            state["n_features"],
            state["n_ref"],
        )
        with _quiet_alibi():
            det._cd = load_detector(str(path / "alibi"))
        return det


class ScipyKSDrift(_FeatureWise):
    """The same per-feature tests as :class:`AlibiTabularDrift`, on scipy (BSD licence).

    Two-sample KS (asymptotic p-value, as alibi-detect computes it) per numeric
    feature, Chi-square on the reference-versus-window contingency table per
    categorical feature, then Bonferroni or FDR over features. The p-values
    equal alibi-detect's on the same data; the reference is sorted once at
    ``fit`` instead of at every window.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = ScipyKSDrift(p_val=0.05).fit(rng.normal(size=(500, 3)), categorical=[])
    >>> det.test(rng.normal(size=(200, 3)) + [0, 0, 1])["data"]["is_drift"]
    True
    """

    backend = "scipy"

    def __init__(self, *, p_val: float = 0.05, correction: str = "bonferroni"):
        super().__init__(p_val=p_val, correction=correction)
        self._ref: np.ndarray | None = None

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> ScipyKSDrift:
        x_ref = _check_window(x_ref, np.asarray(x_ref).shape[1])
        self.categorical_ = sorted(int(j) for j in categorical)
        self.n_features_ = x_ref.shape[1]
        self.n_ref_ = len(x_ref)
        self._ref = x_ref
        self._prepare()
        return self

    def _prepare(self) -> None:
        assert self._ref is not None
        cat = set(self.categorical_)
        self._numeric = [j for j in range(self.n_features_) if j not in cat]
        self._ref_sorted = np.sort(self._ref[:, self._numeric], axis=0)
        self._ref_cats = {j: np.unique(self._ref[:, j], return_counts=True) for j in cat}

    def test(self, x: np.ndarray) -> dict[str, Any]:
        from scipy import stats

        if self._ref is None:
            raise ConfigError("fit the detector before testing a window")
        x = _check_window(x, self.n_features_)
        n1, n2 = self.n_ref_, len(x)
        p_vals = np.ones(self.n_features_)
        dists = np.zeros(self.n_features_)
        if self._numeric:
            # scipy.stats.ks_2samp(method="asymp"), vectorised over features with the reference
            # sorted once: the same statistic and the same p-value.
            x_sorted = np.sort(x[:, self._numeric], axis=0)
            d = np.empty(len(self._numeric))
            for k in range(len(self._numeric)):
                a, b = self._ref_sorted[:, k], x_sorted[:, k]
                both = np.concatenate([a, b])
                diff = (
                    np.searchsorted(a, both, side="right") / n1
                    - np.searchsorted(b, both, side="right") / n2
                )
                d[k] = max(diff.max(), np.clip(-diff.min(), 0, 1))
            m, n = sorted([float(n1), float(n2)], reverse=True)
            p_vals[self._numeric] = np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0, 1)
            dists[self._numeric] = d
        for j, (ref_values, ref_counts) in self._ref_cats.items():
            values, counts = np.unique(x[:, j], return_counts=True)
            cats = np.union1d(ref_values, values)
            table = np.zeros((2, len(cats)))
            table[0, np.searchsorted(cats, ref_values)] = ref_counts
            table[1, np.searchsorted(cats, values)] = counts
            res = stats.chi2_contingency(table)
            p_vals[j], dists[j] = float(res.pvalue), float(res.statistic)
        return self._result(p_vals, dists, n2)

    def _save(self, path: Path) -> None:
        assert self._ref is not None
        np.save(path / "x_ref.npy", self._ref)
        (path / "state.json").write_text(json.dumps({"categorical": self.categorical_}))

    @classmethod
    def _load(cls, path: Path, params: dict[str, Any]) -> ScipyKSDrift:
        det = cls(**params)
        ref = np.load(path / "x_ref.npy")
        det.categorical_ = json.loads((path / "state.json").read_text())["categorical"]
        det.n_features_, det.n_ref_, det._ref = ref.shape[1], len(ref), ref
        det._prepare()
        return det


# --------------------------------------------------------------------------- MMD
class _MMDPrep:
    """Scale numbers by the reference's mean and spread; one-hot categories (weight 1/√2, so two
    different categories are as far apart as one standard deviation)."""

    def __init__(
        self, mean: list[float], scale: list[float], categorical: list[int], n_cats: list[int]
    ):
        self.mean, self.scale = np.asarray(mean), np.asarray(scale)
        self.categorical, self.n_cats = list(categorical), list(n_cats)

    @classmethod
    def fit(cls, x_ref: np.ndarray, categorical: list[int]) -> _MMDPrep:
        numeric = [j for j in range(x_ref.shape[1]) if j not in set(categorical)]
        mean = x_ref[:, numeric].mean(axis=0) if numeric else np.zeros(0)
        scale = x_ref[:, numeric].std(axis=0) if numeric else np.zeros(0)
        scale = np.where(scale > 0, scale, 1.0)
        n_cats = [int(x_ref[:, j].max()) + 1 for j in categorical]
        return cls(mean.tolist(), scale.tolist(), categorical, n_cats)

    def transform(self, x: np.ndarray) -> np.ndarray:
        cat = set(self.categorical)
        numeric = [j for j in range(x.shape[1]) if j not in cat]
        parts = [(x[:, numeric] - self.mean) / self.scale]
        for j, k in zip(self.categorical, self.n_cats, strict=True):
            onehot = np.zeros((len(x), k))
            codes = x[:, j].astype(np.int64)
            known = (codes >= 0) & (codes < k)  # a code the reference never had: all zeros
            onehot[np.nonzero(known)[0], codes[known]] = 2**-0.5
            parts.append(onehot)
        return np.hstack(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "categorical": self.categorical,
            "n_cats": self.n_cats,
        }


class _MMDBase:
    detector = "mmd"

    def __init__(
        self,
        *,
        p_val: float = 0.05,
        n_permutations: int = 100,
        n_ref: int = 1000,
        max_rows: int = 500,
        seed: int = 0,
    ):
        if not 0 < p_val < 1:
            raise ConfigError("p_val must be between 0 and 1")
        if n_permutations < 20 or n_ref < 10 or max_rows < 10:
            raise ConfigError("MMD needs n_permutations >= 20, n_ref >= 10 and max_rows >= 10")
        self.p_val = p_val
        self.n_permutations = int(n_permutations)
        self.n_ref = int(n_ref)
        self.max_rows = int(max_rows)
        self.seed = int(seed)
        self.n_features_ = 0
        self.n_ref_ = 0
        self.prep_: _MMDPrep | None = None

    def params(self) -> dict[str, Any]:
        return {
            "p_val": self.p_val,
            "n_permutations": self.n_permutations,
            "n_ref": self.n_ref,
            "max_rows": self.max_rows,
            "seed": self.seed,
        }

    def _fit_prep(self, x_ref: np.ndarray, categorical: list[int]) -> np.ndarray:
        x_ref = _check_window(x_ref, np.asarray(x_ref).shape[1])
        self.n_features_ = x_ref.shape[1]
        self.prep_ = _MMDPrep.fit(x_ref, sorted(int(j) for j in categorical))
        if len(x_ref) > self.n_ref:
            keep = np.sort(
                np.random.default_rng(self.seed).choice(len(x_ref), self.n_ref, replace=False)
            )
            x_ref = x_ref[keep]
        self.n_ref_ = len(x_ref)
        return self.prep_.transform(x_ref)

    def _window(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        if self.prep_ is None:
            raise ConfigError("fit the detector before testing a window")
        x = _check_window(x, self.n_features_)
        seed = _window_seed(x, self.seed)
        if len(x) > self.max_rows:
            keep = np.sort(np.random.default_rng(seed).choice(len(x), self.max_rows, replace=False))
            x = x[keep]
        if len(x) < 2:
            raise ConfigError("MMD needs at least 2 rows in a window")
        return self.prep_.transform(x), seed

    def _result(
        self, p: float, mmd2: float, threshold: float, n: int, n_ref: int
    ) -> dict[str, Any]:
        return {
            "data": {
                "is_drift": bool(p < self.p_val),
                "p_val": [float(p)],
                "threshold": float(self.p_val),
                "distance": [float(mmd2)],
                "distance_threshold": float(threshold),
            },
            "meta": {
                "backend": self.backend,  # type: ignore[attr-defined]
                "detector": self.detector,
                "test": f"MMD² (Gaussian kernel, median heuristic), {self.n_permutations} permutations",
                "correction": None,
                "feature_level": False,
                "n_ref": n_ref,
                "n": n,
            },
        }

    def _save_prep(self, path: Path) -> None:
        assert self.prep_ is not None
        (path / "state.json").write_text(
            json.dumps(
                {"prep": self.prep_.to_json(), "n_features": self.n_features_, "n_ref": self.n_ref_}
            )
        )

    def _load_prep(self, path: Path) -> None:
        state = json.loads((path / "state.json").read_text())
        p = state["prep"]
        self.prep_ = _MMDPrep(p["mean"], p["scale"], p["categorical"], p["n_cats"])
        self.n_features_ = state["n_features"]
        self.n_ref_ = state["n_ref"]


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run torch with ``n`` intra-op threads, then restore: on a small, busy machine one thread is
    far faster than oversubscribing (measured here: 4 s versus 0.07 s for a 250-row window)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_alibi() -> Iterator[None]:
    """alibi-detect logs 'No GPU detected' and 'Directory ... created' at WARNING on every fit and save."""
    import logging

    loggers = [logging.getLogger(n) for n in ("alibi_detect", "alibi_detect.saving")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class AlibiMMDDrift(_MMDBase):
    """alibi-detect ``MMDDrift`` with the PyTorch backend: one multivariate test for joint shifts.

    The reference is subsampled to ``n_ref`` rows and each window to
    ``max_rows`` (the kernel matrix grows with the square of the rows). The
    permutations are seeded from the window's bytes, so a window always gets
    the same p-value, before and after a save/load.

    Examples
    --------
    >>> det = AlibiMMDDrift(n_ref=300).fit(x_ref, categorical=[])   # doctest: +SKIP
    >>> det.test(x)["data"]["p_val"]                                 # doctest: +SKIP
    """

    backend = "alibi"

    def __init__(self, *, torch_threads: int | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.torch_threads = torch_threads
        self._cd: Any = None

    def params(self) -> dict[str, Any]:
        return {**super().params(), "torch_threads": self.torch_threads}

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> AlibiMMDDrift:
        ref = self._fit_prep(x_ref, categorical).astype(np.float32)
        try:
            from alibi_detect.cd import MMDDrift
        except ImportError as exc:
            raise ConfigError(ALIBI_HINT) from exc
        with _quiet_alibi(), _torch_threads(self.torch_threads):
            self._cd = MMDDrift(
                ref,
                backend="pytorch",
                p_val=self.p_val,
                n_permutations=self.n_permutations,
                device="cpu",
            )
        return self

    def test(self, x: np.ndarray) -> dict[str, Any]:
        import torch

        xp, seed = self._window(x)
        with torch.random.fork_rng(devices=[]), _torch_threads(self.torch_threads):
            torch.manual_seed(seed)
            pred = self._cd.predict(xp.astype(np.float32), return_p_val=True, return_distance=True)
        d = pred["data"]
        return self._result(
            float(d["p_val"]),
            float(d["distance"]),
            float(d["distance_threshold"]),
            len(xp),
            self.n_ref_,
        )

    def _save(self, path: Path) -> None:
        from alibi_detect.saving import save_detector

        with _quiet_alibi():
            save_detector(self._cd, str(path / "alibi"))
        self._save_prep(path)

    @classmethod
    def _load(cls, path: Path, params: dict[str, Any]) -> AlibiMMDDrift:
        try:
            from alibi_detect.saving import load_detector
        except ImportError as exc:
            raise ConfigError(ALIBI_HINT) from exc
        det = cls(**params)
        det._load_prep(path)
        with _quiet_alibi(), _torch_threads(det.torch_threads):
            det._cd = load_detector(str(path / "alibi"))
        return det


class ScipyMMDDrift(_MMDBase):
    """Kernel MMD² with a permutation test in numpy (BSD): the permissive twin of :class:`AlibiMMDDrift`.

    Same statistic (unbiased MMD², Gaussian kernel, bandwidth from the median
    pairwise distance of the reference) and the same preprocessing; the
    p-value is ``(1 + #{permuted ≥ observed}) / (1 + n_permutations)``. All
    permutations come from one matrix product with the kernel matrix, so a
    1,000-row test takes milliseconds instead of seconds.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.multivariate_normal([0, 0], [[1, 0], [0, 1]], size=400)
    >>> moved = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], size=400)
    >>> det = ScipyMMDDrift().fit(ref, categorical=[])
    >>> det.test(moved)["data"]["is_drift"]
    True
    """

    backend = "scipy"

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> ScipyMMDDrift:
        self._ref = self._fit_prep(x_ref, categorical)
        self._prepare()
        return self

    def _prepare(self) -> None:
        ref = self._ref
        d = _sq_dists(ref, ref)
        off = d[np.triu_indices(len(ref), 1)]
        # The lower median of the pairwise squared distances between reference rows.
        self._gamma = 1.0 / max(
            float(np.partition(off, (len(off) - 1) // 2)[(len(off) - 1) // 2]), 1e-12
        )
        self._k_rr = np.exp(-self._gamma * d)

    def test(self, x: np.ndarray) -> dict[str, Any]:
        xp, seed = self._window(x)
        n, m = len(self._ref), len(xp)
        big = n + m
        kernel = np.empty((big, big))
        kernel[:n, :n] = self._k_rr
        k_rx = np.exp(-self._gamma * _sq_dists(self._ref, xp))
        kernel[:n, n:] = k_rx
        kernel[n:, :n] = k_rx.T
        kernel[n:, n:] = np.exp(-self._gamma * _sq_dists(xp, xp))
        np.fill_diagonal(kernel, 0.0)
        # Column 0 marks the observed window, the others random relabellings; for an indicator
        # s of the window rows, s'Ks, 1'Ks and 1'K1 give every block sum of the kernel matrix.
        rng = np.random.default_rng(seed)
        marks = np.zeros((big, self.n_permutations + 1))
        marks[n:, 0] = 1.0
        picks = np.argsort(rng.random((self.n_permutations, big)), axis=1)[:, :m]
        marks[picks.T, np.arange(1, self.n_permutations + 1)] = 1.0
        row_sums = kernel.sum(axis=1)
        total = row_sums.sum()
        k_marks = kernel @ marks
        s_yy = np.einsum("ij,ij->j", marks, k_marks)
        s_1y = row_sums @ marks
        s_xy = s_1y - s_yy
        s_xx = total - 2 * s_1y + s_yy
        mmd2 = s_xx / (n * (n - 1)) + s_yy / (m * (m - 1)) - 2 * s_xy / (n * m)
        observed, permuted = mmd2[0], mmd2[1:]
        p = (1 + int((permuted >= observed).sum())) / (1 + self.n_permutations)
        threshold = float(np.quantile(permuted, 1 - self.p_val))
        return self._result(p, float(observed), threshold, m, n)

    def _save(self, path: Path) -> None:
        np.save(path / "x_ref.npy", self._ref)
        self._save_prep(path)

    @classmethod
    def _load(cls, path: Path, params: dict[str, Any]) -> ScipyMMDDrift:
        det = cls(**params)
        det._load_prep(path)
        det._ref = np.load(path / "x_ref.npy")
        det._prepare()
        return det


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


# --------------------------------------------------------------------------- factory
DETECTORS: dict[tuple[str, str], type] = {
    ("tabular", "alibi"): AlibiTabularDrift,
    ("tabular", "scipy"): ScipyKSDrift,
    ("mmd", "alibi"): AlibiMMDDrift,
    ("mmd", "scipy"): ScipyMMDDrift,
}


def _backend(backend: str) -> str:
    if backend in ("alibi", "alibi-detect"):
        return "alibi"
    if backend == "scipy":
        return "scipy"
    raise ConfigError(f"unknown drift backend {backend!r}; use 'alibi' or 'scipy'")


def make_detector(
    backend: str = "alibi", *, detector: str = "tabular", p_val: float = 0.05, **options: Any
) -> Any:
    """A batch drift detector: ``detector`` is ``"tabular"`` (per feature) or ``"mmd"`` (multivariate).

    ``options`` go to the detector: ``correction`` for tabular (``"bonferroni"`` or
    ``"fdr"``); ``n_permutations``, ``n_ref``, ``max_rows``, ``seed`` (and
    ``torch_threads`` for alibi) for MMD.

    Examples
    --------
    >>> make_detector("scipy", detector="tabular", correction="fdr").correction
    'fdr'
    """
    cls = DETECTORS.get((detector, _backend(backend)))
    if cls is None:
        raise ConfigError(f"unknown detector {detector!r}; use 'tabular' or 'mmd'")
    if cls is ScipyMMDDrift:
        options.pop("torch_threads", None)
    try:
        return cls(p_val=p_val, **options)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__} does not take these options: {exc}") from exc
