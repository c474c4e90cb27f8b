"""Alerts: severity, deduplication and cooldown, delivered to the store, the log, the notebook and webhooks.

Every alert is a row in the store (``alerts``), linked to the monitor result
that raised it. An alert whose key (monitor and verdict) was raised less than
``cooldown_s`` ago is folded into that one (its ``count`` grows) and not
delivered again; once the cooldown has passed, a condition that persists is
delivered again as a new alert. Delivery never raises into the monitor: each
channel's outcome is recorded on the alert (``deliveries``).
"""

from __future__ import annotations

import html
import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from workbench.exceptions import ConfigError
from workbench.lineage import Store

__all__ = [
    "SEVERITIES",
    "AlertSink",
    "LogSink",
    "NotebookSink",
    "WebhookSink",
    "CallbackSink",
    "Alerts",
]

SEVERITIES = ("info", "warning", "critical")
_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}
WEBHOOK_ENV = "WORKBENCH_ALERT_WEBHOOK"

log = logging.getLogger("workbench.alerts")


def _rank(severity: str) -> int:
    if severity not in SEVERITIES:
        raise ConfigError(f"severity must be one of {SEVERITIES}, got {severity!r}")
    return SEVERITIES.index(severity)


class AlertSink(Protocol):
    """A delivery channel: ``deliver`` raises when the alert did not get through."""

    name: str

    def deliver(self, alert: dict[str, Any]) -> None: ...


def _line(alert: dict[str, Any]) -> str:
    return f"[{alert['severity'].upper()}] {alert.get('monitor') or '-'}: {alert['title']}"


class LogSink:
    """The ``workbench.alerts`` logger, at the alert's severity."""

    name = "log"

    def deliver(self, alert: dict[str, Any]) -> None:
        log.log(_LEVELS[alert["severity"]], "%s (alert %s)", _line(alert), alert["id"])


class NotebookSink:
    """Shows alerts in the notebook that runs the monitor (HTML output), and keeps the latest ones.

    Outside a Jupyter kernel it only keeps them (``recent``); the log sink covers terminals.
    """

    name = "notebook"
    _COLOURS = {"info": "#2563eb", "warning": "#d97706", "critical": "#dc2626"}

    def __init__(self, keep: int = 50):
        self.recent: deque[dict[str, Any]] = deque(maxlen=keep)

    def deliver(self, alert: dict[str, Any]) -> None:
        self.recent.append(alert)
        from workbench.ui import in_notebook_kernel

        if not in_notebook_kernel():
            return
        from IPython.display import HTML, display

        colour = self._COLOURS[alert["severity"]]
        display(
            HTML(
                f'<div style="border-left:4px solid {colour};padding:2px 8px">'
                f"<b>{html.escape(alert['severity'].upper())}</b> "
                f"{html.escape(str(alert.get('monitor') or ''))}: {html.escape(alert['title'])}</div>"
            )
        )


class WebhookSink:
    """POSTs the alert as JSON to ``url``; retried with backoff on connection errors and 5xx.

    The body is ``{"source": "workbench", "alert": {...}}``; the header
    ``X-Workbench-Alert`` carries the deduplication key, so a receiver can
    deduplicate too.
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        headers: dict[str, str] | None = None,
    ):
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook URL must start with http:// or https://, got {url!r}")
        self.url = url
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.headers = dict(headers or {})

    def deliver(self, alert: dict[str, Any]) -> None:
        body = json.dumps({"source": "workbench", "alert": alert}, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "workbench-alerts",
            "X-Workbench-Alert": str(alert.get("dedup_key", "")),
            **self.headers,
        }
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    resp.read()
                return
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500:
                    break  # the receiver refused it; asking again will not help
            except (urllib.error.URLError, OSError) as exc:
                last = exc
        raise ConnectionError(f"POST {self.url} failed: {last}")


class CallbackSink:
    """Calls ``fn(alert)``: for custom channels and tests."""

    def __init__(self, fn: Callable[[dict[str, Any]], None], name: str = "callback"):
        self.fn = fn
        self.name = name

    def deliver(self, alert: dict[str, Any]) -> None:
        self.fn(alert)


class Alerts:
    """Raise, deduplicate, deliver and list alerts.

    Parameters
    ----------
    store
        Where alerts are recorded.
    sinks
        Channels for every alert; default: the log and the notebook, plus a
        webhook when ``$WORKBENCH_ALERT_WEBHOOK`` is set (kept out of the
        store, for URLs that are secrets).

    Examples
    --------
    >>> alerts = Alerts(Store(":memory:"), sinks=[])
    >>> alerts.emit(title="disk almost full", severity="warning", dedup_key="disk")["deliver"]
    True
    >>> alerts.emit(title="disk almost full", severity="warning", dedup_key="disk")["count"]
    2
    """

    def __init__(self, store: Store, *, sinks: Sequence[AlertSink] | None = None):
        self.store = store
        if sinks is None:
            self.notebook = NotebookSink()
            default: list[AlertSink] = [LogSink(), self.notebook]
            url = os.environ.get(WEBHOOK_ENV)
            if url:
                default.append(WebhookSink(url))
            self.sinks = default
        else:
            self.sinks = list(sinks)
            self.notebook = next((s for s in self.sinks if isinstance(s, NotebookSink)), None)  # type: ignore[assignment]

    def add_sink(self, sink: AlertSink) -> None:
        self.sinks.append(sink)

    def emit(
        self,
        *,
        title: str,
        severity: str = "warning",
        dedup_key: str | None = None,
        detail: dict[str, Any] | None = None,
        monitor: str | None = None,
        drift_result_id: int | None = None,
        cooldown_s: float = 900.0,
        min_severity: str = "info",
        extra_sinks: Sequence[AlertSink] = (),
    ) -> dict[str, Any]:
        """Record an alert and deliver it unless it duplicates one within ``cooldown_s``.

        Channels only get alerts at or above ``min_severity``; the store gets all.
        Returns the alert row with ``deliver`` (whether it went out) and ``deliveries``.
        """
        _rank(severity)
        row = self.store.monitors.record_alert(
            dedup_key=dedup_key or f"{monitor or '-'}:{title}",
            severity=severity,
            title=title,
            detail=detail or {},
            cooldown_s=cooldown_s,
            monitor=monitor,
            drift_result_id=drift_result_id,
        )
        if not row["deliver"] or _rank(severity) < _rank(min_severity):
            return row
        alert = {
            "id": row["id"],
            "monitor": monitor,
            "severity": severity,
            "title": title,
            "detail": detail or {},
            "dedup_key": row["dedup_key"],
            "drift_result_id": drift_result_id,
            "at": row["first_at"],
        }
        deliveries: dict[str, str] = {}
        for sink in [*self.sinks, *extra_sinks]:
            try:
                sink.deliver(alert)
                deliveries[sink.name] = "ok"
            except Exception as exc:  # a broken channel must not stop monitoring
                deliveries[sink.name] = f"failed: {type(exc).__name__}: {exc}"[:500]
                log.warning("alert %s not delivered to %s: %s", row["id"], sink.name, exc)
        self.store.monitors.set_alert_delivery(row["id"], deliveries)
        return {**row, "deliveries": deliveries}

    def list(
        self, monitor: str | None = None, *, severity: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alerts, newest first (``count`` > 1: duplicates folded in during the cooldown)."""
        return self.store.monitors.list_alerts(monitor, severity=severity, limit=limit)
