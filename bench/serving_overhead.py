"""The same model served five ways in one run: FastAPI/uvicorn, a plain Ray Serve deployment, the workbench router.

Workload (from the serving issue): logistic regression on scikit-learn's
breast-cancer data (30 numeric features, the workbench's own preprocessing,
a ``ModelBundle``), one record per request, 8 concurrent keep-alive clients
(threads with ``http.client``) on the same 2-core machine. Every variant runs
the same model code (``ModelBundle.predict_records``: signature check, pandas
frame, sklearn ``predict``) inside an ``async`` handler, so what differs is the
machinery around it:

- ``fastapi``       FastAPI on uvicorn in a child process, one worker: the floor.
- ``fastapi_reference`` the same FastAPI server on the reference model path
  (``ModelBundle.predict_frame`` on ``coerce_records``: a pandas frame and the
  fitted ``ColumnTransformer`` per request), what every variant ran before the
  compiled path (``workbench.registry._fast``) that ``predict_records`` now runs.
- ``serve_plain``   one plain Serve deployment (``request.json()``, predict,
  return a dict), with the router's settings: the same CPUs per replica,
  ``max_ongoing_requests=16``.
- ``router_100``    the workbench router (``Serving.deploy``) with two
  versions loaded at 100/0;
- ``router_90_10``  the same at 90/10;
- ``router_50_50``  the same at 50/50 (the weights change through
  ``Serving.set_traffic``, i.e. ``reconfigure``, before each run);
- ``router_batch``  a second router app, one version, with request batching
  on (``max_batch_size=8``, ``batch_wait_timeout_s=0.005``): not part of the
  like-for-like comparison, it shows what ``@serve.batch`` buys here;
- ``router_isolated`` a third router app whose version runs as its own
  deployment (``isolate=True``): the cost of the second hop that makes a
  crashed version replica lose no request.

Throughput and latency under queueing come from ``--clients`` concurrent
clients per run. Latency without queueing (where an added millisecond shows as
itself) comes from one client that sends its requests to all variants in turn,
round after round, so a change in machine load hits every variant alike; its
paired figure is the median over rounds of (variant − plain Serve).

The router variants do everything a production request does: the token check,
JSON codec with the NaN/inf policy, routing draw, NaN-safe answer, and the
request log shipped to the recorder actor and written to SQLite.

Every replica asks for the same CPUs (0.5, the workbench default, or less so
that all the deployments fit the CPUs the local Ray cluster has: see
``replica_cpus``); a variant that cannot fit is skipped with its reason.

Variants run round-robin within each repeat (so a change in machine load hits
them alike); the 1-minute load average is printed with every run. Also
measured: the router's in-replica cost per request without HTTP (the real
``Router._predict`` on a Starlette request against the bare
``predict_records``, and with request logging switched off), and the time a
weight change takes under load (see ``weight_change``). Usage::

    make bench-serving                                    # 3 repeats of 6 s per variant, ~5 min
    make bench-serving SERVING_ARGS=--quick               # 1 repeat of 3 s, ~2 min
    .venv/bin/python bench/serving_overhead.py --repeats 5 --seconds 8 --out results.json
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()

# Targets from the serving issue.
TARGET_THROUGHPUT_RATIO = 0.9  # router / plain Serve (better ≥ 1.0)
TARGET_ADDED_P50_MS = 0.5  # router p50 − plain Serve p50, one client (issue 17; was 1.0)
TARGET_WEIGHT_CHANGE_S = 1.0
# Issue 17 (a fast prediction path): the model path per record, and the router at 8 clients
# against FastAPI on the old (reference) path and on the same compiled path.
TARGET_MODEL_PATH_US = 1000.0
TARGET_OVER_FASTAPI_REFERENCE = 1.5
TARGET_OVER_FASTAPI = 1.0

VARIANTS = (
    "fastapi",
    "fastapi_reference",
    "serve_plain",
    "router_100",
    "router_90_10",
    "router_50_50",
    "router_batch",
    "router_isolated",
)
ROUTER_WEIGHTS = {
    "router_100": {1: 1.0, 2: 0.0},
    "router_90_10": {1: 0.9, 2: 0.1},
    "router_50_50": {1: 0.5, 2: 0.5},
}
LABELS = {
    "fastapi": "FastAPI/uvicorn (floor)",
    "fastapi_reference": "FastAPI/uvicorn, reference model path",
    "serve_plain": "plain Serve deployment",
    "router_100": "workbench router 100/0",
    "router_90_10": "workbench router 90/10",
    "router_50_50": "workbench router 50/50",
    "router_batch": "workbench router, batching (8, 5 ms)",
    "router_isolated": "workbench router, isolated version (2 hops)",
}
BATCH = {"max_batch_size": 8, "batch_wait_timeout_s": 0.005}


MIN_REPLICA_CPUS = 0.05  # below this a variant is skipped rather than squeezed further


def replica_cpus(cpus: float, variants: list[str]) -> tuple[float, dict[str, str]]:
    """CPUs per replica so that every deployment this run makes fits ``cpus``, and the
    variants skipped because even ``MIN_REPLICA_CPUS`` each does not fit ({variant: reason}).

    One replica each: the plain deployment, the router (always deployed), the batching
    router and the isolated version; the isolated router takes a fixed quarter CPU.

    >>> replica_cpus(8, list(VARIANTS))
    (0.5, {})
    >>> replica_cpus(2, list(VARIANTS))
    (0.4375, {})
    >>> replica_cpus(0.4, list(VARIANTS))[1]
    {'router_isolated': 'needs 0.25 + 0.05 CPU beside 3 replicas of 0.05; the cluster has 0.4'}
    """
    from workbench.serving._scaling import DEFAULT_NUM_CPUS, ROUTER_NUM_CPUS_ISOLATED

    skipped: dict[str, str] = {}
    while True:
        replicas = 1 + sum(
            v in variants for v in ("serve_plain", "router_batch", "router_isolated")
        )
        fixed = ROUTER_NUM_CPUS_ISOLATED if "router_isolated" in variants else 0.0
        per = min(DEFAULT_NUM_CPUS, (cpus - fixed) / replicas)
        if per >= MIN_REPLICA_CPUS:
            return per, skipped
        for v in ("router_isolated", "router_batch", "serve_plain"):
            if v in variants:
                variants.remove(v)
                skipped[v] = (
                    f"needs {fixed:g} + {MIN_REPLICA_CPUS:g} CPU beside {replicas - 1} replicas of "
                    f"{MIN_REPLICA_CPUS:g}; the cluster has {cpus:g}"
                    if v == "router_isolated"
                    else f"{replicas} replicas of {MIN_REPLICA_CPUS:g} CPU do not fit {cpus:g}"
                )
                break
        else:
            raise SystemExit(
                f"the router alone needs {MIN_REPLICA_CPUS} CPU; the cluster has {cpus:g}"
            )


def loadavg() -> float:
    return round(os.getloadavg()[0], 2)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# ----------------------------------------------------------------------------- the model
def build_bundle(C: float) -> tuple[Any, list[dict[str, float]]]:
    """Logistic regression on breast-cancer data, as tests/_serve_env.py builds it."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from workbench.features import build_preprocessor
    from workbench.registry import ModelBundle

    data = load_breast_cancer(as_frame=True)
    X, y = data.data, data.target.to_numpy()
    kinds = {c: "number" for c in X.columns}
    pipe = Pipeline(
        [
            ("preprocess", build_preprocessor(kinds)),
            ("model", LogisticRegression(C=C, max_iter=1000)),
        ]
    ).fit(X, y)
    bundle = ModelBundle(
        pipeline=pipe,
        features=kinds,
        target="diagnosis",
        classes=[str(c) for c in data.target_names],
    )
    records = [{c: float(v) for c, v in row.items()} for row in X.to_dict(orient="records")]
    return bundle, records


