"""GPU check of the whole tracked path: ``Workbench.experiments.search`` with the torch MLP on CUDA.

Unlike ``gpu_torch_check.py`` (Tune alone), this goes through the public API
a user calls: ingest the breast-cancer CSV into a store, run a search of
``torch_mlp_trainable`` with ``resources={"cpu": 1, "gpu": 0.5}`` (two trials
share the GPU), then read back from the store what was recorded for each
trial (status, resources, node, attempts, F1, checkpoint) and the device the
trial trained on (from its checkpoint's ``meta.json``). Prints one JSON
document and writes it to ``--out``. Run on a machine with a GPU::

    python bench/gpu_search_check.py --out /tmp/gpu_search.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--trials", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA GPU here (torch.cuda.is_available() is False): run this on a lent GPU "
            'machine (docs/benchmarks.md, "GPU check")'
        )
    from ray import tune

    from workbench import Workbench
    from workbench.datasets import write_breast_cancer_csv
    from workbench.experiments import torch_mlp_trainable

    home = Path(tempfile.mkdtemp(prefix="wb-gpu-"))
    out: dict = {
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    with Workbench(home) as wb:
        dv = wb.datasets.ingest(
            write_breast_cancer_csv(home / "bc.csv"), name="bc", target="diagnosis"
        )
        t0 = time.perf_counter()
        result = wb.experiments.search(
            dv,
            name="torch-gpu",
            trainable=torch_mlp_trainable,
            space={
                "hidden": "64-32",
                "lr": tune.grid_search([3e-3, 1e-2][: args.trials]),
                "weight_decay": 1e-4,
                "batch_size": 64,
                "epochs": args.epochs,
            },
            max_steps=args.epochs,
            num_samples=1,
            resources={"cpu": 1, "gpu": 0.5},
            progress=None,
        )
        out["search_s"] = round(time.perf_counter() - t0, 2)
        out["best_f1"] = result.best_metrics.get("f1")
        trials = []
        for t in wb.experiments.trials(result.experiment_id):
            meta = None
            if t.get("checkpoint_path"):
                path = Path(t["checkpoint_path"]) / "meta.json"
                meta = json.loads(path.read_text()) if path.exists() else None
            steps = wb.store.experiments.list_trial_metrics(result.experiment_id, t["trial_id"])
            trials.append(
                {
                    "trial_id": t["trial_id"],
                    "lr": t["config"]["lr"],
                    "status": t["status"],
                    "resources": t["resources"],
                    "node": t["node"],
                    "attempts": t["attempts"],
                    "epochs_recorded": len({m["step"] for m in steps}),
                    "f1": t["metrics"].get("f1"),
                    "duration_s": t["duration_s"],
                    "checkpoint_meta": meta,
                }
            )
        out["trials"] = trials
    text = json.dumps(out, indent=2, default=str)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
