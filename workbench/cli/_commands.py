"""The reading commands and ``demo``, ``resume``, ``reproduce``, ``serve-config``, ``report`` and
``datasets``: each one calls the public API."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import click

from workbench.cli._base import _bench, _cell, _emit, _errors, cli

__all__: list[str] = []


@cli.command()
@click.option("--samples", default=2, show_default=True, help="Tune samples per model family.")
@click.option("--port", default=None, type=int, help="HTTP port for Ray Serve (default 8000).")
@click.pass_context
@_errors
def demo(ctx: click.Context, samples: int, port: int | None) -> None:
    """Run the quickstart notebook on bundled data: ingest → tune → serve → drift → retrain → canary → lineage."""
    import logging

    import ray.serve  # noqa: F401  (configures its driver logger at import; quiet it afterwards)

    from workbench.demo import run_demo

    # keep Serve's INFO chatter out of the story the demo tells
    logging.getLogger("ray.serve").setLevel(logging.WARNING)

    run_demo(ctx.obj.get("home"), num_samples=samples, serve_port=port)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def status(ctx: click.Context, as_json: bool) -> None:
    """Where the store lives and what it holds."""
    with _bench(ctx) as bench:
        info = bench.status()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        for k, v in info.items():
            click.echo(f"{k:<16} {v}")


@cli.command()
@click.argument("experiment_id", required=False, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def runs(ctx: click.Context, experiment_id: int | None, as_json: bool) -> None:
    """List experiments, or the trials of one experiment."""
    with _bench(ctx) as bench:
        if experiment_id is None:
            rows = bench.experiments.list()
            _emit(
                rows,
                ["id", "name", "status", "metric", "n_trials", "best_trial_id", "started_at"],
                as_json,
            )
        else:
            bench.experiments.get(experiment_id)  # NotFoundError names how to list them
            rows = bench.experiments.trials(experiment_id)
            _emit(rows, ["trial_id", "status", "duration_s", "metrics", "config", "error"], as_json)


@cli.command()
@click.option(
    "--experiment",
    "-e",
    "experiments",
    multiple=True,
    metavar="ID_OR_NAME",
    help="Experiment id or name (repeat for several; default all).",
)
@click.option(
    "--where",
    "-w",
    multiple=True,
    metavar="EXPR",
    help="Condition such as 'metrics.f1>=0.9' or 'config.family==random_forest' (repeat: all must hold).",
)
@click.option("--status", multiple=True, help="Keep trials with this status (repeatable).")
@click.option(
    "--sort", "sort", multiple=True, metavar="KEY", help="Sort column; '-' first for descending."
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most N rows.")
@click.option("--columns", default=None, metavar="A,B,C", help="Columns to show, comma-separated.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def trials(
    ctx: click.Context,
    experiments: tuple[str, ...],
    where: tuple[str, ...],
    status: tuple[str, ...],
    sort: tuple[str, ...],
    limit: int | None,
    columns: str | None,
    as_json: bool,
) -> None:
    """Compare trials across experiments: filter, sort, pick columns."""
    from workbench.experiments import trial_columns

    with _bench(ctx) as bench:
        rows = bench.compare_trials(
            list(experiments) or None,
            where=list(where),
            sort=list(sort),
            limit=limit,
            status=list(status),
        )
    available = trial_columns(rows)
    if columns:
        chosen = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in chosen if rows and c not in available]
        if unknown:
            raise click.BadParameter(
                f"no column {', '.join(unknown)}; columns: {', '.join(available)}",
                param_hint="--columns",
            )
    else:
        chosen = [
            "experiment",
            "trial_id",
            "status",
            "duration_s",
            *(c for c in available if c.startswith("metrics.")),
            *(c for c in available if c.startswith("config.")),
        ]
    if as_json:
        rows = [{c: r.get(c) for c in chosen} for r in rows] if columns else rows
    _emit(rows, chosen, as_json)


@cli.command()
@click.argument("experiment_id", type=int)
@click.option("--progress", type=click.Choice(["auto", "text", "none"]), default="auto")
@click.pass_context
@_errors
def resume(ctx: click.Context, experiment_id: int, progress: str) -> None:
    """Continue a search whose driver died (Tuner.restore); finished trials are kept as recorded."""
    with _bench(ctx) as bench:
        result = bench.experiments.resume(
            experiment_id, progress=None if progress == "none" else progress
        )
    click.echo(
        f"experiment {result.experiment_id} finished: best trial {result.best_trial_id} "
        + json.dumps(result.best_metrics, sort_keys=True)
    )


def _print_reproduction(out: dict[str, Any]) -> None:
    """What differs between then and now, then recorded vs reproduced metrics and the verdict."""
    for d in out.get("differences") or []:
        click.echo(f"differs: {d['what']}: then {d['then']}, now {d['now']}")
    if not out.get("differences"):
        click.echo("environment: nothing differs from when it was recorded")
    for k in out["reproduced"]:
        click.echo(
            f"{k:<10} recorded {out['recorded'][k]:.6f}  reproduced {out['reproduced'][k]:.6f}"
        )
    click.echo(
        f"max |difference| {out['max_abs_diff']:.3g}: {'match' if out['match'] else 'MISMATCH'}"
    )


@cli.command()
@click.argument("experiment_id", type=int)
@click.argument("trial_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def reproduce(ctx: click.Context, experiment_id: int, trial_id: str, as_json: bool) -> None:
    """Re-run a recorded trial from its record alone, after listing what differs in the
    environment since then, and compare its metrics (exit 1 if they differ)."""
    with _bench(ctx) as bench:
        out = bench.experiments.reproduce(experiment_id, trial_id)
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        _print_reproduction(out)
    if not out["match"]:
        ctx.exit(1)


@cli.command("reproduce-model")
@click.argument("model")
@click.argument("version", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def reproduce_model(ctx: click.Context, model: str, version: int, as_json: bool) -> None:
    """Refit registered version VERSION of MODEL from its recorded experiment, trial and data,
    after listing what differs in the environment, and compare its metrics (exit 1 if they
    differ)."""
    with _bench(ctx) as bench:
        out = bench.experiments.reproduce_model(model, version)
    if as_json:
        click.echo(json.dumps(out, indent=2, sort_keys=True, default=str))
    else:
        _print_reproduction(out)
    if not out["match"]:
        ctx.exit(1)


@cli.command()
@click.argument("model", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def models(ctx: click.Context, model: str | None, as_json: bool) -> None:
    """List registered model versions with their aliases and holdout metrics."""
    with _bench(ctx) as bench:
        rows = [dataclasses.asdict(mv) for mv in bench.registry.list(model)]
    _emit(rows, ["model", "version", "aliases", "metrics", "experiment_id", "created_at"], as_json)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def deployments(ctx: click.Context, as_json: bool) -> None:
    """List deployments with their current traffic weights."""
    with _bench(ctx) as bench:
        rows = bench.deployments()
    _emit(rows, ["name", "model", "route_prefix", "status", "weights", "updated_at"], as_json)


@cli.command("serve-config")
@click.argument("name")
@click.option(
    "-o", "--output", default=None, metavar="FILE", help="Write the YAML here (default: print it)."
)
@click.option("--host", default=None, help="http_options.host (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="http_options.port (default 8000).")
@click.option("--num-replicas", default=None, type=int, help="Router replicas (default 1).")
@click.option("--num-cpus", default=0.5, show_default=True, type=float, help="CPUs per replica.")
@click.option("--num-gpus", default=0.0, show_default=True, type=float, help="GPUs per replica.")
@click.pass_context
@_errors
def serve_config(
    ctx: click.Context,
    name: str,
    output: str | None,
    host: str | None,
    port: int | None,
    num_replicas: int | None,
    num_cpus: float,
    num_gpus: float,
) -> None:
    """Write deployment NAME as a Ray Serve config for `serve run` / `serve deploy` / KubeRay."""
    import yaml

    with _bench(ctx) as bench:
        config = bench.serving.export_config(
            name,
            output,
            host=host,
            port=port,
            num_replicas=num_replicas,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
        )
    if output is None:
        click.echo(yaml.safe_dump(config, sort_keys=False), nl=False)
    else:
        click.echo(f"wrote {output}: serve run {output}", err=True)


@cli.command()
@click.argument("ref", metavar="MODEL@VERSION")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def lineage(ctx: click.Context, ref: str, as_json: bool) -> None:
    """Print the lineage chain of a model version (MODEL@VERSION or MODEL@ALIAS)."""
    model, sep, version = ref.partition("@")
    if not sep or not model or not version:
        raise click.BadParameter(
            "use MODEL@VERSION, e.g. breast-cancer@1 or breast-cancer@champion",
            param_hint="MODEL@VERSION",
        )
    with _bench(ctx) as bench:
        if as_json:
            chain = bench.lineage(model, version)
            out = {
                "root": list(chain["root"]),
                "nodes": [
                    {"type": t, "id": i, "label": label} for (t, i), label in chain["nodes"].items()
                ],
                "edges": chain["edges"],
            }
            click.echo(json.dumps(out, indent=2, default=str))
        else:
            click.echo(bench.lineage_text(model, version))


@cli.command()
@click.argument("ref", metavar="MODEL[@VERSION]")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write the HTML here (default: print it).",
)
@click.pass_context
@_errors
def report(ctx: click.Context, ref: str, output: str | None) -> None:
    """The HTML evaluation report of a model version (MODEL = its champion, MODEL@VERSION or
    MODEL@ALIAS)."""
    model, _, version = ref.partition("@")
    if not model:
        raise click.BadParameter(
            "use MODEL, MODEL@VERSION or MODEL@ALIAS, e.g. breast-cancer@2", param_hint="MODEL"
        )
    with _bench(ctx) as bench:
        html = bench.registry.report(model, version or "champion", path=output)
    if output is None:
        click.echo(html)
    else:
        click.echo(f"wrote {output}", err=True)


@cli.group()
def datasets() -> None:
    """Dataset versions: list them, show one's validation report, diff two."""