def register_versions(store: Any, artifacts: Any) -> tuple[dict[int, str], dict[str, float], int]:
    """Store and register model "bench" v1 (C=1.0) and v2 (C=0.5): ({version: artifact sha},
    one input record, the first version's row id)."""
    shas: dict[int, str] = {}
    record: dict[str, float] = {}
    first_id = 0
    for C in (1.0, 0.5):
        bundle, records = build_bundle(C)
        record = records[0]
        sha = artifacts.put_object(bundle)
        row = store.models.add_version(
            "bench",
            task="classification",
            artifact_hash=sha,
            params={"C": C},
            metrics={},
            signature=bundle.signature,
            experiment_id=None,
            trial_id=None,
            dataset_version_id=None,
        )
        shas[int(row["version"])] = sha
        first_id = first_id or int(row["id"])
    return shas, record, first_id


# ----------------------------------------------------------------------------- the floor
def fastapi_server(port: int, artifacts_dir: str, sha: str, path: str = "compiled") -> None:
    """Child-process mode: FastAPI on uvicorn, one worker, serving the same bundle, on the
    compiled model path (``predict_records``) or the ``reference`` one."""
    import uvicorn
    from fastapi import FastAPI, Request

    from workbench.features import coerce_records
    from workbench.lineage import ArtifactStore
    from workbench.runtime import jsonable

    bundle = ArtifactStore(artifacts_dir).get_object(sha)
    app = FastAPI()

    def model(records: list[dict[str, Any]]) -> list[Any]:
        if path == "reference":
            return bundle.predict_frame(
                coerce_records(records, bundle.features, allow_missing=True)
            )
        return bundle.predict_records(records)

    async def predict(request: Request) -> dict[str, Any]:
        body = await request.json()
        return {"predictions": [jsonable(p) for p in model(body["records"])]}

    # FastAPI resolves annotations by name from the module's globals; Request is local here.
    predict.__annotations__ = {"request": Request, "return": dict}
    app.post("/predict")(predict)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def plain_deployment(num_cpus: float) -> Any:
    from ray import serve

    @serve.deployment(max_ongoing_requests=16, ray_actor_options={"num_cpus": num_cpus})
    class PlainModel:
        def __init__(self, artifacts_dir: str, sha: str):
            from workbench.lineage import ArtifactStore

            self.bundle = ArtifactStore(artifacts_dir).get_object(sha)

        async def __call__(self, request: Any) -> dict[str, Any]:
            body = await request.json()
            preds = self.bundle.predict_records(body["records"])
            return {"predictions": [p.item() if hasattr(p, "item") else p for p in preds]}

    return PlainModel


