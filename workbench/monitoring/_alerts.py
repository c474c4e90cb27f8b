"""Alerts: severity, deduplication and cooldown, delivered to the store, the log, the notebook and webhooks.

Every alert is a row in the store (``alerts``), linked to the monitor result
that raised it. An alert whose key (monitor and verdict) was raised less than
``cooldown_s`` ago is folded into that one (its ``count`` grows) and not
delivered again; once the cooldown has passed, a condition that persists is
delivered again as a new alert. Delivery never raises into the monitor: each
channel's outcome is recorded on the alert (``deliveries``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import html
import http.client
import json
import logging
import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

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
    "QUEUE_LIMIT",
    "flush_webhooks",
    "redact_url",
    "webhook_stats",
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


def redact_url(url: str) -> str:
    """``url`` safe to show: ``scheme://host[:port]``, with its path, query and credentials
    replaced by ``…#`` and a fingerprint (the first 6 hex digits of its SHA-256), so two URLs can
    be told apart without either being revealed.

    Examples
    --------
    >>> redact_url("https://hooks.example.com/services/T00/B00/XXXX?token=s3cret")
    'https://hooks.example.com/…#92e439'
    >>> redact_url("http://127.0.0.1:8080")
    'http://127.0.0.1:8080'
    """
    text = str(url)
    fingerprint = hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:6]
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return f"<unreadable URL>#{fingerprint}"
    if ":" in host:
        host = f"[{host}]"
    shown = f"{parts.scheme}://{host}{port}"
    secret = parts.username or parts.password or parts.path not in ("", "/") or parts.query
    return f"{shown}/…#{fingerprint}" if secret or parts.fragment else shown


def _scrub(text: str, url: str) -> str:
    """``text`` (an error message) with ``url``, its path and query and its password redacted."""
    parts = urlsplit(url)
    out = text.replace(url, redact_url(url))
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(tail) > 1:
        out = out.replace(tail, "/…")
    if parts.password:
        out = out.replace(parts.password, "…")
    return out


#: Alerts waiting per webhook URL; past this the oldest is dropped (and counted).
QUEUE_LIMIT = 1000


class _Queue:
    """The alerts waiting for one webhook URL, sent one at a time by a daemon thread."""

    def __init__(self, limit: int):
        self.items: deque[tuple[WebhookSink, dict[str, Any], Callable[[str], None] | None]] = (
            deque()
        )
        self.limit = limit
        self.busy = False
        self.stats = {"queued": 0, "sent": 0, "failed": 0, "dropped": 0}
        self.cond = threading.Condition()
        self.thread: threading.Thread | None = None

    def put(self, sink: WebhookSink, alert: dict[str, Any], done: Callable[[str], None] | None):
        dropped = None
        with self.cond:
            if len(self.items) >= self.limit:
                dropped = self.items.popleft()
                self.stats["dropped"] += 1
            self.items.append((sink, alert, done))
            self.stats["queued"] += 1
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(
                    target=self._run, name=f"workbench-webhook {sink.display}", daemon=True
                )
                self.thread.start()
            self.cond.notify_all()
        if dropped is not None:
            log.warning(
                "alert %s to %s dropped: %d alerts already waiting",
                dropped[1].get("id"),
                sink.display,
                self.limit,
            )
            _report(dropped[2], f"dropped: {self.limit} alerts were waiting for {sink.display}")

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.items:
                    self.cond.wait()
                sink, alert, done = self.items.popleft()
                self.busy = True
            try:
                sink.deliver(alert)
                outcome = "ok"
                self.stats["sent"] += 1
            except Exception as exc:
                outcome = f"failed: {type(exc).__name__}: {_scrub(str(exc), sink.url)}"[:500]
                self.stats["failed"] += 1
                log.warning(
                    "alert %s not delivered to %s: %s", alert.get("id"), sink.display, outcome
                )
            _report(done, outcome)
            with self.cond:
                self.busy = False
                self.cond.notify_all()

    def wait(self, deadline: float) -> bool:
        with self.cond:
            while self.items or self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


def _report(done: Callable[[str], None] | None, outcome: str) -> None:
    if done is None:
        return
    try:
        done(outcome)
    except Exception as exc:  # e.g. the store was closed meanwhile
        log.warning("the outcome of a webhook delivery could not be recorded: %s", exc)


_QUEUES: dict[str, _Queue] = {}
_QUEUES_LOCK = threading.Lock()


def _queue_for(url: str) -> _Queue:
    with _QUEUES_LOCK:
        queue = _QUEUES.get(url)
        if queue is None:
            queue = _QUEUES[url] = _Queue(QUEUE_LIMIT)
        return queue


def flush_webhooks(timeout_s: float = 10.0, urls: Iterable[str] | None = None) -> bool:
    """Wait until every queued webhook delivery (to ``urls``, default all) has been tried;
    ``False`` when ``timeout_s`` ran out first.

    Examples
    --------
    >>> flush_webhooks(1.0)
    True
    """
    deadline = time.monotonic() + timeout_s
    with _QUEUES_LOCK:
        queues = [q for u, q in _QUEUES.items() if urls is None or u in set(urls)]
    return all(q.wait(deadline) for q in queues)


def webhook_stats() -> dict[str, dict[str, int]]:
    """Per webhook (its URL redacted): alerts ``queued``, ``sent``, ``failed``, ``dropped`` (queue
    full) and ``waiting`` since this process started.

    Examples
    --------
    >>> isinstance(webhook_stats(), dict)
    True
    """
    with _QUEUES_LOCK:
        items = list(_QUEUES.items())
    return {redact_url(url): {**q.stats, "waiting": len(q.items)} for url, q in items}


class WebhookSink:
    """POSTs the alert as JSON to ``url``, from a background queue, so a slow or dead receiver
    never holds up the monitor that raised the alert.

    The body is ``{"source": "workbench", "alert": {...}}``; the header
    ``X-Workbench-Alert`` carries the deduplication key, so a receiver can
    deduplicate too. Each attempt has a total deadline of ``timeout_s`` (connect, send and read
    together: a receiver that trickles its answer is cut off); connection errors, timeouts and
    5xx are retried ``retries`` times with backoff; a 3xx is a failure (redirects are not
    followed, so neither the body nor ``headers`` ever reach another host) and a 4xx is not
    retried. Up to :data:`QUEUE_LIMIT` alerts wait per URL; past that the oldest is dropped and
    counted (:func:`webhook_stats`). The URL is shown only redacted (:func:`redact_url`).

    Examples
    --------
    >>> WebhookSink("https://hooks.example.com/T0/B0/secret")
    WebhookSink('https://hooks.example.com/…#4a7160')
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
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            shown = redact_url(url) if isinstance(url, str) else type(url).__name__
            raise ConfigError(f"webhook URL must start with http:// or https://, got {shown!r}")
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ConfigError(f"webhook URL {redact_url(url)!r} cannot be read: {exc}") from None
        if not parts.hostname:
            raise ConfigError(f"webhook URL {redact_url(url)!r} names no host")
        self.url = url
        self.display = redact_url(url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"WebhookSink({self.display!r})"

    def deliver_later(self, alert: dict[str, Any], done: Callable[[str], None] | None = None):
        """Queue ``alert``; ``done(outcome)`` is called from the sender thread (``"ok"``,
        ``"failed: ..."`` or ``"dropped: ..."``). Returns at once."""
        _queue_for(self.url).put(self, alert, done)

    def deliver(self, alert: dict[str, Any]) -> None:
        """POST ``alert`` now (blocking, at most ``retries + 1`` deadlines); raises when it failed."""
        body = json.dumps({"source": "workbench", "alert": alert}, default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "workbench-alerts",
            "X-Workbench-Alert": str(alert.get("dedup_key", "")),
            **self.headers,
        }
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                status = self._post(body, headers)
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                continue
            if 200 <= status < 300:
                return
            if 300 <= status < 400:
                raise ConnectionError(
                    f"POST {self.display} answered {status} (a redirect): not followed; "
                    "give the webhook its final URL."
                )
            last = f"HTTP {status}"
            if status < 500:
                break  # the receiver refused it; asking again will not help
        raise ConnectionError(f"POST {self.display} failed: {_scrub(last, self.url)}")

    def _post(self, body: bytes, headers: dict[str, str]) -> int:
        """One attempt; the status. A watchdog closes the socket at the deadline."""
        parts = urlsplit(self.url)
        deadline = time.monotonic() + self.timeout_s
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=self.timeout_s)
        sent = dict(headers)
        if parts.username is not None:
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            sent.setdefault("Authorization", "Basic " + base64.b64encode(token).decode())
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            sock = conn.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.timeout_s, cut)
        watchdog.daemon = True
        watchdog.start()
        try:
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            conn.request("POST", path, body=body, headers=sent)
            resp = conn.getresponse()
            resp.read(65536)
            if expired.is_set() or time.monotonic() > deadline:
                raise TimeoutError(f"no complete answer within {self.timeout_s:g} s")
            return resp.status
        except (OSError, http.client.HTTPException):
            if expired.is_set():
                raise TimeoutError(f"no complete answer within {self.timeout_s:g} s") from None
            raise
        finally:
            watchdog.cancel()
            conn.close()


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
        self._webhooks: set[str] = set()
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
        later = []
        for sink in [*self.sinks, *extra_sinks]:
            if hasattr(sink, "deliver_later"):  # webhooks: sent by a background thread
                deliveries[sink.name] = "queued"
                later.append(sink)
                continue
            try:
                sink.deliver(alert)
                deliveries[sink.name] = "ok"
            except Exception as exc:  # a broken channel must not stop monitoring
                deliveries[sink.name] = f"failed: {type(exc).__name__}: {exc}"[:500]
                log.warning("alert %s not delivered to %s: %s", row["id"], sink.name, exc)
        self.store.monitors.set_alert_delivery(row["id"], deliveries)
        shared = dict(deliveries)
        for sink in later:
            self._webhooks.add(sink.url)  # type: ignore[attr-defined]
            sink.deliver_later(
                alert, functools.partial(self._delivered, row["id"], shared, sink.name)
            )  # type: ignore[attr-defined]
        return {**row, "deliveries": deliveries}

    def _delivered(
        self, alert_id: int, deliveries: dict[str, str], name: str, outcome: str
    ) -> None:
        """A background delivery's outcome, written onto the alert row."""
        with _QUEUES_LOCK:
            deliveries[name] = outcome
            snapshot = dict(deliveries)
        self.store.monitors.set_alert_delivery(alert_id, snapshot)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait (at most ``timeout_s``) until the webhook deliveries this object queued were tried
        and recorded on their alerts; ``False`` when some are still waiting.

        Examples
        --------
        >>> Alerts(Store(":memory:"), sinks=[]).flush(1.0)
        True
        """
        return flush_webhooks(timeout_s, self._webhooks)

    def list(
        self, monitor: str | None = None, *, severity: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """Alerts, newest first (``count`` > 1: duplicates folded in during the cooldown)."""
        return self.store.monitors.list_alerts(monitor, severity=severity, limit=limit)
