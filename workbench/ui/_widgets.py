"""Notebook widgets for experiments, the registry, deployments, monitors and lineage (anywidget).

Each widget reads the stages' read views on a background thread, pushes what
changed as synced traits (throttled), and turns clicks in the browser into
calls of the public API on another background thread, so the kernel thread
is never blocked by either. The stage objects are handed in (``bench.widgets``
does it); the widgets import no stage and no store. Imported only when a widget
is asked for.
"""

from __future__ import annotations

import contextvars
import json
import pathlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import anywidget
import traitlets

from workbench._identity import default_actor
from workbench.exceptions import ConfigError
from workbench.ui._sources import (
    DatasetSource,
    DeploymentSource,
    ExperimentSource,
    LineageSource,
    MonitorSource,
    RegistryActions,
    RegistrySource,
    RetrainActions,
    SearchControl,
    ServingActions,
)
from workbench.ui._state import (
    ExperimentReader,
    RequestSeries,
    dataset_state,
    deployment_state,
    diff_state,
    lineage_state,
    monitor_state,
    node_record,
    registry_state,
    rollback_target,
)
from workbench.ui._throttle import Throttle

__all__ = [
    "ExperimentWidget",
    "RegistryWidget",
    "DeploymentWidget",
    "MonitorWidget",
    "LineageWidget",
    "DatasetWidget",
    "Widgets",
]

_HERE = pathlib.Path(__file__).parent
ESM_PATH = _HERE / "widgets.js"
CSS_PATH = _HERE / "widgets.css"


