"""A stream source: one ``ingest`` reads one micro-batch of MQTT messages into a dataset version.

Delivery is at least once, and a row is recorded once:

* The source connects with a persistent session (MQTT 5, clean start off, a session that never
  expires) under a stable client id, so the broker keeps the topic's QoS 1 messages while no
  ingest runs, and subscribes at QoS 1.
* Messages are acknowledged only once their version is recorded (:attr:`Fetched.commit`). When the
  version is not recorded (validation failed, an error, the process died) the client goes away
  without acknowledging and the broker sends the same messages again to the same session. Checked
  with mosquitto 2.0: unacknowledged messages come again on the next connection, and after a broker
  restart when the broker saved its state (``persistence true``; a stop by SIGTERM saves it).
* A message can still come twice (its acknowledgement was lost after the version was recorded, a
  publisher resent it, a broker killed with SIGKILL restored an older state): each row has an id,
  and the ids of the most recent rows are recorded with the version (its ``source_state``); a row
  whose id is among them is dropped, its message acknowledged.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from workbench.datasets._sources import Fetched, Source, register_source
from workbench.exceptions import ConfigError, SourceError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["MqttSource"]

log = logging.getLogger(__name__)

PAYLOADS = ("json", "text", "bytes")
# MQTT 5's Receive Maximum is a two-byte integer: the most unacknowledged messages in flight.
MAX_BATCH = 65535
# A session that never expires (MQTT 5: 0xFFFFFFFF), as MQTT 3.1.1's clean_session=False.
NEVER_EXPIRES = 0xFFFFFFFF
# How many of the most recent row ids are remembered, per message of batch_size.
REMEMBER_BATCHES = 2


def _default_client_id(host: str, port: int, topic: str) -> str:
    import xxhash

    # 19 characters: within MQTT 3.1.1's 23-character guarantee, stable across processes.
    return "wb-" + xxhash.xxh3_64_hexdigest(f"{host}:{port}/{topic}".encode())


@register_source
class MqttSource(Source):
    """The messages of an MQTT topic, one micro-batch per ``ingest``.

    Each ``ingest`` connects under ``client_id`` with a persistent session, takes up to
    ``batch_size`` messages (or what came within ``max_wait_s``), and acknowledges them only once
    the version is recorded: a batch is recorded whole or not at all, and what is not recorded is
    delivered again by the broker next time. With no new message, ``ingest`` returns the last
    version (``created`` False); with no version yet that is an error (nothing to record).

    Each JSON payload is one row (an object) or several (a list of objects); two columns are added:
    ``_topic`` (the message's topic, useful with wildcards) and ``_received_at`` (UTC time this
    client received it; MQTT carries no publish time, so put an event time in the payload). A
    payload field of the same name is kept instead.

    Parameters
    ----------
    host, port : str, int
        The broker.
    topic : str
        Topic filter; ``+`` and ``#`` wildcards allowed.
    qos : {1, 0}
        1: at least once (the default). 0: the broker neither keeps nor resends anything, a message
        lost on the way is lost. QoS 2 is refused: its redelivery after a reconnect needs state
        paho keeps in memory only.
    client_id : str, optional
        The broker-side session; default ``wb-<xxh3 of host:port/topic>``, recorded in the spec.
        Two datasets reading one topic need a client id each (one session delivers a message once).
    batch_size : int
        Most messages per version (at most 65535, MQTT 5's receive maximum: the broker never has
        more than this unacknowledged in flight to us).
    max_wait_s : float
        Longest a batch waits for messages after subscribing.
    id_field : str, optional
        A payload field that identifies a row. Without it a message is identified by the xxh3 of
        its topic and payload bytes: two identical payloads on one topic are then one message (put
        an id or an event time in the payload, or name ``id_field``).
    payload : {"json", "text", "bytes"}
        ``"text"``/``"bytes"``: one row per message, its payload in a ``payload`` column.
    username : str, optional
    password_env : str, optional
        The environment variable holding the password (a spec never holds one).
    connect_timeout_s : float
        Longest wait for the TCP connection and for the broker's answers to CONNECT and SUBSCRIBE.

    Notes
    -----
    The duplicate check remembers the ids of the most recent ``2 * batch_size`` rows and always
    every row of the last version (16 hex characters each: 1000-message batches keep at most
    ~40 KB in ``source_state``). A duplicate older than that is recorded again.

    What the broker keeps bounds the rest: a session exists from its first subscribe (the first
    ``ingest``, or :meth:`subscribe`), messages published before are not kept; mosquitto keeps at
    most ``max_queued_messages`` (default 1000) for a session between ingests and drops the rest;
    without ``persistence true`` a broker restart loses the session and its messages (a warning is
    logged when a known session is gone). One client id must not be used by two ingests at once:
    the broker disconnects the first (a :class:`SourceError`; its messages come again).

    Examples
    --------
    >>> src = MqttSource("127.0.0.1", 1883, "plant/+/temperature", id_field="reading_id")  # doctest: +SKIP
    >>> dv = wb.datasets.ingest(src, name="temperatures")                                 # doctest: +SKIP
    >>> dv = wb.datasets.ingest("mqtt://127.0.0.1:1883/plant/#?batch_size=500", name="plant")  # doctest: +SKIP
    """

    kind = "mqtt"

    def __init__(
        self,
        host: str,
        port: int = 1883,
        topic: str = "",
        *,
        qos: int = 1,
        client_id: str | None = None,
        batch_size: int = 1000,
        max_wait_s: float = 5.0,
        id_field: str | None = None,
        payload: str = "json",
        username: str | None = None,
        password_env: str | None = None,
        connect_timeout_s: float = 5.0,
    ):
        if not topic:
            raise ConfigError(f"MqttSource({host!r}, {port!r}) needs a topic, e.g. 'sensors/#'.")
        if qos not in (0, 1):
            raise ConfigError(
                f"qos must be 1 (at least once, the default) or 0 (at most once), got {qos!r}: with "
                "QoS 2 a message not acknowledged before a reconnect is lost (paho keeps its state in "
                "memory only)."
            )
        if not 1 <= int(batch_size) <= MAX_BATCH:
            raise ConfigError(f"batch_size must be between 1 and {MAX_BATCH}, got {batch_size!r}.")
        if not float(max_wait_s) > 0 or not float(connect_timeout_s) > 0:
            raise ConfigError("max_wait_s and connect_timeout_s must be positive.")
        if payload not in PAYLOADS:
            raise ConfigError(f"payload must be one of {PAYLOADS}, got {payload!r}.")
        if id_field is not None and payload != "json":
            raise ConfigError("id_field names a JSON field: it needs payload='json'.")
        self.host = host
        self.port = int(port)
        self.topic = topic
        self.qos = qos
        self.client_id = client_id or _default_client_id(host, self.port, topic)
        self.batch_size = int(batch_size)
        self.max_wait_s = float(max_wait_s)
        self.id_field = id_field
        self.payload = payload
        self.username = username
        self.password_env = password_env
        self.connect_timeout_s = float(connect_timeout_s)

    # ------------------------------------------------------------------ specs
    @classmethod
    def from_uri(cls, uri: str, **options: Any) -> MqttSource:
        """The source for ``mqtt://[user@]host[:port]/topic[?option=value&...]``.

        The topic is everything after the first ``/`` (``#`` and ``+`` included; a URL parser would
        cut ``#`` off as a fragment). Query options are the constructor's keywords
        (``?batch_size=500&max_wait_s=2&client_id=plant-a&password_env=MQTT_PASSWORD``);
        ``options`` override them. The port defaults to 1883.

        Examples
        --------
        >>> MqttSource.from_uri("mqtt://127.0.0.1:1883/plant/#?batch_size=10").topic
        'plant/#'
        """
        scheme, sep, rest = uri.partition("://")
        if not sep or scheme.lower() != "mqtt":
            raise ConfigError(
                f"{uri!r} is not an mqtt:// URI (mqtts:// is not supported yet); "
                "write mqtt://host:port/topic."
            )
        netloc, _, path = rest.partition("/")
        topic, _, query = path.partition("?")
        user = None
        if "@" in netloc:
            user, _, netloc = netloc.rpartition("@")
            if ":" in user:
                raise ConfigError(
                    "an mqtt:// URI must not hold a password (it would be recorded with every "
                    "version): put it in an environment variable and add ?password_env=NAME."
                )
            user = unquote(user)
        host, port = netloc, 1883
        if netloc.startswith("["):
            host, _, tail = netloc[1:].partition("]")
            if tail.startswith(":"):
                port = int(tail[1:])
        elif ":" in netloc:
            host, _, p = netloc.rpartition(":")
            port = int(p)
        if not host:
            raise ConfigError(f"{uri!r} names no broker host; write mqtt://host:port/topic.")
        args: dict[str, Any] = {}
        known = {
            "qos": int,
            "client_id": str,
            "batch_size": int,
            "max_wait_s": float,
            "id_field": str,
            "payload": str,
            "username": str,
            "password_env": str,
            "connect_timeout_s": float,
        }
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key not in known:
                raise ConfigError(f"unknown option {key!r} in {uri!r}; known: {sorted(known)}.")
            try:
                args[key] = known[key](value)
            except ValueError as exc:
                raise ConfigError(f"option {key}={value!r} in {uri!r}: {exc}") from exc
        if user is not None:
            args.setdefault("username", user)
        args.update(options)
        return cls(host, port, unquote(topic), **args)

    def describe(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}/{self.topic}"

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "host": self.host,
            "port": self.port,
            "topic": self.topic,
            "qos": self.qos,
            "client_id": self.client_id,
            "batch_size": self.batch_size,
            "max_wait_s": self.max_wait_s,
            "id_field": self.id_field,
            "payload": self.payload,
            "username": self.username,
            "password_env": self.password_env,
            "connect_timeout_s": self.connect_timeout_s,
        }

    # ------------------------------------------------------------------- read
    def subscribe(self) -> None:
        """Create the broker-side session and its subscription now, and leave.

        The broker keeps the topic's messages for this client id from then on, so the first
        ``ingest`` gets what was published before it ran.

        Examples
        --------
        >>> MqttSource("127.0.0.1", 1883, "plant/#").subscribe()   # doctest: +SKIP
        """
        session = _Session(self)
        try:
            session.open()
        finally:
            session.close()

    def fetch(self, state: dict[str, Any]) -> Fetched:
        session = _Session(self, known="seen" in state)
        try:
            session.open()
            messages = session.collect(self.batch_size, self.max_wait_s)
            frame, ids = self._rows(messages, set(state.get("seen", ())))
        except BaseException:
            session.close()
            raise
        where = self.describe()
        if not messages:
            if not state:
                session.close()
                raise SourceError(
                    f"no message on {where} within {self.max_wait_s:g} s, so there is nothing to "
                    "record as the first version of this dataset. The broker keeps this topic's "
                    f"messages for client id {self.client_id!r} from now on: publish, then ingest "
                    "again (or raise max_wait_s)."
                )
            return Fetched(frame, where, unchanged=True, commit=session.close, abort=session.close)
        if frame.height == 0:
            # Every message was a duplicate of a recorded row: acknowledge them, record nothing.
            return Fetched(frame, where, unchanged=True, commit=session.ack, abort=session.close)
        keep = max(REMEMBER_BATCHES * self.batch_size, len(ids))
        fresh = set(ids)
        seen = (ids + [i for i in state.get("seen", ()) if i not in fresh])[:keep]
        new_state = {"client_id": self.client_id, "seen": seen}
        return Fetched(frame, where, state=new_state, commit=session.ack, abort=session.close)

    def _rows(self, messages: list[Any], seen: set[str]) -> tuple[pl.DataFrame, list[str]]:
        """The frame of the messages' rows not seen before, and those rows' ids (newest first)."""
        import polars as pl
        import xxhash

        rows: list[dict[str, Any]] = []
        ids: list[str] = []
        for msg in messages:
            received = msg.received_at
            if self.payload == "json":
                items = self._parse(msg)
            else:
                text = (
                    msg.payload
                    if self.payload == "bytes"
                    else msg.payload.decode("utf-8", "replace")
                )
                items = [{"payload": text}]
            if self.id_field is None:
                key = xxhash.xxh3_64_hexdigest(msg.topic.encode() + b"\0" + msg.payload)
                if key in seen:
                    continue
                seen.add(key)
                ids.append(key)
            for item in items:
                if self.id_field is not None:
                    if item.get(self.id_field) is None:
                        raise SourceError(
                            f"a message on {msg.topic!r} ({self.describe()}) has no {self.id_field!r} "
                            f"field: {_excerpt(msg.payload)}. Publish it in every row, or leave "
                            "id_field unset (a message is then identified by its topic and payload). "
                            "Nothing was recorded; the messages stay on the broker."
                        )
                    key = xxhash.xxh3_64_hexdigest(json.dumps(item[self.id_field]).encode())
                    if key in seen:
                        continue
                    seen.add(key)
                    ids.append(key)
                row = dict(item)
                row.setdefault("_topic", msg.topic)
                row.setdefault("_received_at", received)
                rows.append(row)
        if not rows:
            return pl.DataFrame(), []
        try:
            frame = pl.from_dicts(rows, infer_schema_length=None)
        except Exception as exc:
            raise SourceError(
                f"the rows of {len(messages)} message(s) on {self.describe()} do not make one table "
                f"({type(exc).__name__}: {exc}). Publish the same fields with the same types in every "
                "message; nothing was recorded, the messages stay on the broker."
            ) from exc
        ids.reverse()
        return frame, ids

    def _parse(self, msg: Any) -> list[dict[str, Any]]:
        try:
            value = json.loads(msg.payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(
                f"a message on topic {msg.topic!r} ({self.describe()}) is not JSON ({exc}): "
                f"{_excerpt(msg.payload)}. Publish a JSON object (one row) or a list of objects, or "
                "read the topic with payload='text' (one 'payload' column); nothing was recorded, the "
                f"messages stay on the broker for client id {self.client_id!r}."
            ) from None
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            return value
        raise SourceError(
            f"a message on topic {msg.topic!r} ({self.describe()}) is JSON but not an object or a "
            f"list of objects: {_excerpt(msg.payload)}. Publish rows as objects "
            "({\"field\": value, ...}), or read the topic with payload='text'; nothing was recorded."
        )


def _excerpt(payload: bytes, limit: int = 80) -> str:
    text = payload[:limit].decode("utf-8", "replace")
    return repr(text + ("..." if len(payload) > limit else ""))


class _Message:
    __slots__ = ("mid", "qos", "topic", "payload", "received_at")

    def __init__(self, msg: Any):
        self.mid = msg.mid
        self.qos = msg.qos
        self.topic = msg.topic
        self.payload = bytes(msg.payload)
        self.received_at = datetime.now(UTC)


class _Session:
    """One connection of a source's client id, driven from the calling thread.

    No background network thread: paho's would reconnect by itself after a broker drop and go on
    with a batch that must fail instead. Between ``collect`` and ``ack``/``close`` nothing reads the
    socket; the broker sends nothing meanwhile (its receive maximum is the batch size) and the
    keepalive (300 s) covers validation and recording.
    """

    KEEPALIVE_S = 300

    def __init__(self, source: MqttSource, *, known: bool = False):
        self.source = source
        self.known = known
        self.client: Any = None
        self.messages: list[_Message] = []
        self.batch: list[_Message] = []
        self.connected: Any = None  # the CONNACK's reason code once it came
        self.granted: list[Any] | None = None
        self.lost: str | None = None
        self.closed = False

    # paho callbacks (run inside client.loop, in this thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = reason_code
        if not reason_code.is_failure and self.known and not flags.session_present:
            log.warning(
                "the broker had no session for client id %r (%s): messages published since the last "
                "ingest are lost (the session expired, or the broker restarted without persistence).",
                self.source.client_id,
                self.source.describe(),
            )

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.granted = list(reason_codes)

    def _on_message(self, client, userdata, msg) -> None:
        self.messages.append(_Message(msg))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not self.closed:
            self.lost = str(reason_code)

    def open(self) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties
        from paho.mqtt.subscribeoptions import SubscribeOptions

        src = self.source
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=src.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.connect_timeout = src.connect_timeout_s
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        if src.username:
            client.username_pw_set(src.username, self._password())
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = NEVER_EXPIRES
        props.ReceiveMaximum = src.batch_size
        self.client = client
        try:
            client.connect(
                src.host, src.port, keepalive=self.KEEPALIVE_S, clean_start=False, properties=props
            )
        except (OSError, ValueError) as exc:
            raise SourceError(
                f"cannot reach the MQTT broker of {src.describe()} ({type(exc).__name__}: {exc}). "
                "Check that it runs and that host and port are right; nothing was recorded."
            ) from exc
        self._wait(lambda: self.connected is not None, src.connect_timeout_s, "CONNACK")
        if self.connected.is_failure:
            raise SourceError(
                f"the MQTT broker of {src.describe()} refused client id {src.client_id!r}: "
                f"{self.connected}. Check username/password_env and the broker's ACL."
            )
        client.subscribe(src.topic, options=SubscribeOptions(qos=src.qos, retainHandling=1))
        self._wait(lambda: self.granted is not None, src.connect_timeout_s, "SUBACK")
        code = self.granted[0]
        if code.is_failure or code.value < src.qos:
            raise SourceError(
                f"the MQTT broker of {src.describe()} did not grant a QoS {src.qos} subscription to "
                f"{src.topic!r} ({code}): check the topic filter and the broker's ACL for client "
                f"id {src.client_id!r}."
            )

    def _wait(self, done, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            self._loop(min(0.05, max(deadline - time.monotonic(), 0.0)))
            if self.connected is not None and self.connected.is_failure:
                return
            if not done() and time.monotonic() >= deadline:
                raise SourceError(
                    f"the MQTT broker of {self.source.describe()} sent no {what} within "
                    f"{timeout_s:g} s; check that host:port is an MQTT broker, or raise "
                    "connect_timeout_s. Nothing was recorded."
                )

    def _loop(self, timeout: float) -> None:
        import paho.mqtt.client as mqtt

        rc = self.client.loop(timeout=timeout)
        if self.lost is None and rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
            self.lost = mqtt.error_string(rc)
        if self.lost is not None and self.connected is not None and self.connected.is_failure:
            return  # a refused CONNECT: the broker closes the connection; open() says why
        if self.lost is not None:
            n = len(self.messages)
            raise SourceError(
                f"lost the connection to the MQTT broker of {self.source.describe()} "
                f"({self.lost}) after {n} message(s) of this batch; nothing was recorded. The "
                f"broker keeps the unacknowledged messages for client id {self.source.client_id!r} "
                "and sends them again: ingest again once it is back."
            )

    def collect(self, limit: int, max_wait_s: float) -> list[_Message]:
        """Up to ``limit`` messages, or what came within ``max_wait_s``."""
        deadline = time.monotonic() + max_wait_s
        while len(self.messages) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._loop(min(left, 0.05))
        # The broker sends no more than ``limit`` (receive maximum); anything read after this (while
        # closing) is not in the batch and stays unacknowledged.
        self.batch = self.messages[:limit]
        return self.batch

    def _password(self) -> str | None:
        name = self.source.password_env
        if name is None:
            return None
        if name not in os.environ:
            raise ConfigError(
                f"the password for {self.source.describe()} is read from ${name}, which is not set."
            )
        return os.environ[name]

    def ack(self) -> None:
        """Acknowledge the batch's messages (the version is recorded), then leave."""
        if self.closed or self.client is None:
            return
        try:
            for msg in self.batch:
                if msg.qos > 0:
                    self.client.ack(msg.mid, msg.qos)
            if self.batch and self.source.qos > 0:
                self._barrier()
        except (SourceError, OSError) as exc:
            # The version is recorded: an acknowledgement lost here only means a redelivery,
            # which the next ingest drops as a duplicate.
            log.warning(
                "the acknowledgements for %s may not have reached the broker (%s); the next "
                "ingest drops what comes again.",
                self.source.describe(),
                exc,
            )
        finally:
            self.close()

    def _barrier(self) -> None:
        """Return once the broker has processed the acknowledgements sent before.

        MQTT does not acknowledge a PUBACK, and a broker may drop what it had not read yet from a
        closed connection when the same client id connects again at once (mosquitto 2.0 did:
        the next connection got the last message again). A broker handles one connection's
        packets in order, so the answer to a SUBSCRIBE sent after them (the same subscription
        again: no retained message is resent) means they were handled.
        """
        from paho.mqtt.subscribeoptions import SubscribeOptions

        self.granted = None
        self.client.subscribe(
            self.source.topic, options=SubscribeOptions(qos=self.source.qos, retainHandling=1)
        )
        self._wait(lambda: self.granted is not None, self.source.connect_timeout_s, "SUBACK")

    def close(self) -> None:
        """Leave without acknowledging what is not acknowledged yet: the broker keeps it."""
        if self.closed or self.client is None:
            self.closed = True
            return
        self.closed = True
        client = self.client
        try:
            if client.is_connected():
                client.disconnect()
                deadline = time.monotonic() + self.source.connect_timeout_s
                # Run the loop until the acknowledgements and DISCONNECT are written (paho then
                # closes the socket); without a network thread, queued packets are written at once.
                while client.socket() is not None and time.monotonic() < deadline:
                    client.loop(timeout=0.05)
        except Exception as exc:  # the version is recorded; a lost ack only means a redelivery
            log.warning("closing the MQTT session of %s: %s", self.source.describe(), exc)
        finally:
            sock = client.socket()
            if sock is not None:
                try:
                    sock.close()
                except OSError:
                    pass
