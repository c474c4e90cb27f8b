"""Blue-green release: stage green at 0% warmed on real records, switch 100% to it at once, retire blue later."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.exceptions import ConfigError, DeploymentError, NotFoundError
from workbench.serving.traffic import main_version

if TYPE_CHECKING:
    from workbench.serving._control import TrafficControl

__all__ = ["BlueGreen"]


class BlueGreen:
    """Blue-green releases of one deployment, over a :class:`~workbench.serving.TrafficControl`.

    Blue is the version serving most now; green is loaded next to it at 0%,
    warmed on real records inside the router, then takes 100% in one
    reconfigure while blue stays loaded at 0%, so a rollback is as instant.
    Every step is one traffic change (``kind`` ``blue_green.stage``,
    ``blue_green.switch``, ``blue_green.abort`` or ``retire``) with who and why.
    ``Serving.blue_green``/``stage``/``switch``/``retire`` call these methods.

    Parameters
    ----------
    control : TrafficControl
        Usually ``bench.serving``.
    name : str
        Deployment name.

    Examples
    --------
    >>> release = BlueGreen(serving, "cancer")          # doctest: +SKIP
    >>> release.release(2, actor="release-bot")["weights"]   # doctest: +SKIP
    {1: 0.0, 2: 1.0}
    >>> release.retire(1)                                # doctest: +SKIP
    {2: 1.0}
    """

    def __init__(self, control: TrafficControl, name: str):
        self.control = control
        self.name = name

    def stage(
        self,
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
        """
        name, version = self.name, int(version)
        current = self.control.traffic(name)
        if current.get(version, 0.0) > 0:
            raise ConfigError(
                f"version {version} already takes {current[version]:.0%} of {name!r}'s traffic; "
                "stage a version that takes none."
            )
        records = (
            warmup_records
            if warmup_records is not None
            else self.control.warmup_records(name, [version])
        )
        if not records:
            raise ConfigError(
                f"no records to warm version {version} up with: {name!r} has answered no request yet and the "
                "version has no training data on record; pass warmup_records=[{feature: value}, ...]."
            )
        was_loaded = version in current
        out = self.control.apply_traffic(
            name,
            {**current, version: 0.0},
            actor=actor,
            reason=f"{reason}: version {version} loaded at 0% and warmed",
            kind="blue_green.stage",
            detail={"version": version},
            warmup_records=records,
            timeout_s=timeout_s,
        )
        warm = out.health["versions"][str(version)].get("warmup") or {}
        if was_loaded and warm.get("ok") is None:
            # Loaded (at 0%) before this call without records to warm on: it has answered nothing
            # yet, but it loaded and the router keeps it; say so rather than fail.
            warm = {**warm, "ok": True, "note": "already loaded"}
        if not warm.get("ok"):
            self.control.apply_traffic(
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
        return {"weights": out.weights, "warmup": warm}

    def switch(
        self,
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
        """
        name, version = self.name, int(version)
        current = self.control.traffic(name)
        if version not in current:
            raise ConfigError(
                f"version {version} is not loaded in {name!r} (loaded: {sorted(current)}); "
                f"stage it first with serving.stage({name!r}, {version})."
            )
        blue = main_version(current)
        out = self.control.apply_traffic(
            name,
            {v: 0.0 for v in current} | {version: 1.0},
            actor=actor,
            reason=f"{reason}: 100% to version {version} (was v{blue}); v{blue} stays loaded at 0%",
            kind="blue_green.switch",
            detail={"from": blue, "to": version},
            timeout_s=timeout_s,
        )
        return dict(out.weights)

    def release(
        self,
        green_version: int,
        *,
        warmup_records: list[dict[str, Any]] | None = None,
        actor: str | None = None,
        reason: str = "blue-green",
        timeout_s: float = 120.0,
    ) -> dict[str, Any]:
        """Stage green at 0% warmed, then switch 100% to it atomically.

        Returns
        -------
        dict
            ``blue``, ``green``, ``weights`` now served, ``warmup`` of green.
        """
        green = int(green_version)
        blue = main_version(self.control.traffic(self.name))
        if green == blue:
            raise ConfigError(
                f"version {green} already serves {self.name!r}; pick another version."
            )
        staged = self.stage(
            green,
            warmup_records=warmup_records,
            actor=actor,
            reason=f"{reason} v{blue}→v{green}",
            timeout_s=timeout_s,
        )
        weights = self.switch(
            green, actor=actor, reason=f"{reason} v{blue}→v{green}", timeout_s=timeout_s
        )
        return {"blue": blue, "green": green, "weights": weights, "warmup": staged["warmup"]}

    def retire(
        self,
        version: int,
        *,
        actor: str | None = None,
        reason: str = "retire",
        timeout_s: float = 120.0,
    ) -> dict[int, float]:
        """Unload a version that takes no traffic (blue after a release, a finished shadow)."""
        name, version = self.name, int(version)
        current = self.control.traffic(name)
        if version not in current:
            raise NotFoundError(f"version {version} is not loaded in {name!r} ({sorted(current)}).")
        if current[version] > 0:
            raise ConfigError(
                f"version {version} still takes {current[version]:.0%} of {name!r}'s traffic; "
                "move it away first (serving.switch or serving.set_traffic)."
            )
        shadow = self.control.health(name).get("shadow") or {}
        if shadow.get("version") == version:
            raise ConfigError(
                f"version {version} is {name!r}'s shadow; stop it first with serving.stop_shadow({name!r})."
            )
        out = self.control.apply_traffic(
            name,
            {v: w for v, w in current.items() if v != version},
            actor=actor,
            reason=f"{reason}: version {version} unloaded",
            kind="retire",
            detail={"version": version},
            timeout_s=timeout_s,
        )
        return dict(out.weights)
