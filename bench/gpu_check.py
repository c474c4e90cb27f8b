"""GPU check for a lent accelerator machine: workbench's Ray connection, Tune trials with fractional
GPU resources, torch on CUDA chosen from torch (not assumed), and what Tune does with a trial that
asks for more GPUs than the cluster has.

It needs only torch (present on the GPU image) and ray 2.60. The ray wheel for Python 3.12 is 79 MB,
over the device tool's 64 MiB carry limit, so it travels in two parts over two calls to a warm
machine (see docs/benchmarks.md, "GPU check"). Run there as::

    PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_check.py
"""

from __future__ import annotations

import json
import os
import time

import torch
from ray import tune

from workbench.runtime import connect


def trainable(config: dict) -> None:
    import ray

    dev = torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    g = torch.Generator(device=dev).manual_seed(config["seed"])
    x = torch.randn(2048, 64, device=dev, generator=g)
    w = torch.zeros(64, 1, device=dev, requires_grad=True)
    y = (x[:, :1] > 0).float()
    opt = torch.optim.SGD([w], lr=0.1)
    for epoch in range(3):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        tune.report(
            {
                "loss": float(loss),
                "epoch": epoch,
                "device": str(dev),
                "gpu_ids": json.dumps(ray.get_gpu_ids()),
                "cvd": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            }
        )


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA GPU here (torch.cuda.is_available() is False): run this on a lent GPU "
            'machine (docs/benchmarks.md, "GPU check")'
        )
    t0 = time.time()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""
    print("torch", torch.__version__, "cuda available", torch.cuda.is_available(), name)
    conn = connect(num_cpus=4, num_gpus=1)
    import ray

    resources = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    print("ray", ray.__version__, "resources", resources, "started_here", conn.started_here)
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1, "gpu": 0.5}),
        param_space={"seed": tune.grid_search([0, 1, 2, 3])},
        tune_config=tune.TuneConfig(
            metric="loss", mode="min", reuse_actors=True, max_concurrent_trials=2
        ),
        run_config=tune.RunConfig(storage_path="/tmp/wb-tune", verbose=0),
    )
    t1 = time.time()
    for r in tuner.fit():
        m = r.metrics
        print(
            "trial",
            m["trial_id"],
            "device",
            m["device"],
            "gpu_ids",
            m["gpu_ids"],
            "CUDA_VISIBLE_DEVICES",
            m["cvd"],
            "loss",
            round(m["loss"], 4),
            "error",
            r.error,
        )
    print(f"tune: 4 trials x 0.5 GPU in {time.time() - t1:.1f}s")
    t2 = time.time()
    over = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1, "gpu": 2}),
        param_space={"seed": 0},
        tune_config=tune.TuneConfig(time_budget_s=20),
        run_config=tune.RunConfig(storage_path="/tmp/wb-tune", verbose=0),
    )
    res = over.fit()
    print(
        "gpu=2 on a 1-GPU cluster:",
        [(x.error, x.metrics.get("device")) for x in res],
        f"{time.time() - t2:.1f}s",
    )
    conn.shutdown()
    print(f"total {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