# ----------------------------------------------------------------------------- the client
class Load:
    """``clients`` keep-alive threads POSTing one payload for ``seconds`` after ``warmup_s``."""

    def __init__(
        self, port: int, path: str, payload: bytes, *, clients: int, headers: dict[str, str]
    ):
        self.port, self.path, self.payload, self.clients = port, path, payload, clients
        self.headers = {"content-type": "application/json", **headers}
        self.rows: list[tuple[float, float, int, Any]] = []  # (start, latency_s, status, version)
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _worker(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        rows: list[tuple[float, float, int, Any]] = []
        while not self._stop.is_set():
            t0 = time.perf_counter()
            try:
                conn.request("POST", self.path, body=self.payload, headers=self.headers)
                resp = conn.getresponse()
                data = resp.read()
                status = resp.status
            except Exception as exc:  # counted, never retried
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            latency = time.perf_counter() - t0
            version = None
            if status == 200 and b"model_version" in data:
                version = json.loads(data).get("model_version")
            rows.append((t0, latency, status, version))
        conn.close()
        with self._lock:
            self.rows.extend(rows)

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._worker, daemon=True) for _ in range(self.clients)
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(60)


def run_load(
    port: int,
    path: str,
    payload: bytes,
    *,
    seconds: float,
    warmup_s: float,
    clients: int,
    headers: dict[str, str],
    servers: dict[int, str] | None = None,
) -> dict[str, Any]:
    load = Load(port, path, payload, clients=clients, headers=headers)
    la = loadavg()
    load.start()
    t_begin = time.perf_counter() + warmup_s
    time.sleep(warmup_s)
    cpu0 = cpu_snapshot(servers or {})
    time.sleep(seconds)
    cpu1 = cpu_snapshot(servers or {})
    t_end = time.perf_counter()
    load.stop()
    window = [r for r in load.rows if t_begin <= r[0] and r[0] + r[1] <= t_end]
    ok = [r for r in window if r[2] == 200]
    lat_ms = [r[1] * 1000 for r in ok]
    versions: dict[str, int] = {}
    for r in ok:
        versions[str(r[3])] = versions.get(str(r[3]), 0) + 1
    return {
        "requests": len(window),
        "ok": len(ok),
        "failed": len(window) - len(ok) + len(load.errors),
        "throughput": len(ok) / (t_end - t_begin),
        "p50_ms": pct(lat_ms, 0.50),
        "p99_ms": pct(lat_ms, 0.99),
        "versions": versions,
        # server-side CPU ms per answered request, by process role (the client is this process)
        "cpu_ms_per_request": {
            k: round(v * 1000 / max(1, len(ok)), 2) for k, v in cpu_delta(cpu0, cpu1).items()
        },
        "load_start": la,
        "load_end": loadavg(),
    }


