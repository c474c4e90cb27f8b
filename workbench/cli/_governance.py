"""Governance commands: ``whoami`` and ``access`` (roles; see docs/governance.md)."""

from __future__ import annotations

import json

import click

from workbench.cli._base import _bench, _emit, _errors, cli

__all__: list[str] = []


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def whoami(ctx: click.Context, as_json: bool) -> None:
    """Who this command acts as, their roles, and what they may do."""
    with _bench(ctx) as bench:
        me = bench.whoami()
    if as_json:
        click.echo(json.dumps(me, indent=2, sort_keys=True))
        return
    mode = "roles enforced" if me["enforced"] else "open (single-user home: every action allowed)"
    click.echo(f"{me['user']} ({me['source']}): {', '.join(me['roles']) or 'no role'}; {mode}")
    click.echo("may: " + (", ".join(me["allowed"]) or "nothing"))
    if me["four_eyes"]:
        click.echo("four-eyes rule on: nobody approves or promotes what they asked for")


@cli.group()
def access() -> None:
    """Roles: who may do what (viewer, editor, deployer, approver, admin)."""


@access.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def access_list(ctx: click.Context, as_json: bool) -> None:
    """Every role grant."""
    with _bench(ctx) as bench:
        rows = bench.access.grants()
    _emit(rows, ["user", "role", "granted_by", "granted_at"], as_json)


@access.command("grant")
@click.argument("user")
@click.argument("role", type=click.Choice(["viewer", "editor", "deployer", "approver", "admin"]))
@click.pass_context
@_errors
def access_grant(ctx: click.Context, user: str, role: str) -> None:
    """Give USER the ROLE (admin only). The first grant turns roles on for this home."""
    with _bench(ctx) as bench:
        changed = bench.access.grant(user, role)
    click.echo(f"{user} {'now holds' if changed else 'already held'} {role}")


@access.command("revoke")
@click.argument("user")
@click.argument("role", type=click.Choice(["viewer", "editor", "deployer", "approver", "admin"]))
@click.pass_context
@_errors
def access_revoke(ctx: click.Context, user: str, role: str) -> None:
    """Take ROLE from USER (admin only; the last admin stays)."""
    with _bench(ctx) as bench:
        changed = bench.access.revoke(user, role)
    click.echo(f"{user} {'no longer holds' if changed else 'did not hold'} {role}")


@access.command("four-eyes")
@click.argument("state", type=click.Choice(["on", "off"]))
@click.pass_context
@_errors
def access_four_eyes(ctx: click.Context, state: str) -> None:
    """Turn the four-eyes rule on or off (admin only): nobody approves a retraining or promotes a
    version they asked for."""
    with _bench(ctx) as bench:
        bench.access.set_four_eyes(state == "on")
    click.echo(f"four-eyes rule {state}")
