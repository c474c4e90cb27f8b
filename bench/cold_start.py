"""Cold start: ``import workbench``, a first search result and a new deployment's first answer,
each from a fresh process on a fresh ``WORKBENCH_HOME``.

Each repeat makes a new temporary home and runs, in new subprocesses (nothing warm: no Ray, no
Serve, no imported module; only the OS file cache is shared with earlier repeats):

1. ``python -c "import workbench"``: the wall time of the whole process, the import alone timed
   inside it, and a bare ``python -c pass`` for the interpreter's own start (3 spawns each, median).
   Over the target, ``-X importtime``'s ten largest cumulative entries are printed.
2. the search child: ``Workbench()`` (embedded default: a private local Ray started by the
   library, SQLite and artifacts under the home) → ``datasets.ingest`` of the breast-cancer CSV
   (written once beforehand, outside the timed part) → ``bench.connect()`` (Ray start) →
   ``experiments.start_search`` of a 2-point grid of logistic regression (``C`` in 0.1, 1.0;
   3-fold CV) → the first trial result (``handle.best()`` not None, polled every 5 ms) → the
   search's end (``handle.wait()``). Then, untimed, the best configuration is registered as
   model ``cancer`` (alias ``champion``) for step 3.
3. the deploy child, on the same home: ``Workbench(serve_port=<free port>)`` →
   ``bench.connect()`` (Ray start) → ``serving.start_deploy("cancer")``, which returns once Serve
   is started and the request is checked (Serve start) → ``progress.wait()`` (the router replica
   serves) → the first ``200`` to ``POST <url>/predict`` with one record (retried every 20 ms
   until then).

Each child prints a wall-clock timestamp at every step; the parent notes when it spawned the
child, so "imports" includes the interpreter's start. The totals the targets apply to run from
the spawn of the process. Every child ends with ``bench.close()`` (which stops the Ray it
started) and then waits, up to 30 s, for every process it started (Ray's GCS, raylet, workers,
Serve) to exit; those still alive then are reported and ended by pid.

The machine is shared: the 1-minute load average is printed with each repeat; figures are
medians over repeats.

Targets (issue 17 item 5): ``import workbench`` < 0.1 s; from a fresh process to the first
result of a 2-trial search, and to the first answer of a new deployment, <= 10 s each on 2 cores.

Usage::

    make bench-cold-start                                     # 3 repeats
    .venv/bin/python bench/cold_start.py --quick              # 1 repeat
    .venv/bin/python bench/cold_start.py --repeats 5 --out result.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_IMPORT_S = 0.1
TARGET_FIRST_RESULT_S = 10.0
TARGET_FIRST_ANSWER_S = 10.0
CHILD_TIMEOUT_S = 300
EXIT_WAIT_S = 30.0
MARK = "@@cold "

# (label, from mark, to mark); "spawn" is when the parent started the process
SEARCH_PHASES = (
    ("interpreter start", "spawn", "start"),
    ("from workbench import Workbench", "start", "imported"),
    ("Workbench() (home, store)", "imported", "opened"),
    ("ingest (CSV, validate, store)", "opened", "ingested"),
    ("Ray start (bench.connect)", "ingested", "ray"),
    ("Tune set-up (start_search)", "ray", "tune_started"),
    ("Tune start to first result", "tune_started", "first_result"),
    ("first result to search end", "first_result", "search_end"),
)
DEPLOY_PHASES = (
    ("interpreter start", "spawn", "start"),
    ("from workbench import Workbench", "start", "imported"),
    ("Workbench() (home, store)", "imported", "opened"),
    ("Ray start (bench.connect)", "opened", "ray"),
    ("Serve start (start_deploy)", "ray", "serve_started"),
    ("deploy until the replica serves", "serve_started", "replica_ready"),
    ("first HTTP answer", "replica_ready", "first_answer"),
)


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def fmt(value: float | None, spec: str = "6.2f") -> str:
    return "n/a".rjust(int(spec.split(".")[0])) if value is None else f"{value:{spec}}"


def verdict(value: float | None, target: float, *, below: bool = False) -> str:
    if value is None:
        return "not measured"
    return "met" if (value < target if below else value <= target) else "NOT met"


# ----------------------------------------------------------------------------- children
_seen_cpu: dict[int, float] = {}  # pid → its CPU seconds when last seen, so the sum never drops


def _tree_cpu_s() -> float | None:
    """CPU seconds (user + system) used so far by this process and every process it started.

    A process that has exited counts with what it had used when last seen at a mark (what it used
    after that is missed; Ray's processes live until ``close()``, the trial workers to the end).
    """
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    own = sum(me.cpu_times()[:2])
    for p in me.children(recursive=True):
        try:
            _seen_cpu[p.pid] = sum(p.cpu_times()[:2])
        except psutil.Error:
            pass
    return own + sum(_seen_cpu.values())


def _mark(name: str, **extra: Any) -> None:
    t = time.time()
    cpu, own = _tree_cpu_s(), sum(os.times()[:2])
    print(MARK + json.dumps({"mark": name, "t": t, "cpu": cpu, "own": own, **extra}), flush=True)


def _own_processes() -> list[Any]:
    import psutil

    return psutil.Process().children(recursive=True)


def _close_and_wait(bench: Any) -> None:
    """``bench.close()``, then wait for the processes this child started (Ray's) to exit."""
    import psutil

    procs = _own_processes()
    bench.close()
    _mark("closed", processes=len(procs))
    _, alive = psutil.wait_procs(procs, timeout=EXIT_WAIT_S)
    _mark("exited", survivors=[p.pid for p in alive])
    for p in alive:  # only processes this child started, by pid
        try:
            p.kill()
        except psutil.Error:
            pass


def child_search(csv_path: str) -> None:
    import psutil  # noqa: F401  (for the marks; imported before the clock of the imports starts)

    _mark("start")
    from workbench import Workbench

    _mark("imported")
    bench = Workbench()  # WORKBENCH_HOME from the parent
    _mark("opened")
    data = bench.datasets.ingest(csv_path, name="cancer", target="diagnosis")
    _mark("ingested")
    bench.connect()
    _mark("ray")
    from ray import tune

    handle = bench.experiments.start_search(
        data,
        name="cold",
        space={"family": "logistic_regression", "C": tune.grid_search([0.1, 1.0])},
        search_alg="grid",
        num_samples=1,
    )
    _mark("tune_started")
    while handle.best() is None and not handle.done():
        time.sleep(0.005)
    _mark("first_result")
    result = handle.wait()
    _mark("search_end", trials=len(result.trials))
    # untimed: the model the deploy child serves
    parts = bench.datasets.split(data, {"train": 0.8, "holdout": 0.2})
    bench.register_best(
        result, model="cancer", train=parts["train"], holdout=parts["holdout"], alias="champion"
    )
    _mark("registered")
    _close_and_wait(bench)


def child_deploy(port: int, record_json: str) -> None:
    import urllib.error
    import urllib.request

    import psutil  # noqa: F401  (for the marks; imported before the clock of the imports starts)

    _mark("start")

    from workbench import Workbench

    _mark("imported")
    bench = Workbench(serve_port=port)
    _mark("opened")
    bench.connect()
    _mark("ray")
    progress = bench.serving.start_deploy("cancer")
    _mark("serve_started")
    progress.wait()
    _mark("replica_ready")
    body = json.dumps({"records": [json.loads(record_json)]}).encode()
    url = bench.serving.url("cancer") + "/predict"
    tries, deadline, answer = 0, time.monotonic() + 60, None
    while time.monotonic() < deadline:
        tries += 1
        req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                if resp.status == 200:
                    answer = json.loads(resp.read())
                    break
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.02)
    _mark("first_answer", tries=tries, ok=answer is not None, answer=answer)
    _close_and_wait(bench)


# ----------------------------------------------------------------------------- parent
def run_child(args: list[str], env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run this script as a child; its marks as {name: seconds since spawn} plus extras."""
    spawn = time.time()
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT_S,
    )
    marks: dict[str, float] = {"spawn": 0.0}
    cpu: dict[str, float] = {"spawn": 0.0}
    own: dict[str, float] = {"spawn": 0.0}
    extra: dict[str, Any] = {}
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            m = json.loads(line[len(MARK) :])
            name = m.pop("mark")
            marks[name] = m.pop("t") - spawn
            if m.get("cpu") is not None:
                cpu[name] = m["cpu"]
            own[name] = m.pop("own")
            m.pop("cpu", None)
            extra.update(m)
    out = {
        "marks": marks,
        "cpu": cpu,
        "driver_cpu": own,
        "extra": extra,
        "rc": proc.returncode,
        "wall_s": time.time() - spawn,
    }
    if proc.returncode != 0:
        out["stderr_tail"] = proc.stderr[-3000:]
        print(f"  child {args[1]} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    return out


def phases(marks: dict[str, float], table: tuple[tuple[str, str, str], ...]) -> dict[str, float]:
    return {label: marks[b] - marks[a] for label, a, b in table if a in marks and b in marks}


def import_times(env: dict[str, str], cwd: Path, n: int = 3) -> dict[str, float | None]:
    code = "import time; t = time.perf_counter(); import workbench; print(time.perf_counter() - t)"
    bare, process, inside = [], [], []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=cwd, check=True)
        bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=cwd, check=True, capture_output=True
        )
        process.append(time.perf_counter() - t)
        inside.append(float(out.stdout))
    return {"bare_python_s": median(bare), "process_s": median(process), "import_s": median(inside)}


def importtime_top(env: dict[str, str], cwd: Path, n: int = 10) -> list[tuple[int, str]]:
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import workbench"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
    )
    rows = []
    for line in out.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit():
            rows.append((int(parts[1]), parts[2].rstrip()))
    return sorted(rows, reverse=True)[:n]


def first_record(csv_path: Path) -> dict[str, float]:
    import csv

    with open(csv_path, newline="") as f:
        row = next(csv.DictReader(f))
    row.pop("diagnosis")
    return {k: float(v) for k, v in row.items()}


def one_repeat(rep: int, root: Path, csv_path: Path) -> dict[str, Any]:
    from workbench.runtime import free_port

    work = root / f"rep{rep}"
    work.mkdir()
    env = {**os.environ, "WORKBENCH_HOME": str(work / ".workbench")}
    env.pop("RAY_ADDRESS", None)  # the embedded default: a private local Ray
    env.pop("WORKBENCH_STORAGE", None)
    load_start = loadavg()
    print(f"repeat {rep + 1}: load average {load_start}", flush=True)
    imp = import_times(env, work)
    print(
        f"  import workbench {imp['import_s']:.3f} s in process, {imp['process_s']:.3f} s "
        f"for the process (bare python {imp['bare_python_s']:.3f} s)",
        flush=True,
    )
    search = run_child(["--child", "search", str(csv_path)], env, work)
    s_marks = search["marks"]
    print(
        f"  search: first result {fmt(s_marks.get('first_result'), '.2f')} s, end "
        f"{fmt(s_marks.get('search_end'), '.2f')} s from spawn; processes exited "
        f"{fmt(_exit_s(s_marks), '.2f')} s after close (load {loadavg()})",
        flush=True,
    )
    deploy: dict[str, Any] = {"marks": {}, "extra": {}, "rc": None}
    if search["rc"] == 0:
        record = json.dumps(first_record(csv_path))
        deploy = run_child(["--child", "deploy", str(free_port()), record], env, work)
        d_marks = deploy["marks"]
        print(
            f"  deploy: replica serves {fmt(d_marks.get('replica_ready'), '.2f')} s, first answer "
            f"{fmt(d_marks.get('first_answer'), '.2f')} s from spawn "
            f"({deploy['extra'].get('tries')} tries); processes exited "
            f"{fmt(_exit_s(d_marks), '.2f')} s after close",
            flush=True,
        )
    load_end = loadavg()
    print(f"  load average at end {load_end}", flush=True)
    return {
        "load_start": load_start,
        "load_end": load_end,
        "import": imp,
        "search": search,
        "deploy": deploy,
        "search_phases": phases(search["marks"], SEARCH_PHASES),
        "deploy_phases": phases(deploy["marks"], DEPLOY_PHASES),
        "search_cpu": phases(search.get("cpu", {}), SEARCH_PHASES),
        "deploy_cpu": phases(deploy.get("cpu", {}), DEPLOY_PHASES),
        "search_driver_cpu": phases(search.get("driver_cpu", {}), SEARCH_PHASES),
        "deploy_driver_cpu": phases(deploy.get("driver_cpu", {}), DEPLOY_PHASES),
    }


def _exit_s(marks: dict[str, float]) -> float | None:
    return marks["exited"] - marks["closed"] if "exited" in marks and "closed" in marks else None


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med_mark(child: str, mark: str) -> float | None:
        return median([r[child]["marks"][mark] for r in runs if mark in r[child]["marks"]])

    def med_phase(key: str, label: str) -> float | None:
        return median([r[key][label] for r in runs if label in r[key]])

    first_result = med_mark("search", "first_result")
    first_answer = med_mark("deploy", "first_answer")
    opened_s, opened_d = med_mark("search", "opened"), med_mark("deploy", "opened")
    imp = median([r["import"]["import_s"] for r in runs])
    survivors = [
        pid for r in runs for c in ("search", "deploy") for pid in c_survivors(r[c])
    ]  # fmt: skip
    return {
        "import_s": imp,
        "import_process_s": median([r["import"]["process_s"] for r in runs]),
        "bare_python_s": median([r["import"]["bare_python_s"] for r in runs]),
        "first_result_s": first_result,
        "first_result_from_workbench_s": _minus(first_result, med_mark("search", "imported")),
        "search_end_s": med_mark("search", "search_end"),
        "first_answer_s": first_answer,
        "first_answer_from_workbench_s": _minus(first_answer, med_mark("deploy", "imported")),
        "opened_s": [opened_s, opened_d],
        "search_phases": {lab: med_phase("search_phases", lab) for lab, _, _ in SEARCH_PHASES},
        "deploy_phases": {lab: med_phase("deploy_phases", lab) for lab, _, _ in DEPLOY_PHASES},
        "search_cpu": {lab: med_phase("search_cpu", lab) for lab, _, _ in SEARCH_PHASES},
        "deploy_cpu": {lab: med_phase("deploy_cpu", lab) for lab, _, _ in DEPLOY_PHASES},
        "search_driver_cpu": {
            lab: med_phase("search_driver_cpu", lab) for lab, _, _ in SEARCH_PHASES
        },
        "deploy_driver_cpu": {
            lab: med_phase("deploy_driver_cpu", lab) for lab, _, _ in DEPLOY_PHASES
        },
        "exit_after_close_s": median(
            [x for r in runs for c in ("search", "deploy") if (x := _exit_s(r[c]["marks"]))]
        ),
        "survivors": survivors,
        "load": [(r["load_start"], r["load_end"]) for r in runs],
        "targets": {
            f"import workbench < {TARGET_IMPORT_S} s": verdict(imp, TARGET_IMPORT_S, below=True),
            f"fresh process to first search result <= {TARGET_FIRST_RESULT_S:g} s": verdict(
                first_result, TARGET_FIRST_RESULT_S
            ),
            f"fresh process to first answer of a new deployment <= {TARGET_FIRST_ANSWER_S:g} s": verdict(
                first_answer, TARGET_FIRST_ANSWER_S
            ),
        },
    }


def c_survivors(child: dict[str, Any]) -> list[int]:
    return list(child.get("extra", {}).get("survivors") or [])


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def print_report(summary: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    n = len(runs)
    print(
        f"\nmedians over {n} repeat(s), seconds: wall; CPU of the child's whole process tree "
        "(driver, Ray, workers, Serve); CPU of the driver (the child itself)"
    )
    for child in ("search", "deploy"):
        print(f"\n{child} child, from the spawn of a fresh process{'wall':>7s}{'CPU':>7s}"
              f"{'driver':>7s}   [wall per repeat]")  # fmt: skip
        for label, value in summary[f"{child}_phases"].items():
            per = " ".join(fmt(r[f"{child}_phases"].get(label), "5.2f") for r in runs)
            cpu = fmt(summary[f"{child}_cpu"].get(label))
            own = fmt(summary[f"{child}_driver_cpu"].get(label))
            print(f"  {label:44s} {fmt(value)} {cpu} {own}   [{per}]")
    print(
        f"\nRay's processes exited {fmt(summary['exit_after_close_s'], '.2f')} s after close() "
        f"(median); ended by pid after {EXIT_WAIT_S:.0f} s: {summary['survivors'] or 'none'}"
    )
    loads = ", ".join(f"{a:.2f}→{b:.2f}" for a, b in summary["load"])
    print(f"load average (1 min) per repeat, start→end: {loads}")
    rows = [
        ("import workbench (in process)", summary["import_s"], f"< {TARGET_IMPORT_S}"),
        ("  python -c 'import workbench' (process)", summary["import_process_s"], ""),
        ("  python -c pass (process)", summary["bare_python_s"], ""),
        ("fresh process → first search result", summary["first_result_s"],
         f"≤ {TARGET_FIRST_RESULT_S:g}"),
        ("  from after the imports", summary["first_result_from_workbench_s"], ""),
        ("  fresh process → search end", summary["search_end_s"], ""),
        ("fresh process → first deployment answer", summary["first_answer_s"],
         f"≤ {TARGET_FIRST_ANSWER_S:g}"),
        ("  from after the imports", summary["first_answer_from_workbench_s"], ""),
    ]  # fmt: skip
    verdicts = list(summary["targets"].values())
    print(f"\n{'figure':44s} {'median s':>9s} {'target':>8s}  result")
    k = 0
    for label, value, target in rows:
        result = ""
        if target:
            result, k = verdicts[k], k + 1
        print(f"{label:44s} {fmt(value, '9.3f')} {target:>8s}  {result}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "search":
            child_search(rest[0])
        else:
            child_deploy(int(rest[0]), rest[1])
        return 0
    if args.quick:
        args.repeats = 1

    from workbench.datasets import write_breast_cancer_csv

    root = Path(tempfile.mkdtemp(prefix="wb-cold-bench-"))
    t_start = time.time()
    print(f"workdir {root}; load average at start {os.getloadavg()}", flush=True)
    csv_path = Path(write_breast_cancer_csv(root / "cancer.csv"))
    runs = [one_repeat(rep, root, csv_path) for rep in range(args.repeats)]
    summary = summarize(runs)
    if summary["import_s"] is not None and summary["import_s"] >= TARGET_IMPORT_S:
        print("\n-X importtime, largest cumulative (µs):")
        for us, name in importtime_top(dict(os.environ), root):
            print(f"  {us:>9d} {name}")
    print_report(summary, runs)
    print(f"\nload average at end {os.getloadavg()}; total {time.time() - t_start:.0f} s")
    if args.out:
        report = {"date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "runs": runs,
                  "summary": summary}  # fmt: skip
        Path(args.out).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"results written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