def interleaved_latency(
    targets: dict[str, tuple[int, str, dict[str, str]]], payload: bytes, rounds: int
) -> dict[str, Any]:
    """One client, one keep-alive connection per variant, one request to each variant per round.

    The order rotates every round. Returns p50/p99 per variant and, against
    ``serve_plain``, the median of the per-round differences.
    """
    names = list(targets)
    conns = {v: http.client.HTTPConnection("127.0.0.1", targets[v][0], timeout=30) for v in names}
    lat: dict[str, list[float]] = {v: [] for v in names}
    failed = 0
    la = loadavg()
    for i in range(rounds + 20):
        k = i % len(names)
        for v in names[k:] + names[:k]:
            port, path, hdrs = targets[v]
            t0 = time.perf_counter()
            conns[v].request(
                "POST", path, body=payload, headers={"content-type": "application/json", **hdrs}
            )
            resp = conns[v].getresponse()
            resp.read()
            dt = (time.perf_counter() - t0) * 1000
            if resp.status != 200:
                failed += 1
            elif i >= 20:  # warm-up rounds
                lat[v].append(dt)
    for c in conns.values():
        c.close()
    out: dict[str, Any] = {
        "rounds": rounds,
        "failed": failed,
        "load_start": la,
        "load_end": loadavg(),
    }
    out["p50_ms"] = {v: round(statistics.median(x), 2) for v, x in lat.items() if x}
    out["p99_ms"] = {v: round(pct(x, 0.99) or 0.0, 2) for v, x in lat.items() if x}
    if "serve_plain" in lat:
        base = lat["serve_plain"]
        out["paired_minus_plain_ms"] = {
            v: round(statistics.median(a - b for a, b in zip(x, base, strict=False)), 2)
            for v, x in lat.items()
            if x and v != "serve_plain"
        }
    return out


# ----------------------------------------------------------------------------- CPU accounting
def _role(proc: Any, servers: dict[int, str]) -> str:
    if proc.pid in servers:
        return servers[proc.pid]
    try:
        title = " ".join(proc.cmdline())[:200]
    except Exception:
        return "other"
    for key, role in (
        ("ServeReplica:wbb:", "batching router replica"),
        ("ServeReplica:wbi:version-", "isolated version replica"),
        ("ServeReplica:wbi:", "isolated router replica"),
        ("ServeReplica:wb:", "router replica"),
        ("ServeReplica:plain:", "plain replica"),
        ("ProxyActor", "serve proxy"),
        ("Recorder", "recorder"),
        ("ServeController", "serve controller"),
    ):
        if key in title:
            return role
    return "ray other"