@datasets.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def datasets_list(ctx: click.Context, name: str | None, as_json: bool) -> None:
    """Every dataset version (or the versions of NAME), oldest first."""
    from workbench.datasets import short_hash

    with _bench(ctx) as bench:
        found = bench.datasets.versions(name) if name else bench.datasets.list()
    rows = [dv.summary() for dv in found]
    if not as_json:
        for r in rows:
            r["content_hash"] = short_hash(r["content_hash"])
    _emit(
        rows,
        ["name", "version", "rows", "columns", "target", "checks", "failed", "source"],
        as_json,
    )


def _report_text(report: Sequence[dict[str, Any]]) -> str:
    # failures first; keys the record lacks show as "-" (older versions recorded fewer)
    lines = []
    for r in sorted(report, key=lambda r: bool(r["passed"])):
        mark = "ok  " if r["passed"] else "FAIL"
        col = f"[{r['column']}] " if r["column"] else ""
        failing = "" if r["failing"] is None or r["passed"] else f" ({r['failing']} failing)"
        lines.append(f"  {mark} {r['severity']:<7} {r['check']:<14} {col}{r['detail']}{failing}")
        if r["examples"] and not r["passed"]:
            lines.append("         e.g. " + ", ".join(_cell(x) for x in r["examples"][:5]))
    return "\n".join(lines) or "  (no checks recorded)"


