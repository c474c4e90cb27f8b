"""The statistical gate on synthetic predictions with a known answer: paired bootstrap intervals
(against a slow per-resample loop of scikit-learn), McNemar p-values (against scipy), the gate's
verdicts (a small true gain passes on a large holdout and is "not enough evidence" on a tiny one,
direction, guarded metrics, fairness bounds) and the policy's stored form, all pure; one
retraining through the engine (Ray) records the verdict."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.test_automation_loop import _drift, loop_bench, policy  # noqa: F401
from workbench.automation import Gate, LoopPolicy
from workbench.evaluation import Predictions, mcnemar, paired_bootstrap, paired_bootstrap_many
from workbench.evaluation._significance import _counts, _index_blocks, _Scorer
from workbench.exceptions import ConfigError


def correlated_pair(n: int, acc_a: float, acc_b: float, *, seed: int, share: float = 0.7):
    """A champion right on a row with probability ``acc_a`` and a challenger with ``acc_b``; on
    ``share`` of the rows both draw the same uniform (models err on the same hard rows, as real
    ones do), on the rest independently. Binary labels 'n'/'y', with probabilities whose top
    class is the prediction."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    u = rng.random(n)
    v = np.where(rng.random(n) < share, u, rng.random(n))
    classes = ["n", "y"]

    def model(right, conf_seed):
        pred = np.where(right, y, 1 - y)
        conf = 0.5 + 0.5 * np.random.default_rng(conf_seed).random(n)
        p_y = np.where(pred == 1, conf, 1 - conf)
        return Predictions.of(
            "classification",
            [classes[i] for i in y],
            [classes[i] for i in pred],
            classes=classes,
            proba=np.c_[1 - p_y, p_y],
        )

    return model(u < acc_a, seed + 1), model(v < acc_b, seed + 2)


