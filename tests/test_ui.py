"""Progress displays: line formatting, terminal/CI output, the anywidget, the factory, the ES module."""

from __future__ import annotations

import fnmatch
import io
import json
import shutil
import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench.exceptions import ConfigError
from workbench.ui import (
    NullProgress,
    ProgressDisplay,
    TerminalProgress,
    format_progress_line,
    make_progress,
)
from workbench.ui._format import format_elapsed, format_value

ROOT = Path(__file__).resolve().parents[1]


def summary(
    done=0,
    *,
    total=8,
    running=0,
    errored=0,
    pending=0,
    best=None,
    elapsed=0.0,
    status="RUNNING",
    name="demo",
):
    return {
        "experiment": name,
        "total": total,
        "done": done,
        "running": running,
        "errored": errored,
        "pending": pending,
        "best": best,
        "elapsed_s": elapsed,
        "status": status,
    }


BEST = {"trial_id": "abc", "metric": "f1", "value": 0.97123, "config": {"C": 1.0}}


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TTYStringIO(io.StringIO):
    def isatty(self) -> bool:
        return True


# --- format_progress_line -------------------------------------------------------------------


def test_line_with_best_matches_the_documented_shape():
    line = format_progress_line(summary(5, running=2, best=BEST, elapsed=12.34))
    assert (
        line
        == "experiment demo  [######----] 5/8 trials  running 2  errors 0  best f1=0.9712 (trial abc)  12.3s"
    )


def test_line_without_best_says_so():
    line = format_progress_line(summary(0, running=2))
    assert "best -" in line
    assert "(trial" not in line
    assert "[----------] 0/8 trials" in line


def test_line_with_unknown_total_has_no_bar_and_no_denominator():
    line = format_progress_line(summary(5, total=None, best=BEST))
    assert "[" not in line
    assert "5 trials" in line
    assert "/" not in line.split("trials")[0]


def test_line_shows_errors_and_a_final_status():
    line = format_progress_line(summary(6, errored=2, status="ERROR", elapsed=125))
    assert "errors 2" in line
    assert line.endswith("2m05s  ERROR")
    running = format_progress_line(summary(6, errored=2))
    assert "RUNNING" not in running


def test_bar_is_full_when_done_and_clamped_when_over_total():
    assert "[##########] 8/8" in format_progress_line(summary(8, status="TERMINATED"))
    assert "[##########] 9/8" in format_progress_line(summary(9))
    assert "[----------] 0/8" in format_progress_line(summary(0))


def test_long_lines_drop_the_bar_then_get_cut():
    full = format_progress_line(summary(5, best=BEST), width=200)
    assert "[" in full
    no_bar = format_progress_line(summary(5, best=BEST), width=len(full) - 1)
    assert "[" not in no_bar and "5/8 trials" in no_bar
    cut = format_progress_line(summary(5, best=BEST), width=30)
    assert len(cut) == 30 and cut.endswith("...")


def test_names_with_newlines_stay_on_one_line():
    line = format_progress_line(
        summary(1, name="a\nb\rc", best={"metric": "m\n", "value": 1, "trial_id": "t\r1"})
    )
    assert "\n" not in line and "\r" not in line


def test_value_and_elapsed_formatting():
    assert format_value(0.97123) == "0.9712"
    assert format_value(1.5e-6) == "1.5e-06"
    assert format_value(123456.0) == "1.235e+05"
    assert format_value(None) == "-"
    assert format_value(float("nan")) == "nan"
    assert format_elapsed(12.34) == "12.3s"
    assert format_elapsed(3725) == "1h02m"
    assert format_elapsed(None) == "0.0s"


_text = st.text(max_size=40)
_summaries = st.fixed_dictionaries(
    {},
    optional={
        "experiment": st.one_of(st.none(), _text),
        "total": st.one_of(st.none(), st.integers(-5, 10**6)),
        "done": st.one_of(st.none(), st.integers(-5, 10**6)),
        "running": st.integers(0, 1000),
        "errored": st.integers(0, 1000),
        "best": st.one_of(
            st.none(),
            st.fixed_dictionaries(
                {"trial_id": _text, "metric": _text, "value": st.one_of(st.none(), st.floats())}
            ),
        ),
        "elapsed_s": st.one_of(st.none(), st.floats()),
        "status": st.sampled_from(["RUNNING", "TERMINATED", "ERROR"]),
    },
)


