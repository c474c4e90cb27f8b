"""The lifecycle as commands a CI pipeline runs: ``datasets ingest|validate``, ``search``,
``register``, ``gate``, ``promote``, ``deploy``, ``traffic``, ``rollback``, ``canary``. Each one
calls the public API; exit codes are in docs/cli.md (1: a gate, check or canary said no)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click

from workbench.cli._base import EXIT_NO, _bench, _errors, cli
from workbench.cli._commands import _report_text, datasets
from workbench.exceptions import DatasetValidationError

__all__: list[str] = []

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _out(as_json: bool, data: Any, text: str) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True, default=str) if as_json else text)


def _no(message: str) -> click.ClickException:
    """A one-line "no" (exit 1): the command ran and its answer is negative."""
    error = click.ClickException(message)
    error.exit_code = EXIT_NO
    return error


def _ref(ref: str, *, default: str | None = None) -> tuple[str, str]:
    """``MODEL@VERSION`` (or ``MODEL@ALIAS``; ``MODEL`` alone when ``default`` is given)."""
    model, sep, version = ref.partition("@")
    if not model or (sep and not version) or (not sep and default is None):
        raise click.BadParameter(
            "use MODEL@VERSION or MODEL@ALIAS, e.g. cancer@2 or cancer@champion",
            param_hint="MODEL@VERSION",
        )
    return model, version or str(default)


def _version(text: str) -> int | str:
    from workbench._numbers import is_int_text, parse_int

    try:
        return parse_int(text, "version", minimum=1) if is_int_text(text) else text
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="VERSION") from exc


def _load_file(path: str, what: str) -> Any:
    """A YAML or JSON file's content (JSON is YAML), or a usage error naming the file."""
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise click.BadParameter(f"cannot read {path}: {exc}", param_hint=what) from exc


def _space(path: str) -> dict[str, Any]:
    """A ``--space`` file as Tune's param_space: constants, ``{grid_search: [...]}`` and the
    project file's sampling domains (``{loguniform: [a, b]}``, ``{uniform: ...}``, ``{randint:
    ...}``, ``{lograndint: ...}``, ``{choice: [...]}``, ``{grid: [...]}``; docs/project-file.md)."""
    from workbench.project import to_tune

    space = _load_file(path, "--space")
    if not isinstance(space, dict):
        raise click.BadParameter("the space file must hold a mapping", param_hint="--space")
    return to_tune(space)


def _checks(path: str | None) -> Any:
    if path is None:
        return None
    from workbench.datasets import Checks

    return Checks.from_yaml(path)


# ------------------------------------------------------------------ datasets
@datasets.command("ingest")
@click.argument("source")
@click.option("--name", "-n", required=True, help="Dataset name (a new version of it).")
@click.option("--target", "-t", default=None, help="Target column.")
@click.option("--checks", "checks_file", default=None, metavar="FILE", help="Checks YAML.")
@click.option("--on-error", type=click.Choice(["reject", "quarantine"]), default="reject")
@_JSON
@click.pass_context
@_errors
def datasets_ingest(
    ctx: click.Context,
    source: str,
    name: str,
    target: str | None,
    checks_file: str | None,
    on_error: str,
    as_json: bool,
) -> None:
    """Read SOURCE (a path or URI), validate it and record it as the next version of NAME; exit 1
    when an error check fails (nothing recorded)."""
    with _bench(ctx) as bench:
        try:
            dv = bench.datasets.ingest(
                source,
                name=name,
                target=target,
                checks=_checks(checks_file),
                on_error=on_error,
            )
        except DatasetValidationError as exc:
            raise _no(str(exc).splitlines()[0]) from exc
    row = dv.summary()
    row["created"] = dv.created
    if dv.quarantined is not None:
        row["quarantined"] = dv.quarantined.summary()
    new = "recorded" if dv.created else "unchanged: the same content is"
    _out(as_json, row, f"{new} {dv} ({dv.n_rows} rows x {len(dv.schema)} columns)")


