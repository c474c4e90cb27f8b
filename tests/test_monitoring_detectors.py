"""Detectors: both backends on the same cases, corrections, save/load with identical results, import cost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from workbench.exceptions import ConfigError
from workbench.monitoring import (
    AlibiCVMDriftOnline,
    AlibiMMDDrift,
    AlibiTabularDrift,
    ScipyCVMDriftOnline,
    ScipyKSDrift,
    ScipyMMDDrift,
    correct_p_values,
    load_detector,
    make_detector,
    make_online_detector,
    save_detector,
)
from workbench.monitoring._persist import detector_from_bytes, detector_to_bytes


def _mixed(rng, n, *, shift=0.0, probs=(0.5, 0.3, 0.2)):
    """Four numbers and one category (codes 0..2)."""
    x = rng.normal(size=(n, 4))
    x[:, 2] += shift
    return np.column_stack([x, rng.choice(3, size=n, p=list(probs))])


@pytest.fixture(scope="module")
def ref():
    return _mixed(np.random.default_rng(0), 3000)


@pytest.mark.parametrize("correction", ["bonferroni", "fdr"])
def test_tabular_backends_give_the_same_p_values(ref, correction):
    """KS (asymptotic) and Chi-square on scipy reproduce alibi-detect's TabularDrift feature by feature
    (alibi-detect keeps its p-values in float32, hence the tolerance)."""
    alibi = AlibiTabularDrift(correction=correction).fit(ref, categorical=[4])
    scipy_ = ScipyKSDrift(correction=correction).fit(ref, categorical=[4])
    rng = np.random.default_rng(1)
    cases = [
        _mixed(rng, 400),
        _mixed(rng, 400, shift=0.25),
        _mixed(rng, 400, probs=(0.3, 0.3, 0.4)),
        _mixed(rng, 60),
        np.column_stack([rng.normal(size=(200, 4)), np.zeros(200)]),  # one category only
    ]
    verdicts = []
    for x in cases:
        a, s = alibi.test(x)["data"], scipy_.test(x)["data"]
        np.testing.assert_allclose(s["p_val"], a["p_val"], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s["distance"], a["distance"], rtol=1e-5, atol=1e-6)
        assert s["is_drift"] == a["is_drift"] and s["threshold"] == pytest.approx(a["threshold"])
        verdicts.append(s["is_drift"])
    assert verdicts[:3] == [False, True, True]  # the cases can fail: no drift, numeric, categorical


def test_correction_rules():
    p = np.array([0.011, 0.015, 0.025, 0.5, 0.9])
    assert correct_p_values(p, 0.05, "bonferroni") == (False, 0.01)
    # Benjamini-Hochberg: p_(3) = 0.025 < 0.05 * 3/5 (p_(1) misses its cut-off 0.01, but a later
    # one passes), so drift at the cut-off 0.03 where Bonferroni sees none
    assert correct_p_values(p, 0.05, "fdr") == (True, pytest.approx(0.03))
    assert correct_p_values(np.array([0.5, 0.6]), 0.05, "fdr") == (False, 0.025)
    with pytest.raises(ConfigError, match="correction"):
        correct_p_values(p, 0.05, "holm")


def test_mmd_backends_agree_and_see_joint_shifts_the_marginals_miss(ref):
    """A correlation appears between two features whose marginals stay N(0, 1): per-feature tests
    cannot see it, MMD does, on both backends."""
    rng = np.random.default_rng(2)
    alibi = AlibiMMDDrift(n_ref=300, max_rows=200, torch_threads=1).fit(ref, categorical=[4])
    scipy_ = ScipyMMDDrift(n_ref=300, max_rows=200).fit(ref, categorical=[4])
    tabular = ScipyKSDrift().fit(ref, categorical=[4])

    def correlated(n):
        x = _mixed(rng, n)
        x[:, 1] = 0.9 * x[:, 0] + np.sqrt(1 - 0.81) * x[:, 1]
        return x

    same = [_mixed(rng, 200) for _ in range(6)]
    joint = [correlated(200) for _ in range(6)]
    for x in same + joint:
        a, s = alibi.test(x)["data"], scipy_.test(x)["data"]
        # the same statistic on the same subsample; p-values from different permutations
        assert s["distance"][0] == pytest.approx(a["distance"][0], rel=1e-4, abs=1e-6)
        assert abs(s["p_val"][0] - a["p_val"][0]) < 0.2
    assert all(scipy_.test(x)["data"]["is_drift"] for x in joint)
    assert all(alibi.test(x)["data"]["is_drift"] for x in joint)
    assert sum(tabular.test(x)["data"]["is_drift"] for x in joint) <= 1


def _all_detectors():
    return [
        (AlibiTabularDrift(correction="fdr"), [4]),
        (ScipyKSDrift(), [4]),
        (AlibiMMDDrift(n_ref=200, max_rows=150, torch_threads=1), [4]),
        (ScipyMMDDrift(n_ref=200, max_rows=150), [4]),
        (AlibiCVMDriftOnline(ert=50, window_sizes=[5, 10], n_bootstraps=500, n_ref=200), []),
        (ScipyCVMDriftOnline(ert=50, window_sizes=[5, 10], n_bootstraps=500, n_ref=200), []),
    ]


NAMES = ["alibi-tab", "scipy-tab", "alibi-mmd", "scipy-mmd", "alibi-cvm", "scipy-cvm"]


@pytest.mark.parametrize("index", range(6), ids=NAMES)
def test_saved_detector_gives_identical_results(tmp_path, ref, index):
    det, categorical = _all_detectors()[index]
    x_ref = ref if categorical else ref[:, :4]
    det.fit(x_ref, categorical=categorical)
    rng = np.random.default_rng(3)
    path = save_detector(det, tmp_path / "d")
    again = load_detector(path)
    from_bytes = detector_from_bytes(detector_to_bytes(det))
    assert type(again) is type(det)
    if hasattr(det, "update"):
        stream = rng.normal(size=(40, 4))
        stream[20:, 0] += 3.0
        runs = []
        for d in (det, again, from_bytes):
            d.reset()
            runs.append([d.update(row)["data"] for row in stream])
        assert runs[0] == runs[1] == runs[2]
        assert any(r["is_drift"] for r in runs[0])

        def thresholds(d):
            return d.thresholds_ if d.backend == "scipy" else d._cd.thresholds

        np.testing.assert_array_equal(thresholds(det), thresholds(again))
    else:
        for x in (_mixed(rng, 150), _mixed(rng, 150, shift=0.5)):
            assert det.test(x)["data"] == again.test(x)["data"] == from_bytes.test(x)["data"]
    # the tar is reproducible: same detector, same bytes (so the same artifact hash)
    assert detector_to_bytes(again) == detector_to_bytes(from_bytes)


def test_online_state_round_trips(ref):
    """get_state/set_state (what a monitor saves between checks) continue a run exactly."""
    rng = np.random.default_rng(4)
    stream = rng.normal(size=(60, 4))
    stream[30:, 1] += 2.0
    det = ScipyCVMDriftOnline(ert=100, window_sizes=[5, 15], n_bootstraps=1000).fit(ref[:, :4], [])
    whole = [det.update(r)["data"] for r in stream]
    det.reset()
    first = [det.update(r)["data"] for r in stream[:25]]
    state = det.get_state()
    fresh = ScipyCVMDriftOnline(ert=100, window_sizes=[5, 15], n_bootstraps=1000).fit(
        ref[:, :4], []
    )
    fresh.set_state(state)
    assert first + [fresh.update(r)["data"] for r in stream[25:]] == whole


def test_bad_arguments_fail_with_a_hint(ref, tmp_path):
    with pytest.raises(ConfigError, match="unknown drift backend"):
        make_detector("magic")
    with pytest.raises(ConfigError, match="unknown detector"):
        make_detector("scipy", detector="lsdd")
    with pytest.raises(ConfigError, match="does not take"):
        make_detector("scipy", detector="tabular", n_permutations=5)
    with pytest.raises(ConfigError, match="numeric features"):
        make_online_detector("scipy").fit(ref, categorical=[4])
    with pytest.raises(ConfigError, match="use at least"):  # alibi-detect would fail mid-simulation
        make_online_detector("alibi", ert=1000, n_bootstraps=500).fit(ref[:, :4], categorical=[])
    det = ScipyKSDrift().fit(ref, categorical=[4])
    with pytest.raises(ConfigError, match="NaN"):
        det.test(np.full((10, 5), np.nan))
    with pytest.raises(ConfigError, match="columns"):
        det.test(np.zeros((10, 3)))
    save_detector(det, tmp_path / "d")
    with pytest.raises(ConfigError, match="not empty"):
        save_detector(det, tmp_path / "d")
    with pytest.raises(ConfigError, match="no saved workbench detector"):
        load_detector(tmp_path)


def test_import_workbench_does_not_import_alibi_detect():
    """`import alibi_detect` takes seconds (13 s measured on this busy machine): never on import."""
    code = (
        "import sys, workbench, workbench.monitoring, workbench.api\n"
        "from workbench.monitoring import Monitoring, make_detector, make_online_detector\n"
        "make_detector('alibi'); make_online_detector('alibi')\n"
        "heavy = sorted(m for m in ('alibi_detect', 'torch', 'tensorflow', 'sklearn', 'scipy') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
