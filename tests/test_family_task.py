"""family_task: built-in families answered from TASK_FAMILIES (no scikit-learn import), the same
answer as the estimator's own type; import paths and classes still inspected."""

from __future__ import annotations

import subprocess
import sys

import pytest

from workbench.exceptions import ConfigError
from workbench.experiments._estimators import TASK_FAMILIES, estimator_class, family_task


def _own_type(family: str) -> str:
    cls = estimator_class(family)
    kind = getattr(cls, "_estimator_type", None) or cls().__sklearn_tags__().estimator_type
    return {"classifier": "classification", "regressor": "regression"}[kind]


@pytest.mark.parametrize(
    "family", [f for families in TASK_FAMILIES.values() for f in families]
)  # fmt: skip
def test_table_agrees_with_the_estimators_own_type(family):
    assert family_task(family) == _own_type(family)


def test_a_built_in_family_imports_no_sklearn():
    code = (
        "import sys\n"
        "from workbench.experiments._estimators import family_task\n"
        "assert family_task('logistic_regression') == 'classification'\n"
        "assert family_task('ridge') == 'regression'\n"
        "print(sorted(m for m in sys.modules if m == 'sklearn' or m.startswith('sklearn.')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_import_paths_classes_and_refusals_still_inspect_the_class():
    from sklearn.svm import SVC

    assert family_task("sklearn.svm.SVR") == "regression"
    assert family_task(SVC) == "classification"
    assert family_task("torch_mlp") == "classification"  # in FAMILIES, not in TASK_FAMILIES
    with pytest.raises(ConfigError, match="neither a classifier nor a regressor"):
        family_task("sklearn.preprocessing.StandardScaler")
    with pytest.raises(ConfigError, match="unknown model family"):
        family_task("no_such_family")
