"""Entrypoint of a retrain job submitted as a Ray Job: ``python -m workbench.automation.run_job``.

It runs on the head node (the submission asks for Ray's head-only resource), where the
lineage store is, and runs exactly the pipeline the inline path runs for that job, recording
its steps in the store. Exit status 0 when the job reached a decision, 1 when it ended FAILED
(so Ray's status says so too), 2 when the job was not one to run here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workbench.automation.run_job")
    parser.add_argument("--home", required=True, help="WORKBENCH_HOME of the lineage store")
    parser.add_argument("--job-id", required=True, type=int, help="the retrain job's id")
    args = parser.parse_args(argv)

    from workbench._version import __version__
    from workbench.automation._engine import Engine
    from workbench.exceptions import WorkbenchError
    from workbench.stages import Stages
    from workbench.status import JobStatus

    # which copy runs: the runtime_env's py_modules (the submitter's code) or the image's install
    print(f"workbench {__version__} from {Path(__file__).resolve().parents[1]}", flush=True)
    stages = Stages.open(args.home)
    try:
        job = stages.store.retraining.get_job(args.job_id)
        engine = Engine(stages, runner=f"ray_job:{job.get('ray_job_id')}")
        try:
            out = engine.execute_submitted(args.job_id)
        except WorkbenchError as exc:
            print(f"workbench: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(out, default=str))
        return 1 if out.get("status") == JobStatus.FAILED else 0
    finally:
        stages.close()


if __name__ == "__main__":
    sys.exit(main())
