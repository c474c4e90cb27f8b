"""Online drift detectors: one record at a time, with a configured expected run time between false alarms.

Both backends run the Cramér-von Mises online test of Ross & Adams (2012) as
alibi-detect adapts it: per numeric feature, the two-sample CVM statistic
between the reference and sliding windows of the latest ``window_sizes``
records, normalised by its mean and variance under no change (Anderson 1962),
against thresholds set by simulating streams with no change so that the
expected run time (ERT) to a false alarm is ``ert`` (features are treated as
independent: each gets the hazard ``1 - (1 - 1/ert)^(1/d)``).

- ``backend="alibi"``: alibi-detect's ``CVMDriftOnline`` (BSL 1.1).
- ``backend="scipy"``: :class:`ScipyCVMDriftOnline`, our numpy implementation
  from the papers (BSD). The statistic depends on the data only through the
  ranks of the window's values in the reference, so the thresholds come from
  a simulation on uniform streams that is cached per configuration.

These tests are for continuous features: categorical features are not
monitored online (the batch ``tabular`` detector covers them).
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from workbench.exceptions import ConfigError
from workbench.monitoring._detectors import ALIBI_HINT, _backend, _check_window, _quiet_alibi

__all__ = ["AlibiCVMDriftOnline", "ScipyCVMDriftOnline", "make_online_detector"]


class _OnlineBase:
    detector = "cvm_online"

    def __init__(
        self,
        *,
        ert: float = 1000.0,
        window_sizes: tuple[int, ...] | list[int] = (20, 100),
        n_bootstraps: int | None = None,
        n_ref: int = 1000,
        seed: int = 0,
    ):
        sizes = sorted({int(w) for w in window_sizes})
        if not sizes or sizes[0] < 2:
            raise ConfigError("window_sizes must hold sizes of at least 2 records")
        if ert < 2:
            raise ConfigError("ert (expected run time between false alarms) must be at least 2")
        self.ert = float(ert)
        self.window_sizes = sizes
        # None: chosen at fit, when the number of features is known (see _streams_needed)
        self.n_bootstraps = int(n_bootstraps) if n_bootstraps else None
        self.n_ref = int(n_ref)
        self.seed = int(seed)
        self.n_features_ = 0
        self._rows: list[np.ndarray] = []
        self.t = 0

    @property
    def max_ws(self) -> int:
        return self.window_sizes[-1]

    def params(self) -> dict[str, Any]:
        return {
            "ert": self.ert,
            "window_sizes": self.window_sizes,
            "n_bootstraps": self.n_bootstraps,
            "n_ref": self.n_ref,
            "seed": self.seed,
        }

    def _streams_needed(self, n_features: int) -> int:
        """Simulated streams the thresholds need: the (1-β) quantile must still be estimable from
        the streams left without an alarm after ``2 * max(window_sizes)`` steps (alibi-detect
        refuses it otherwise)."""
        beta = 1 - (1 - 1 / self.ert) ** (1 / n_features)
        return math.ceil(1.5 / beta / (1 - beta) ** (2 * self.max_ws))

    def _choose_streams(self) -> None:
        needed = self._streams_needed(self.n_features_)
        if self.n_bootstraps is None:
            # alibi-detect's advice: an order of magnitude more simulated streams than the ERT
            self.n_bootstraps = max(1000, 10 * int(self.ert), needed)
        elif self.n_bootstraps < needed:
            raise ConfigError(
                f"n_bootstraps={self.n_bootstraps} is too few to set thresholds for ERT {self.ert:g} "
                f"over {self.n_features_} features; use at least {needed} (or leave it unset)"
            )

    def _subsample(self, x_ref: np.ndarray, categorical: list[int]) -> np.ndarray:
        if categorical:
            raise ConfigError(
                "the online CVM test is for numeric features; leave categorical ones to the batch "
                "'tabular' detector"
            )
        x_ref = _check_window(x_ref, np.asarray(x_ref).shape[1])
        if len(x_ref) > self.n_ref:
            keep = np.random.default_rng(self.seed).choice(len(x_ref), self.n_ref, replace=False)
            x_ref = x_ref[np.sort(keep)]
        self.n_features_ = x_ref.shape[1]
        self._choose_streams()
        return x_ref

    def _remember(self, x_t: np.ndarray) -> None:
        self._rows.append(x_t)
        del self._rows[: -self.max_ws]

    def get_state(self) -> dict[str, Any]:
        """Time since the last reset and the latest records (enough to rebuild every window)."""
        return {"t": self.t, "rows": [r.tolist() for r in self._rows]}

    def set_state(self, state: dict[str, Any]) -> None:
        self.reset()
        rows = [np.asarray(r, dtype=np.float64) for r in state.get("rows", [])]
        for row in rows:
            self._replay(row)
        self.t = int(state.get("t", len(rows)))
        self._sync_t()

    def _sync_t(self) -> None:
        pass

    def _result(self, stats: np.ndarray, threshold: float) -> dict[str, Any]:
        finite = np.isfinite(threshold) and np.isfinite(stats).any()
        return {
            "data": {
                "is_drift": bool(finite and (stats > threshold).any()),
                "time": self.t,
                "test_stat": [float(s) if np.isfinite(s) else None for s in stats],
                "threshold": float(threshold) if np.isfinite(threshold) else None,
            },
            "meta": {
                "backend": self.backend,  # type: ignore[attr-defined]
                "detector": self.detector,
                "test": f"CVM online, windows {self.window_sizes}, ERT {self.ert:g}",
                "feature_level": True,
            },
        }

    def _check_row(self, x_t: np.ndarray) -> np.ndarray:
        x_t = np.asarray(x_t, dtype=np.float64).reshape(-1)
        if x_t.shape[0] != self.n_features_ or np.isnan(x_t).any():
            raise ConfigError(
                f"an online update takes one record of {self.n_features_} numbers without NaN"
            )
        return x_t


# --------------------------------------------------------------------------- numpy implementation
def _cvm_z(q_sorted: np.ndarray, n: int) -> np.ndarray:
    """Normalised two-sample CVM statistic from the sorted reference ranks of a window's values.

    ``q_sorted[..., k, f]`` is the number of reference values below the k-th smallest window value
    (window size ``m`` along axis -2). With ranks in the pooled sample, Anderson's
    ``U = n Σ_i (r_i - i)² + m Σ_j (s_j - j)²`` becomes ``n Σ_k (2k-1)(n - q_k) + m Σ_k q_k²``.
    """
    m = q_sorted.shape[-2]
    big = n + m
    q = q_sorted.astype(np.float64)
    shape = [1] * q.ndim
    shape[-2] = m
    weights = (2 * np.arange(1, m + 1) - 1).reshape(shape)
    u = n * np.sum(weights * (n - q), axis=-2) + m * np.sum(q * q, axis=-2)
    t = u / (n * m * big) - (4 * m * n - 1) / (6 * big)
    mean = 1 / 6 + 1 / (6 * big)
    var = (
        (big + 1)
        / (45 * big * big)
        * (4 * m * n * big - 3 * (m * m + n * n) - 2 * m * n)
        / (4 * m * n)
    )
    return (t - mean) / np.sqrt(var)


@functools.lru_cache(maxsize=32)
def _thresholds(
    n: int, window_sizes: tuple[int, ...], ert: float, n_features: int, n_streams: int, seed: int
) -> np.ndarray:
    """Thresholds per time step, from streams without change (the statistic is rank-based, so
    uniform values stand for any continuous distribution).

    At each step the threshold is the (1-β) quantile of the statistic over the simulated streams
    that have not raised an alarm yet, so the hazard of a false alarm is β at every step; after
    ``2 * max(window_sizes)`` steps the last threshold holds.
    """
    beta = 1 - (1 - 1 / ert) ** (1 / n_features)
    length = 2 * max(window_sizes)
    rng = np.random.default_rng(seed)
    stats = np.full((n_streams, length), -np.inf)
    batch = max(1, min(n_streams, 4_000_000 // (length * max(window_sizes))))
    for start in range(0, n_streams, batch):
        b = min(batch, n_streams - start)
        ref = np.sort(rng.random((b, n)), axis=1)
        values = rng.random((b, length))
        q = np.stack([np.searchsorted(ref[i], values[i]) for i in range(b)])
        for ws in window_sizes:
            wins = np.sort(np.lib.stride_tricks.sliding_window_view(q, ws, axis=1), axis=-1)
            z = _cvm_z(wins[..., None], n)[..., 0]  # (b, length - ws + 1)
            part = stats[start : start + b, ws - 1 :]
            np.maximum(part, z, out=part)
    thresholds = np.full(length, np.nan)
    full = max(window_sizes) - 1  # from this step on every window is full
    alive = stats
    for t in range(min(window_sizes) - 1, full):  # windows filling up: one threshold per step
        thresholds[t] = np.quantile(alive[:, t], 1 - beta)
        alive = alive[alive[:, t] <= thresholds[t]]
    # Once every window is full the statistic's distribution no longer moves with t, so one
    # threshold is pooled over the remaining steps of the streams still alive at each step: the
    # same hazard β per step, estimated from max(window_sizes) times more values than a per-step
    # quantile (whose noise shortens the run time: the low draws raise alarms). Which streams are
    # alive depends on the threshold, hence a few fixed-point rounds.
    tail = alive[:, full:]
    level = float(np.quantile(tail[:, 0], 1 - beta))
    for _ in range(4):
        ok = np.cumprod(tail <= level, axis=1).astype(bool)
        at_risk = np.concatenate([np.ones((len(tail), 1), dtype=bool), ok[:, :-1]], axis=1)
        level = float(np.quantile(tail[at_risk], 1 - beta))
    thresholds[full:] = level
    return thresholds


class ScipyCVMDriftOnline(_OnlineBase):
    """Online CVM drift detector in numpy (BSD): the permissive twin of :class:`AlibiCVMDriftOnline`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> det = ScipyCVMDriftOnline(ert=100, window_sizes=[10, 30], n_bootstraps=1000)
    >>> det = det.fit(rng.normal(size=(300, 2)), categorical=[])
    >>> [det.update(row)["data"]["is_drift"] for row in rng.normal(size=(5, 2))]
    [False, False, False, False, False]
    """

    backend = "scipy"

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> ScipyCVMDriftOnline:
        self._ref = self._subsample(x_ref, categorical)
        self._prepare()
        return self

    def _prepare(self) -> None:
        self._ref_sorted = np.sort(self._ref, axis=0)
        self.thresholds_ = _thresholds(
            len(self._ref),
            tuple(self.window_sizes),
            self.ert,
            self.n_features_,
            self.n_bootstraps,
            self.seed,
        )
        self.reset()

    def reset(self) -> None:
        self.t = 0
        self._rows = []
        self._q: list[np.ndarray] = []

    def _replay(self, x_t: np.ndarray) -> None:
        self._step(x_t)

    def _step(self, x_t: np.ndarray) -> np.ndarray:
        x_t = self._check_row(x_t)
        self.t += 1
        self._remember(x_t)
        q_t = np.array(
            [np.searchsorted(self._ref_sorted[:, f], x_t[f]) for f in range(self.n_features_)]
        )
        self._q.append(q_t)
        del self._q[: -self.max_ws]
        stats = np.full(self.n_features_, np.nan)
        for ws in self.window_sizes:
            if self.t < ws:
                continue
            window = np.sort(np.asarray(self._q[-ws:]), axis=0)
            z = _cvm_z(window, len(self._ref_sorted))
            stats = np.fmax(stats, z)
        return stats

    def update(self, x_t: np.ndarray) -> dict[str, Any]:
        stats = self._step(x_t)
        th = self.thresholds_
        return self._result(stats, th[min(self.t, len(th)) - 1])

    def _save(self, path: Path) -> None:
        np.save(path / "x_ref.npy", self._ref)

    @classmethod
    def _load(cls, path: Path, params: dict[str, Any]) -> ScipyCVMDriftOnline:
        det = cls(**params)
        det._ref = np.load(path / "x_ref.npy")
        det.n_features_ = det._ref.shape[1]
        det._prepare()
        return det


# --------------------------------------------------------------------------- alibi-detect
@functools.cache
def _alibi_without_calibration() -> type:
    """``CVMDriftOnline`` that skips its threshold simulation, for loading saved thresholds.

    alibi-detect's own ``load_detector`` re-runs the (random) simulation, which would change the
    thresholds of a deployed monitor on every restart: a silent refit.
    """
    from alibi_detect.cd import CVMDriftOnline

    class _Loaded(CVMDriftOnline):  # type: ignore[misc,valid-type]
        def _configure_thresholds(self) -> None:
            self.thresholds = None

    return _Loaded


class AlibiCVMDriftOnline(_OnlineBase):
    """alibi-detect ``CVMDriftOnline`` behind the online interface (``update``, ``reset``, state).

    Saved with its simulated thresholds, so a reloaded detector raises the same alarms.

    Examples
    --------
    >>> det = AlibiCVMDriftOnline(ert=500, window_sizes=[20, 100]).fit(x_ref, [])   # doctest: +SKIP
    >>> det.update(x_t)["data"]["is_drift"]                                          # doctest: +SKIP
    """

    backend = "alibi"

    def fit(self, x_ref: np.ndarray, categorical: list[int]) -> AlibiCVMDriftOnline:
        ref = self._subsample(x_ref, categorical)
        try:
            from alibi_detect.cd import CVMDriftOnline
        except ImportError as exc:
            raise ConfigError(ALIBI_HINT) from exc
        # Its simulation draws from numpy's global generator: seed it, then put the state back.
        saved = np.random.get_state()
        np.random.seed(self.seed)
        try:
            with _quiet_alibi():
                self._cd = CVMDriftOnline(
                    ref,
                    ert=self.ert,
                    window_sizes=self.window_sizes,
                    n_bootstraps=self.n_bootstraps,
                    verbose=False,
                )
        finally:
            np.random.set_state(saved)
        self.reset()
        return self

    def reset(self) -> None:
        self.t = 0
        self._rows = []
        if getattr(self, "_cd", None) is not None:
            self._cd.reset_state()

    def _replay(self, x_t: np.ndarray) -> None:
        x_t = self._check_row(x_t)
        self._cd.score(x_t)
        self.t = self._cd.t
        self._remember(x_t)

    def _sync_t(self) -> None:
        self._cd.t = self.t

    def _trim(self) -> None:
        # alibi-detect keeps every record and statistic since the last reset (np.concatenate per
        # step, quadratic over a long stream); only the latest max(window_sizes) are ever used.
        cd = self._cd
        cd.xs = cd.xs[-self.max_ws :]
        cd.test_stats = cd.test_stats[-1:]
        cd.drift_preds = cd.drift_preds[-1:]

    def update(self, x_t: np.ndarray) -> dict[str, Any]:
        x_t = self._check_row(x_t)
        pred = self._cd.predict(x_t, return_test_stat=True)
        self._trim()
        self.t = int(self._cd.t)
        self._remember(x_t)
        data = pred["data"]
        stats = np.asarray(data["test_stat"], dtype=np.float64)
        with np.errstate(all="ignore"):
            per_feature = (
                np.nanmax(stats, axis=0) if np.isfinite(stats).any() else stats.max(axis=0)
            )
        threshold = float(np.asarray(data["threshold"]).reshape(-1)[0])
        out = self._result(per_feature, threshold)
        out["data"]["is_drift"] = bool(data["is_drift"])
        return out

    def _save(self, path: Path) -> None:
        np.save(path / "x_ref.npy", np.asarray(self._cd.x_ref))
        np.save(path / "thresholds.npy", np.asarray(self._cd.thresholds))
        (path / "state.json").write_text(json.dumps({"alibi_class": "CVMDriftOnline"}))

    @classmethod
    def _load(cls, path: Path, params: dict[str, Any]) -> AlibiCVMDriftOnline:
        try:
            loaded_cls = _alibi_without_calibration()
        except ImportError as exc:
            raise ConfigError(ALIBI_HINT) from exc
        det = cls(**params)
        ref = np.load(path / "x_ref.npy")
        det.n_features_ = ref.shape[1]
        with _quiet_alibi():
            det._cd = loaded_cls(
                ref,
                ert=det.ert,
                window_sizes=det.window_sizes,
                n_bootstraps=det.n_bootstraps,
                verbose=False,
            )
        det._cd.thresholds = np.load(path / "thresholds.npy")
        det.reset()
        return det


ONLINE_DETECTORS: dict[str, type] = {
    "alibi": AlibiCVMDriftOnline,
    "scipy": ScipyCVMDriftOnline,
}


def make_online_detector(backend: str = "alibi", **options: Any) -> Any:
    """An online CVM detector: ``ert``, ``window_sizes``, ``n_bootstraps``, ``n_ref``, ``seed``.

    Examples
    --------
    >>> make_online_detector("scipy", ert=200, window_sizes=[10, 50]).window_sizes
    [10, 50]
    """
    cls = ONLINE_DETECTORS[_backend(backend)]
    try:
        return cls(**options)
    except TypeError as exc:
        raise ConfigError(f"{cls.__name__} does not take these options: {exc}") from exc
