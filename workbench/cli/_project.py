"""The project file as commands: ``plan [FILE]`` (exit 1 when changes are pending), ``apply
[FILE]``, ``export-project``; an invalid file exits 2 naming its line (see docs/project-file.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from workbench.cli._base import EXIT_NO, _bench, _errors, cli

__all__: list[str] = []

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_FILE = click.argument("file", required=False, default="workbench.yaml", metavar="[FILE]")


def _show(plan: Any, as_json: bool) -> None:
    click.echo(json.dumps(plan.as_dict(), indent=2, default=str) if as_json else str(plan))


@cli.command("plan")
@_FILE
@_JSON
@click.pass_context
@_errors
def plan_command(ctx: click.Context, file: str, as_json: bool) -> None:
    """What applying FILE (default workbench.yaml) would change; exit 0 when nothing, 1 when
    changes are pending (a CI step can branch on it)."""
    from workbench.project import load, plan

    project = load(file)
    with _bench(ctx) as bench:
        result = plan(bench, project)
    _show(result, as_json)
    if not result.empty:
        ctx.exit(EXIT_NO)


@cli.command("apply")
@_FILE
@_JSON
@click.pass_context
@_errors
def apply_command(ctx: click.Context, file: str, as_json: bool) -> None:
    """Make the store and its deployments match FILE (default workbench.yaml); idempotent."""
    from workbench.project import apply, load

    project = load(file)
    with _bench(ctx) as bench:
        result = apply(bench, project)
    _show(result, as_json)


@cli.command("export-project")
@click.option("--out", "-o", "out", default=None, metavar="FILE", help="Write here (else print).")
@click.pass_context
@_errors
def export_project_command(ctx: click.Context, out: str | None) -> None:
    """The project file of this store (datasets, latest experiment per name, deployments,
    monitors, policies), such that `workbench plan` on it is empty."""
    from workbench.project import dump, export_project

    with _bench(ctx) as bench:
        text = dump(export_project(bench))
    if out is None:
        click.echo(text, nl=False)
    else:
        Path(out).write_text(text)
        click.echo(f"wrote {out}", err=True)