@given(_summaries, st.integers(0, 300))
def test_any_summary_gives_one_line_within_width(s, width):
    line = format_progress_line(s, width=width)
    assert "\n" not in line and "\r" not in line
    assert len(line) <= max(width, 4)


# --- TerminalProgress -----------------------------------------------------------------------


def test_non_tty_prints_one_line_per_change_of_done_and_a_final_line():
    out = io.StringIO()
    p = TerminalProgress(out)
    assert p.isatty is False
    for done in [0, 0, 0, 1, 1, 2, 2, 2]:
        p.update(summary(done, running=2))
    p.update(summary(3, status="TERMINATED", best=BEST))
    p.close()
    p.update(summary(4))  # after the end: ignored
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert [" 0/8 " in lines[0], " 1/8 " in lines[1], " 2/8 " in lines[2]] == [True, True, True]
    assert "3/8" in lines[3] and lines[3].endswith("TERMINATED")
    assert "\r" not in out.getvalue()


def test_non_tty_close_writes_the_last_summary_as_final_line():
    out = io.StringIO()
    p = TerminalProgress(out)
    p.update(summary(0))
    p.update(summary(0, elapsed=5.0))
    p.close()
    p.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].endswith("5.0s")


def test_close_without_any_update_writes_nothing():
    out = TTYStringIO()
    p = TerminalProgress(out)
    p.close()
    assert out.getvalue() == ""


def test_tty_rewrites_in_place_and_throttles_but_always_writes_the_final_line():
    out, clock = TTYStringIO(), FakeClock()
    p = TerminalProgress(out, min_interval=0.25, clock=clock, width=200)
    assert p.isatty is True
    p.update(summary(0, name="a-much-longer-experiment-name"))  # written: first
    for i in range(1, 10):  # 10 more updates within 0.09 s: held back
        clock.now += 0.01
        p.update(summary(i % 8))
    assert out.getvalue().count("\r") == 1
    clock.now += 0.3
    p.update(summary(5))  # interval passed: written
    assert out.getvalue().count("\r") == 2
    p.update(summary(8, status="TERMINATED"))  # final: written despite the interval
    text = out.getvalue()
    assert text.count("\r") == 3
    assert text.endswith("TERMINATED\n")
    # The shorter line is padded so no characters of the longer one remain visible.
    second = text.split("\r")[2]
    first = text.split("\r")[1]
    assert len(second) >= len(first)
    p.close()
    assert out.getvalue() == text


def test_tty_writes_a_held_back_update_once_the_interval_passes():
    out = TTYStringIO()
    p = TerminalProgress(out, min_interval=0.05, width=200)
    p.update(summary(1))
    p.update(summary(2))  # held back; the timer writes it
    deadline = time.monotonic() + 5
    while "2/8" not in out.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "2/8" in out.getvalue()
    p.close()
    assert out.getvalue().endswith("\n")


def test_tty_close_flushes_a_held_back_update():
    out, clock = TTYStringIO(), FakeClock()
    p = TerminalProgress(out, min_interval=60, clock=clock, width=200)
    p.update(summary(1))
    p.update(summary(7))
    assert "7/8" not in out.getvalue()
    p.close()
    assert (
        out.getvalue().rstrip("\n").split("\r")[-1].startswith("experiment demo  [########--] 7/8")
    )


def test_displays_satisfy_the_protocol():
    assert isinstance(TerminalProgress(io.StringIO()), ProgressDisplay)
    assert isinstance(NullProgress(), ProgressDisplay)


# --- ProgressWidget -------------------------------------------------------------------------


@pytest.fixture
def widget_cls():
    from workbench.ui import ProgressWidget

    return ProgressWidget