class LiveWidget(anywidget.AnyWidget):
    """Base of the live widgets: polling thread, throttled pushes, actions off the kernel thread.

    Parameters
    ----------
    poll_interval : float
        Seconds between two reads.
    min_interval : float
        Minimum seconds between two pushes to the browser (default 0.25: at most 4/s).
    autostart : bool
        Start the polling thread at once (``False``: call :meth:`refresh` or :meth:`start`).
    actor : str, optional
        Recorded as who acted, for every action taken from the widget
        (default: ``"<user> (widget)"``).
    denied : dict, optional
        ``{action: why}``: the actions the user's roles do not allow, whose buttons are disabled
        with the reason as their tooltip (``bench.widgets`` fills it from ``bench.access.denied``;
        the library refuses those actions anyway).
    """

    _esm = ESM_PATH
    _css = CSS_PATH

    kind = traitlets.Unicode("").tag(sync=True)
    #: ``{action: why}`` for the actions the user's roles do not allow (empty in an open home):
    #: their buttons are disabled, the reason is the tooltip. The library refuses them anyway.
    denied = traitlets.Dict({}).tag(sync=True)
    notice = traitlets.Dict({}).tag(sync=True)
    busy = traitlets.Unicode("").tag(sync=True)
    error = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        *,
        poll_interval: float = 1.0,
        min_interval: float = 0.25,
        autostart: bool = True,
        actor: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.poll_interval = float(poll_interval)
        self.actor = actor or f"{default_actor()} (widget)"
        self.stats: dict[str, float] = {"reads": 0, "read_ms": 0.0, "pushes": 0, "push_ms": 0.0}
        self._throttle: Throttle[dict[str, Any]] = Throttle(
            self._push, min_interval=min_interval, trailing=True
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._notice_seq = 0
        self._last: dict[str, Any] = {}
        self.on_msg(self._on_custom_msg)
        if autostart:
            self.start()

    # ------------------------------------------------------------ reading
    def _read(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _finished(self) -> bool:
        """True once nothing shown can change any more (polling then stops)."""
        return False

    def refresh(self, *, force: bool = False) -> dict[str, Any]:
        """Read now and push the state (at once if ``force``, else throttled); return it."""
        t0 = time.perf_counter()
        try:
            state = self._read()
        except Exception as exc:  # shown in the widget; the poller keeps going
            self._throttle.submit({"error": f"{type(exc).__name__}: {exc}"}, force=force)
            raise
        self.stats["reads"] += 1
        self.stats["read_ms"] = (time.perf_counter() - t0) * 1000
        state["error"] = ""
        self._last = state
        self._throttle.submit(self._pack(state), force=force)
        return state

    #: Traits kept in Python as lists and sent to the browser as one JSON string each (``<name>_json``).
    _packed: tuple[str, ...] = ()

    def _pack(self, state: dict[str, Any]) -> dict[str, Any]:
        # Large nested lists cost ipywidgets a Python walk of every element on each send (~17 ms for
        # 1,000 trials, holding the GIL in 5 ms slices). Encoded here, on the poller thread, in one C
        # call, they cross the comm as one string; unchanged ones are not re-encoded.
        out = dict(state)
        for name in self._packed:
            if name in out:
                if out[name] != getattr(self, name):
                    out[f"{name}_json"] = json.dumps(
                        out[name], separators=(",", ":"), allow_nan=False
                    )
                else:
                    del out[name]
        return out

    def _push(self, state: Mapping[str, Any]) -> None:
        t0 = time.perf_counter()
        # One comm message; traitlets skips values equal to what was sent before.
        with self.hold_sync():
            for name, value in state.items():
                setattr(self, name, value)
        self.stats["pushes"] += 1
        self.stats["push_ms"] = (time.perf_counter() - t0) * 1000

    def start(self) -> None:
        """Start polling on a daemon thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._poll, name=f"workbench-{self.kind}-widget", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (the widget stays on screen with its last state)."""
        self._stop.set()
        self._throttle.flush()

    @property
    def polling(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception:
                pass  # already shown as the widget's error; try again next interval
            if self._finished():
                self.refresh(force=True)
                break
            self._stop.wait(self.poll_interval)

    def close(self) -> None:
        """Stop polling and close the widget's comm."""
        stop = getattr(self, "_stop", None)  # ipywidgets may call close() on a half-built widget
        if stop is not None:
            stop.set()
            self._throttle.stop()
            if self._executor is not None:
                self._executor.shutdown(wait=False)
        super().close()

    # ------------------------------------------------------------ actions
    def _actions(self) -> dict[str, Callable[..., Any]]:
        return {}

    def act(self, action: str, **params: Any) -> Any:
        """Run one action (what a click in the widget does) in this thread, then refresh.

        Raises
        ------
        ConfigError
            For an unknown action, or a promotion/rollback without ``confirm=True``.
        """
        actions = self._actions()
        if action not in actions:
            raise ConfigError(
                f"{type(self).__name__} has no action {action!r}; it has: {', '.join(sorted(actions)) or 'none'}."
            )
        result = actions[action](**params)
        try:
            self.refresh(force=True)
        except Exception:
            pass
        return result

    def submit(self, action: str, **params: Any) -> Future:
        """Run an action on the widget's worker thread; the result or error shows as its notice."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1, thread_name_prefix=f"workbench-{self.kind}-action"
            )
        # the click runs as whoever is acting in the kernel (contextvars do not cross threads)
        context = contextvars.copy_context()
        return self._executor.submit(context.run, self._run_action, action, params)

    def _run_action(self, action: str, params: dict[str, Any]) -> Any:
        self.busy = action
        try:
            result = self.act(action, **params)
        except Exception as exc:
            self._set_notice("error", f"{action} failed: {exc}")
            raise
        else:
            self._set_notice("ok", self._describe(action, params, result))
            return result
        finally:
            self.busy = ""

    def _describe(self, action: str, params: dict[str, Any], result: Any) -> str:
        return f"{action}: done"

    def _set_notice(self, level: str, text: str) -> None:
        self._notice_seq += 1
        self.notice = {"level": level, "text": text, "seq": self._notice_seq}

    def _on_custom_msg(self, _widget: Any, content: Any, _buffers: Any) -> None:
        # Runs on the kernel thread: validate the shape and hand the work over at once.
        if not isinstance(content, dict) or not isinstance(content.get("action"), str):
            return
        params = content.get("params") if isinstance(content.get("params"), dict) else {}
        self.submit(content["action"], **params)


def _confirmed(confirm: Any, what: str) -> None:
    if confirm is not True:
        raise ConfigError(
            f"{what} changes what is served: pass confirm=True (the widget asks first)."
        )


# ---------------------------------------------------------------- experiment
class ExperimentWidget(LiveWidget):
    """Live view of one experiment: trial table, metric curves, parallel coordinates, best so far, stop.

    Parameters
    ----------
    experiments : ExperimentSource
        ``bench.experiments``: the widget reads its ``get``, ``trials`` and
        ``metrics`` (what the store holds, so one built after a kernel restart
        shows the same trials) and audits a stop with ``record_stop``.
    experiment_id : int
        The experiment to show.
    handle : SearchHandle, optional
        The running search (``experiments.start_search(...)``); with it the stop
        button ends the search through ``handle.stop()``.
    **kwargs
        ``poll_interval`` (default 0.5 s), ``min_interval``, ``autostart``, ``actor``.

    Examples
    --------
    >>> handle = bench.experiments.start_search(train, name="demo")    # doctest: +SKIP
    >>> handle          # last expression of a cell: shows the widget          # doctest: +SKIP
    >>> ExperimentWidget(bench.experiments, handle.experiment_id, handle=handle)  # doctest: +SKIP
    """

    experiment = traitlets.Dict({}).tag(sync=True)
    columns = traitlets.List([]).tag(sync=True)
    #: One compact row per trial, in ``columns`` order (sent as ``rows_json``).
    rows = traitlets.List([])
    #: ``{trial_id: [[step, value], ...]}`` of the search metric (sent as ``curves_json``).
    curves = traitlets.Dict({})
    rows_json = traitlets.Unicode("[]").tag(sync=True)
    curves_json = traitlets.Unicode("{}").tag(sync=True)
    best = traitlets.Dict({}).tag(sync=True)
    best_curve = traitlets.List([]).tag(sync=True)

    _packed = ("rows", "curves")
    can_stop = traitlets.Bool(False).tag(sync=True)
    stop_requested = traitlets.Bool(False).tag(sync=True)
    # "waiting for a node of type ..." while an autoscaler adds a node for the first trial
    waiting = traitlets.Unicode("").tag(sync=True)

    def __init__(
        self,
        experiments: ExperimentSource,
        experiment_id: int,
        *,
        handle: SearchControl | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("poll_interval", 0.5)
        self._experiments = experiments
        self._handle = handle
        self._reader = ExperimentReader(experiments, experiment_id)
        experiments.get(int(experiment_id))  # NotFoundError now, not in the poller
        super().__init__(kind="experiment", **kwargs)

    @property
    def experiment_id(self) -> int:
        return self._reader.experiment_id

    def _read(self) -> dict[str, Any]:
        state = self._reader.read()
        running = self._handle is not None and not self._handle.done()
        state["can_stop"] = bool(running)
        if self._handle is not None and self._handle_state() in ("STOPPING", "STOPPED"):
            state["stop_requested"] = True
        state["waiting"] = (self._handle_status().get("waiting") or "") if running else ""
        return state

    def _handle_status(self) -> dict[str, Any]:
        try:
            return dict(self._handle.status())  # type: ignore[attr-defined]
        except Exception:  # a handle without status(): nothing to add
            return {}

    def _handle_state(self) -> str | None:
        try:
            return str(self._handle.state())
        except Exception:
            return None

    def _finished(self) -> bool:
        status = (self._last.get("experiment") or {}).get("status")
        if self._handle is not None:
            return self._handle.done() and status != "RUNNING"
        return bool(status) and status != "RUNNING"

    def _actions(self) -> dict[str, Callable[..., Any]]:
        return {"stop": self._stop_search}

    def _stop_search(self, reason: str = "stopped from the experiment widget") -> str:
        if self._handle is None:
            raise ConfigError(
                "this widget was not given the running search (after a kernel restart the search's driver is "
                "gone); stop it where it runs, or resume it with bench.experiments.resume(id)."
            )
        if self._handle.done():
            raise ConfigError(
                f"experiment {self.experiment_id} has already ended; nothing to stop."
            )
        self._handle.stop()
        self._experiments.record_stop(
            self.experiment_id, reason=reason, actor=self.actor, via="widget"
        )
        self.stop_requested = True
        return "STOPPING"

    def _describe(self, action: str, params: dict[str, Any], result: Any) -> str:
        return "stop requested: running trials end and are recorded as STOPPED"


# ------------------------------------------------------------------ registry
class RegistryWidget(LiveWidget):
    """Versions of one model with their metrics, data versions and aliases; promote and roll back;
    the selected version's evaluation (metrics with CV intervals, per-group figures, the gate's
    verdict) and its HTML report (action ``report``, shown in a sandboxed frame).

    Parameters
    ----------
    registry : ModelRegistry
        ``bench.registry``; promotions go through ``registry.set_alias``.
    model : str
        The registered model to show.
    highlight : int, optional
        A version to mark (the one whose display opened the widget).
    reads : ModelRegistry, optional
        Where to read from (default ``registry``; ``bench.widgets`` passes the
        registry of a :meth:`~workbench.Workbench.reopen` ed Workbench).
    **kwargs
        ``poll_interval`` (default 2 s), ``min_interval``, ``autostart``, ``actor``.
    """

    model_name = traitlets.Unicode("").tag(sync=True)
    versions = traitlets.List([]).tag(sync=True)
    metric_names = traitlets.List([]).tag(sync=True)
    aliases = traitlets.Dict({}).tag(sync=True)
    history = traitlets.List([]).tag(sync=True)
    data_versions = traitlets.List([]).tag(sync=True)
    rollback = traitlets.Dict({}).tag(sync=True)
    highlight = traitlets.Int(None, allow_none=True).tag(sync=True)
    #: evaluated versions' summaries ({version: evaluation_summary}), and the last report opened
    evaluations = traitlets.Dict({}).tag(sync=True)
    report_html = traitlets.Unicode("").tag(sync=True)
    report_version = traitlets.Int(None, allow_none=True).tag(sync=True)

    def __init__(
        self,
        registry: RegistryActions,
        model: str,
        *,
        highlight: int | None = None,
        reads: RegistrySource | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("poll_interval", 2.0)
        self._registry = registry
        self._view: RegistrySource = reads if reads is not None else registry
        self._model = model
        registry_state(self._view, model)  # NotFoundError now, naming the known models
        super().__init__(
            kind="registry",
            model_name=model,
            highlight=highlight,
            **kwargs,
        )

    def _read(self) -> dict[str, Any]:
        state = registry_state(self._view, self._model)
        state.pop("model")
        return state

    def _actions(self) -> dict[str, Callable[..., Any]]:
        return {"promote": self._promote, "rollback": self._rollback, "report": self._report}

    def _report(self, version: int) -> dict[str, Any]:
        # the writing registry: the first report of an evaluation is stored as an artifact
        html = self._registry.report(self._model, int(version))
        self.report_html, self.report_version = html, int(version)
        return {"version": int(version), "chars": len(html)}

    def _promote(
        self, version: int, alias: str = "champion", reason: str = "", confirm: bool = False
    ) -> dict[str, Any]:
        _confirmed(confirm, f"moving alias {alias!r} of {self._model!r}")
        mv = self._registry.set_alias(
            self._model,
            str(alias),
            int(version),
            actor=self.actor,
            reason=reason or f"promoted to {alias} from the registry widget",
        )
        return {"alias": alias, "version": mv.version}

    def _rollback(
        self, alias: str = "champion", reason: str = "", confirm: bool = False
    ) -> dict[str, Any]:
        _confirmed(confirm, f"rolling back alias {alias!r} of {self._model!r}")
        current = self._registry.get(self._model, alias).version
        target = rollback_target(self._registry.history(self._model), alias, current)
        if target is None:
            raise ConfigError(
                f"alias {alias!r} of {self._model!r} never pointed at another version; promote one instead."
            )
        self._registry.set_alias(
            self._model,
            alias,
            target,
            actor=self.actor,
            reason=reason or f"rolled back from version {current} in the registry widget",
        )
        return {"alias": alias, "version": target, "from": current}

    def _describe(self, action: str, params: dict[str, Any], result: Any) -> str:
        if action == "report":
            return f"evaluation report of version {result['version']} opened below"
        if action == "rollback":
            return f"{result['alias']} rolled back: version {result['from']} → {result['version']}"
        return f"{result['alias']} is now version {result['version']}"


# ---------------------------------------------------------------- deployment
class DeploymentWidget(LiveWidget):
    """A deployment: traffic weights as sliders that reconfigure the router, request charts, canary progress.

    Parameters
    ----------
    serving : Serving
        ``bench.serving``; slider changes call ``serving.set_traffic`` (which
        validates the weights) and the rollback button ``serving.rollback``
        (both on a worker thread).
    name : str
        Deployment name.
    reads : Serving, optional
        Where to read from (default ``serving``): its store-only read views
        ``record``, ``traffic_history``, ``request_stats`` and ``requests``, so
        the charts work without Ray (e.g. after a restart).
    window_s, bucket_s : float
        Seconds of request history in the charts, and the bucket width.
    **kwargs
        ``poll_interval`` (default 1 s), ``min_interval``, ``autostart``, ``actor``.
    """

    deployment = traitlets.Dict({}).tag(sync=True)
    weights = traitlets.Dict({}).tag(sync=True)
    versions = traitlets.List([]).tag(sync=True)
    history = traitlets.List([]).tag(sync=True)
    canary = traitlets.Dict({}).tag(sync=True)
    requests = traitlets.List([]).tag(sync=True)
    bucket_s = traitlets.Float(5.0).tag(sync=True)

    def __init__(
        self,
        serving: ServingActions,
        name: str,
        *,
        reads: DeploymentSource | None = None,
        window_s: float = 300.0,
        bucket_s: float = 5.0,
        **kwargs: Any,
    ):
        self._serving = serving
        self._view: DeploymentSource = reads if reads is not None else serving
        self._name = name
        self._view.record(name)  # NotFoundError now
        self._series = RequestSeries(self._view, name, window_s=window_s, bucket_s=bucket_s)
        super().__init__(
            kind="deployment",
            bucket_s=bucket_s,
            **kwargs,
        )

    def _read(self) -> dict[str, Any]:
        self._series.update()
        s = deployment_state(self._view, self._name, self._series)
        return {
            "deployment": {k: s[k] for k in ("name", "model", "status", "route_prefix", "totals")},
            "weights": s["weights"],
            "versions": s["versions"],
            "history": s["history"],
            "canary": s["canary"],
            "requests": s["requests"],
        }

    def _actions(self) -> dict[str, Callable[..., Any]]:
        return {"set_traffic": self._set_traffic, "rollback": self._rollback}

    def _set_traffic(self, weights: Mapping[Any, Any], reason: str = "") -> dict[int, float]:
        # as the browser sends them ({"1": 0.9}); set_traffic validates them before Serve is touched
        return self._serving.set_traffic(
            self._name,
            weights,
            actor=self.actor,
            reason=reason or "traffic set from the deployment widget",
        )

    def _rollback(
        self, to_version: int | None = None, reason: str = "", confirm: bool = False
    ) -> dict[int, float]:
        _confirmed(confirm, f"rolling back deployment {self._name!r}")
        return self._serving.rollback(
            self._name,
            to_version=None if to_version is None else int(to_version),
            actor=self.actor,
            reason=reason or "rolled back from the deployment widget",
        )

    def _describe(self, action: str, params: dict[str, Any], result: Any) -> str:
        shares = ", ".join(f"v{v} {w:.0%}" for v, w in sorted(dict(result).items()))
        return f"{'rolled back' if action == 'rollback' else 'traffic set'}: {shares}"


# ------------------------------------------------------------------- monitor
class MonitorWidget(LiveWidget):
    """A drift monitor: p-values per feature over windows, drift alerts and the retraining they caused.

    Parameters
    ----------
    monitoring : Monitoring
        ``bench.monitoring``: the widget reads its ``record``, ``results``,
        ``alerts`` and ``retrain_jobs``.
    monitor : str
        Monitor name.
    automation : Automation, optional
        ``bench.automation``; with it, retrain jobs waiting for approval get
        approve/reject buttons (``automation.approve``/``reject``).
    **kwargs
        ``poll_interval`` (default 2 s), ``min_interval``, ``autostart``, ``actor``.
    """

    monitor = traitlets.Dict({}).tag(sync=True)
    features = traitlets.List([]).tag(sync=True)
    windows = traitlets.List([]).tag(sync=True)
    alerts = traitlets.List([]).tag(sync=True)
    jobs = traitlets.List([]).tag(sync=True)
    can_approve = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        monitoring: MonitorSource,
        monitor: str,
        *,
        automation: RetrainActions | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("poll_interval", 2.0)
        self._monitoring = monitoring
        self._name = monitor
        self._automation = automation
        monitoring.record(monitor)  # NotFoundError now
        super().__init__(
            kind="monitor",
            can_approve=automation is not None,
            **kwargs,
        )

    def _read(self) -> dict[str, Any]:
        s = monitor_state(self._monitoring, self._name)
        return {
            "monitor": {k: s[k] for k in ("name", "deployment", "kind", "p_val", "correction")},
            "features": s["features"],
            "windows": s["windows"],
            "alerts": s["alerts"],
            "jobs": s["jobs"],
        }

    def _actions(self) -> dict[str, Callable[..., Any]]:
        return {"approve": self._answer(True), "reject": self._answer(False)}

    def _answer(self, approve: bool) -> Callable[..., Any]:
        def answer(job_id: int, reason: str = "", confirm: bool = False) -> Any:
            _confirmed(confirm, f"{'approving' if approve else 'rejecting'} retrain job {job_id}")
            if self._automation is None:
                raise ConfigError(
                    "this widget was built without automation=bench.automation; it cannot answer jobs."
                )
            method = self._automation.approve if approve else self._automation.reject
            return method(
                int(job_id), actor=self.actor, reason=reason or "answered in the monitor widget"
            )

        return answer


# ------------------------------------------------------------------- lineage
class LineageWidget(LiveWidget):
    """The lineage graph around one record, laid out in layers; clicking a node shows its record.

    Parameters
    ----------
    lineage : Workbench
        Anything with ``lineage_graph`` and ``lineage_record`` (a ``Workbench``).
    node_type, node_id : str, int
        The record to start from (``"model_version"``, ``"dataset_version"``,
        ``"deployment"``, ``"drift_result"``...).
    **kwargs
        ``poll_interval`` (default 5 s), ``min_interval``, ``autostart``, ``actor``.
    """

    root = traitlets.Unicode("").tag(sync=True)
    nodes = traitlets.List([]).tag(sync=True)
    edges = traitlets.List([]).tag(sync=True)
    selected = traitlets.Unicode("").tag(sync=True)
    record = traitlets.Dict({}).tag(sync=True)

    def __init__(
        self,
        lineage: LineageSource,
        node_type: str,
        node_id: int,
        *,
        max_nodes: int = 500,
        **kwargs: Any,
    ):
        kwargs.setdefault("poll_interval", 5.0)
        self._lineage = lineage
        self._node = (str(node_type), int(node_id))
        self._max_nodes = max_nodes
        super().__init__(kind="lineage", **kwargs)
        self.observe(self._on_select, names=["selected"])

    def _read(self) -> dict[str, Any]:
        s = lineage_state(self._lineage, *self._node, max_nodes=self._max_nodes)
        return {"root": s["root"], "nodes": s["nodes"], "edges": s["edges"]}

    def _on_select(self, change: Mapping[str, Any]) -> None:
        key = str(change["new"] or "")
        if ":" not in key:
            self.record = {}
            return
        node_type, _, node_id = key.rpartition(":")
        try:
            self.record = node_record(self._lineage, node_type, int(node_id))
        except Exception as exc:
            self.record = {
                "type": node_type,
                "id": node_id,
                "description": f"cannot read it: {exc}",
                "record": {},
            }


# ------------------------------------------------------------------- dataset
class DatasetWidget(LiveWidget):
    """A dataset's versions, each version's validation report, and a diff between two of them.

    Clicking a version shows its report (passed or failed per check, severity, failing rows,
    examples); two version pickers, an optional key and "Compare" show what changed (schema, rows
    added/removed/changed, column statistics). Diffs run on the widget's worker thread and are
    kept until another pair is asked for.

    Parameters
    ----------
    datasets : Datasets
        ``bench.datasets``: the widget reads its ``versions``, ``report`` and ``diff``.
    name : str
        Dataset name.
    compare : (int, int), optional
        Versions to diff at first (default: the last two, when there are two).
    key : str or list of str, optional
        Key columns of that first diff (default: whole rows).
    **kwargs
        ``poll_interval`` (default 5 s), ``min_interval``, ``autostart``, ``actor``.

    Examples
    --------
    >>> bench.widgets.dataset("cancer")                              # doctest: +SKIP
    >>> DatasetWidget(bench.datasets, "cancer", compare=(1, 3), key="id")  # doctest: +SKIP
    """

    dataset_name = traitlets.Unicode("").tag(sync=True)
    versions = traitlets.List([]).tag(sync=True)
    #: The version whose report is shown (the browser sets it when a row is clicked).
    selected = traitlets.Int(None, allow_none=True).tag(sync=True)
    schema = traitlets.Dict({}).tag(sync=True)
    report = traitlets.List([]).tag(sync=True)
    #: The version ``report`` belongs to (``selected`` changes at the click, the report after the read).
    report_version = traitlets.Int(None, allow_none=True).tag(sync=True)
    #: ``{"a": version, "b": version, "key": [columns]}`` of the diff shown.
    compare = traitlets.Dict({}).tag(sync=True)
    #: ``DatasetDiff.to_dict()`` (plus ``text``), or ``{"error": ...}``.
    diff = traitlets.Dict({}).tag(sync=True)

    def __init__(
        self,
        datasets: DatasetSource,
        name: str,
        *,
        compare: tuple[int, int] | None = None,
        key: str | list[str] | None = None,
        **kwargs: Any,
    ):
        kwargs.setdefault("poll_interval", 5.0)
        self._datasets = datasets
        self._name = name
        self._diff_cache: tuple[Any, dict[str, Any]] | None = None
        versions = datasets.versions(name)  # NotFoundError now, saying how to ingest it
        initial: dict[str, Any] = {}
        if compare is not None:
            initial = {"a": int(compare[0]), "b": int(compare[1]), "key": _key_list(key)}
        elif len(versions) >= 2:
            initial = {
                "a": versions[-2].version,
                "b": versions[-1].version,
                "key": _key_list(key),
            }
        super().__init__(kind="dataset", dataset_name=name, compare=initial, **kwargs)
        self.observe(self._on_select, names=["selected"])

    def _read(self) -> dict[str, Any]:
        s = dataset_state(self._datasets, self._name, selected=self.selected)
        state = {
            "versions": s["versions"],
            "schema": s["schema"],
            "report": s["report"],
            "report_version": s["selected"],
        }
        if self.selected is None:
            state["selected"] = s["selected"]
        state["diff"] = self._diff_for(dict(self.compare))
        return state

    def _diff_for(self, compare: Mapping[str, Any]) -> dict[str, Any]:
        if not compare:
            return {}
        ask = (compare.get("a"), compare.get("b"), tuple(compare.get("key") or ()))
        cached = self._diff_cache
        if cached is not None and cached[0] == ask:
            return cached[1]
        out = diff_state(self._datasets, self._name, ask[0], ask[1], ask[2])
        self._diff_cache = (ask, out)
        return out

    def _on_select(self, change: Mapping[str, Any]) -> None:
        # a click in the browser: read the report off the kernel thread
        if change["new"] is not None and change["new"] != change["old"]:
            self.submit("select", version=change["new"])

    def _actions(self) -> dict[str, Callable[..., Any]]:
        return {"diff": self._diff_action, "select": self._select}

    def _select(self, version: int) -> int:
        if self.selected != int(version):
            self.selected = int(version)
        return int(version)

    def _diff_action(self, a: int, b: int, key: Any = None) -> dict[str, Any]:
        """Diff version ``a`` against ``b`` (by ``key``: a column, a list, or "c1, c2")."""
        self.compare = {"a": int(a), "b": int(b), "key": _key_list(key)}
        return self._diff_for(self.compare)

    def _describe(self, action: str, params: dict[str, Any], result: Any) -> str:
        if action == "select":
            return f"validation report of {self._name}@{result}"
        if result.get("error"):
            return f"cannot diff: {result['error']}"
        return result.get("text", "").splitlines()[0] if result.get("text") else "diff: done"


def _key_list(key: Any) -> list[str]:
    if key is None:
        return []
    parts = key.split(",") if isinstance(key, str) else list(key)
    return [str(k).strip() for k in parts if str(k).strip()]


# ------------------------------------------------------------------- factory
class Widgets:
    """``bench.widgets``: one method per widget, wired to a :class:`~workbench.Workbench`.

    The widgets read through a second Workbench on the same home
    (:meth:`~workbench.Workbench.reopen`, opened on first use), so their
    polling never waits on the kernel's store connection; their actions
    (promote, set traffic, approve...) go through ``bench`` itself.

    Examples
    --------
    >>> bench.widgets.registry("cancer")            # doctest: +SKIP
    >>> bench.widgets.deployment("cancer")          # doctest: +SKIP
    """

    def __init__(self, bench: Any):
        self._bench = bench
        self._reader: Any = None

    @property
    def reader(self) -> Any:
        """The Workbench the widgets read through (``bench.reopen()``, opened once)."""
        if self._reader is None:
            self._reader = self._bench.reopen()
        return self._reader

    def experiment(self, experiment: Any, *, handle: Any = None, **kwargs: Any) -> ExperimentWidget:
        """The experiment widget of an id, a ``SearchHandle`` (stop works) or a ``SearchResult``."""
        if hasattr(experiment, "experiment_id"):
            if handle is None and hasattr(experiment, "stop") and hasattr(experiment, "state"):
                handle = experiment
            experiment = experiment.experiment_id
        kwargs.setdefault("denied", self._bench.access.denied(["search"]))
        return ExperimentWidget(self.reader.experiments, int(experiment), handle=handle, **kwargs)

    def registry(self, model: str, **kwargs: Any) -> RegistryWidget:
        """Versions, aliases and data versions of ``model``, with promote and roll back."""
        kwargs.setdefault("denied", self._bench.access.denied(["promote"]))
        return RegistryWidget(self._bench.registry, model, reads=self.reader.registry, **kwargs)

    def deployment(self, name: str, **kwargs: Any) -> DeploymentWidget:
        """Traffic sliders, request charts and canary progress of deployment ``name``."""
        kwargs.setdefault("denied", self._bench.access.denied(["traffic", "rollback"]))
        return DeploymentWidget(self._bench.serving, name, reads=self.reader.serving, **kwargs)

    def monitor(self, name: str, **kwargs: Any) -> MonitorWidget:
        """Drift p-values, alerts and retraining of monitor ``name`` (approve/reject pending jobs)."""
        kwargs.setdefault("automation", self._bench.automation)
        kwargs.setdefault("denied", self._bench.access.denied(["approve"]))
        return MonitorWidget(self.reader.monitoring, name, **kwargs)

    def lineage(self, model: str, version: int | str = "champion", **kwargs: Any) -> LineageWidget:
        """The lineage graph around a model version (data → experiment → model → deployments → drift)."""
        mv = self._bench.registry.get(model, version)
        return LineageWidget(self.reader, "model_version", mv.id, **kwargs)

    def dataset(self, name: str, **kwargs: Any) -> DatasetWidget:
        """Versions of dataset ``name``, each one's validation report, and a diff between two."""
        return DatasetWidget(self.reader.datasets, name, **kwargs)

    def close(self) -> None:
        """Close the reading Workbench (widgets already shown stop updating; ``bench.close()``
        leaves it open, so they keep showing the store after the kernel's Workbench is closed)."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
