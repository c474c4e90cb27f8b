"""Text that should be a number, or a filter, and is an attack: every spot in the library that
reads numbers or ``where`` conditions from text gives a clear error (or a literal), never a
ValueError from ``int()``, a hang or a query. A real SQLite store; no Ray, no mocks."""

from __future__ import annotations

import time

import pytest

from tests._factories import make_experiment
from workbench.datasets._diff import resolve_ref
from workbench.datasets._http import _retry_after
from workbench.exceptions import ConfigError, NotFoundError
from workbench.experiments import compare_trials
from workbench.experiments._compare import MAX_WHERE_CHARS, _split_where
from workbench.lineage import Store
from workbench.monitoring import parse_window
from workbench.ui._format import format_progress_line, format_value
from workbench.ui._progress_widget import _int

#: Numbers an attacker or a typo sends: superscript and Arabic-Indic digits (``isdigit`` says
#: yes, ``int`` says no), 10**30, 5,000 digits (``int`` refuses past 4,300), a float, a bool...
BAD_NUMBERS = ["²", "٣", str(10**30), "9" * 5000, "2.9", "true", "1e3", "-1", "+3", " ", "1_000"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("strict") / "l.db")
    exp = make_experiment(s, name="cancer")
    s.experiments.record_trial_events(
        exp,
        [
            {"trial_id": "a", "config": {"family": "rf"}, "status": "TERMINATED",
             "metrics": {"f1": 0.91}, "duration_s": 1.0},
            {"trial_id": "b", "config": {"family": "lr"}, "status": "TERMINATED",
             "metrics": {"f1": 0.95}, "duration_s": 1.0},
        ],
        [],
    )  # fmt: skip
    s.models.ensure("m", task="classification")
    yield s
    s.close()


def test_where_is_linear_and_capped(store):
    t0 = time.perf_counter()
    assert _split_where(" " * 8000 + "metrics.f1" + " " * 8000 + ">= 0.9") == (
        "metrics.f1",
        ">=",
        "0.9",
    )
    assert _split_where("a" * 100_000) is None  # no operator: one pass, no backtracking
    took = time.perf_counter() - t0
    assert took < 0.1, took
    for huge in ("metrics.f1>=" + "9" * 100_000, " " * 100_000, "x" * (MAX_WHERE_CHARS + 1)):
        t0 = time.perf_counter()
        with pytest.raises(ConfigError, match=f"{MAX_WHERE_CHARS} at most"):
            compare_trials(store, ["cancer"], where=huge)
        assert time.perf_counter() - t0 < 0.1


@pytest.mark.parametrize(
    "where, trials",
    [
        ("metrics.f1>=0.9; DROP TABLE trials", []),  # a literal: the text after >= is the value
        ("config.family=='rf' OR 1=1", []),
        ("config.family==__import__('os').system('touch /tmp/pwned')", []),
        ('config.family=="rf"', ["a"]),
        ("config.family=='lr'", ["b"]),
        ("metrics.f1 >= 0.93", ["b"]),
        ("config.family!=rf", ["b"]),
    ],
)
def test_where_values_are_literals(store, where, trials):
    try:
        rows = compare_trials(store, ["cancer"], where=where)
    except ConfigError as exc:  # refused (a number compared with text) is fine too
        assert "compare it with a number" in str(exc)
        rows = []
    assert [r["trial_id"] for r in rows] == trials
    # nothing was executed or dropped: both trials are still there
    assert len(compare_trials(store, ["cancer"])) == 2


@pytest.mark.parametrize("where", ["metrics.f1", "= 0.9", "metrics.f1 = 0.9", "metrics.f1 >=", 5])
def test_where_that_cannot_be_read_says_how_to_write_it(store, where):
    with pytest.raises(ConfigError, match="COLUMN OP VALUE|strings like"):
        compare_trials(store, ["cancer"], where=where)


@pytest.mark.parametrize("bad", ["metrics.f1>=²", "metrics.f1>=" + "9" * 500, "metrics.f1>=1_0"])
def test_where_numbers_are_strict(store, bad):
    with pytest.raises(ConfigError, match="compare it with a number"):
        compare_trials(store, ["cancer"], where=bad)


@pytest.mark.parametrize("bad", BAD_NUMBERS + ["0", 0, 10**30, True, 2.9, None])
def test_window_sizes(bad):
    with pytest.raises(ConfigError, match="window"):
        parse_window(bad)


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_dataset_refs(bad):
    with pytest.raises(ConfigError, match="NAME@VERSION"):
        resolve_ref(f"cancer@{bad}")
    assert resolve_ref("cancer@3") == ("cancer", 3)


@pytest.mark.parametrize("bad", [*BAD_NUMBERS, True, 10**30, -(10**30)])
def test_model_version_refs(store, bad):
    with pytest.raises(NotFoundError, match="has no version"):
        store.models.get_version("m", bad)


@pytest.mark.parametrize("bad", BAD_NUMBERS)
def test_retry_after(bad):
    assert _retry_after(bad) is None or bad in ("-1", "+3")  # an HTTP date, else ignored
    assert _retry_after("12") == 12.0


@pytest.mark.parametrize(
    "bad", [*BAD_NUMBERS, True, 2.9, float("inf"), float("nan"), 10**30, -4, None, [1]]
)
def test_progress_counts_shown_only_when_meant(bad):
    assert _int(bad) == (3 if bad == "+3" else 0)
    line = format_progress_line({"experiment": "e", "done": bad, "total": bad, "running": bad})
    assert "e" in line and str(10**30) not in line
    assert isinstance(format_value(bad), str)
