"""The HTML evaluation report: it parses, holds each chart, every number shown equals the stored
evaluation's, text is escaped, the page is stored once as an artifact and reused. No Ray: a real
SQLite store, a real artifact store, a real model's predictions on breast-cancer data."""

from __future__ import annotations

import math
from html.parser import HTMLParser

import numpy as np
import pytest

from workbench.evaluation import Predictions, cv_summary, evaluate, render_report
from workbench.exceptions import NotFoundError
from workbench.lineage import ArtifactStore
from workbench.registry import ModelRegistry

VOID = {"meta", "br", "img", "input", "link", "hr", "col", "area", "base", "source", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent = tag, dict(attrs), parent
        self.children, self.text = [], ""

    def all_text(self):
        return self.text + "".join(c.all_text() for c in self.children)

    def iter(self):
        yield self
        for c in self.children:
            yield from c.iter()


class Tree(HTMLParser):
    """A strict tree builder: a close tag that does not match the open one fails the test."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.feed(html)
        self.close()
        assert self.cur is self.root, f"unclosed <{self.cur.tag}>"

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_startendtag(self, tag, attrs):
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        assert self.cur.tag == tag, f"</{tag}> closes <{self.cur.tag}>"
        self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.text += data

    def find(self, **attrs):
        return [n for n in self.root.iter() if all(n.attrs.get(k) == v for k, v in attrs.items())]

    def by_id(self, ident):
        (node,) = self.find(id=ident)
        return node


def _f(x):
    return f"{x:.4f}"


@pytest.fixture(scope="module")
def cancer_eval():
    return cancer_evaluation()


def cancer_evaluation():
    """A real classifier's holdout evaluation (breast cancer), a challenger's gate verdict, the
    trial's CV summary over 5 real folds and per-group figures on a synthetic sensitive column
    (the keyword arguments of ``store.evaluations.add``; also used by the browser test)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold, train_test_split

    from workbench.automation import Gate

    X, y = load_breast_cancer(return_X_y=True)
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # scaled: lbfgs converges in a few iterations
    labels = np.where(y == 1, "benign", "malignant")
    Xtr, Xte, ytr, yte = train_test_split(X, labels, test_size=0.3, random_state=0, stratify=labels)
    group = np.where(np.arange(len(yte)) % 3 == 0, "a<b>", "c")
    folds = []
    for tr, te in StratifiedKFold(5, shuffle=True, random_state=0).split(Xtr, ytr):
        m = LogisticRegression(max_iter=5000).fit(Xtr[tr], ytr[tr])
        folds.append({"f1": f1_score(ytr[te], m.predict(Xtr[te]), average="macro")})
    model = LogisticRegression(max_iter=5000).fit(Xtr, ytr)
    weak = LogisticRegression(max_iter=5000).fit(Xtr[:, :2], ytr)

    def preds(m, cols):
        return Predictions.of(
            "classification",
            yte,
            m.predict(Xte[:, cols]),
            classes=list(m.classes_),
            proba=m.predict_proba(Xte[:, cols]),
            sensitive={"grp": group},
        )

    mine = preds(model, slice(None))
    ev = evaluate(mine)
    by_group = {
        g: {
            "f1": f1_score(yte[group == g], mine.y_pred[group == g], average="macro"),
            "count": int((group == g).sum()),
        }
        for g in ("a<b>", "c")
    }
    fairness = {
        "sensitive_features": ["grp"],
        "overall": {"f1": ev.metrics["f1"]},
        "by_group": {"grp": by_group},
        "gaps": {"grp": {"f1_difference": abs(by_group["a<b>"]["f1"] - by_group["c"]["f1"])}},
        "notes": ["grp=c has 12 rows (< 30): its figures are noisy"],
    }
    gate = Gate(
        metric="roc_auc", test="paired_bootstrap", min_samples=30, guarded=("log_loss",)
    ).judge(preds(weak, slice(0, 2)), mine)
    return {
        "metrics": ev.metrics,
        "details": ev.details,
        "fairness": fairness,
        "cv": cv_summary(folds),
        "gate": gate.as_dict(),
    }


@pytest.fixture
def registry(store, tmp_path, cancer_eval):
    seed_versions(store, cancer_eval)
    return ModelRegistry(store, ArtifactStore(tmp_path / "artifacts"))


def seed_versions(store, evaluation, model="cancer<x>"):
    """Versions 1 and 2 of ``model`` trained on ``cancer@1``, v2 the champion with ``evaluation``."""
    dv, _ = store.datasets.add_version(
        "cancer",
        content_hash="h",
        artifact_hash="a" * 64,
        source="x",
        n_rows=569,
        n_cols=31,
        schema={},
        target="y",
        validation=[],
    )
    for v in (1, 2):
        store.models.add_version(
            model,
            task="classification",
            artifact_hash=str(v) * 64,
            params={},
            metrics={},
            signature={},
            experiment_id=None,
            trial_id=None,
            dataset_version_id=dv["id"],
        )
    store.models.set_alias(model, "champion", 2, reason="test")
    mv = store.models.get_version(model, 2)
    return store.evaluations.add(mv["id"], holdout_version_id=dv["id"], **evaluation)


def test_report_parses_holds_every_chart_and_the_stored_numbers(registry, store):
    html = registry.report("cancer<x>")
    ev = registry.evaluation("cancer<x>")
    tree = Tree(html)
    assert "http" not in html and "<script" not in html and "src=" not in html  # self-contained
    for ident in (
        "metrics",
        "roc-curve",
        "pr-curve",
        "confusion-matrix",
        "calibration-curve",
        "per-class-bars",
        "cv-intervals",
        "gate-verdict",
        "fairness-gaps",
        "group-bars-grp",
    ):
        tree.by_id(ident)
    assert not tree.find(id="residual-quantiles")  # a classifier has none
    header = tree.by_id("report-header").all_text()
    assert "cancer<x>" in header and "champion" in header and "cancer@1" in header

    for name, value in ev["metrics"].items():
        (row,) = [n for n in tree.by_id("metrics").iter() if n.attrs.get("data-metric") == name]
        (cell,) = [n for n in row.children if "data-value" in n.attrs]
        assert float(cell.attrs["data-value"]) == value and cell.text == _f(value)
    # ROC/PR: one series per stored class, AUC and point count as stored, the legend's AUC text
    for chart, key in (("roc-curve", "roc"), ("pr-curve", "pr")):
        series = [n for n in tree.by_id(chart).iter() if n.tag == "polyline"]
        assert {s.attrs["data-class"] for s in series} == set(ev["details"][key])
        for s in series:
            stored = ev["details"][key][s.attrs["data-class"]]
            assert float(s.attrs["data-auc"]) == stored["auc"]
            assert len(s.attrs["points"].split()) == len(
                stored["fpr" if key == "roc" else "recall"]
            )
        (positive,) = ev["details"][key]  # binary: the positive class, classes[1]
        assert positive == "malignant"
        assert f"AUC {_f(ev['details'][key][positive]['auc'])}" in html
    # the ROC diagonal and the calibration points, with the curve's own diagonal
    assert tree.find(**{"class": "diagonal"})
    cal = tree.by_id("calibration-curve")
    assert sum(n.tag == "circle" for n in cal.iter()) == len(
        ev["details"]["calibration"]["prob_pred"]
    )
    # confusion matrix: every stored count in its cell; it sums to the holdout
    conf = ev["details"]["confusion"]
    cells = [n for n in tree.by_id("confusion-matrix").iter() if "data-count" in n.attrs]
    assert len(cells) == len(conf["labels"]) ** 2
    for c in cells:
        i, j = (
            conf["labels"].index(c.attrs["data-true"]),
            conf["labels"].index(c.attrs["data-predicted"]),
        )
        assert int(c.attrs["data-count"]) == conf["matrix"][i][j] == int(c.text)
    assert sum(int(c.text) for c in cells) == ev["details"]["n"]
    # per-class bars: one per class and metric, values as stored
    bars = [n for n in tree.by_id("per-class-bars").iter() if n.tag == "rect"]
    assert len(bars) == 3 * len(ev["details"]["per_class"])
    for b in bars:
        assert (
            float(b.attrs["data-value"])
            == ev["details"]["per_class"][b.attrs["data-class"]][b.attrs["data-metric"]]
        )
    # CV: interval ends and mean as stored
    (ci,) = [n for n in tree.by_id("cv-intervals").iter() if n.attrs.get("class") == "ci"]
    assert float(ci.attrs["data-low"]) == ev["cv"]["f1"]["ci_low"]
    assert float(ci.attrs["data-high"]) == ev["cv"]["f1"]["ci_high"]
    assert (
        f"{_f(ev['cv']['f1']['mean'])} [{_f(ev['cv']['f1']['ci_low'])}, {_f(ev['cv']['f1']['ci_high'])}]"
        in html
    )
    # gate: the verdict, its interval and n
    gate = tree.by_id("gate-verdict")
    assert gate.attrs["data-passed"] == str(ev["gate"]["passed"]).lower()
    (interval,) = [n for n in gate.iter() if n.attrs.get("data-low")]
    assert [float(interval.attrs["data-low"]), float(interval.attrs["data-high"])] == ev["gate"][
        "interval"
    ]
    (n_row,) = [n for n in gate.iter() if n.attrs.get("data-field") == "holdout rows (n)"]
    assert n_row.all_text().endswith(str(ev["gate"]["n"]))
    (guard,) = [n for n in gate.iter() if n.attrs.get("data-name") == "log_loss"]
    g = ev["gate"]["guarded"]["log_loss"]
    assert guard.attrs["data-passed"] == str(g["passed"]).lower()
    assert f"interval [{_f(g['interval'][0])}, {_f(g['interval'][1])}]" in guard.all_text()
    # fairness: per-group bars and the gap, escaped group names intact after parsing
    groups = ev["fairness"]["by_group"]["grp"]
    gbars = [n for n in tree.by_id("group-bars-grp").iter() if n.tag == "rect"]
    assert {b.attrs["data-group"] for b in gbars} == {"a<b>", "c"}
    for b in gbars:
        assert float(b.attrs["data-value"]) == groups[b.attrs["data-group"]]["f1"]
    (gap,) = tree.find(**{"data-gap": "f1_difference"})
    assert float(gap.attrs["data-value"]) == ev["fairness"]["gaps"]["grp"]["f1_difference"]
    notes = [n.all_text() for n in tree.by_id("fairness-notes").iter() if n.tag == "li"]
    assert notes == ev["fairness"]["notes"]  # "(< 30)" escaped, and read back intact


def test_text_is_escaped():
    html = render_report(
        {
            "model": '<img src=x onerror="alert(1)">',
            "version": 1,
            "aliases": ["<i>"],
            "evaluation": {
                "metrics": {"f1": 0.5},
                "details": {
                    "per_class": {
                        "<script>": {"precision": 1.0, "recall": 0.5, "f1": 0.6, "support": 3}
                    }
                },
                "gate": {"passed": False, "reason": "</p><script>x()</script>", "metric": "f1"},
            },
        }
    )
    assert "<script" not in html and "<img" not in html and "<i>" not in html
    tree = Tree(html)
    assert tree.find(**{"data-class": "<script>"})  # the name survives, as text
    assert "</p><script>x()</script>" in tree.by_id("gate-verdict").all_text()


def test_regression_report_has_residual_quantiles_and_no_curves():
    rng = np.random.default_rng(0)
    y = rng.normal(size=300)
    ev = evaluate(Predictions.of("regression", y, y + rng.normal(scale=0.3, size=300)))
    html = render_report({"model": "r", "version": 1, "evaluation": ev.as_dict()})
    tree = Tree(html)
    marks = [
        n
        for n in tree.by_id("residual-quantiles").iter()
        if n.tag == "line" and "data-quantile" in n.attrs
    ]
    assert {m.attrs["data-quantile"]: float(m.attrs["data-value"]) for m in marks} == ev.details[
        "residuals"
    ]["quantiles"]
    assert not tree.find(id="roc-curve") and not tree.find(id="confusion-matrix")
    assert math.isfinite(ev.metrics["rmse"]) and f">{_f(ev.metrics['rmse'])}<" in html


def test_report_is_stored_once_and_reused(registry, store, tmp_path):
    out = tmp_path / "r.html"
    first = registry.report("cancer<x>", 2, path=out)
    ev = registry.evaluation("cancer<x>", 2)
    assert (
        ev["report_artifact"]
        and registry.artifacts.get_bytes(ev["report_artifact"]).decode() == first
    )
    assert out.read_text(encoding="utf-8") == first
    # a later alias move does not re-render: the stored page comes back unchanged
    store.models.set_alias("cancer<x>", "staging", 2, reason="test")
    assert registry.report("cancer<x>", "champion") == first
    assert registry.evaluation("cancer<x>", 2)["report_artifact"] == ev["report_artifact"]
    n_files = sum(1 for p in (tmp_path / "artifacts").rglob("*") if p.is_file())
    registry.report("cancer<x>", 2)
    assert sum(1 for p in (tmp_path / "artifacts").rglob("*") if p.is_file()) == n_files


def test_a_version_without_evaluation_says_how_to_get_one(registry):
    with pytest.raises(NotFoundError, match="holdout"):
        registry.report("cancer<x>", 1)


def test_multiclass_report_draws_one_vs_rest_curves_per_class():
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    idx = np.random.default_rng(0).permutation(len(y))
    tr, te = idx[:100], idx[100:]
    m = LogisticRegression(max_iter=1000).fit(X[tr], names[tr])
    ev = evaluate(
        Predictions.of(
            "classification",
            names[te],
            m.predict(X[te]),
            classes=list(m.classes_),
            proba=m.predict_proba(X[te]),
        )
    )
    tree = Tree(render_report({"model": "iris", "version": 3, "evaluation": ev.as_dict()}))
    for chart, key in (("roc-curve", "roc"), ("pr-curve", "pr")):
        series = [n for n in tree.by_id(chart).iter() if n.tag == "polyline"]
        assert sorted(s.attrs["data-class"] for s in series) == sorted(ev.details[key])
        assert len(series) == 3
    cells = [n for n in tree.by_id("confusion-matrix").iter() if "data-count" in n.attrs]
    assert len(cells) == 9 and sum(int(c.text) for c in cells) == 50
    assert not tree.find(id="cv-intervals") and not tree.find(id="gate-verdict")  # absent parts