def test_widget_traits_follow_a_summary(widget_cls):
    w = widget_cls(min_interval=0)
    w.update(summary(5, running=2, errored=1, pending=1, best=BEST, elapsed=3.5))
    assert (w.experiment, w.total, w.done, w.running, w.errored, w.pending) == (
        "demo",
        8,
        5,
        2,
        1,
        1,
    )
    assert (w.best_metric, w.best_value, w.best_trial) == ("f1", pytest.approx(0.97123), "abc")
    assert (w.elapsed_s, w.status) == (3.5, "RUNNING")
    state = w.get_state()
    for name in [
        "experiment",
        "total",
        "done",
        "running",
        "errored",
        "best_metric",
        "best_value",
        "best_trial",
        "elapsed_s",
        "status",
    ]:
        assert name in state, f"{name} is not a synced trait"
    w.update(
        summary(6, total=None, best={"metric": "loss", "value": float("nan"), "trial_id": "x"})
    )
    assert w.total is None and w.best_value is None  # NaN cannot cross the JSON comm
    w.update(summary(6, total=None, best=None))
    assert (w.best_metric, w.best_value, w.best_trial) == ("", None, "")


def test_widget_throttles_and_lets_the_final_update_through(widget_cls):
    clock = FakeClock()
    w = widget_cls(min_interval=0.2, clock=clock)
    seen = []
    w.observe(lambda change: seen.append(change["new"]), names=["done"])
    for i in range(50):  # a burst within 0.05 s: only the first reaches the traits
        clock.now += 0.001
        w.update(summary(i % 8, total=100))
    assert seen == [] and w.done == 0
    clock.now += 0.25
    w.update(summary(42, total=100))
    assert seen == [42]
    w.update(summary(43, total=100))  # held back
    w.update(summary(100, total=100, status="TERMINATED", best=BEST))  # final: not held back
    assert seen == [42, 100]
    assert (w.status, w.best_trial) == ("TERMINATED", "abc")
    w.update(summary(1, total=100))  # after the end: ignored
    w.close()
    assert w.done == 100 and seen == [42, 100]


def test_widget_close_flushes_the_held_back_summary_and_keeps_the_comm(widget_cls):
    clock = FakeClock()
    w = widget_cls(min_interval=60, clock=clock)
    w.update(summary(1))
    w.update(summary(3, elapsed=9.0))
    assert w.done == 1
    w.close()
    assert (w.done, w.elapsed_s) == (3, 9.0)
    assert w.comm is not None  # still displayed; dispose() tears it down
    w.dispose()
    assert w.comm is None


def test_widget_updates_from_a_background_thread_arrive(widget_cls):
    import threading

    w = widget_cls(min_interval=0.05)

    def feed():
        for i in range(20):
            w.update(summary(i, total=20))
            time.sleep(0.005)

    t = threading.Thread(target=feed)
    t.start()
    t.join()
    deadline = time.monotonic() + 5
    while w.done != 19 and time.monotonic() < deadline:  # trailing edge from the timer
        time.sleep(0.01)
    assert w.done == 19
    w.close()


def test_widget_esm_and_css_are_package_data(widget_cls):
    from workbench.ui._progress_widget import CSS_PATH as css
    from workbench.ui._progress_widget import ESM_PATH as esm

    assert esm.is_file() and css.is_file()
    state = widget_cls().get_state()
    assert state["_esm"] == esm.read_text() and state["_css"] == css.read_text()
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["workbench"]
    for f in (esm, css):
        rel = f.relative_to(ROOT / "workbench").as_posix()
        assert any(fnmatch.fnmatch(rel, g) for g in globs), f"{rel} would be missing from the wheel"
    assert "export default" in esm.read_text()


# --- make_progress --------------------------------------------------------------------------


def test_make_progress_outside_a_kernel_is_the_terminal_display():
    p = make_progress()
    assert type(p) is TerminalProgress
    assert p.stream is sys.stderr
    assert type(make_progress("terminal", stream=io.StringIO())) is TerminalProgress


def test_make_progress_off():
    assert type(make_progress(None)) is NullProgress
    assert type(make_progress("off")) is NullProgress
    with pytest.raises(ConfigError, match="unknown progress mode"):
        make_progress("fancy")