def cpu_snapshot(servers: dict[int, str]) -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process this benchmark started (Ray's and the child)."""
    import psutil

    out: dict[int, tuple[str, float]] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            t = proc.cpu_times()
            out[proc.pid] = (_role(proc, servers), t.user + t.system)
        except Exception:  # exited meanwhile
            continue
    return out


def cpu_delta(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict:
    roles: dict[str, float] = {}
    for pid, (role, total) in after.items():
        roles[role] = roles.get(role, 0.0) + total - before.get(pid, (role, 0.0))[1]
    return {k: round(v, 3) for k, v in sorted(roles.items())}


# ----------------------------------------------------------------------------- in-replica cost
def in_replica_profile(
    artifacts: Any, db_path: str, shas: dict[int, str], record: dict[str, float], n: int
) -> dict[str, Any]:
    """Median CPU µs (``time.thread_time``, so other processes' load does not count) per request
    of the router's ``_predict`` without HTTP, against the bare model call.

    ``bare``      ``json.loads`` + ``predict_records`` + ``json.dumps`` (what the plain handlers do:
                  the model path);
    ``reference`` the same on the reference path (``predict_frame`` on ``coerce_records``);
    ``router``    the real ``Router._predict`` on a Starlette request (logging into its buffer);
    ``nolog``     the same with ``Router._log`` switched off.
    Runs interleaved, one call of each per round, so load changes hit all three.
    """
    from starlette.requests import Request

    from workbench.features import coerce_records
    from workbench.runtime import jsonable
    from workbench.serving._router import Router

    class LocalRouter(Router.func_or_class):  # type: ignore[name-defined,misc]
        def __del__(self) -> None:
            pass

    router = LocalRouter()
    router.reconfigure(
        {
            "deployment": "profile",
            "db_path": db_path,
            "artifacts_dir": str(artifacts.root),
            "versions": {
                str(v): {"artifact": sha, "model_version_id": v, "weight": w}
                for (v, sha), w in zip(shas.items(), (0.9, 0.1), strict=True)
            },
        }
    )
    bundle = router._routing.versions[1].bundle
    raw = json.dumps({"records": [record]}).encode()

    def request() -> Any:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}

        scope = {
            "type": "http",
            "method": "POST",
            "path": "/profile/predict",
            "root_path": "/profile",
            "query_string": b"",
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
        return Request(scope, receive)

    def bare() -> None:
        body = json.loads(raw)
        json.dumps({"predictions": [jsonable(p) for p in bundle.predict_records(body["records"])]})

    def reference() -> None:
        body = json.loads(raw)
        frame = coerce_records(body["records"], bundle.features, allow_missing=True)
        json.dumps({"predictions": [jsonable(p) for p in bundle.predict_frame(frame)]})

    async def rounds(count: int) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {"bare": [], "reference": [], "router": [], "nolog": []}
        real_log = router._log
        for i in range(count + 50):
            t = time.thread_time()
            reference()
            d_reference = time.thread_time() - t
            t = time.thread_time()
            bare()
            d_bare = time.thread_time() - t
            t = time.thread_time()
            await router._predict(request())
            d_router = time.thread_time() - t
            router._log = lambda row: None  # type: ignore[method-assign]
            t = time.thread_time()
            await router._predict(request())
            d_nolog = time.thread_time() - t
            router._log = real_log  # type: ignore[method-assign]
            router._buffer.clear()
            if i >= 50:  # warm-up
                times["reference"].append(d_reference * 1e6)
                times["bare"].append(d_bare * 1e6)
                times["router"].append(d_router * 1e6)
                times["nolog"].append(d_nolog * 1e6)
        return times

    def summary(times: dict[str, list[float]]) -> dict[str, Any]:
        med = {k: statistics.median(v) for k, v in times.items()}
        paired = [a - b for a, b in zip(times["router"], times["nolog"], strict=True)]
        return {
            "median_us": {k: round(v, 1) for k, v in med.items()},
            "p99_us": {k: round(pct(v, 0.99) or 0.0, 1) for k, v in times.items()},
            "router_minus_bare_us": round(med["router"] - med["bare"], 1),
            "logging_us": round(med["router"] - med["nolog"], 1),
            # per-request logging cost, paired within each round (router − the same without _log)
            "logging_paired_p50_us": round(pct(paired, 0.50) or 0.0, 1),
            "logging_paired_p99_us": round(pct(paired, 0.99) or 0.0, 1),
        }

    real = summary(asyncio.run(rounds(n)))
    # The model's own time (~5 ms, ±10% run to run) hides tens of µs; with a model that answers
    # a constant, what is left is the machinery around it, router and bare alike.
    loaded = list(router._routing.versions.values())
    for lv in loaded:
        lv.bundle.predict_records = lambda records: ["benign"] * len(records)
    try:
        const = summary(asyncio.run(rounds(n * 5)))
    finally:
        for lv in loaded:
            del lv.bundle.predict_records
    return {"n": n, "real_model": real, "constant_model": const, "load": loadavg()}


# ----------------------------------------------------------------------------- weight change
def weight_change(
    serving: Any, port: int, payload: bytes, *, clients: int, headers: dict[str, str]
) -> dict[str, Any]:
    """Move all traffic from v1 to v2 under load, and back; time each move.

    ``returned_s``   wall time of ``Serving.set_traffic``: it returns once the
                     router reports the new revision (one replica: from then on
                     every request is routed on the new weights), after the
                     traffic change is recorded in the store;
    ``first_new_s``  from the call to the first client request *started after
                     the call* that the new version answered;
    ``last_old_s``   from the call to the start of the last request the old
                     version answered (requests in flight across the switch may
                     take either version; none after this did).
    """
    out = []
    load = Load(port, "/wb/predict", payload, clients=clients, headers=headers)
    load.start()
    try:
        time.sleep(1.0)
        for old, new in ((1, 2), (2, 1)):
            t_call = time.perf_counter()
            serving.set_traffic("wb", {old: 0.0, new: 1.0}, reason="bench: weight change")
            t_ret = time.perf_counter()
            time.sleep(1.5)
            out.append({"from": old, "to": new, "t_call": t_call, "t_ret": t_ret})
    finally:
        load.stop()
    rows = sorted(load.rows)
    results = []
    for i, change in enumerate(out):
        until = out[i + 1]["t_call"] if i + 1 < len(out) else float("inf")
        after = [r for r in rows if change["t_call"] <= r[0] < until and r[2] == 200]
        first_new = next((r for r in after if r[3] == change["to"]), None)
        old_rows = [r for r in after if r[3] == change["from"]]
        results.append(
            {
                "from": change["from"],
                "to": change["to"],
                "returned_s": round(change["t_ret"] - change["t_call"], 3),
                "first_new_s": round(first_new[0] - change["t_call"], 3) if first_new else None,
                "last_old_s": round(old_rows[-1][0] - change["t_call"], 3) if old_rows else 0.0,
                "old_after_return": sum(1 for r in old_rows if r[0] > change["t_ret"]),
            }
        )
    failed = sum(1 for r in rows if r[2] != 200) + len(load.errors)
    return {"changes": results, "requests": len(rows), "failed": failed, "load": loadavg()}


# ----------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per run")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds per run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--profile-n", type=int, default=1000)
    parser.add_argument(
        "--latency-rounds", type=int, default=300, help="rounds of the one-client pass (0: skip)"
    )
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--quick", action="store_true", help="1 repeat of 3 s")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument("--fastapi-server", nargs=4, metavar=("PORT", "ARTIFACTS", "SHA", "PATH"))
    args = parser.parse_args()
    if args.fastapi_server:
        port, arts, sha, path = args.fastapi_server
        fastapi_server(int(port), arts, sha, path)
        return 0
    if args.quick:
        args.repeats, args.seconds, args.profile_n, args.latency_rounds = 1, 3.0, 300, 60
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray
    import sklearn
    from ray import serve

    from workbench.config import Settings
    from workbench.exceptions import DeploymentError
    from workbench.lineage import ArtifactStore, Store
    from workbench.runtime import connect, free_port
    from workbench.serving import Serving
    from workbench.serving._recorder import kill_recorder

    root = Path(tempfile.mkdtemp(prefix="wb-serving-bench-"))
    print(f"workdir {root}; load average at start {os.getloadavg()}", flush=True)
    settings = Settings.from_env(root / "wbhome")
    store = Store(settings.db_path)
    artifacts = ArtifactStore(settings.artifacts_dir)
    shas, record, _ = register_versions(store, artifacts)
    payload = json.dumps({"records": [record]}).encode()

    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "ray": ray.__version__,
            "sklearn": sklearn.__version__,
        },
        "settings": vars(args),
        "runs": {v: [] for v in variants},
    }
    print("in-replica profile ...", flush=True)
    results["profile"] = in_replica_profile(
        artifacts, str(settings.db_path), shas, record, args.profile_n
    )
    print(json.dumps(results["profile"]), flush=True)

    t = time.perf_counter()
    conn = connect(num_cpus=os.cpu_count() or 2, object_store_memory=256 * 1024**2)
    results["ray_start_s"] = round(time.perf_counter() - t, 1)
    cluster_cpus = float(ray.available_resources().get("CPU", 0.0))
    per_replica, skipped = replica_cpus(cluster_cpus, variants)
    for v, why in skipped.items():
        print(f"skipped {v}: {why}", flush=True)
        results["runs"].pop(v, None)
    results["cluster_cpus"], results["replica_cpus"] = cluster_cpus, per_replica
    results["skipped"] = skipped
    print(f"{cluster_cpus:g} CPUs in the Ray cluster: {per_replica:g} CPU per replica", flush=True)
    serve_port = free_port()
    # the FastAPI servers: variant -> (port, process)
    children: dict[str, tuple[int, subprocess.Popen]] = {}
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": serve_port})
        serving = Serving(store, artifacts, settings, http_port=serve_port)
        headers: dict[str, str] = {}
        if serving._token:
            headers["authorization"] = f"Bearer {serving._token}"
        paths = {"serve_plain": "/plain"}
        for variant, path in (("fastapi", "compiled"), ("fastapi_reference", "reference")):
            if variant in variants:
                port = free_port()
                argv = [str(port), str(settings.artifacts_dir), shas[1], path]
                children[variant] = (
                    port,
                    subprocess.Popen([sys.executable, str(HERE), "--fastapi-server", *argv]),
                )
        if "serve_plain" in variants:
            serve.run(
                plain_deployment(per_replica).bind(str(settings.artifacts_dir), shas[1]),
                name="plain",
                route_prefix="/plain",
            )
        t = time.perf_counter()
        serving.deploy("bench", 1, name="wb", reason="bench", num_cpus=per_replica)
        results["deploy_s"] = round(time.perf_counter() - t, 2)
        serving.set_traffic("wb", {1: 1.0, 2: 0.0}, reason="bench: load v2")
        if "router_batch" in variants:
            serving.deploy(
                "bench", 1, name="wbb", reason="bench: batching", num_cpus=per_replica, **BATCH
            )
        paths["router_batch"] = "/wbb/predict"
        if "router_isolated" in variants:
            # version 1 in its own deployment behind the router: the second hop that buys
            # zero lost requests when a version replica crashes (docs/serving.md)
            try:
                serving.deploy(
                    "bench",
                    1,
                    name="wbi",
                    reason="bench: isolated",
                    isolate=True,
                    num_cpus=per_replica,
                    timeout_s=90,
                )
            except DeploymentError as exc:  # sized to fit, so this is the last resort
                skipped["router_isolated"] = f"did not deploy: {exc}"
                print(f"skipped router_isolated: {exc}", flush=True)
                variants.remove("router_isolated")
                results["runs"].pop("router_isolated", None)
                serve.delete("wbi")
        paths["router_isolated"] = "/wbi/predict"
        for port, child in children.values():
            deadline = time.monotonic() + 60
            while True:
                try:
                    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                    c.request("POST", "/predict", body=payload, headers={})
                    assert c.getresponse().status == 200
                    c.close()
                    break
                except (OSError, AssertionError):
                    if time.monotonic() > deadline or child.poll() is not None:
                        raise RuntimeError("the FastAPI server did not start") from None
                    time.sleep(0.3)
        set_s: list[float] = []

        def target(variant: str) -> tuple[int, str, dict[str, str]]:
            if variant in ROUTER_WEIGHTS:
                return serve_port, "/wb/predict", headers
            if variant in ("router_batch", "router_isolated"):
                return serve_port, paths[variant], headers
            if variant in children:
                return children[variant][0], "/predict", {}
            return serve_port, paths["serve_plain"], {}

        # Unmeasured pass: every server, the recorder actor and its SQLite file are warm.
        for variant in variants:
            port, path, hdrs = target(variant)
            run_load(port, path, payload, seconds=1.0, warmup_s=0.5, clients=2, headers=hdrs)
        if any(v in ROUTER_WEIGHTS for v in variants):
            serving.flush_logs("wb")
        for rep in range(args.repeats):
            for variant in variants:
                if variant in ROUTER_WEIGHTS:
                    t = time.perf_counter()
                    serving.set_traffic("wb", ROUTER_WEIGHTS[variant], reason="bench")
                    set_s.append(time.perf_counter() - t)
                port, path, hdrs = target(variant)
                r = run_load(
                    port,
                    path,
                    payload,
                    seconds=args.seconds,
                    warmup_s=args.warmup,
                    clients=args.clients,
                    headers=hdrs,
                    servers={child.pid: v for v, (_, child) in children.items()},
                )
                results["runs"][variant].append(r)
                print(
                    f"repeat {rep + 1} {variant:13s} {r['throughput']:7.1f} req/s  "
                    f"p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms  failed {r['failed']}  "
                    f"versions {r['versions']}  load {r['load_start']}→{r['load_end']}\n"
                    f"    server CPU ms/request {r['cpu_ms_per_request']}",
                    flush=True,
                )
        results["set_traffic_idle_s"] = [round(s, 3) for s in set_s]
        if args.latency_rounds:
            print("one client, all variants in turn ...", flush=True)
            targets = {}
            for variant in variants:
                if variant in ROUTER_WEIGHTS and variant != "router_90_10":
                    continue  # one router app: measured at 90/10, the split that routes per request
                targets["router" if variant == "router_90_10" else variant] = target(variant)
            serving.set_traffic("wb", ROUTER_WEIGHTS["router_90_10"], reason="bench")
            results["interleaved"] = interleaved_latency(targets, payload, args.latency_rounds)
            print(json.dumps(results["interleaved"]), flush=True)
        if any(v in ROUTER_WEIGHTS for v in variants):
            print("weight change under load ...", flush=True)
            results["weight_change"] = weight_change(
                serving, serve_port, payload, clients=args.clients, headers=headers
            )
            print(json.dumps(results["weight_change"]), flush=True)
            results["router_log"] = serving.flush_logs("wb")
        serving.close()
    finally:
        for _, child in children.values():
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()
        try:
            serve.shutdown()
        except Exception:
            pass
        kill_recorder(settings.db_path)
        conn.shutdown()
        store.close()

    summarize(results)
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2, default=str))
        print(f"results in {args.out}")
    return 0


