"""Operating what runs: ``monitors add|check|list``, ``policies add|list|disable``,
``jobs list|approve|reject``, ``scheduler start|stop|status``. Each one calls the public API;
exit codes are in docs/cli.md (1: a monitor found something)."""

from __future__ import annotations

import json
from typing import Any

import click

from workbench.cli._base import EXIT_NO, _bench, _emit, _errors, cli

__all__: list[str] = []

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
#: A window's verdicts that are findings (the rest: ok, or bad input that is only recorded).
FINDINGS = ("drift", "degraded", "breach")


def _window(text: str) -> int | str:
    """``100`` records, or a duration such as ``15min``."""
    from workbench._numbers import is_int_text, parse_int

    try:
        return parse_int(text, "window", minimum=1) if is_int_text(text) else text
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--window") from exc


# ------------------------------------------------------------------ monitors
@cli.group()
def monitors() -> None:
    """Monitors of deployments: add one, check their new windows, list them."""


@monitors.command("add")
@click.argument("kind", type=click.Choice(["drift", "prediction", "operational"]))
@click.argument("deployment")
@click.option("--name", default=None, help="Default: DEPLOYMENT-KIND.")
@click.option("--window", default=None, help="Records per window (100) or a duration (15min).")
@click.option("--p-val", default=0.05, show_default=True, type=float, help="drift, prediction.")
@click.option(
    "--backend", type=click.Choice(["alibi", "scipy"]), default="scipy", show_default=True
)
@click.option("--feature", "features", multiple=True, help="drift: only these (repeat).")
@click.option("--max-p99-ms", default=None, type=float, help="operational bound.")
@click.option("--max-error-rate", default=None, type=float, help="operational bound.")
@click.option("--min-rows", default=None, type=click.IntRange(min=1))
@_JSON
@click.pass_context
@_errors
def monitors_add(
    ctx: click.Context,
    kind: str,
    deployment: str,
    name: str | None,
    window: str | None,
    p_val: float,
    backend: str,
    features: tuple[str, ...],
    max_p99_ms: float | None,
    max_error_rate: float | None,
    min_rows: int | None,
    as_json: bool,
) -> None:
    """Create (or update) a KIND monitor on DEPLOYMENT's logged requests."""
    options: dict[str, Any] = {"name": name}
    if window is not None:
        options["window"] = _window(window)
    with _bench(ctx) as bench:
        m = bench.monitoring
        if kind == "drift":
            m.drift_monitor(
                deployment,
                p_val=p_val,
                backend=backend,
                features=list(features) or None,
                min_rows=min_rows,
                **options,
            )
        elif kind == "prediction":
            m.prediction_monitor(
                deployment, p_val=p_val, backend=backend, min_rows=min_rows, **options
            )
        else:
            extra = {"min_rows": min_rows} if min_rows else {}
            m.operational_monitor(
                deployment,
                max_p99_ms=max_p99_ms,
                max_error_rate=max_error_rate,
                **extra,
                **options,
            )
        record = m.record(name or f"{deployment}-{kind}")
    click.echo(
        json.dumps(record, indent=2, sort_keys=True, default=str)
        if as_json
        else f"monitor {record['name']} ({record['kind']}) on {record['deployment']}"
    )


@monitors.command("list")
@click.argument("deployment", required=False)
@_JSON
@click.pass_context
@_errors
def monitors_list(ctx: click.Context, deployment: str | None, as_json: bool) -> None:
    """Every monitor (of DEPLOYMENT)."""
    with _bench(ctx) as bench:
        rows = bench.monitoring.list(deployment)
    _emit(rows, ["name", "deployment", "kind", "config", "created_at"], as_json)


