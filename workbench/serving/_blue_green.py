"""Serving strategies on top of ``Serving``'s in-place reconfigure: blue-green, shadow, and the lineage queries.

Every method here changes the router through ``Serving._change`` (one
``reconfigure``, waited for, then one ``traffic_changes`` row with ``kind``,
``actor``, ``reason`` and evidence in ``detail``), so "which version answered
request R at time T" stays a query over the store.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError, DeploymentError, NotFoundError
from workbench.serving.traffic import main_version

if TYPE_CHECKING:
    from workbench.lineage import Store

__all__ = ["StrategiesMixin"]


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def _iso(at: str | datetime) -> str:
    """``at`` as the store writes times: ISO-8601 UTC with microseconds (naive datetimes are UTC)."""
    if isinstance(at, str):
        try:
            at = datetime.fromisoformat(at)
        except ValueError as exc:
            raise ConfigError(
                f"time {at!r} is not ISO-8601, e.g. '2025-01-31T12:00:00+00:00'."
            ) from exc
    if not isinstance(at, datetime):
        raise ConfigError(f"time must be an ISO-8601 string or a datetime, got {at!r}.")
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class StrategiesMixin:
    """Blue-green, shadow and lineage queries; mixed into :class:`~workbench.serving.Serving`."""

    store: Store

    if TYPE_CHECKING:  # provided by Serving

        def _change(self, name: str, weights: dict[int, float], **kw: Any) -> dict[str, Any]: ...
        def _rollback_to(self, name: str, target: int, **kw: Any) -> dict[str, Any]: ...
        def traffic(self, name: str) -> dict[int, float]: ...
        def health(self, name: str) -> dict[str, Any]: ...
        def flush_logs(self, name: str, *, timeout_s: float = 30.0) -> dict[str, Any]: ...
        def _warmup_records(self, name: str, ids: list[int]) -> list[dict[str, Any]]: ...
        def _version_spec(self, model: str, version: int | str) -> dict[str, Any]: ...

    # ------------------------------------------------------------ blue-green
    def stage(
        self,
        name: str,
        version: int,
        *,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "stage",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Load ``version`` next to the live ones at weight 0 and warm it on real records.

        The router loads the version and runs a few real predictions on it
        (``warmup_records``, by default the deployment's latest answered
        requests, else rows of the version's training data) before the new
        config takes effect; no client request reaches it. Recorded as
        ``kind="blue_green.stage"`` with the warm-up result.

        Returns
        -------
        dict
            ``weights`` now served and ``warmup``: ``{"records", "predictions",
            "ms", "ok", "error"}`` of the staged version.

        Raises
        ------
        ConfigError
            No records to warm up with (pass ``warmup_records``).
        DeploymentError
            The warm-up failed; the version is unloaded again (recorded as
            ``kind="blue_green.abort"``) and traffic is unchanged.

        Examples
        --------
        >>> serving.stage("cancer", 2)["warmup"]["ok"]     # doctest: +SKIP
        True
        """
        version = int(version)
        current = self.traffic(name)
        dep = self.store.get_deployment(name)
        if current.get(version, 0.0) > 0:
            raise ConfigError(
                f"version {version} already takes {current[version]:.0%} of {name!r}'s traffic; "
                "stage a version that takes none."
            )
        spec = self._version_spec(dep["model"], version)
        records = (
            warmup_records
            if warmup_records is not None
            else self._warmup_records(name, [spec["model_version_id"]])
        )
        if not records:
            raise ConfigError(
                f"no records to warm version {version} up with: {name!r} has answered no request yet and the "
                "version has no training data on record; pass warmup_records=[{feature: value}, ...]."
            )
        was_loaded = version in current
        out = self._change(
            name,
            {**current, version: 0.0},
            actor=actor,
            reason=f"{reason}: version {version} loaded at 0% and warmed",
            kind="blue_green.stage",
            detail={"version": version},
            warmup_records=records,
            timeout_s=timeout_s,
        )
        warm = out["health"]["versions"][str(version)].get("warmup") or {}
        if was_loaded and warm.get("ok") is None:
            # Loaded (at 0%) before this call without records to warm on: it has answered nothing
            # yet, but it loaded and the router keeps it; say so rather than fail.
            warm = {**warm, "ok": True, "note": "already loaded"}
        if not warm.get("ok"):
            self._change(
                name,
                current,
                actor=actor,
                reason=f"{reason}: version {version} failed its warm-up ({warm.get('error')}); unloaded",
                kind="blue_green.abort",
                detail={"version": version, "warmup": warm},
                timeout_s=timeout_s,
            )
            raise DeploymentError(
                f"version {version} failed its warm-up on {len(records)} records ({warm.get('error')}); "
                f"it was unloaded and {name!r} still serves {current}. Fix or re-register the version."
            )
        return {"weights": out["weights"], "warmup": warm}

    def switch(
        self,
        name: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "switch",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Send 100% of traffic to a loaded version in one reconfigure; the others stay loaded at 0.

        The router swaps its routing table as one object, so every request is
        answered by either the old or the new state, never by a half-applied
        one. Recorded as ``kind="blue_green.switch"`` with ``from``/``to``.

        Examples
        --------
        >>> serving.switch("cancer", 2)            # doctest: +SKIP
        {1: 0.0, 2: 1.0}
        """
        version = int(version)
        current = self.traffic(name)
        if version not in current:
            raise ConfigError(
                f"version {version} is not loaded in {name!r} (loaded: {sorted(current)}); "
                f"stage it first with serving.stage({name!r}, {version})."
            )
        blue = main_version(current)
        out = self._change(
            name,
            {v: 0.0 for v in current} | {version: 1.0},
            actor=actor,
            reason=f"{reason}: 100% to version {version} (was v{blue}); v{blue} stays loaded at 0%",
            kind="blue_green.switch",
            detail={"from": blue, "to": version},
            timeout_s=timeout_s,
        )
        return dict(out["weights"])

    def blue_green(
        self,
        name: str,
        green_version: int,
        *,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "blue-green",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Blue-green release: stage green at 0% warmed, then switch 100% to it atomically.

        Blue (the version serving most now) stays loaded at 0%, so
        ``serving.rollback(name)`` is one in-place reconfigure back to it;
        ``serving.retire(name, blue)`` unloads it once green has proved itself.

        Returns
        -------
        dict
            ``blue``, ``green``, ``weights`` now served, ``warmup`` of green.

        Examples
        --------
        >>> serving.blue_green("cancer", 2)["weights"]          # doctest: +SKIP
        {1: 0.0, 2: 1.0}
        >>> serving.rollback("cancer", reason="green misbehaves")  # doctest: +SKIP
        {1: 1.0, 2: 0.0}
        >>> serving.retire("cancer", 1)                          # doctest: +SKIP
        {2: 1.0}
        """
        green = int(green_version)
        blue = main_version(self.traffic(name))
        if green == blue:
            raise ConfigError(f"version {green} already serves {name!r}; pick another version.")
        staged = self.stage(
            name,
            green,
            warmup_records=warmup_records,
            actor=actor,
            reason=f"{reason} v{blue}→v{green}",
            timeout_s=timeout_s,
        )
        weights = self.switch(
            name, green, actor=actor, reason=f"{reason} v{blue}→v{green}", timeout_s=timeout_s
        )
        return {"blue": blue, "green": green, "weights": weights, "warmup": staged["warmup"]}

    def retire(
        self,
        name: str,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "retire",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Unload a version that takes no traffic (blue after a blue-green release, a finished shadow).

        Examples
        --------
        >>> serving.retire("cancer", 1)            # doctest: +SKIP
        {2: 1.0}
        """
        version = int(version)
        current = self.traffic(name)
        if version not in current:
            raise NotFoundError(f"version {version} is not loaded in {name!r} ({sorted(current)}).")
        if current[version] > 0:
            raise ConfigError(
                f"version {version} still takes {current[version]:.0%} of {name!r}'s traffic; "
                "move it away first (serving.switch or serving.set_traffic)."
            )
        shadow = self.health(name).get("shadow") or {}
        if shadow.get("version") == version:
            raise ConfigError(
                f"version {version} is {name!r}'s shadow; stop it first with serving.stop_shadow({name!r})."
            )
        rest = {v: w for v, w in current.items() if v != version}
        out = self._change(
            name,
            rest,
            actor=actor,
            reason=f"{reason}: version {version} unloaded",
            kind="retire",
            detail={"version": version},
            timeout_s=timeout_s,
        )
        return dict(out["weights"])

    # ---------------------------------------------------------------- shadow
    def shadow(
        self,
        name: str,
        version: int,
        *,
        share: float = 1.0,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "shadow",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Mirror a share of answered requests to ``version``; its answers are logged, never returned.

        The version is loaded at weight 0. After the primary answered a
        request, the router draws whether to mirror it and, if so, runs the
        shadow on a worker thread: the client does not wait for it, and the
        shadow's exceptions only end up in its log row. Compare with
        :meth:`shadow_report`; stop with :meth:`stop_shadow`.

        Parameters
        ----------
        share : float
            Share of answered requests to mirror, in ``(0, 1]``.

        Returns
        -------
        dict
            ``weights`` served (the shadow at 0) and ``shadow``: ``{"version", "share"}``.

        Examples
        --------
        >>> serving.shadow("cancer", 3, share=0.5)["shadow"]    # doctest: +SKIP
        {'version': 3, 'share': 0.5}
        """
        from workbench.serving._router_strategies import validate_shadow

        version = int(version)
        current = self.traffic(name)
        if current.get(version, 0.0) > 0:
            raise ConfigError(
                f"version {version} already answers {current[version]:.0%} of {name!r}'s traffic; "
                "a shadow takes none (set its weight to 0 first)."
            )
        spec = validate_shadow({"version": version, "share": share}, [*current, version])
        assert spec is not None
        out = self._change(
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
        return {"weights": out["weights"], "shadow": spec}

    def stop_shadow(
        self,
        name: str,
        *,
        keep_loaded: bool = False,
        actor: str | None = None,
        reason: str = "stop shadow",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Stop mirroring; the shadow version is unloaded unless ``keep_loaded`` (or it takes traffic)."""
        shadow = self.health(name).get("shadow")
        if not shadow:
            raise ConfigError(f"{name!r} has no shadow running.")
        current = self.traffic(name)
        version = int(shadow["version"])
        weights = (
            current
            if keep_loaded or current.get(version, 0.0) > 0
            else {v: w for v, w in current.items() if v != version}
        )
        out = self._change(
            name,
            weights,
            actor=actor,
            reason=f"{reason}: version {version} no longer mirrored",
            kind="shadow",
            detail={"version": version, "share": 0.0, "stopped": True},
            shadow=None,
            timeout_s=timeout_s,
        )
        return dict(out["weights"])

    def shadow_report(
        self, name: str, *, version: int | None = None, since: str | datetime | None = None
    ) -> dict[str, Any]:
        """Compare a shadow with the versions that answered: agreement, errors, latency.

        Flushes the router's logs first (waiting for the shadow calls scheduled
        so far). By default covers the latest shadow session (since the last
        ``serving.shadow`` call).

        Returns
        -------
        dict
            ``version``, ``since``, ``mirrored`` (rows logged), ``errors``,
            ``error_rate``, ``agreement`` (share of compared requests whose
            predictions all matched), ``record_agreement`` (per record),
            ``latency_ms``: ``{"primary": {"p50", "p99"}, "shadow": {"p50", "p99"},
            "median_ratio"}``, and ``router`` (the replica's live counters,
            including requests ``skipped`` when the shadow fell behind).

        Examples
        --------
        >>> serving.shadow_report("cancer")["agreement"]    # doctest: +SKIP
        0.97
        """
        starts = [
            r
            for r in self.store.traffic_history(name)
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
        since_s = _iso(since) if since is not None else None
        try:
            self.flush_logs(name)
            live = self.health(name).get("shadow")
        except Exception:  # the app may be gone; the store still has the logs
            live = None
        rows = self.store.shadow_logs(name, since=since_s, shadow_version=version)
        errors = [r for r in rows if r.get("error")]
        compared = [r for r in rows if not r.get("error")]
        agreed = sum(1 for r in compared if r.get("agree"))
        rec_total = rec_same = 0
        for r in compared:
            p, s = r.get("primary_prediction") or [], r.get("shadow_prediction") or []
            rec_total += len(p)
            rec_same += sum(1 for a, b in zip(p, s, strict=False) if a == b)
        prim = sorted(float(r["primary_latency_ms"]) for r in rows if r.get("primary_latency_ms"))
        shad = sorted(float(r["shadow_latency_ms"]) for r in compared if r.get("shadow_latency_ms"))
        p50p, p50s = _percentile(prim, 50), _percentile(shad, 50)
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
                "primary": {"p50": p50p, "p99": _percentile(prim, 99)},
                "shadow": {"p50": p50s, "p99": _percentile(shad, 99)},
                "median_ratio": (p50s / p50p) if p50s is not None and p50p else None,
            },
            "router": live if live and int(live.get("version", -1)) == version else None,
        }

    # ------------------------------------------------------------- lineage
    def which_version(self, name: str, request_id: str) -> dict[str, Any]:
        """Which version answered request ``request_id``, when, and under which traffic state.

        Returns
        -------
        dict
            ``request_id``, ``version``, ``at``, ``status_code``, ``latency_ms``,
            ``traffic`` (the change in force then: ``weights``, ``kind``,
            ``actor``, ``reason``, ``at``, ``transition``) and ``shadow`` (the
            shadow's answer if the request was mirrored, else ``None``).

        Examples
        --------
        >>> serving.which_version("cancer", "3f2a…")["version"]     # doctest: +SKIP
        2
        """
        row = self.store.which_version(name, request_id)
        traffic = row.get("traffic")
        shadow = row.get("shadow")
        return {
            "request_id": row["request_id"],
            "version": row.get("model_version"),
            "at": row["at"],
            "status_code": row["status_code"],
            "latency_ms": row["latency_ms"],
            "traffic": _traffic_view(traffic) if traffic else None,
            "shadow": (
                {
                    "version": shadow["shadow_version"],
                    "prediction": shadow.get("shadow_prediction"),
                    "agree": None if shadow.get("agree") is None else bool(shadow["agree"]),
                    "latency_ms": shadow.get("shadow_latency_ms"),
                    "error": shadow.get("error"),
                }
                if shadow
                else None
            ),
        }

    def version_at(self, name: str, at: str | datetime) -> dict[str, Any]:
        """The traffic state of ``name`` at time ``at``: weights, main version, who set it and why.

        Examples
        --------
        >>> serving.version_at("cancer", "2025-01-31T12:00:00+00:00")["main_version"]   # doctest: +SKIP
        1
        """
        when = _iso(at)
        row = self.store.traffic_at(name, when)
        if row is None:
            raise NotFoundError(f"{name!r} had no traffic at {when} (it was deployed later).")
        return _traffic_view(row)

    # ------------------------------------------------------------ internal
    def _rollback_canary(
        self, name: str, champion: int, challenger: int, *, actor: str, reason: str, evidence: Any
    ) -> dict[str, Any]:
        return self._rollback_to(
            name,
            champion,
            actor=actor,
            reason=reason,
            detail={"from": challenger, "to": champion, "rule": "canary", "evidence": evidence},
        )


def _traffic_view(row: dict[str, Any]) -> dict[str, Any]:
    weights = {int(k): float(v) for k, v in row["weights"].items()}
    return {
        "change_id": row["id"],
        "weights": weights,
        "main_version": main_version(weights),
        "kind": row.get("kind"),
        "actor": row["actor"],
        "reason": row["reason"],
        "at": row["at"],
        "transition": bool(row.get("transition")),
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