def summarize(results: dict[str, Any]) -> None:
    runs = results["runs"]
    med: dict[str, dict[str, float]] = {}
    for v, rs in runs.items():
        if not rs:
            continue
        med[v] = {
            k: statistics.median([r[k] for r in rs if r[k] is not None])
            for k in ("throughput", "p50_ms", "p99_ms")
        }
        med[v]["failed"] = sum(r["failed"] for r in rs)
    print("\n| variant | req/s | p50 ms | p99 ms | failed | runs (req/s) | load |")
    print("|---|---|---|---|---|---|---|")
    for v, m in med.items():
        rs = runs[v]
        print(
            f"| {LABELS[v]} | {m['throughput']:.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | "
            f"{m['failed']:.0f} | {', '.join(format(r['throughput'], '.0f') for r in rs)} | "
            f"{', '.join(str(r['load_start']) for r in rs)} |"
        )
    base = med.get("serve_plain")
    worst_tr = worst_dp8 = None
    if base:
        print(
            "\n| variant | throughput / plain Serve | paired | p50 − plain Serve, "
            f"{results['settings']['clients']} clients (ms) | paired |"
        )
        print("|---|---|---|---|---|")
        rows = {}
        for v in med:
            if v == "serve_plain":
                continue
            pairs = list(zip(runs[v], runs["serve_plain"], strict=False))
            rows[v] = (
                med[v]["throughput"] / base["throughput"],
                statistics.median(a["throughput"] / b["throughput"] for a, b in pairs),
                med[v]["p50_ms"] - base["p50_ms"],
                statistics.median(a["p50_ms"] - b["p50_ms"] for a, b in pairs),
            )
            print(
                f"| {LABELS[v]} | {rows[v][0]:.2f} | {rows[v][1]:.2f} | {rows[v][2]:+.1f} | "
                f"{rows[v][3]:+.1f} |"
            )
        routers = [v for v in rows if v in ROUTER_WEIGHTS]
        if routers:
            worst_tr = min(min(rows[v][0], rows[v][1]) for v in routers)
            worst_dp8 = max(max(rows[v][2], rows[v][3]) for v in routers)
    il = results.get("interleaved")
    if il:
        print(
            f"\none client, all variants in turn ({il['rounds']} rounds, load "
            f"{il['load_start']}→{il['load_end']}, {il['failed']} failed):"
        )
        print("| variant | p50 ms | p99 ms | paired p50 − plain Serve (ms) |")
        print("|---|---|---|---|")
        for v, p50 in il["p50_ms"].items():
            diff = il.get("paired_minus_plain_ms", {}).get(v)
            label = LABELS.get(v, "workbench router 90/10")
            print(
                f"| {label} | {p50:.2f} | {il['p99_ms'][v]:.2f} | "
                f"{'' if diff is None else format(diff, '+.2f')} |"
            )
    if worst_tr is not None:
        one = (il or {}).get("paired_minus_plain_ms", {}).get("router")
        print(
            f"\ntargets (worst router split, worst of median and paired): throughput ≥ "
            f"{TARGET_THROUGHPUT_RATIO}× plain Serve: "
            f"{'met' if worst_tr >= TARGET_THROUGHPUT_RATIO else 'MISSED'} ({worst_tr:.2f}); "
            f"added p50 ≤ {TARGET_ADDED_P50_MS} ms, one client: "
            + (
                "not measured"
                if one is None
                else f"{'met' if one <= TARGET_ADDED_P50_MS else 'MISSED'} ({one:+.2f} ms)"
            )
            + f"; under {results['settings']['clients']} clients (queueing): {worst_dp8:+.1f} ms"
        )
    router = med.get("router_100")
    for floor, goal in (
        ("fastapi_reference", TARGET_OVER_FASTAPI_REFERENCE),
        ("fastapi", TARGET_OVER_FASTAPI),
    ):
        if router and floor in med:
            pairs = list(zip(runs["router_100"], runs[floor], strict=False))
            ratio = min(
                router["throughput"] / med[floor]["throughput"],
                statistics.median(a["throughput"] / b["throughput"] for a, b in pairs),
            )
            print(
                f"target: router 100/0 throughput ≥ {goal}× {LABELS[floor]} "
                f"({results['settings']['clients']} clients, worst of median and paired): "
                f"{'met' if ratio >= goal else 'MISSED'} ({ratio:.2f})"
            )
    prof = results.get("profile")
    if prof:
        us = prof["real_model"]["median_us"]
        print(
            f"target: model path ≤ {TARGET_MODEL_PATH_US:.0f} µs per record (json + "
            f"predict_records + json, CPU): {'met' if us['bare'] <= TARGET_MODEL_PATH_US else 'MISSED'}"
            f" ({us['bare']:.0f} µs; the reference path {us['reference']:.0f} µs, "
            f"×{us['reference'] / us['bare']:.1f})"
        )
    print("\n| variant | server CPU ms per request, median of runs (by process) |")
    print("|---|---|")
    for v, rs in runs.items():
        if not rs:
            continue
        roles = sorted({k for r in rs for k in r["cpu_ms_per_request"]})
        parts = {
            k: statistics.median(r["cpu_ms_per_request"].get(k, 0.0) for r in rs) for k in roles
        }
        total = statistics.median(sum(r["cpu_ms_per_request"].values()) for r in rs)
        detail = ", ".join(f"{k} {val:.2f}" for k, val in parts.items() if val >= 0.05)
        print(f"| {LABELS[v]} | **{total:.2f}**: {detail} |")
    wc = results.get("weight_change")
    if wc:
        worst = max(c["returned_s"] for c in wc["changes"])
        print(
            f"weight change ≤ {TARGET_WEIGHT_CHANGE_S} s (set_traffic returned): "
            f"{'met' if worst <= TARGET_WEIGHT_CHANGE_S else 'MISSED'} (worst {worst:.2f} s); "
            f"changes {wc['changes']}"
        )
    prof = results.get("profile")
    if prof:
        for kind in ("real_model", "constant_model"):
            p = prof[kind]
            print(
                f"in-replica CPU, no HTTP, {kind}: median µs {p['median_us']}; router − bare "
                f"{p['router_minus_bare_us']} µs, of which request logging {p['logging_us']} µs"
            )
    for v, why in results.get("skipped", {}).items():
        print(f"skipped {v}: {why}")
    print(f"load average at end {os.getloadavg()}")


if __name__ == "__main__":
    sys.exit(main())