@monitors.command("check")
@click.argument("name", required=False)
@_JSON
@click.pass_context
@_errors
def monitors_check(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Test the new complete windows of monitor NAME (else every monitor); exit 1 when a window
    shows drift, degradation or a breach, or a monitor failed."""
    with _bench(ctx) as bench:
        if name is not None:
            results = {name: bench.monitoring.get(name).check()}
        else:
            results = bench.monitoring.check_all()
    bad = [
        (n, r)
        for n, rows in results.items()
        for r in rows
        if r.get("verdict") in (*FINDINGS, "error")
    ]
    if as_json:
        click.echo(json.dumps(results, indent=2, sort_keys=True, default=str))
    else:
        for n, rows in results.items():
            verdicts = [str(r.get("verdict")) for r in rows]
            click.echo(
                f"{n}: {len(rows)} new window(s)" + (f": {', '.join(verdicts)}" if rows else "")
            )
    if bad:
        ctx.exit(EXIT_NO)


# ------------------------------------------------------------------ policies
@cli.group()
def policies() -> None:
    """Retraining policies: add one, list them, disable one."""


@policies.command("add")
@click.argument("name")
@click.option("--model", "-m", required=True, help="Registered model whose champion it retrains.")
@click.option("--deployment", "-d", required=True, help="Deployment serving it.")
@click.option("--train", required=True, help="Training dataset name (latest version used).")
@click.option(
    "--holdout",
    default=None,
    help="Holdout dataset name (latest version used); default: each job holds out its own share "
    "of the labelled requests.",
)
@click.option(
    "--holdout-fraction",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
@click.option(
    "--triage/--no-triage",
    default=True,
    show_default=True,
    help="Retrain only when the drift is estimated to hurt the champion.",
)
@click.option(
    "--since-change/--all-data",
    default=True,
    show_default=True,
    help="Train on the labelled requests since the estimated change point.",
)
@click.option("--drift", "drift_monitors", multiple=True, metavar="MONITOR", help="Trigger.")
@click.option("--cron", "crons", multiple=True, metavar="EXPR", help="Trigger on a schedule.")
@click.option("--cooldown-s", default=3600.0, show_default=True, type=click.FloatRange(min=0))
@click.option("--max-per-day", default=None, type=click.IntRange(min=1), help="Budget.")
@click.option("--approval/--no-approval", default=False, show_default=True)
@click.option("--canary/--no-canary", default=True, show_default=True)
@click.option("--metric", default="f1", show_default=True, help="The gate's metric.")
@click.option("--margin", default=0.0, show_default=True, type=float, help="The gate's margin.")
@click.option("--num-samples", default=2, show_default=True, type=click.IntRange(min=1))
@click.option("--disabled", is_flag=True, help="Store it disabled.")
@_JSON
@click.pass_context
@_errors
def policies_add(
    ctx: click.Context,
    name: str,
    model: str,
    deployment: str,
    train: str,
    holdout: str | None,
    holdout_fraction: float,
    triage: bool,
    since_change: bool,
    drift_monitors: tuple[str, ...],
    crons: tuple[str, ...],
    cooldown_s: float,
    max_per_day: int | None,
    approval: bool,
    canary: bool,
    metric: str,
    margin: float,
    num_samples: int,
    disabled: bool,
    as_json: bool,
) -> None:
    """Store retraining policy NAME (replacing one of that name)."""
    from workbench.automation import Budget, DriftTrigger, Gate, LoopPolicy, ScheduleTrigger

    policy = LoopPolicy(
        name,
        model=model,
        deployment=deployment,
        train=train,
        holdout=holdout,
        holdout_fraction=holdout_fraction,
        triage=triage,
        since_change=since_change,
        triggers=[*(DriftTrigger(m) for m in drift_monitors), *(ScheduleTrigger(c) for c in crons)],
        cooldown_s=cooldown_s,
        budget=Budget(max_per_day=max_per_day) if max_per_day else Budget(),
        approval=approval,
        canary=canary,
        gate=Gate(metric, margin=margin),
        num_samples=num_samples,
    )
    with _bench(ctx) as bench:
        bench.automation.add_policy(policy, enabled=not disabled)
    click.echo(
        json.dumps(policy.to_dict(), indent=2, sort_keys=True)
        if as_json
        else f"policy {name}: retrains {model} for {deployment}"
        + ("" if not disabled else " (disabled)")
    )


@policies.command("list")
@_JSON
@click.pass_context
@_errors
def policies_list(ctx: click.Context, as_json: bool) -> None:
    """Stored policies with their state."""
    with _bench(ctx) as bench:
        rows = bench.automation.policies()
    _emit(rows, ["name", "enabled", "config", "updated_at"], as_json)


@policies.command("disable")
@click.argument("name")
@click.pass_context
@_errors
def policies_disable(ctx: click.Context, name: str) -> None:
    """Disable policy NAME (kept, no longer evaluated)."""
    with _bench(ctx) as bench:
        bench.automation.disable_policy(name)
    click.echo(f"policy {name} disabled")


# ---------------------------------------------------------------------- jobs
@cli.group()
def jobs() -> None:
    """Retraining jobs: list them, approve or reject one waiting for a person."""


@jobs.command("list")
@click.option("--policy", default=None, help="Only this policy's jobs.")
@click.option("--pending", is_flag=True, help="Only jobs waiting for approval.")
@_JSON
@click.pass_context
@_errors
def jobs_list(ctx: click.Context, policy: str | None, pending: bool, as_json: bool) -> None:
    """Retraining jobs, oldest first."""
    with _bench(ctx) as bench:
        rows = bench.automation.pending() if pending else bench.automation.jobs(policy)
    if pending and policy:
        rows = [r for r in rows if r.get("policy") == policy]
    _emit(rows, ["id", "policy", "status", "decision", "started_at", "ended_at"], as_json)


def _decide(ctx: click.Context, job_id: int, reason: str, as_json: bool, approve: bool) -> None:
    with _bench(ctx) as bench:
        auto = bench.automation
        job = (auto.approve if approve else auto.reject)(job_id, reason=reason)
    click.echo(
        json.dumps(job, indent=2, sort_keys=True, default=str)
        if as_json
        else f"job {job_id}: {job.get('status')}"
    )


@jobs.command("approve")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--reason", default="", help="Recorded with the decision.")
@_JSON
@click.pass_context
@_errors
def jobs_approve(ctx: click.Context, job_id: int, reason: str, as_json: bool) -> None:
    """Let a job waiting for approval run (approver role; four-eyes: not its policy's author)."""
    _decide(ctx, job_id, reason, as_json, approve=True)


@jobs.command("reject")
@click.argument("job_id", type=click.IntRange(min=1))
@click.option("--reason", default="", help="Recorded with the decision.")
@_JSON
@click.pass_context
@_errors
def jobs_reject(ctx: click.Context, job_id: int, reason: str, as_json: bool) -> None:
    """End a job waiting for approval without running it."""
    _decide(ctx, job_id, reason, as_json, approve=False)


# ----------------------------------------------------------------- scheduler
@cli.group()
def scheduler() -> None:
    """The detached scheduler actor that evaluates the policies every interval (on the Ray
    cluster at $RAY_ADDRESS: a private local Ray ends with the command)."""


@scheduler.command("start")
@click.option("--interval-s", default=60.0, show_default=True, type=click.FloatRange(min=1))
@click.option("--namespace", default=None, help="Ray namespace (default the workbench's).")
@click.pass_context
@_errors
def scheduler_start(ctx: click.Context, interval_s: float, namespace: str | None) -> None:
    """Start (or find) the scheduler."""
    with _bench(ctx) as bench:
        bench.automation.start_scheduler(interval_s=interval_s, namespace=namespace)
    click.echo(f"scheduler running, every {interval_s:g} s")


@scheduler.command("stop")
@click.option("--namespace", default=None, help="Ray namespace (default the workbench's).")
@click.pass_context
@_errors
def scheduler_stop(ctx: click.Context, namespace: str | None) -> None:
    """Stop the scheduler after its current tick."""
    with _bench(ctx) as bench:
        stopped = bench.automation.stop_scheduler(namespace=namespace)
    click.echo("scheduler stopped" if stopped else "no scheduler was running")


@scheduler.command("status")
@click.option("--namespace", default=None, help="Ray namespace (default the workbench's).")
@_JSON
@click.pass_context
@_errors
def scheduler_status(ctx: click.Context, namespace: str | None, as_json: bool) -> None:
    """Whether the scheduler runs, its last tick as stored, and the jobs by status."""
    with _bench(ctx) as bench:
        info = bench.automation.scheduler_status(namespace=namespace)
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True, default=str))
    else:
        click.echo(f"running  {info['running']}")
        click.echo(f"stored   {json.dumps(info['stored'], default=str)}")
        click.echo(f"jobs     {json.dumps(info['jobs'], default=str)}")
