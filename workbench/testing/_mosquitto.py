"""A real mosquitto broker on loopback, started and ended by pid, and a real paho publisher.

Used by the MQTT tests and the data notebook::

    with Mosquitto(tmp_path / "broker") as broker:
        publish(broker.port, "plant/a", [{"t": 1}, {"t": 2}])
        broker.stop()        # SIGTERM: mosquitto saves its state (persistence true) and exits
        broker.start()       # the same port and state: sessions and unacknowledged messages kept

The broker keeps its state in ``<folder>/data`` (``persistence true``) and logs to
``<folder>/mosquitto.log``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from workbench.runtime import free_port

MOSQUITTO = "/usr/sbin/mosquitto"


def mosquitto_available() -> bool:
    """Whether Debian's mosquitto broker is installed (``apt-get install mosquitto``)."""
    return os.access(MOSQUITTO, os.X_OK)


class Mosquitto:
    """One mosquitto process on ``127.0.0.1:port`` with persistence in ``folder``.

    Parameters
    ----------
    folder : path
        Config, state and log go here.
    port : int, optional
        A free loopback port by default; kept across :meth:`stop`/:meth:`start`.
    max_queued_messages : int
        Messages kept per offline session (mosquitto's default, 1000, drops the rest).
    users : dict, optional
        ``{username: password}``: anonymous clients are then refused.
    save_every_change : bool
        Save the state after every change (``autosave_on_changes``), so that a SIGKILL loses
        (almost) nothing; by default mosquitto saves every 30 minutes and when it stops.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        *,
        port: int | None = None,
        max_queued_messages: int = 10000,
        save_every_change: bool = False,
        users: dict[str, str] | None = None,
    ):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'false' if users else 'true'}",
            "persistence true",
            f"persistence_location {data}/",
            f"max_queued_messages {max_queued_messages}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if users:
            passwords = self.folder / "passwords"
            passwords.write_text("")
            for user, password in users.items():
                subprocess.run(
                    ["/usr/bin/mosquitto_passwd", "-b", str(passwords), user, password], check=True
                )
            lines.append(f"password_file {passwords}")
        if save_every_change:
            lines += ["autosave_interval 1", "autosave_on_changes true"]
        if os.getuid() == 0:
            # As root mosquitto switches to the user 'mosquitto', which cannot write the state here.
            lines.append("user root")
        self.config = self.folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self.log = self.folder / "mosquitto.log"

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self, timeout_s: float = 10.0) -> Mosquitto:
        """Start the broker and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.config)], stdout=log, stderr=log
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mosquitto exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout_s} s")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """End the broker by pid: SIGTERM saves its state first, SIGKILL does not."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout_s)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def publish(
    port: int,
    topic: str,
    payloads: list[Any],
    *,
    qos: int = 1,
    host: str = "127.0.0.1",
    timeout_s: float = 10.0,
) -> None:
    """Publish each payload (a dict/list is sent as JSON, str/bytes as they are) with a real paho
    client, and return once the broker has acknowledged every one (QoS 1)."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(host, port)
    client.loop_start()
    try:
        infos = []
        for p in payloads:
            data = p if isinstance(p, str | bytes) else json.dumps(p)
            infos.append(client.publish(topic, data, qos=qos))
        for info in infos:
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise RuntimeError(
                    f"message {info.mid} to {topic!r} not acknowledged within {timeout_s} s"
                )
    finally:
        client.disconnect()
        client.loop_stop()


def pending(
    port: int,
    client_id: str,
    topic: str,
    *,
    wait_s: float = 0.5,
    expect: int | None = None,
    host: str = "127.0.0.1",
) -> list[bytes]:
    """The payloads the broker still holds for ``client_id``'s session (what it sends on reconnect
    within ``wait_s``, or sooner once ``expect`` came), read without acknowledging them: they stay
    pending. ``topic`` must be the session's own subscription (it is subscribed again)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions

    got: list[bytes] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5, manual_ack=True
    )
    client.on_message = lambda c, u, m: got.append(bytes(m.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 0xFFFFFFFF
    props.ReceiveMaximum = 65535
    client.connect(host, port, clean_start=False, properties=props)
    client.subscribe(topic, options=SubscribeOptions(qos=1, retainHandling=1))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and (expect is None or len(got) < expect):
        client.loop(timeout=0.05)
    client.disconnect()
    for _ in range(20):
        if client.socket() is None:
            break
        client.loop(timeout=0.05)
    return got
