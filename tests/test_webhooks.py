"""Webhook delivery under attack: a trickling receiver, a redirecting one, a flood, and secret URLs.

Real HTTP servers on 127.0.0.1 (raw sockets, so they can misbehave), real stores, a real drift
monitor; nothing mocked.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from test_monitoring_monitors import Env

from workbench.exceptions import ConfigError
from workbench.lineage import Store
from workbench.monitoring import Alerts, WebhookSink
from workbench.monitoring._alerts import _queue_for, redact_url, webhook_stats

SECRET = "T000/B000/s3cr3t-token"


class _Server:
    """A raw HTTP server on 127.0.0.1: reads one request per connection, then ``answer(conn)``."""

    def __init__(self, answer):
        self.hits: list[bytes] = []
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str = f"/hooks/{SECRET}?key=abc") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            conn.settimeout(5)
            data = b""
            try:
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.hits.append(head + b"\r\n\r\n" + body)
                self.answer(conn, self)
            except OSError:
                pass

    def close(self):
        self.stop.set()
        self.thread.join(2)
        self.sock.close()


def _ok(conn, server):
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


def _trickle(conn, server):
    """One byte per second, at most 10 s (a receiver that never quite answers)."""
    for byte in b"HTTP/1.1 200 OK\r\n":
        if server.stop.is_set():
            return
        conn.sendall(bytes([byte]))
        time.sleep(1.0)


@pytest.fixture
def servers():
    made = []

    def make(answer):
        made.append(_Server(answer))
        return made[-1]

    yield make
    for s in made:
        s.close()


def test_a_trickling_receiver_never_holds_up_check(tmp_path, servers):
    slow = servers(_trickle)
    env = Env(tmp_path, sinks=[])
    mon = env.monitoring.drift_monitor(
        "svc",
        window=200,
        backend="scipy",
        alerts={"webhook_url": slow.url(), "cooldown_s": 0, "min_severity": "warning"},
    )
    env.log(env.rows(200, shift=1.0))
    env.log(env.rows(200, shift=1.0))
    t0 = time.perf_counter()
    assert [r["verdict"] for r in mon.check()] == ["drift", "drift"]
    took = time.perf_counter() - t0
    print(f"check() with a trickling receiver: {took:.3f} s")
    assert took < 0.5
    stored = env.monitoring.alerts(mon.name)
    assert [a["deliveries"]["webhook"] for a in stored] == ["queued", "queued"]
    # the sink of a monitor uses the default deadline (5 s) and 2 retries: a bounded wait
    sink = WebhookSink(slow.url(), timeout_s=1.0, retries=0)
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match="no complete answer within 1 s") as err:
        sink.deliver({"id": 0, "dedup_key": "x"})
    assert time.perf_counter() - t0 < 1.5  # the total deadline, not 1 s per byte
    assert SECRET not in str(err.value) and "127.0.0.1" in str(err.value)
    env.store.close()


def test_redirects_are_not_followed_and_headers_stay_home(tmp_path, servers):
    elsewhere = servers(_ok)

    def redirect(conn, server):
        conn.sendall(
            f"HTTP/1.1 302 Found\r\nLocation: {elsewhere.url('/steal')}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n".encode()
        )

    bouncer = servers(redirect)
    store = Store(tmp_path / "l.db")
    sink = WebhookSink(bouncer.url(), headers={"Authorization": "Bearer hook-secret"}, retries=2)
    alerts = Alerts(store, sinks=[sink])
    alerts.emit(title="t", severity="critical", dedup_key="r")
    assert alerts.flush(10)
    outcome = store.monitors.list_alerts()[0]["deliveries"]["webhook"]
    assert outcome.startswith("failed: ConnectionError") and "302" in outcome
    assert len(bouncer.hits) == 1  # a redirect is not retried either
    assert elsewhere.hits == []  # never reached, so neither body nor header left for it
    assert b"Bearer hook-secret" in bouncer.hits[0]
    assert SECRET not in outcome
    store.close()


def test_a_flood_drops_the_oldest_and_counts(tmp_path, servers, monkeypatch):
    slow = servers(_trickle)
    url = slow.url(f"/flood/{SECRET}")
    queue = _queue_for(url)
    monkeypatch.setattr(queue, "limit", 5)
    store = Store(tmp_path / "l.db")
    alerts = Alerts(store, sinks=[WebhookSink(url, timeout_s=0.5, retries=0)])
    t0 = time.perf_counter()
    for i in range(40):
        alerts.emit(title=f"t{i}", severity="critical", dedup_key=f"k{i}")
    assert time.perf_counter() - t0 < 1.0  # 40 alerts queued without waiting for the receiver
    stats = webhook_stats()[redact_url(url)]
    assert stats["dropped"] >= 34 and stats["waiting"] <= 5
    assert alerts.flush(10)
    outcomes = [a["deliveries"]["webhook"] for a in store.monitors.list_alerts(limit=100)]
    assert len(outcomes) == 40  # every alert is still recorded
    dropped = [o for o in outcomes if o.startswith("dropped")]
    assert len(dropped) == stats["dropped"] and all("queued" != o for o in outcomes)
    assert not any(SECRET in o for o in outcomes)
    store.close()


def test_secret_urls_are_redacted_in_configs_rows_logs_and_errors(tmp_path, servers, caplog):
    dead = servers(lambda conn, server: conn.sendall(b"HTTP/1.1 500 Oops\r\n\r\n"))
    secret_url = dead.url()
    env = Env(tmp_path, sinks=[])
    mon = env.monitoring.drift_monitor(
        "svc",
        window=200,
        backend="scipy",
        alerts={"webhook_url": secret_url, "cooldown_s": 0, "min_severity": "warning"},
    )
    shown = redact_url(secret_url)
    assert shown.startswith(f"http://127.0.0.1:{dead.port}/…#") and SECRET not in shown
    # what GET /workbench/monitors serves: Monitoring.list(); and Monitoring.record()
    listed = env.monitoring.list()
    assert listed[0]["config"]["alerts"]["webhook_url"] == shown
    assert env.monitoring.record(mon.name)["config"]["alerts"]["webhook_url"] == shown
    assert SECRET not in json.dumps(listed, default=str)
    # the real URL stays where delivery reads it: the stored config, and the loaded monitor
    assert env.store.monitors.get(mon.name)["config"]["alerts"]["webhook_url"] == secret_url
    env.log(env.rows(200, shift=1.0))
    with caplog.at_level(logging.WARNING, logger="workbench.alerts"):
        mon.check()
        assert env.monitoring.alerting.flush(15)
    rows = env.monitoring.alerts(mon.name)
    assert rows and rows[0]["deliveries"]["webhook"].startswith("failed")
    assert len(dead.hits) == 3  # a 5xx is retried twice
    assert SECRET not in json.dumps(rows, default=str)
    assert "key=abc" not in caplog.text and SECRET not in caplog.text and shown in caplog.text
    assert SECRET not in repr(WebhookSink(secret_url))
    with pytest.raises(ConfigError) as err:
        env.monitoring.drift_monitor("svc", alerts={"webhook_url": f"ftp://h/{SECRET}"})
    assert SECRET not in str(err.value)
    with pytest.raises(ConfigError, match="cannot be read"):
        WebhookSink(f"http://h:99999/{SECRET}")
    env.store.close()


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://hooks.example.com/services/X", "https://hooks.example.com/…#"),
        ("https://user:pw@hooks.example.com", "https://hooks.example.com/…#"),
        ("https://hooks.example.com/?token=1", "https://hooks.example.com/…#"),
        ("https://hooks.example.com", "https://hooks.example.com"),
        ("http://[::1]:8080/x", "http://[::1]:8080/…#"),
        ("http://h:notaport/x", "<unreadable URL>#"),
    ],
)
def test_redact_url(url, shown):
    out = redact_url(url)
    assert out.startswith(shown) and "pw" not in out and "token" not in out and "X" not in out