@datasets.command("validate")
@click.argument("source")
@click.option("--target", "-t", default=None, help="Target column.")
@click.option("--checks", "checks_file", default=None, metavar="FILE", help="Checks YAML.")
@_JSON
@click.pass_context
@_errors
def datasets_validate(
    ctx: click.Context, source: str, target: str | None, checks_file: str | None, as_json: bool
) -> None:
    """Run the checks on SOURCE without recording anything; exit 1 when an error check fails."""
    from workbench.datasets import Checks, as_source, validate

    checks = _checks(checks_file) or Checks(target=target)
    if checks.target is None:
        checks.target = target
    frame = as_source(source).fetch({}).frame
    report = validate(frame, checks)
    failed = [r for r in report if not r["passed"] and r["severity"] == "error"]
    _out(
        as_json,
        {"source": source, "rows": frame.height, "passed": not failed, "validation": report},
        f"{source}: {frame.height} rows, {len(report) - len(failed)} of {len(report)} checks "
        f"without an error\n{_report_text(report)}",
    )
    if failed:
        ctx.exit(EXIT_NO)


# -------------------------------------------------------------------- search
@cli.command()
@click.argument("dataset", metavar="DATASET[@VERSION]")
@click.option("--name", "-n", default=None, help="Experiment name (default: the dataset's name).")
@click.option("--space", "space_file", default=None, metavar="FILE", help="Search space YAML/JSON.")
@click.option("--metric", default=None, help="Metric to optimise (default f1 / r2).")
@click.option("--mode", type=click.Choice(["max", "min"]), default=None)
@click.option("--num-samples", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--folds", default=3, show_default=True, type=click.IntRange(min=2))
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--search-alg", default="random", show_default=True, help="random, grid, optuna...")
@click.option("--scheduler", default="fifo", show_default=True, help="fifo, asha, hyperband...")
@click.option("--cpus-per-trial", default=None, type=click.FloatRange(min=0, min_open=True))
@click.option("--time-budget-s", default=None, type=click.FloatRange(min=0, min_open=True))
@click.option("--wait/--no-wait", default=True, show_default=True, help="Block until it ends.")
@click.option("--log", default=None, metavar="FILE", help="With --no-wait: the search's log.")
@_JSON
@click.pass_context
@_errors
def search(
    ctx: click.Context,
    dataset: str,
    name: str | None,
    space_file: str | None,
    metric: str | None,
    mode: str | None,
    num_samples: int,
    folds: int,
    seed: int,
    search_alg: str,
    scheduler: str,
    cpus_per_trial: float | None,
    time_budget_s: float | None,
    wait: bool,
    log: str | None,
    as_json: bool,
) -> None:
    """Search models and hyperparameters on DATASET with Ray Tune; with --no-wait the search runs
    on in a detached process and the command prints its experiment id once it is recorded."""
    space = _space(space_file) if space_file else None
    if not wait:
        _detach(ctx, log, as_json)
        return
    with _bench(ctx) as bench:
        dv = bench.datasets.resolve(dataset)
        handle = bench.experiments.start_search(
            dv,
            name=name or dv.name,
            space=space,
            metric=metric,
            mode=mode,
            num_samples=num_samples,
            folds=folds,
            seed=seed,
            search_alg=search_alg,
            scheduler=scheduler,
            cpus_per_trial=cpus_per_trial,
            time_budget_s=time_budget_s,
            progress=None,
        )
        click.echo(f"experiment {handle.experiment_id} started", err=True)
        result = handle.wait()
    out = {k: v for k, v in dataclasses.asdict(result).items() if k != "trials"}
    out["n_trials"] = len(result.trials)
    _out(
        as_json,
        out,
        f"experiment {result.experiment_id} finished: best trial {result.best_trial_id} "
        + json.dumps(result.best_metrics, sort_keys=True),
    )


def _detach(ctx: click.Context, log: str | None, as_json: bool) -> None:
    """Re-run this very command with --wait in a detached process; print its experiment id."""
    argv = [*_root_args(ctx.find_root()), *_command_args(ctx)]
    path = Path(log) if log else Path(f"workbench-search-{os.getpid()}-{int(time.time())}.log")
    with open(path, "w") as f:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from workbench.cli import main; main(sys.argv[1:])"]
            + argv,
            stdout=f,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = path.read_text()
        for line in text.splitlines():
            if line.startswith("experiment ") and line.endswith(" started"):
                exp = int(line.split()[1])
                _out(
                    as_json,
                    {"experiment_id": exp, "pid": proc.pid, "log": str(path.resolve())},
                    f"experiment {exp} running in process {proc.pid} (log {path}); "
                    f"follow it with `workbench runs {exp}`",
                )
                return
        if proc.poll() is not None:
            last = (text.strip().splitlines() or ["(no output)"])[-1]
            raise click.ClickException(f"the search did not start: {last} (log {path})")
        time.sleep(0.2)
    raise click.ClickException(f"the search recorded no experiment in 300 s; see {path}")


def _root_args(root: click.Context) -> list[str]:
    home = root.obj.get("home") if root.obj else None
    return ["--home", str(Path(home).resolve())] if home else []


def _command_args(ctx: click.Context) -> list[str]:
    """This ``search`` invocation's arguments, as click parsed them, with --wait."""
    p = ctx.params
    argv = ["search", p["dataset"], "--wait", "--num-samples", str(p["num_samples"])]
    argv += ["--folds", str(p["folds"]), "--seed", str(p["seed"])]
    argv += ["--search-alg", p["search_alg"], "--scheduler", p["scheduler"]]
    for opt in ("name", "metric", "mode", "cpus_per_trial", "time_budget_s"):
        if p[opt] is not None:
            argv += [f"--{opt.replace('_', '-')}", str(p[opt])]
    if p["space_file"]:
        argv += ["--space", str(Path(p["space_file"]).resolve())]
    return argv


# ------------------------------------------------------------------ registry
@cli.command()
@click.argument("experiment_id", type=click.IntRange(min=1))
@click.option("--model", "-m", required=True, help="Model name (its next version).")
@click.option("--train", required=True, metavar="DATASET[@VERSION]", help="Data to refit on.")
@click.option("--holdout", required=True, metavar="DATASET[@VERSION]", help="Data to score on.")
@click.option("--alias", default=None, help="Alias to set on the new version (e.g. champion).")
@click.option("--sensitive", multiple=True, metavar="COLUMN", help="Per-group figures (repeat).")
@click.option("--seed", default=0, show_default=True, type=int)
@_JSON
@click.pass_context
@_errors
def register(
    ctx: click.Context,
    experiment_id: int,
    model: str,
    train: str,
    holdout: str,
    alias: str | None,
    sensitive: tuple[str, ...],
    seed: int,
    as_json: bool,
) -> None:
    """Refit EXPERIMENT_ID's best trial on --train, score it on --holdout, register it."""
    with _bench(ctx) as bench:
        mv = bench.register_best(
            bench.stages.search_result(experiment_id),
            model=model,
            train=bench.datasets.resolve(train),
            holdout=bench.datasets.resolve(holdout),
            alias=alias,
            seed=seed,
            sensitive_features=sensitive,
        )
    _out(as_json, dataclasses.asdict(mv), f"registered {mv} {json.dumps(mv.metrics)}")


@cli.command()
@click.argument("challenger", metavar="MODEL@VERSION")
@click.option("--against", default="champion", show_default=True, help="Version or alias.")
@click.option("--holdout", default=None, metavar="DATASET[@VERSION]", help="Default: recorded.")
@click.option("--metric", default="f1", show_default=True)
@click.option("--margin", default=0.0, show_default=True, type=float, help="Gain needed.")
@click.option("--test", type=click.Choice(["none", "paired_bootstrap", "mcnemar"]), default="none")
@click.option("--alpha", default=0.05, show_default=True, type=float)
@click.option("--guard", multiple=True, metavar="METRIC", help="Metric not to lose (repeat).")
@click.option("--tolerance", default=0.0, show_default=True, type=float)
@click.option("--min-samples", default=100, show_default=True, type=click.IntRange(min=1))
@_JSON
@click.pass_context
@_errors
def gate(
    ctx: click.Context,
    challenger: str,
    against: str,
    holdout: str | None,
    metric: str,
    margin: float,
    test: str,
    alpha: float,
    guard: tuple[str, ...],
    tolerance: float,
    min_samples: int,
    as_json: bool,
) -> None:
    """Judge a registered version against --against on the same holdout rows; exit 1 when it does
    not pass (the step a pipeline blocks on). Nothing is recorded."""
    from workbench.automation import Gate

    model, version = _ref(challenger)
    rule = Gate(
        metric,
        margin=margin,
        guarded=guard,
        tolerance=tolerance,
        test=None if test == "none" else test,
        alpha=alpha,
        min_samples=min_samples,
    )
    with _bench(ctx) as bench:
        verdict = bench.automation.gate(
            model, _version(version), against=_version(against), holdout=holdout, gate=rule
        )
    _out(
        as_json,
        verdict.as_dict(),
        f"{'PASSED' if verdict.passed else 'FAILED'}: {verdict.reason}",
    )
    if not verdict.passed:
        ctx.exit(EXIT_NO)


@cli.command()
@click.argument("ref", metavar="MODEL@VERSION")
@click.option("--alias", default="champion", show_default=True)
@click.option("--reason", default="", help="Recorded with the change.")
@_JSON
@click.pass_context
@_errors
def promote(ctx: click.Context, ref: str, alias: str, reason: str, as_json: bool) -> None:
    """Point --alias (champion) of MODEL at VERSION (MODEL@ALIAS: the version it names)."""
    model, version = _ref(ref)
    with _bench(ctx) as bench:
        number = bench.registry.get(model, _version(version)).version
        mv = bench.registry.set_alias(model, alias, number, reason=reason or "workbench promote")
    _out(as_json, dataclasses.asdict(mv), f"{model}@{alias} -> version {mv.version}")


# ------------------------------------------------------------------- serving
@cli.command()
@click.argument("ref", metavar="MODEL[@VERSION]")
@click.option("--name", default=None, help="Deployment name (default: the model's).")
@click.option("--route-prefix", default=None, help="HTTP route (default /NAME).")
@click.option("--num-replicas", default=None, type=click.IntRange(min=1))
@click.option("--num-cpus", default=0.5, show_default=True, type=click.FloatRange(min=0))
@click.option("--num-gpus", default=0.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--reason", default="initial deployment", show_default=True)
@_JSON
@click.pass_context
@_errors
def deploy(
    ctx: click.Context,
    ref: str,
    name: str | None,
    route_prefix: str | None,
    num_replicas: int | None,
    num_cpus: float,
    num_gpus: float,
    reason: str,
    as_json: bool,
) -> None:
    """Serve a model version (default its champion) with 100% of traffic, on Ray Serve at
    $RAY_ADDRESS (a cluster that outlives this command) and port $WORKBENCH_SERVE_PORT."""
    model, version = _ref(ref, default="champion")
    with _bench(ctx) as bench:
        info = dict(
            bench.serving.deploy(
                model,
                _version(version),
                name=name,
                route_prefix=route_prefix,
                num_replicas=num_replicas,
                num_cpus=num_cpus,
                num_gpus=num_gpus,
                reason=reason,
            )
        )
    _out(as_json, info, f"deployed {info.get('name')} at {info.get('url', '')}".rstrip())


def _weights(pairs: tuple[str, ...]) -> dict[int, float]:
    from workbench._numbers import parse_float, parse_int
    from workbench.exceptions import WorkbenchError

    out: dict[int, float] = {}
    for pair in pairs:
        version, sep, share = pair.partition("=")
        try:
            if not sep:
                raise ValueError("no '='")
            out[parse_int(version, "version", minimum=1)] = parse_float(share, "share")
        except (ValueError, WorkbenchError) as exc:
            raise click.BadParameter(
                f"{pair!r}: use VERSION=SHARE, e.g. 1=0.9 2=0.1 ({exc})", param_hint="WEIGHTS"
            ) from exc
    return out


@cli.command()
@click.argument("name")
@click.argument("weights", nargs=-1, required=True, metavar="VERSION=SHARE...")
@click.option("--reason", default="", help="Recorded with the change.")
@_JSON
@click.pass_context
@_errors
def traffic(
    ctx: click.Context, name: str, weights: tuple[str, ...], reason: str, as_json: bool
) -> None:
    """Split deployment NAME's traffic, e.g. `workbench traffic cancer 1=0.9 2=0.1`."""
    split = _weights(weights)
    with _bench(ctx) as bench:
        applied = bench.serving.set_traffic(name, split, reason=reason or "workbench traffic")
    _out(
        as_json,
        {str(k): v for k, v in applied.items()},
        f"{name}: " + ", ".join(f"v{k} {v:.0%}" for k, v in sorted(applied.items())),
    )


@cli.command()
@click.argument("name")
@click.option("--to", "to_version", default=None, type=click.IntRange(min=1), help="Version.")
@click.option("--reason", default="rollback", show_default=True)
@_JSON
@click.pass_context
@_errors
def rollback(
    ctx: click.Context, name: str, to_version: int | None, reason: str, as_json: bool
) -> None:
    """All of NAME's traffic back to the last known good version (or --to VERSION)."""
    with _bench(ctx) as bench:
        applied = bench.serving.rollback(name, to_version=to_version, reason=reason)
    _out(
        as_json,
        {str(k): v for k, v in applied.items()},
        f"{name}: " + ", ".join(f"v{k} {v:.0%}" for k, v in sorted(applied.items()) if v),
    )


@cli.command()
@click.argument("name")
@click.argument("challenger", type=click.IntRange(min=1))
@click.option("--champion", default=None, type=click.IntRange(min=1), help="Default: most traffic.")
@click.option("--steps", default="0.1,0.5,1.0", show_default=True, help="Challenger shares.")
@click.option("--min-requests", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--max-error-rate", default=0.02, show_default=True, type=float)
@click.option("--max-accuracy-drop", default=0.05, show_default=True, type=float)
@click.option("--min-labels", default=30, show_default=True, type=click.IntRange(min=1))
@click.option("--poll-s", default=5.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--max-rounds", default=60, show_default=True, type=click.IntRange(min=1))
@_JSON
@click.pass_context
@_errors
def canary(
    ctx: click.Context,
    name: str,
    challenger: int,
    champion: int | None,
    steps: str,
    min_requests: int,
    max_error_rate: float,
    max_accuracy_drop: float,
    min_labels: int,
    poll_s: float,
    max_rounds: int,
    as_json: bool,
) -> None:
    """Roll CHALLENGER out on NAME step by step (CanaryRollout), judging each step on live
    traffic every --poll-s; exit 0 when it completes, 1 when it was rolled back (a failed check,
    or still unfinished after --max-rounds: then traffic goes back to the champion)."""
    from workbench._numbers import parse_float
    from workbench.serving import CanaryRollout

    try:
        shares = tuple(parse_float(s.strip(), "share") for s in steps.split(",") if s.strip())
    except ValueError as exc:
        raise click.BadParameter(f"{exc}; e.g. 0.1,0.5,1.0", param_hint="--steps") from exc
    with _bench(ctx) as bench:
        if champion is None:
            current = bench.serving.traffic(name)
            champion = max(current, key=lambda v: current[v])
        rollout = CanaryRollout(
            bench.serving,
            name,
            champion,
            challenger,
            steps=shares,
            max_error_rate=max_error_rate,
            min_requests=min_requests,
            max_accuracy_drop=max_accuracy_drop,
            min_labels=min_labels,
        )
        rollout.start()
        state = "running"
        for _ in range(max_rounds):
            time.sleep(poll_s)
            state = rollout.advance()
            if not as_json:
                click.echo(f"step {rollout.step + 1}/{len(rollout.schedule)}: {state}", err=True)
            if state in ("completed", "rolled_back"):
                break
        else:
            bench.serving.rollback(
                name,
                to_version=champion,
                reason=f"canary of v{challenger} unfinished after {max_rounds} rounds",
            )
            state = "rolled_back"
        weights = bench.serving.traffic(name)
    _out(
        as_json,
        {"state": state, "champion": champion, "challenger": challenger, "weights": weights},
        f"canary of v{challenger} on {name}: {state}; traffic "
        + ", ".join(f"v{k} {v:.0%}" for k, v in sorted(weights.items()) if v),
    )
    if state != "completed":
        ctx.exit(EXIT_NO)
