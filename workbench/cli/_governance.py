"""Governance commands: ``whoami``, ``access`` (roles; docs/governance.md), ``audit`` (the hash
chain; docs/audit.md) and ``export`` (portable packages; docs/packaging.md)."""

from __future__ import annotations

import dataclasses
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


@cli.group()
def audit() -> None:
    """The audit log: verify its hash chain, list its entries."""


@audit.command("verify")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def audit_verify(ctx: click.Context, as_json: bool) -> None:
    """Check every entry's hash chain and the recorded head; exit 1 naming the first edited,
    deleted or reordered entry."""
    with _bench(ctx) as bench:
        result = bench.audit.verify()
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result), indent=2, sort_keys=True))
    elif result.ok:
        keyed = "HMAC-keyed" if result.keyed else "unkeyed (SHA-256)"
        click.echo(f"ok: {result.checked} entries, chain {keyed}, head {result.head}")
    else:
        click.echo(f"TAMPERED: {result.problem}", err=True)
    if not result.ok:
        ctx.exit(1)


@audit.command("log")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def audit_log(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The newest entries, newest first."""
    with _bench(ctx) as bench:
        rows = bench.audit.entries(limit)
    _emit(rows, ["id", "at", "actor", "action", "entity_type", "entity_id", "detail"], as_json)


@cli.command("export")
@click.argument("ref", metavar="MODEL[@VERSION]")
@click.argument("path", type=click.Path(file_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mlflow", "container"]),
    default="mlflow",
    show_default=True,
)
@click.option("--overwrite", is_flag=True, help="Replace a non-empty PATH.")
@click.pass_context
@_errors
def export(ctx: click.Context, ref: str, path: str, fmt: str, overwrite: bool) -> None:
    """Write a portable package of a model version (MODEL: its champion): an MLflow-pyfunc model
    directory or a Ray Serve container build context (docs/packaging.md)."""
    from workbench.cli._lifecycle import _ref, _version

    model, version = _ref(ref, default="champion")
    with _bench(ctx) as bench:
        out = bench.registry.export(model, _version(version), path, format=fmt, overwrite=overwrite)
    click.echo(f"wrote {fmt} package of {ref} to {out}")


@cli.group("api-keys")
def api_keys() -> None:
    """Named serving API keys with scopes (predict, health): the key's name is recorded on each
    request it makes (docs/security-serving.md)."""


@api_keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["predict", "health"]),
    help="Repeat for several (default: predict).",
)
@click.option("--deployment", default=None, help="Only for this deployment (default: all).")
@click.pass_context
@_errors
def api_keys_create(
    ctx: click.Context, name: str, scopes: tuple[str, ...], deployment: str | None
) -> None:
    """Create key NAME (deployer role) and print its secret: the only time it is shown."""
    with _bench(ctx) as bench:
        secret = bench.serving.create_api_key(
            name, scopes=scopes or ("predict",), deployment=deployment
        )
    click.echo(secret)


@api_keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
@_errors
def api_keys_list(ctx: click.Context, as_json: bool) -> None:
    """Every key: name, scopes, deployment, who created it and when, revoked or not (never the
    secret or its hash)."""
    with _bench(ctx) as bench:
        rows = bench.serving.api_keys()
    _emit(rows, ["name", "scopes", "deployment", "created_by", "created_at", "revoked_at"], as_json)


@api_keys.command("revoke")
@click.argument("name")
@click.pass_context
@_errors
def api_keys_revoke(ctx: click.Context, name: str) -> None:
    """Revoke key NAME (deployer role); running deployments refuse it within a second."""
    with _bench(ctx) as bench:
        bench.serving.revoke_api_key(name)
    click.echo(f"revoked {name}")
