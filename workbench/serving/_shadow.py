"""Shadow: mirror a share of answered requests to a version whose answers are logged and compared, never returned."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from workbench.evaluation import same_label
from workbench.exceptions import ConfigError, NotFoundError
from workbench.runtime import percentile
from workbench.serving._control import iso_utc

if TYPE_CHECKING:
    from workbench.serving._control import TrafficControl

__all__ = ["Shadow"]


class Shadow:
    """The shadow of one deployment, over a :class:`~workbench.serving.TrafficControl`.

    The shadow version is loaded at weight 0. After the primary answered a
    request, the router draws whether to mirror it and, if so, runs the
    shadow on a worker thread: the client does not wait for it, and the
    shadow's exceptions only end up in its log row. A running shadow stays on
    through other traffic changes until :meth:`stop`. ``Serving.shadow``,
    ``stop_shadow`` and ``shadow_report`` call these methods.

    Examples
    --------
    >>> shadow = Shadow(serving, "cancer")        # doctest: +SKIP
    >>> shadow.start(3, share=0.5)["shadow"]       # doctest: +SKIP
    {'version': 3, 'share': 0.5}
    >>> shadow.report()["agreement"]               # doctest: +SKIP
    0.97
    """

    def __init__(self, control: TrafficControl, name: str):
        self.control = control
        self.name = name

    def start(
        self,
        version: int,
        *,
        share: float = 1.0,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "shadow",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Mirror ``share`` (in ``(0, 1]``) of answered requests to ``version``.

        Returns
        -------
        dict
            ``weights`` served (the shadow at 0) and ``shadow``: ``{"version", "share"}``.
        """
        from workbench.serving._router_strategies import validate_shadow

        name, version = self.name, int(version)
        current = self.control.traffic(name)
        if current.get(version, 0.0) > 0:
            raise ConfigError(
                f"version {version} already answers {current[version]:.0%} of {name!r}'s traffic; "
                "a shadow takes none (set its weight to 0 first)."
            )
        spec = validate_shadow({"version": version, "share": share}, [*current, version])
        assert spec is not None
        out = self.control.apply_traffic(
            name,
            {**current, version: current.get(version, 0.0)},
            actor=actor,
            reason=f"{reason}: mirror {spec['share']:.0%} of answered requests to version {version}",
            kind="shadow",
            detail={"version": version, "share": spec["share"]},
            shadow=spec,
            warmup_records=warmup_records,
            timeout_s=timeout_s,
        )
        return {"weights": out.weights, "shadow": spec}

    def stop(
        self,
        *,
        keep_loaded: bool = False,
        actor: str | None = None,
        reason: str = "stop shadow",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Stop mirroring; the shadow version is unloaded unless ``keep_loaded`` (or it takes traffic)."""
        name = self.name
        shadow = self.control.health(name).get("shadow")
        if not shadow:
            raise ConfigError(f"{name!r} has no shadow running.")
        current = self.control.traffic(name)
        version = int(shadow["version"])
        weights = (
            current
            if keep_loaded or current.get(version, 0.0) > 0
            else {v: w for v, w in current.items() if v != version}
        )
        out = self.control.apply_traffic(
            name,
            weights,
            actor=actor,
            reason=f"{reason}: version {version} no longer mirrored",
            kind="shadow",
            detail={"version": version, "share": 0.0, "stopped": True},
            shadow=None,
            timeout_s=timeout_s,
        )
        return dict(out.weights)

    def report(
        self, *, version: int | None = None, since: str | datetime | None = None
    ) -> dict[str, Any]:
        """Compare a shadow with the versions that answered: agreement, errors, latency.

        Flushes the router's logs first (waiting for the shadow calls scheduled
        so far). By default covers the latest shadow session (since the last
        :meth:`start`).

        Returns
        -------
        dict
            ``version``, ``since``, ``mirrored`` (rows logged), ``errors``,
            ``error_rate``, ``agreement`` (share of compared requests whose
            predictions all matched), ``record_agreement`` (per record),
            ``latency_ms``: ``{"primary": {"p50", "p99"}, "shadow": {"p50", "p99"},
            "median_ratio"}``, and ``router`` (the replica's live counters,
            including requests ``skipped`` when the shadow fell behind).
        """
        name, store = self.name, self.control.store
        starts = [
            r
            for r in store.deployments.list_traffic(name)
            if r.get("kind") == "shadow" and not (r.get("detail") or {}).get("stopped")
        ]
        if version is None:
            if not starts:
                raise NotFoundError(
                    f"{name!r} never had a shadow; start one with serving.shadow({name!r}, version)."
                )
            version = int(starts[-1]["detail"]["version"])
        version = int(version)
        if since is None:
            mine = [r for r in starts if int(r["detail"]["version"]) == version]
            since = mine[-1]["detail"].get("requested_at", mine[-1]["at"]) if mine else None
        since_s = iso_utc(since) if since is not None else None
        try:
            self.control.flush_logs(name)
            live = self.control.health(name).get("shadow")
        except Exception:  # the app may be gone; the store still has the logs
            live = None
        rows = store.deployments.list_shadow(name, since=since_s, shadow_version=version)
        errors = [r for r in rows if r.get("error")]
        compared = [r for r in rows if not r.get("error")]
        agreed = sum(1 for r in compared if r.get("agree"))
        rec_total = rec_same = 0
        for r in compared:
            p, s = r.get("primary_prediction") or [], r.get("shadow_prediction") or []
            rec_total += len(p)
            rec_same += sum(1 for a, b in zip(p, s, strict=False) if same_label(a, b))
        prim = sorted(float(r["primary_latency_ms"]) for r in rows if r.get("primary_latency_ms"))
        shad = sorted(float(r["shadow_latency_ms"]) for r in compared if r.get("shadow_latency_ms"))
        p50p, p50s = percentile(prim, 50), percentile(shad, 50)
        return {
            "version": version,
            "since": since_s,
            "mirrored": len(rows),
            "compared": len(compared),
            "errors": len(errors),
            "error_rate": len(errors) / len(rows) if rows else None,
            "error_examples": sorted({r["error"] for r in errors})[:3],
            "agreement": agreed / len(compared) if compared else None,
            "record_agreement": rec_same / rec_total if rec_total else None,
            "by_primary_version": _by_primary(rows),
            "latency_ms": {
                "primary": {"p50": p50p, "p99": percentile(prim, 99)},
                "shadow": {"p50": p50s, "p99": percentile(shad, 99)},
                "median_ratio": (p50s / p50p) if p50s is not None and p50p else None,
            },
            "router": live if live and int(live.get("version", -1)) == version else None,
        }


def _by_primary(rows: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for r in rows:
        v = r.get("primary_version")
        if v is None:
            continue
        d = out.setdefault(int(v), {"mirrored": 0, "agreed": 0, "errors": 0})
        d["mirrored"] += 1
        d["errors"] += 1 if r.get("error") else 0
        d["agreed"] += 1 if r.get("agree") else 0
    return out