def test_make_progress_in_a_kernel_displays_the_widget(monkeypatch, widget_cls):
    import IPython
    import IPython.display

    class ZMQInteractiveShell:  # stands in for ipykernel's shell class
        pass

    class ColabLikeShell(ZMQInteractiveShell):
        pass

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    for shell in (ZMQInteractiveShell, ColabLikeShell):
        monkeypatch.setattr(IPython, "get_ipython", lambda shell=shell: shell())
        p = make_progress(min_interval=0)
        assert isinstance(p, widget_cls)
        assert shown[-1] is p
    # A terminal IPython is not a kernel.
    monkeypatch.setattr(IPython, "get_ipython", lambda: type("TerminalInteractiveShell", (), {})())
    assert type(make_progress()) is TerminalProgress


def test_import_loads_no_widget_or_ray_library():
    code = (
        "import sys, workbench.ui\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'anywidget', 'ipywidgets', 'ray', 'IPython', 'traitlets'})\n"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


# --- the ES module, run in node with a fake DOM and model ----------------------------------------

_NODE_HARNESS = textwrap.dedent(
    """
    class Node {
      constructor(tag) { this.tag = tag; this.children = []; this.textContent = ""; this.className = "";
        this.style = {}; this.dataset = {}; this.attrs = {}; this.parent = null;
        this.classList = { set: new Set(), toggle: (c, on) => on ? this.classList.set.add(c) : this.classList.set.delete(c),
                           remove: (c) => this.classList.set.delete(c) }; }
      appendChild(c) { c.parent = this; this.children.push(c); return c; }
      remove() { if (this.parent) this.parent.children = this.parent.children.filter((c) => c !== this); }
      setAttribute(k, v) { this.attrs[k] = v; }
      removeAttribute(k) { delete this.attrs[k]; }
    }
    globalThis.document = { createElement: (tag) => new Node(tag) };
    const state = STATE;
    const handlers = new Map();
    const model = {
      get: (k) => state[k],
      on: (ev, cb) => handlers.set(ev, [...(handlers.get(ev) || []), cb]),
      off: (ev, cb) => handlers.set(ev, (handlers.get(ev) || []).filter((f) => f !== cb)),
    };
    const mod = await import(process.argv[2]);
    const root = new Node("div");
    const cleanup = mod.default.render({ model, el: root });
    const texts = (n) => [n.textContent, ...n.children.flatMap(texts)].filter(Boolean);
    const fill = (n) => n.className === "wb-progress-fill" ? n : n.children.map(fill).find(Boolean);
    const before = { texts: texts(root), width: fill(root).style.width };
    state.done = 8; state.status = "TERMINATED";
    for (const cb of handlers.get("change:done")) cb();
    const after = { texts: texts(root), width: fill(root).style.width };
    cleanup();
    const left = [...handlers.values()].reduce((n, l) => n + l.length, 0);
    console.log(JSON.stringify({ before, after, left, children: root.children.length }));
    """
)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_es_module_renders_counts_and_cleans_up(tmp_path, widget_cls):
    state = {
        "experiment": "demo",
        "total": 8,
        "done": 2,
        "running": 1,
        "errored": 0,
        "pending": 5,
        "best_metric": "f1",
        "best_value": 0.97123,
        "best_trial": "abc",
        "elapsed_s": 3.0,
        "status": "RUNNING",
    }
    harness = tmp_path / "harness.mjs"
    harness.write_text(_NODE_HARNESS.replace("STATE", json.dumps(state)))
    from workbench.ui._progress_widget import ESM_PATH

    esm = ESM_PATH.resolve().as_uri()
    out = subprocess.run(["node", str(harness), esm], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["before"]["width"] == "25%"
    assert any("2/8 trials" in t for t in res["before"]["texts"])
    assert any("best f1 = 0.9712 (trial abc)" in t for t in res["before"]["texts"])
    assert res["after"]["width"] == "100%" and "TERMINATED" in res["after"]["texts"]
    assert res["left"] == 0, "cleanup must remove every model listener"
    assert res["children"] == 0, "cleanup must remove the rendered DOM"
