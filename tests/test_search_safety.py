"""Searches run no foreign code: rows are data, Tune state is checked before it is unpickled.

Each attack plants a row (or edits a Tune file) in a real store after one real tiny search, then
checks that the call is refused before anything is imported or unpickled, and that nothing was
recorded (only the guard's own intent/intent.failed audit entries may appear).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

import pytest

from workbench.exceptions import ConfigError, TamperedError
from workbench.experiments._estimators import (
    _allowed,
    allow_import,
    check_config_imports,
    check_import_path,
)

PLANTED = """
from pathlib import Path
Path({marker!r}).write_text("imported")

class Thing:
    def fit(self, X, y):
        return self
    def get_params(self, deep=True):
        return {{}}

def trainable(config, data):
    Path({marker!r}).write_text("ran")
"""

ATTACKS: list[tuple[str, bool]] = []  # (attack, got through)


@pytest.fixture
def planted(tmp_path, monkeypatch):
    """A module ``wb_planted_mod`` on sys.path that leaves a marker file when imported."""
    marker = tmp_path / "marker"
    (tmp_path / "wb_planted_mod.py").write_text(PLANTED.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    sys.modules.pop("wb_planted_mod", None)


def _refused(attack: str, call, exc_type, match: str) -> None:
    try:
        call()
    except exc_type as exc:
        assert match in str(exc), exc
        ATTACKS.append((attack, False))
        return
    ATTACKS.append((attack, True))
    raise AssertionError(f"{attack}: not refused")


# ---- the allow-list itself (no Ray) -------------------------------------------------------------


def test_the_allow_list_refuses_foreign_paths_before_importing_them(planted):
    for path in ("os.system", "subprocess.Popen", "builtins.eval", "wb_planted_mod.Thing"):
        _refused(
            f"import {path}",
            lambda p=path: check_import_path(p, what="model family"),
            ConfigError,
            "not on the import allow-list",
        )
    for bad in ("os", "os.system()", "a..b", "__import__('os').system", 3):
        with pytest.raises(ConfigError, match="not an import path"):
            check_import_path(bad, what="trainable")
    assert not planted.exists() and "wb_planted_mod" not in sys.modules
    # workbench's own families and trainables, and scikit-learn, are allowed
    assert check_import_path("sklearn.svm.SVC", what="model family") == "sklearn.svm.SVC"
    own = "workbench.experiments._torch.torch_mlp_trainable"
    assert check_import_path(own, what="trainable") == own
    # but not any workbench attribute: only its families and trainables
    with pytest.raises(ConfigError, match="allow-list"):
        check_import_path("workbench.experiments._experiments.subprocess", what="trainable")
    # a planted feature step in a config is refused too
    with pytest.raises(ConfigError, match="feature step 'os.system'"):
        check_config_imports({"family": "ridge", "features": {"steps": [{"step": "os.system"}]}})
    with pytest.raises(ConfigError, match="feature step 'posix.system'"):
        check_config_imports({"family": "ridge", "features": {"steps": ["posix.system"]}})


def test_allow_import_lets_an_explicitly_trusted_path_through(planted):
    try:
        assert allow_import("wb_planted_mod.Thing") == "wb_planted_mod.Thing"
        assert check_import_path("wb_planted_mod.Thing", what="model family")
        with pytest.raises(ConfigError, match="cannot be allowed"):
            allow_import(lambda c, d: None)  # a lambda cannot be re-imported
    finally:
        _allowed.discard("wb_planted_mod.Thing")


# ---- planted rows after one real search ---------------------------------------------------------


@pytest.fixture(scope="module")
def searched(cancer_bench):
    bench, dv = cancer_bench
    result = bench.experiments.search(
        dv,
        name="safety",
        space={"family": "logistic_regression", "C": 1.0},
        num_samples=1,
        folds=2,
        progress=None,
    )
    return bench, result


def _db(bench) -> sqlite3.Connection:
    return sqlite3.connect(bench.store.path, isolation_level=None)


def _snapshot(bench, exp_id: int) -> dict:
    """Everything a refused call must leave as it was."""
    store = bench.store
    exp = store.experiments.get(exp_id)
    audit = [
        e for e in store.audit_log(limit=10_000) if e["action"] not in ("intent", "intent.failed")
    ]
    return {
        "experiment": exp,
        "trials": store.experiments.list_trials(exp_id),
        "counts": store.counts(),
        "audit": len(audit),
    }


@pytest.fixture
def plant(searched):
    """Set columns of the search's rows for one test (``plant(table, column, value)``), then undo."""
    bench, result = searched
    exp_id = result.experiment_id
    undo: list[tuple[str, str, object]] = []

    def _plant(table: str, column: str, value) -> None:
        key = "id" if table == "experiments" else "experiment_id"
        with _db(bench) as db:
            old = db.execute(f"SELECT {column} FROM {table} WHERE {key} = ?", (exp_id,)).fetchone()
            undo.append((table, column, old[0]))
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (value, exp_id))

    yield _plant
    with _db(bench) as db:
        for table, column, value in reversed(undo):
            key = "id" if table == "experiments" else "experiment_id"
            db.execute(f"UPDATE {table} SET {column} = ? WHERE {key} = ?", (value, exp_id))