@datasets.command("show")
@click.argument("ref", metavar="NAME[@VERSION]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def datasets_show(ctx: click.Context, ref: str, as_json: bool) -> None:
    """One version (NAME: its latest): its record, schema and validation report."""
    with _bench(ctx) as bench:
        dv = bench.datasets.resolve(ref)
        report = bench.datasets.report(dv)
    row = dv.summary()
    if as_json:
        out = {**row, "schema": dv.schema, "source_spec": dv.source_spec, "validation": report}
        click.echo(json.dumps(out, indent=2, sort_keys=True, default=str))
        return
    click.echo(f"dataset {dv} (id {dv.id}): {dv.n_rows} rows x {len(dv.schema)} columns")
    click.echo(f"source     {dv.source}")
    # the hash names its algorithm ("xxh3-128:..."); versions recorded before it are bare SHA-256
    click.echo(
        f"content    {dv.content_hash if ':' in dv.content_hash else 'sha256:' + dv.content_hash}"
    )
    if dv.target:
        click.echo(f"target     {dv.target}")
    if dv.parent_id:
        click.echo(f"derived from dataset version id {dv.parent_id}")
    click.echo("columns    " + ", ".join(f"{c} ({t})" for c, t in dv.schema.items()))
    passed = sum(r["passed"] for r in report)
    click.echo(f"validation {passed} of {len(report)} checks passed")
    click.echo(_report_text(report))


@datasets.command("diff")
@click.argument("a", metavar="A")
@click.argument("b", metavar="B")
@click.option(
    "--key",
    "-k",
    "keys",
    multiple=True,
    metavar="COLUMN",
    help="Column identifying a row (repeat, or A,B, for a composite key); default: whole rows.",
)
@click.option("--examples", default=5, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def datasets_diff(
    ctx: click.Context, a: str, b: str, keys: tuple[str, ...], examples: int, as_json: bool
) -> None:
    """What changed from version A to version B (each NAME or NAME@VERSION)."""
    key = [k.strip() for part in keys for k in part.split(",") if k.strip()] or None
    with _bench(ctx) as bench:
        d = bench.datasets.diff(a, b, key=key, examples=examples)
    if as_json:
        click.echo(json.dumps(d.to_dict(), indent=2, sort_keys=True, allow_nan=False))
    else:
        click.echo(str(d))
