"""GPU check of the PyTorch MLP trainable, Experiments-free: two Tune trials sharing one GPU.

Builds breast-cancer data with scikit-learn in the ``data`` shape
``Experiments.search`` passes (pandas frame, int labels, every feature kind
"number"), runs ``torch_mlp_trainable`` under ``tune.with_resources(...,
{"cpu": 1, "gpu": 0.5})`` for 2 trials of 5 epochs and prints, per trial, the
device it reported, CUDA_VISIBLE_DEVICES seen in the trial, its final F1 and
wall time.

Needs torch, ray 2.60, scikit-learn, pandas and numpy; not polars or
sqlite-utils. Importing ``workbench.experiments`` runs the package's
``__init__`` (which loads the lineage store, i.e. sqlite-utils), so where that
fails the script loads ``workbench/experiments/_torch.py`` alone and has Ray
pickle it by value, so the trial workers do not import the package either.
Run on the GPU machine (ray carried as in docs/benchmarks.md, "GPU check")::

    PYTHONPATH=/tmp/site:$PWD python3 bench/gpu_torch_check.py

On a machine without a GPU, ``--gpus 1`` declares a fake GPU resource and the
trials report ``cpu`` (they pick the device from torch, not from Ray).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import tempfile
import time
import types
from pathlib import Path

EPOCHS = 5


def load_torch_module() -> types.ModuleType:
    """``workbench.experiments._torch``; without sqlite-utils/polars, the module alone."""
    try:
        return importlib.import_module("workbench.experiments._torch")
    except ImportError as exc:
        print(f"workbench.experiments does not import here ({exc}); loading _torch.py alone")
    for name in [m for m in sys.modules if m.startswith("workbench.experiments")]:
        del sys.modules[name]
    import workbench  # light: only the version and exception classes

    pkg = types.ModuleType("workbench.experiments")
    pkg.__path__ = [str(Path(workbench.__file__).parent / "experiments")]
    sys.modules["workbench.experiments"] = pkg
    module = importlib.import_module("workbench.experiments._torch")
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(module)  # workers must not import the package
    return module


def breast_cancer_data(seed: int = 0) -> dict:
    import pandas as pd
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    X = pd.DataFrame(raw.data, columns=[c.replace(" ", "_") for c in raw.feature_names])
    return {
        "X": X,
        "y": raw.target.astype("int64"),
        "kinds": dict.fromkeys(X.columns, "number"),
        "classes": [str(c) for c in raw.target_names],
        "folds": 3,
        "seed": seed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpus", type=int, default=4)
    parser.add_argument(
        "--gpus", type=float, default=None, help="GPUs to declare (default: torch's count)"
    )
    parser.add_argument("--gpu-per-trial", type=float, default=0.5)
    args = parser.parse_args()

    t0 = time.perf_counter()
    mod = load_torch_module()
    import ray
    import torch
    from ray import tune

    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if cuda else ""
    print("torch", torch.__version__, "cuda available", cuda, name, "| ray", ray.__version__)
    if not cuda:
        print(
            "no CUDA GPU here: the trials train on the CPU (a check of the code path, not the GPU)"
        )
    gpus = args.gpus if args.gpus is not None else float(torch.cuda.device_count())
    ray.init(num_cpus=args.cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False)
    resources = {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}
    print("ray resources", resources)

    trainable = mod.torch_mlp_trainable

    data = breast_cancer_data()
    space = {
        "hidden": "64-32",
        "lr": tune.grid_search([1e-2, 3e-3]),
        "weight_decay": 1e-4,
        "batch_size": 32,
        "epochs": EPOCHS,
    }
    per_trial = {"cpu": 1, "gpu": args.gpu_per_trial if gpus else 0}
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_with_env(trainable), data=data), per_trial),
        param_space=space,
        tune_config=tune.TuneConfig(metric="f1", mode="max"),
        run_config=tune.RunConfig(
            name="gpu-torch-check",
            storage_path=tempfile.mkdtemp(prefix="gpu-torch-check-"),
            verbose=0,
        ),
    )
    t_fit = time.perf_counter()
    results = tuner.fit()
    fit_s = time.perf_counter() - t_fit
    for r in results:
        m = r.metrics or {}
        print(
            f"trial lr={r.config['lr']:g}: device={m.get('device')} "
            f"CUDA_VISIBLE_DEVICES={m.get('cuda_visible_devices')!r} gpu_ids={m.get('gpu_ids')} "
            f"epochs={m.get('training_iteration')} final F1={m.get('f1', float('nan')):.4f} "
            f"wall={m.get('time_total_s', float('nan')):.2f}s "
            f"(last epoch {m.get('time_this_iter_s', float('nan')):.3f}s) error={r.error}"
        )
    print(f"fit {fit_s:.1f}s, script {time.perf_counter() - t0:.1f}s")
    ray.shutdown()


def _with_env(trainable):
    """Wrap the trainable so each report also carries the trial's CUDA_VISIBLE_DEVICES and Ray GPU ids."""

    def run(config: dict, data: dict) -> None:
        import json

        import ray
        from ray import tune

        report = tune.report
        extra = {
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"),
            "gpu_ids": json.dumps([str(g) for g in ray.get_gpu_ids()]),
        }

        def report_with_env(metrics: dict, **kwargs) -> None:
            report({**metrics, **extra}, **kwargs)

        tune.report = report_with_env
        try:
            trainable(config, data)
        finally:
            tune.report = report

    return run


if __name__ == "__main__":
    main()
