"""The ``workbench`` group and what every command shares: opening the Workbench, turning
``WorkbenchError`` into one-line errors with exit codes, tables and JSON output."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any

import click

from workbench.exceptions import NotFoundError, PermissionDenied, WorkbenchError

__all__ = [
    "cli",
    "main",
    "EXIT_OK",
    "EXIT_NO",
    "EXIT_USAGE",
    "EXIT_NOT_FOUND",
    "EXIT_REFUSED",
    "EXIT_DENIED",
    "_bench",
    "_errors",
    "_emit",
    "_table",
    "_cell",
]

#: Exit statuses a CI step can branch on (docs/cli.md lists them per command).
EXIT_OK = 0
#: A gate, check or canary said no (the command ran; its answer is "not this one").
EXIT_NO = 1
#: Bad usage: an unknown option, a missing argument, a malformed value (click's own status).
EXIT_USAGE = 2
#: What the command names does not exist (``NotFoundError``).
EXIT_NOT_FOUND = 3
#: Refused: a conflict or any other ``WorkbenchError`` (bad configuration, failed validation...).
EXIT_REFUSED = 4
#: The acting user's role does not allow the command (``PermissionDenied``).
EXIT_DENIED = 5


def _bench(ctx: click.Context) -> Any:
    from workbench.api import Workbench

    return Workbench(ctx.obj.get("home"))


def _exit_code(exc: WorkbenchError) -> int:
    """The exit status of a command that raised ``exc`` (docs/cli.md's table)."""
    from workbench.project import ProjectFileError

    if isinstance(exc, ProjectFileError):
        return EXIT_USAGE  # the file given is bad usage; its one line names the line and field
    if isinstance(exc, PermissionDenied):
        return EXIT_DENIED
    if isinstance(exc, NotFoundError):
        return EXIT_NOT_FOUND
    return EXIT_REFUSED


def _errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WorkbenchError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = _exit_code(exc)
            raise error from exc

    return wrapper


def _table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)[:60]
    return "" if value is None else str(value)


def _emit(rows: Any, columns: Sequence[str], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(rows, indent=2, sort_keys=True, default=str))
    else:
        click.echo(_table(rows, columns))


@click.group()
@click.option(
    "--home", envvar="WORKBENCH_HOME", default=None, help="Workbench home (default ./.workbench)."
)
@click.pass_context
def cli(ctx: click.Context, home: str | None) -> None:
    """workbench: notebook-first MLOps on Ray."""
    ctx.obj = {"home": home}


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="workbench")