@pytest.mark.ray
def test_a_planted_model_family_or_feature_step_is_refused_before_any_import(
    searched, plant, planted
):
    bench, result = searched
    exp_id, trial_id = result.experiment_id, result.best_trial_id
    config = bench.store.experiments.list_trials(exp_id)[0]["config"]
    for attack, planted_config in (
        ("trial family os.system", {**config, "family": "os.system"}),
        ("trial family planted module", {**config, "family": "wb_planted_mod.Thing"}),
        ("feature step os.system", {**config, "features": {"steps": [{"step": "os.system"}]}}),
        (
            "feature step planted module",
            {**config, "features": {"steps": [{"step": "wb_planted_mod.Thing"}]}},
        ),
    ):
        plant("trials", "config_json", json.dumps(planted_config))
        before = _snapshot(bench, exp_id)
        _refused(
            f"reproduce: {attack}",
            lambda: bench.experiments.reproduce(exp_id, trial_id),
            ConfigError,
            "allow-list",
        )
        assert _snapshot(bench, exp_id) == before
    assert not planted.exists() and "wb_planted_mod" not in sys.modules


@pytest.mark.ray
def test_a_planted_trainable_is_refused_before_resume_imports_it(searched, plant, planted):
    bench, result = searched
    exp_id = result.experiment_id
    space = bench.store.experiments.get(exp_id)["search_space"]
    plant("experiments", "status", "RUNNING")  # as a killed driver leaves it
    for attack, qualname in (
        ("resume: trainable os.system", "os.system"),
        ("resume: trainable planted module", "wb_planted_mod.trainable"),
    ):
        planted_space = {**space, "_options": {**space["_options"], "trainable": qualname}}
        plant("experiments", "search_space_json", json.dumps(planted_space))
        before = _snapshot(bench, exp_id)
        _refused(
            attack, lambda: bench.experiments.resume(exp_id, progress=None), ConfigError, qualname
        )
        assert _snapshot(bench, exp_id) == before
    assert not planted.exists() and "wb_planted_mod" not in sys.modules


@pytest.mark.ray
def test_a_tune_path_outside_the_home_is_refused(searched, plant, tmp_path):
    bench, result = searched
    exp_id = result.experiment_id
    real = bench.store.experiments.get(exp_id)["tune_path"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    plant("experiments", "status", "RUNNING")
    for attack, path in (
        ("tune_path outside the home", str(elsewhere)),
        ("tune_path escaping with ..", str(Path(real) / ".." / ".." / ".." / elsewhere.name)),
        ("tune_path the tune root itself", str(Path(real).parent)),
        ("tune_path a URI", "s3://bucket/tune/exp-1"),
    ):
        plant("experiments", "tune_path", path)
        before = _snapshot(bench, exp_id)
        _refused(
            attack,
            lambda: bench.experiments.resume(exp_id, progress=None),
            ConfigError,
            "outside this workbench's Tune root",
        )
        assert _snapshot(bench, exp_id) == before


@pytest.mark.ray
def test_edited_tune_state_is_refused_and_untouched_state_resumes(searched, plant):
    bench, result = searched
    exp_id = result.experiment_id
    exp = bench.store.experiments.get(exp_id)
    record = json.loads(exp["tune_state_hash"])
    folder = Path(exp["tune_path"])
    # the search ended under our control: every top-level pickle and JSON file is hashed
    assert record["complete"] and "tuner.pkl" in record["files"]
    assert any(n.startswith("experiment_state") for n in record["files"])
    plant("experiments", "status", "RUNNING")  # as a killed driver leaves it

    tuner = folder / "tuner.pkl"
    original = tuner.read_bytes()
    extra = folder / "searcher-state-planted.pkl"
    try:
        tuner.write_bytes(original + b"\x00")
        before = _snapshot(bench, exp_id)
        _refused(
            "edited tuner.pkl",
            lambda: bench.experiments.resume(exp_id, progress=None),
            TamperedError,
            "tuner.pkl",
        )
        assert _snapshot(bench, exp_id) == before
        tuner.write_bytes(original)

        extra.write_bytes(b"cos\nsystem\n(S'true'\ntR.")
        _refused(
            "planted extra pickle",
            lambda: bench.experiments.resume(exp_id, progress=None),
            TamperedError,
            "searcher-state-planted.pkl",
        )
        assert _snapshot(bench, exp_id) == before
        extra.unlink()

        state = next(folder.glob("experiment_state-*.json"))
        text = state.read_bytes()
        state.write_bytes(text.replace(b'"', b'"', 1) + b" ")
        _refused(
            "edited experiment_state json",
            lambda: bench.experiments.resume(exp_id, progress=None),
            TamperedError,
            state.name,
        )
        assert _snapshot(bench, exp_id) == before
        state.write_bytes(text)

        plant("experiments", "tune_state_hash", None)
        before = _snapshot(bench, exp_id)
        _refused(
            "no recorded hash",
            lambda: bench.experiments.resume(exp_id, progress=None),
            ConfigError,
            "no recorded hash",
        )
        assert _snapshot(bench, exp_id) == before
    finally:
        tuner.write_bytes(original)
        extra.unlink(missing_ok=True)

    # put back as the search left it: the genuine state restores (no false alarm)
    with _db(bench) as db:
        db.execute(
            "UPDATE experiments SET tune_state_hash = ? WHERE id = ?",
            (exp["tune_state_hash"], exp_id),
        )
    resumed = bench.experiments.resume(exp_id, progress=None)
    assert resumed.best_trial_id == result.best_trial_id
    after = bench.store.experiments.get(exp_id)
    assert after["resumes"] == exp["resumes"] + 1 and after["status"] == "TERMINATED"
    assert json.loads(after["tune_state_hash"])["complete"]


def test_zz_attack_tally():
    """Every attack above was refused (the tally is printed with -s)."""
    through = [a for a, ok in ATTACKS if ok]
    print(f"\nattacks tried: {len(ATTACKS)}, got through: {len(through)}")
    assert not through