def regression_pair(n: int, noise_a: float, noise_b: float, *, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.normal(10.0, 3.0, n)
    return (
        Predictions.of("regression", y, y + rng.normal(0, noise_a, n)),
        Predictions.of("regression", y, y + rng.normal(0, noise_b, n)),
    )


# ---------------------------------------------------------------- known answers
@pytest.mark.parametrize("test", ["paired_bootstrap", "mcnemar"])
def test_a_two_point_gain_passes_on_20000_rows_and_is_not_enough_evidence_on_200(test):
    gate = Gate("accuracy", test=test)
    big = gate.judge(*correlated_pair(20_000, 0.80, 0.82, seed=1))
    assert big.passed and big.evidence == "sufficient" and big.n == 20_000
    assert big.test == test and 0.01 < big.challenger - big.champion < 0.03
    if test == "paired_bootstrap":
        low, high = big.interval
        assert 0 < low < 0.02 < high  # the true gain is inside, zero is not
    else:
        assert big.p_value < 0.05 and big.interval is None

    tiny = gate.judge(*correlated_pair(200, 0.80, 0.82, seed=1))
    assert not tiny.passed and tiny.evidence == "not enough evidence" and tiny.n == 200
    assert "rows would be needed" in tiny.reason or "not right more often" in tiny.reason
    if test == "paired_bootstrap":
        assert tiny.interval[0] < 0 < tiny.interval[1]


def test_the_same_gain_passes_the_point_gate_on_200_rows():
    """What the significance test is for: the point gate takes a lucky small holdout's win."""
    champ, chall = correlated_pair(200, 0.80, 0.82, seed=1)
    assert chall.n == 200 and Gate("accuracy").judge(champ, chall).passed


def test_a_worse_regressor_loses_on_rmse_and_a_better_one_wins():
    worse_champ, worse = regression_pair(2_000, 1.0, 1.3, seed=3)
    v = Gate("rmse", test="paired_bootstrap").judge(worse_champ, worse)
    assert not v.passed and v.evidence == "sufficient"
    assert v.challenger > v.champion and v.interval[1] < 0  # a loss: the gain is negative
    better = Gate("rmse", test="paired_bootstrap", guarded=("r2", "mae")).judge(worse, worse_champ)
    assert better.passed and better.interval[0] > 0 and set(better.guarded) == {"r2", "mae"}
    assert all(g["passed"] and g["interval"][0] > 0 for g in better.guarded.values())


def test_a_margin_must_be_cleared_by_the_whole_interval():
    champ, chall = correlated_pair(20_000, 0.80, 0.82, seed=1)
    v = Gate("accuracy", test="paired_bootstrap", margin=0.05).judge(champ, chall)
    assert not v.passed and v.evidence == "sufficient" and v.interval[1] < 0.05
    same = Gate("accuracy", test="paired_bootstrap").judge(champ, champ)
    assert not same.passed and same.interval == [0.0, 0.0]  # a tie is no evidence of a gain


def test_the_holdout_under_min_samples_is_not_enough_evidence():
    champ, chall = correlated_pair(80, 0.5, 0.99, seed=2)
    v = Gate("accuracy", test="paired_bootstrap").judge(champ, chall)
    assert not v.passed and v.evidence == "not enough evidence" and v.n == 80
    assert "80 rows" in v.reason and "min_samples=100" in v.reason
    assert Gate("accuracy", test="paired_bootstrap", min_samples=50).judge(champ, chall).passed


def test_a_guarded_metric_fails_only_when_its_loss_beyond_tolerance_is_shown():
    rng = np.random.default_rng(5)
    n = 5_000
    y = rng.integers(0, 2, n)
    labels = np.array(["n", "y"])
    champ_pred = np.where(rng.random(n) < 0.8, y, 1 - y)
    # the challenger is right more often but overconfident: its accuracy rises, its log-loss
    # is far worse, its macro recall (which follows accuracy on balanced classes) is not
    chall_pred = np.where(rng.random(n) < 0.84, y, 1 - y)
    p_champ = np.where(champ_pred == 1, 0.8, 0.2)
    p_chall = np.where(chall_pred == 1, 0.999, 0.001)  # overconfident: a far worse log-loss
    champ = Predictions.of(
        "classification",
        labels[y],
        labels[champ_pred],
        classes=labels,
        proba=np.c_[1 - p_champ, p_champ],
    )
    chall = Predictions.of(
        "classification",
        labels[y],
        labels[chall_pred],
        classes=labels,
        proba=np.c_[1 - p_chall, p_chall],
    )
    v = Gate("accuracy", test="paired_bootstrap", guarded=("log_loss", "recall")).judge(
        champ, chall
    )
    assert v.interval[0] > 0  # the gate metric is won ...
    assert not v.passed and set(v.regressions) == {"log_loss"}  # ... but log-loss is shown worse
    assert v.regressions["log_loss"]["interval"][1] < 0 and v.guarded["recall"]["passed"]
    # a tolerance wider than the whole loss lets it through
    loss = v.guarded["log_loss"]["loss"]
    wide = Gate("accuracy", test="paired_bootstrap", guarded=("log_loss",), tolerance=3 * loss)
    assert wide.judge(champ, chall).passed
    # McNemar judges accuracy; its guards are bootstrapped the same way
    mc = Gate("accuracy", test="mcnemar", guarded=("log_loss",)).judge(champ, chall)
    assert not mc.passed and mc.p_value < 0.05 and set(mc.regressions) == {"log_loss"}


def test_probability_metrics_gate_in_their_direction():
    """roc_auc (higher is better) and log_loss (lower is better) judged on the same pair: a
    challenger with sharper, right probabilities wins on both, and loses both when swapped."""
    rng = np.random.default_rng(8)
    n = 3_000
    y = rng.integers(0, 2, n)
    labels = np.array(["n", "y"])

    def model(sharpness):
        score = np.clip(0.5 + (y - 0.5) * sharpness + rng.normal(0, 0.25, n), 0.01, 0.99)
        return Predictions.of(
            "classification",
            labels[y],
            labels[(score > 0.5).astype(int)],
            classes=labels,
            proba=np.c_[1 - score, score],
        )

    dull, sharp = model(0.2), model(0.5)
    for metric in ("roc_auc", "log_loss", "brier", "pr_auc"):
        gate = Gate(metric, test="paired_bootstrap")
        win, loss = gate.judge(dull, sharp), gate.judge(sharp, dull)
        assert win.passed and win.interval[0] > 0, (metric, win.reason)
        assert not loss.passed and loss.evidence == "sufficient" and loss.interval[1] < 0


def grouped_pair(n: int, *, champion_bias: float, challenger_bias: float, seed: int = 0):
    """Two classifiers 85% right in each of groups 'a' and 'b'; then each flips ``bias`` of group
    b's true negatives to positive: unfair to group a by construction (group b gets more
    positive predictions and a higher false-positive rate: both demographic parity and
    equalized odds gaps grow with the bias)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    group = np.where(rng.random(n) < 0.5, "a", "b")
    base = np.where(rng.random(n) < 0.85, y, 1 - y)
    u = rng.random(n)
    labels = np.array(["n", "y"])

    def model(bias):
        pred = np.where((group == "b") & (y == 0) & (base == 0) & (u < bias), 1, base)
        return Predictions.of(
            "classification", labels[y], labels[pred], classes=labels, sensitive={"group": group}
        )

    return model(champion_bias), model(challenger_bias)


def _selection_gap(p):
    rates = [np.mean(p.y_pred[p.sensitive["group"] == g] == "y") for g in ("a", "b")]
    return abs(rates[0] - rates[1])


def test_the_fairness_bound_refuses_a_challenger_unfair_by_construction():
    gate = Gate(
        "accuracy",
        margin=-1.0,  # any accuracy: this gate is about fairness alone
        fairness={"equalized_odds_difference": 0.1, "demographic_parity_difference": 0.1},
    )
    fair, unfair = grouped_pair(4_000, champion_bias=0.0, challenger_bias=0.6)
    assert _selection_gap(unfair) > 0.2 > 0.05 > _selection_gap(fair)  # the construction
    refused = gate.judge(fair, unfair)
    assert not refused.passed and "fairness" in refused.reason
    dp = refused.fairness["demographic_parity_difference"]
    assert dp["champion"] == pytest.approx(_selection_gap(fair))  # the figures are the gaps
    assert dp["challenger"] == pytest.approx(_selection_gap(unfair)) and not dp["passed"]
    assert not refused.fairness["equalized_odds_difference"]["passed"]
    # a fair challenger passes; one narrowing a gap that is still too wide is not refused for it
    assert gate.judge(unfair, fair).passed
    _, less_unfair = grouped_pair(4_000, champion_bias=0.6, challenger_bias=0.4)
    narrowed = gate.judge(unfair, less_unfair)
    dp = narrowed.fairness["demographic_parity_difference"]
    assert narrowed.passed and dp["challenger"] > 0.1 and dp["challenger"] < dp["champion"]
    # the same with a significance test, and a ratio bound is a floor
    tested = Gate("accuracy", margin=-1.0, test="paired_bootstrap", fairness=gate.fairness)
    assert not tested.judge(fair, unfair).passed and tested.judge(unfair, fair).passed
    ratio = Gate("accuracy", margin=-1.0, fairness={"demographic_parity_ratio": 0.8})
    assert not ratio.judge(fair, unfair).passed and ratio.judge(unfair, fair).passed
    with pytest.raises(ConfigError, match="no gap"):
        Gate("accuracy", fairness={"parity_of_vibes": 0.1}).judge(fair, unfair)


# ---------------------------------------------------------------- the computations
def _reference_gains(metric, champ, chall, rows):
    """The slow peer: scikit-learn on each resample's rows (index arrays)."""
    from sklearn import metrics as skm

    def value(p, idx):
        yt, yp = p.y_true[idx], p.y_pred[idx]
        if metric == "accuracy":
            return skm.accuracy_score(yt, yp)
        if metric == "f1":
            return skm.f1_score(yt, yp, average="macro", zero_division=0)
        if metric == "precision":
            return skm.precision_score(yt, yp, average="macro", zero_division=0)
        if metric == "roc_auc":
            return skm.roc_auc_score(yt == p.classes[1], p.proba[idx, 1])
        if metric == "pr_auc":
            return skm.average_precision_score(yt == p.classes[1], p.proba[idx, 1])
        if metric == "log_loss":
            return skm.log_loss(yt, p.proba[idx], labels=p.classes)
        if metric == "brier":
            return skm.brier_score_loss(yt == p.classes[1], p.proba[idx, 1])
        if metric == "rmse":
            return skm.mean_squared_error(yt, yp) ** 0.5
        if metric == "r2":
            return skm.r2_score(yt, yp)
        return skm.mean_absolute_error(yt, yp)

    lower = metric in ("log_loss", "brier", "rmse", "mae")
    gains = []
    for idx in rows:
        a, b = value(champ, idx), value(chall, idx)
        gains.append(a - b if lower else b - a)
    return np.array(gains)


@pytest.mark.parametrize(
    "metric",
    ["accuracy", "f1", "precision", "roc_auc", "pr_auc", "log_loss", "brier", "rmse", "r2", "mae"],
)
def test_the_bootstrap_interval_equals_a_per_resample_loop_of_sklearn(metric):
    if metric in ("rmse", "r2", "mae"):
        champ, chall = regression_pair(60, 1.0, 0.9, seed=7)
    else:
        champ, chall = correlated_pair(60, 0.7, 0.75, seed=7)
        # rounded probabilities: ties, which the AUCs must count as scikit-learn does
        champ = Predictions.of(
            "classification",
            champ.y_true,
            champ.y_pred,
            classes=champ.classes,
            proba=np.round(champ.proba, 1),
        )
    r = paired_bootstrap(metric, champ, chall, resamples=50, seed=11)
    ref = _reference_gains(metric, champ, chall, np.concatenate(list(_index_blocks(60, 50, 11))))
    assert r["resamples_used"] == 50 and len(ref) == 50
    np.testing.assert_allclose(r["interval"], np.percentile(ref, [2.5, 97.5]), rtol=0, atol=1e-12)
    whole = _reference_gains(metric, champ, chall, [np.arange(60)])[0]
    assert r["difference"] == pytest.approx(whole, abs=1e-12)


def test_the_bootstrap_is_seeded_and_paired():
    champ, chall = correlated_pair(3_000, 0.80, 0.82, seed=4)
    one = paired_bootstrap("f1", champ, chall, seed=3)
    assert one == paired_bootstrap("f1", champ, chall, seed=3)
    assert one["interval"] != paired_bootstrap("f1", champ, chall, seed=4)["interval"]
    many = paired_bootstrap_many(["accuracy", "f1"], champ, chall, seed=3)
    assert many["f1"] == one and many["accuracy"]["n"] == 3_000
    # paired: the same rows for both models give a far narrower interval of the difference than
    # two independent bootstraps (whose spreads add), since the models err on the same rows
    score_a, score_b = _Scorer("f1", champ), _Scorer("f1", chall)
    w_a = _counts(np.concatenate(list(_index_blocks(3_000, 600, 1)))).astype(float)
    w_b = _counts(np.concatenate(list(_index_blocks(3_000, 600, 2)))).astype(float)
    unpaired = np.percentile(score_b(w_b) - score_a(w_a), [2.5, 97.5])
    paired = one["interval"]
    assert paired[1] - paired[0] < 0.8 * (unpaired[1] - unpaired[0])


def test_mcnemar_p_values_are_scipys_exact_binomial_tail():
    from scipy.stats import binomtest

    for seed, (acc_a, acc_b) in enumerate([(0.8, 0.82), (0.8, 0.78), (0.7, 0.9)]):
        champ, chall = correlated_pair(500, acc_a, acc_b, seed=seed)
        r = mcnemar(champ, chall)
        right_a = champ.y_pred == champ.y_true
        right_b = chall.y_pred == chall.y_true
        b, c = int((right_a & ~right_b).sum()), int((right_b & ~right_a).sum())
        assert (r["champion_only"], r["challenger_only"], r["discordant"]) == (b, c, b + c)
        assert r["p_value"] == pytest.approx(binomtest(c, b + c, 0.5, alternative="greater").pvalue)
        assert r["p_value_reverse"] == pytest.approx(
            binomtest(b, b + c, 0.5, alternative="greater").pvalue
        )
        assert r["difference"] == pytest.approx((c - b) / 500)
    same = mcnemar(champ, champ)
    assert same["discordant"] == 0 and same["p_value"] == 1.0
    with pytest.raises(ConfigError, match="paired_bootstrap"):
        mcnemar(*regression_pair(50, 1, 1, seed=0))


def test_the_bootstrap_interval_covers_the_true_gain_at_about_the_nominal_rate():
    """Over repeated synthetic draws the 95% paired interval of the accuracy gain covers the true
    gain (0.04 by construction) in about 95% of them: the count of misses is tested against a
    binomial, not one example."""
    from scipy.stats import binomtest

    draws, covered = 120, 0
    for seed in range(draws):
        champ, chall = correlated_pair(400, 0.76, 0.80, seed=1000 + seed)
        low, high = paired_bootstrap("accuracy", champ, chall, seed=seed)["interval"]
        covered += low <= 0.04 <= high
    # a clearly wrong interval (e.g. an unpaired or a 68% one) would cover far fewer
    assert binomtest(covered, draws, 0.95).pvalue > 0.001, covered


# ---------------------------------------------------------------- refusals and storage
def test_a_test_or_a_fairness_bound_needs_predictions_and_bad_gates_are_refused():
    champ = {"accuracy": 0.8, "f1": 0.8}
    with pytest.raises(ConfigError, match="Predictions"):
        Gate("accuracy", test="paired_bootstrap").judge(champ, champ)
    with pytest.raises(ConfigError, match="Predictions"):
        Gate("f1", fairness={"demographic_parity_difference": 0.1}).judge(champ, champ)
    with pytest.raises(ConfigError, match="metric='accuracy'"):
        Gate("f1", test="mcnemar")
    with pytest.raises(ConfigError, match="1000"):
        Gate("f1", test="paired_bootstrap", resamples=200)
    with pytest.raises(ConfigError):
        Gate("f1", test="t-test")
    with pytest.raises(ConfigError, match="sensitive"):
        Gate("accuracy", fairness={"equalized_odds_difference": 0.1}).judge(
            *correlated_pair(200, 0.8, 0.8, seed=0)
        )
    a, _ = correlated_pair(200, 0.8, 0.8, seed=0)
    b, _ = correlated_pair(200, 0.8, 0.8, seed=9)
    with pytest.raises(ConfigError, match="same holdout"):
        Gate("accuracy", test="paired_bootstrap").judge(a, b)
    # dicts keep the point gate: same verdict, no test fields
    v = Gate("f1", margin=0.01).judge({"f1": 0.8}, {"f1": 0.82})
    assert v.passed and v.test is None and v.interval is None and v.evidence is None


def test_policy_with_a_statistical_gate_round_trips_and_old_policies_load():
    gate = Gate(
        "accuracy",
        margin=0.01,
        guarded=("log_loss",),
        test="mcnemar",
        alpha=0.01,
        resamples=2000,
        seed=7,
        min_samples=500,
        fairness={"equalized_odds_difference": 0.1},
    )
    p = LoopPolicy(
        "p",
        model="m",
        deployment="d",
        train="t",
        holdout="h",
        gate=gate,
        sensitive_features=("sex",),
    )
    back = LoopPolicy.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p and back.gate.test == "mcnemar" and back.sensitive_features == ("sex",)
    old = json.loads(
        json.dumps(LoopPolicy("p", model="m", deployment="d", train="t", holdout="h").to_dict())
    )
    for key in ("test", "alpha", "resamples", "seed", "min_samples", "fairness"):
        del old["gate"][key]
    del old["sensitive_features"]
    loaded = LoopPolicy.from_dict(old)
    assert loaded.gate == Gate() and loaded.sensitive_features == ()


# ---------------------------------------------------------------- the retraining loop
@pytest.mark.ray
def test_the_retraining_gate_judges_paired_predictions_and_its_verdict_is_registered(
    loop_bench,  # noqa: F811
    ray_cluster,
):
    """One warm-started retraining with a bootstrap gate of non-inferiority (margin -0.5): the
    gate step records the test, the interval and the holdout's rows, and the verdict is stored
    with the registered version's evaluation."""
    bench = loop_bench
    bench.automation.add_policy(
        policy(gate=Gate("accuracy", margin=-0.5, test="paired_bootstrap", guarded=("f1",)))
    )
    _drift(bench.store, "bc-drift", [True, True])
    bench.automation.tick()
    (job,) = bench.automation.jobs("bc")
    assert job["status"] == "PROMOTED", job
    steps = {s["step"]: s["detail"] for s in bench.automation.steps(job["id"])}
    holdout = bench.datasets.get("bc-holdout")
    gate = steps["gate"]
    assert gate["test"] == "paired_bootstrap" and gate["n"] == holdout.n_rows
    low, high = gate["interval"]
    assert -0.5 < low <= high and gate["evidence"] == "sufficient"
    assert steps["evaluation"]["n"] == holdout.n_rows
    stored = bench.registry.evaluation("bc", 2)["gate"]
    assert stored["test"] == "paired_bootstrap" and stored["interval"] == [low, high]
    assert stored["guarded"]["f1"]["passed"] and stored["n"] == holdout.n_rows


def test_bench_compare_with_a_test_gives_the_statistical_verdict(loop_bench):  # noqa: F811
    bench = loop_bench
    holdout = bench.datasets.get("bc-holdout")
    weak = bench.experiments.fit_bundle(
        bench.datasets.get("bc-train"), {"family": "logistic_regression", "C": 1e-4}
    )
    bench.registry.register("bc", weak, metrics={})
    point = bench.compare("bc", 2, holdout=holdout, metric="accuracy", tolerance=0.01)
    tested = bench.compare(
        "bc", 2, holdout=holdout, metric="accuracy", tolerance=0.01, test="paired_bootstrap"
    )
    same = [k for k in point if k != "challenger_wins"]
    assert {k: tested[k] for k in same} == pytest.approx(
        {k: point[k] for k in same}
    )  # same figures ...
    assert tested["test"] == "paired_bootstrap" and tested["n"] == holdout.n_rows
    low, high = tested["interval"]
    assert low <= tested["delta"] <= high
    assert tested["challenger_wins"] == (low > -0.01)  # ... judged on the interval
    mc = bench.compare("bc", 2, holdout=holdout, metric="accuracy", test="mcnemar")
    assert mc["p_value"] is not None and mc["interval"] is None
