"""Search, deploy and first answer on the embedded local default vs a cluster whose nodes share no disk.

The same driver script (``RUN`` below, in a subprocess each time) runs two ways, round-robin
within each repeat so a change in machine load hits both alike:

- ``local``    the embedded default: a private local Ray started by the workbench (every CPU),
  artifacts in ``WORKBENCH_HOME/artifacts``, Tune in ``WORKBENCH_HOME/tune``.
- ``cluster``  ``tests/_nodes.py``'s no-shared-disk cluster: a head with ``--num-cpus=0``, one
  worker (as many CPUs) in its own mount namespace that cannot see the driver's ``WORKBENCH_HOME``,
  token authentication, ``WORKBENCH_STORAGE=s3://…`` on moto's S3 server on loopback (started
  here), credentials and endpoint in every node's environment. Started once (its start time is
  reported on its own).

Each run: connect (a private Ray's start, or joining the cluster), ingest the bundled
breast-cancer data (untimed), a PBT search of the torch trainable (2 trials, 2 epochs, 1 CPU
each, a checkpoint per epoch), register a refit logistic regression (``register_best`` cannot
register a torch search's best: its config has no scikit-learn family), deploy one router
replica, and the first ``/predict`` answer over HTTP (checked against local predictions). Serve is shut down at the end of each run, so every deploy starts
Serve, as the first deploy of a session does. Needs root (``unshare --mount``). Usage::

    .venv/bin/python bench/cluster_vs_local.py --quick        # 1 repeat, ~3-5 minutes here
    .venv/bin/python bench/cluster_vs_local.py --repeats 3 --out results.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/_nodes.py: the cluster the no-shared-disk test runs on

PHASES = ("connect", "search", "deploy", "first_answer")
MODES = ("local", "cluster")
BUCKET = "wb-bench"

RUN = r"""
import json, sys, time
from pathlib import Path

home, address, port = Path(sys.argv[1]), sys.argv[2] or None, int(sys.argv[3])
t = {}
import httpx
from ray import tune
from workbench import Workbench
from workbench.datasets import write_breast_cancer_csv
from workbench.experiments import torch_mlp_trainable

bench = Workbench(home, address=address, serve_port=port)
t0 = time.monotonic(); bench.connect(); t["connect"] = time.monotonic() - t0
dv = bench.datasets.ingest(write_breast_cancer_csv(home / "bc.csv"), name="bc", target="diagnosis")
parts = bench.datasets.split(dv, {"train": 0.7, "holdout": 0.3}, seed=0)
space = {"family": "torch_mlp", "hidden": "32", "lr": tune.loguniform(3e-3, 3e-2),
         "weight_decay": 1e-4, "batch_size": 64, "epochs": 2}
t0 = time.monotonic()
result = bench.experiments.search(
    parts["train"], name="pbt", trainable=torch_mlp_trainable, space=space, max_steps=2,
    num_samples=2, scheduler="pbt", resources={"cpu": 1}, progress=None,
)
t["search"] = time.monotonic() - t0
mv = bench.register_best(result, model="bc", train=parts["train"], holdout=parts["holdout"],
                         alias="champion")
t0 = time.monotonic()
info = bench.serving.deploy("bc", "champion", name="bc", num_replicas=1)
t["deploy"] = time.monotonic() - t0
rows = bench.datasets.load(parts["holdout"]).drop("diagnosis").head(5).to_dicts()
t0 = time.monotonic()
r = httpx.post(info["url"].rstrip("/") + "/predict", json={"records": rows}, timeout=60)
t["first_answer"] = time.monotonic() - t0
assert r.status_code == 200, r.text
assert r.json()["predictions"] == bench.registry.load("bc", mv.version).predict_records(rows)
trials = [x["status"] for x in bench.experiments.trials(result.experiment_id)]
assert trials == ["TERMINATED", "TERMINATED"], trials
bench.serving.undeploy("bc")
from ray import serve
from workbench.serving._recorder import kill_recorder
kill_recorder(bench.settings.db_path)
serve.shutdown()
bench.close()
print("TIMES", json.dumps(t))
"""


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def run_once(env: dict[str, str], home: Path, address: str, workdir: Path) -> dict[str, float]:
    from workbench.runtime import free_port

    out = subprocess.run(
        [sys.executable, "-c", RUN, str(home), address, str(free_port())],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=900,
    )
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("TIMES ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(
            f"run failed ({out.returncode}): {out.stdout[-2000:]}{out.stderr[-4000:]}"
        )
    return {k: round(v, 2) for k, v in json.loads(line[6:]).items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    parser.add_argument("--out", help="write the results as JSON here")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    if os.geteuid() != 0:
        print("the cluster's worker needs a private mount namespace: run as root", file=sys.stderr)
        return 2

    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    from tests._nodes import no_shared_disk_cluster, node_env
    from workbench.runtime import free_port

    workdir = Path(tempfile.mkdtemp(prefix="wb-cvl-"))
    port = free_port()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    s3.start()
    creds = {
        "AWS_ACCESS_KEY_ID": "bench-key",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    fs, _ = pafs.FileSystem.from_uri(
        f"s3://bench-key:bench-secret@{BUCKET}?endpoint_override=127.0.0.1:{port}"
        "&scheme=http&allow_bucket_creation=true"
    )
    fs.create_dir(BUCKET)
    storage = f"s3://{BUCKET}/cvl-{time.time_ns()}"
    local_env = node_env({"WORKBENCH_CACHE": str(workdir / "local-cache")})
    local_env.pop("WORKBENCH_STORAGE", None)
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
    load = [loadavg()]
    print(f"workdir {workdir}; load average at start {os.getloadavg()}", flush=True)
    try:
        with no_shared_disk_cluster(
            workdir,
            env=node_env({**creds, "WORKBENCH_STORAGE": storage}),
            worker_cpus=os.cpu_count() or 2,  # as many as the local default gets
        ) as cluster:
            print(f"cluster start: {cluster.start_s:.1f}s", flush=True)
            for i in range(repeats):
                for mode in MODES:
                    if mode == "local":
                        home, address, env = workdir / f"local-{i}", "", local_env
                    else:
                        home, address, env = (
                            cluster.hidden / f"home-{i}",
                            cluster.address,
                            cluster.env,
                        )
                    t = run_once(env, home, address, workdir)
                    runs[mode].append(t)
                    print(f"repeat {i + 1} {mode:<8} {t}", flush=True)
                    load.append(loadavg())
            start_s = cluster.start_s
    finally:
        s3.stop()
    shutil.rmtree(workdir, ignore_errors=True)  # kept when a run failed: the nodes' logs are there
    medians = {m: {p: median([r[p] for r in runs[m]]) for p in PHASES} for m in MODES}
    ratios = {
        p: (round(medians["cluster"][p] / medians["local"][p], 3) if medians["local"][p] else None)
        for p in PHASES
    }
    print(f"\n{'phase':<14}{'local (s)':>11}{'cluster (s)':>13}{'cluster/local':>15}")
    for p in PHASES:
        lo, cl = medians["local"][p], medians["cluster"][p]
        print(
            f"{p:<14}{lo:>11.2f}{cl:>13.2f}{float('nan') if ratios[p] is None else ratios[p]:>15.3f}"
        )
    print(f"cluster start (head + hidden worker, once): {start_s:.1f}s")
    print(f"repeats {repeats}; load average {min(load)}-{max(load)} ({os.cpu_count()} cores)")
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "runs": runs,
                    "medians": medians,
                    "ratios": ratios,
                    "cluster_start_s": start_s,
                    "load": load,
                    "repeats": repeats,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
