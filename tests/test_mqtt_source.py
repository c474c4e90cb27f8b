"""MqttSource against a real mosquitto (started here, ended by pid) and a real paho publisher.

One broker for the module; each test has a topic and client id of its own. What is checked on the
broker itself, not only in the store: :func:`workbench.testing.pending` reconnects under the
source's client id without acknowledging and lists what the broker still holds for it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest

from workbench.datasets import MqttSource, as_source, source_from_spec
from workbench.datasets._checks import Checks, Column
from workbench.exceptions import ConfigError, DatasetValidationError, NotFoundError, SourceError
from workbench.runtime import free_port
from workbench.testing import Mosquitto, pending, publish

WAIT = 0.5


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    b.start()
    yield b
    b.stop()


@pytest.fixture
def stages(tmp_path):
    from workbench.stages import Stages

    st = Stages.open(tmp_path / "home")
    yield st
    st.close()


@pytest.fixture
def topic():
    return f"wb-test/{uuid.uuid4().hex[:8]}"


def source(broker, topic, **kw):
    kw.setdefault("max_wait_s", WAIT)
    kw.setdefault("client_id", "c-" + topic.rsplit("/", 1)[-1])
    return MqttSource("127.0.0.1", broker.port, topic, **kw)


def rows_of(stages, dv):
    return stages.datasets.load(dv).sort("i")["i"].to_list()


# --------------------------------------------------------------------- pure logic
def test_uri_spec_and_options():
    src = MqttSource.from_uri(
        "mqtt://ops@broker.local:1884/plant/+/temp/#?batch_size=50&max_wait_s=2&id_field=rid"
    )
    assert (src.host, src.port, src.topic, src.username) == (
        "broker.local",
        1884,
        "plant/+/temp/#",
        "ops",
    )
    assert (src.batch_size, src.max_wait_s, src.id_field) == (50, 2.0, "rid")
    assert src.describe() == "mqtt://ops@broker.local:1884/plant/+/temp/#"
    # The default client id is stable (same broker and topic, any process) and short.
    assert src.client_id == MqttSource("broker.local", 1884, "plant/+/temp/#").client_id
    assert src.client_id != MqttSource("broker.local", 1884, "plant/#").client_id
    assert len(src.client_id) <= 23
    spec = src.to_spec()
    assert spec["kind"] == "mqtt" and spec["client_id"] == src.client_id
    back = source_from_spec(spec)
    assert isinstance(back, MqttSource) and back.to_spec() == spec
    plain = as_source("mqtt://127.0.0.1/a/b")
    assert isinstance(plain, MqttSource) and (plain.port, plain.topic) == (1883, "a/b")

    with pytest.raises(ConfigError, match="password_env"):
        MqttSource.from_uri("mqtt://ops:secret@h:1883/t")
    with pytest.raises(ConfigError, match="QoS 2"):
        MqttSource("h", 1883, "t", qos=2)
    with pytest.raises(ConfigError, match="unknown option 'bogus'"):
        MqttSource.from_uri("mqtt://h/t?bogus=1")
    with pytest.raises(ConfigError, match="needs a topic"):
        MqttSource.from_uri("mqtt://h:1883/")
    with pytest.raises(ConfigError, match="batch_size"):
        MqttSource("h", 1883, "t", batch_size=70000)


# ------------------------------------------------------------------ with a broker
def test_batches_become_versions_each_message_once(broker, stages, topic):
    src = source(broker, topic, batch_size=3)
    src.subscribe()
    publish(broker.port, topic, [{"i": i, "v": i * 1.5} for i in range(5)])

    v1 = stages.datasets.ingest(src, name="s")
    assert v1.created and v1.version == 1 and v1.n_rows == 3
    frame = stages.datasets.load(v1)
    assert set(frame.columns) == {"i", "v", "_topic", "_received_at"}
    assert frame["_topic"].unique().to_list() == [topic]
    assert v1.source_spec["client_id"] == src.client_id and len(v1.source_state["seen"]) == 3

    v2 = stages.datasets.ingest(src, name="s")
    assert v2.created and v2.version == 2 and v2.n_rows == 2
    assert sorted(rows_of(stages, v1) + rows_of(stages, v2)) == [0, 1, 2, 3, 4]
    assert not set(rows_of(stages, v1)) & set(rows_of(stages, v2))

    t0 = time.monotonic()
    v3 = stages.datasets.ingest(src, name="s")
    assert (v3.version, v3.created) == (2, False)
    assert time.monotonic() - t0 < WAIT + 2
    # The acknowledgements reached the broker: it holds nothing more for this session.
    assert pending(broker.port, src.client_id, topic) == []


def test_first_ingest_without_messages_is_an_error_then_the_session_keeps_them(
    broker, stages, topic
):
    src = source(broker, topic, batch_size=2)
    with pytest.raises(
        SourceError, match=r"no message on mqtt://127\.0\.0\.1:\d+/wb-test/.* within 0\.5 s"
    ) as err:
        stages.datasets.ingest(src, name="s")
    assert src.client_id in str(err.value)
    with pytest.raises(NotFoundError):
        stages.datasets.get("s")
    # That ingest created the session: what is published now waits for the next one.
    publish(broker.port, topic, [{"i": 1}, [{"i": 2}, {"i": 3}]])
    dv = stages.datasets.ingest(src, name="s")
    assert rows_of(stages, dv) == [1, 2, 3]


def test_wildcard_topics_and_id_field(broker, stages, topic):
    src = source(broker, f"{topic}/#", id_field="i", client_id="c-wild-" + topic[-8:])
    src.subscribe()
    publish(broker.port, f"{topic}/a", [{"i": 1, "v": 1}, {"i": 2, "v": 2}])
    # A row whose id was seen in this batch is dropped, whatever else differs.
    publish(broker.port, f"{topic}/b", [[{"i": 2, "v": 20}, {"i": 3, "v": 3}]])
    dv = stages.datasets.ingest(src, name="s")
    frame = stages.datasets.load(dv).sort("i")
    assert frame["i"].to_list() == [1, 2, 3] and frame["v"].to_list() == [1, 2, 3]
    assert frame["_topic"].to_list() == [f"{topic}/a", f"{topic}/a", f"{topic}/b"]
    # ...and in a later batch too.
    publish(broker.port, f"{topic}/c", [{"i": 3, "v": 30}, {"i": 4, "v": 4}])
    dv2 = stages.datasets.ingest(src, name="s")
    assert stages.datasets.load(dv2)["i"].to_list() == [4]


def test_validation_failure_leaves_the_messages_on_the_broker(broker, stages, topic):
    src = source(broker, topic, batch_size=2)
    src.subscribe()
    publish(broker.port, topic, [{"i": 1, "v": 5}, {"i": 2, "v": 500}])
    checks = Checks(columns={"v": Column(max=100)})
    with pytest.raises(DatasetValidationError):
        stages.datasets.ingest(src, name="s", checks=checks)
    with pytest.raises(NotFoundError):
        stages.datasets.get("s")
    assert len(pending(broker.port, src.client_id, topic, expect=2)) == 2
    dv = stages.datasets.ingest(src, name="s")
    assert rows_of(stages, dv) == [1, 2]


def test_a_crash_between_receive_and_record_loses_nothing(broker, stages, topic, tmp_path):
    """The ingesting process dies (os._exit, no abort, no ack) after the batch came in."""
    src = source(broker, topic, batch_size=3)
    src.subscribe()
    publish(broker.port, topic, [{"i": i} for i in range(3)])
    script = textwrap.dedent(
        f"""
        import os
        from workbench.datasets import MqttSource
        from workbench.datasets._datasets import Datasets
        from workbench.stages import Stages

        def crash(self, src, fetched, **kw):
            print("received", fetched.frame.height, flush=True)
            os._exit(3)

        Datasets._record = crash
        st = Stages.open({str(tmp_path / "home")!r})
        st.datasets.ingest(MqttSource.from_spec({src.to_spec()!r}), name="s")
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3, proc.stderr
    assert "received 3" in proc.stdout
    with pytest.raises(NotFoundError):
        stages.datasets.get("s")
    dv = stages.datasets.ingest(src, name="s")
    assert rows_of(stages, dv) == [0, 1, 2]


def test_a_lost_acknowledgement_does_not_duplicate_rows(broker, stages, topic, monkeypatch):
    """The version is recorded but its messages are never acknowledged (a crash right after
    recording): the broker sends them again, the next ingest drops them and acknowledges them."""
    from workbench.datasets import _mqtt

    src = source(broker, topic, batch_size=3)
    src.subscribe()
    publish(broker.port, topic, [{"i": i} for i in range(3)])
    with monkeypatch.context() as m:
        m.setattr(_mqtt._Session, "ack", _mqtt._Session.close)
        v1 = stages.datasets.ingest(src, name="s")
    assert v1.created and v1.n_rows == 3
    assert len(pending(broker.port, src.client_id, topic, expect=3)) == 3

    again = stages.datasets.ingest(src, name="s")
    assert (again.version, again.created) == (1, False)
    assert pending(broker.port, src.client_id, topic) == []
    publish(broker.port, topic, [{"i": 3}])
    v2 = stages.datasets.ingest(src, name="s")
    assert rows_of(stages, v2) == [3]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_broker_killed_mid_batch(sig, broker, stages, topic, monkeypatch, tmp_path):
    """The broker's pid is signalled while a batch is being consumed: SourceError naming broker and
    topic, no version; restarted on the same port with its saved state, the next ingest records
    every message once. SIGTERM: mosquitto saves its state as it stops (the module's broker).
    SIGKILL: only what it saved before, so a broker of its own saving after every change."""
    from workbench.datasets import _mqtt

    if sig == signal.SIGKILL:
        broker = Mosquitto(tmp_path / "broker", save_every_change=True).start()
    src = source(broker, topic, batch_size=100, max_wait_s=10)
    src.subscribe()
    publish(broker.port, topic, [{"i": i} for i in range(4)])
    received = []
    real = _mqtt._Session._on_message
    monkeypatch.setattr(
        _mqtt._Session, "_on_message", lambda self, *a: (real(self, *a), received.append(1))
    )
    outcome: list[BaseException | object] = []

    def run():
        try:
            outcome.append(stages.datasets.ingest(src, name="s"))
        except BaseException as exc:
            outcome.append(exc)

    # The store's SQLite connection is used from this thread only after the ingest thread ended.
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while len(received) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(received) == 4
        stopped = time.monotonic()
        broker.stop(sig)
        worker.join(10)
        assert not worker.is_alive()
        assert time.monotonic() - stopped < 5  # not the batch's 10 s wait
        (exc,) = outcome
        assert isinstance(exc, SourceError), exc
        assert f"127.0.0.1:{broker.port}/{topic}" in str(exc) and "after 4 message(s)" in str(exc)
        with pytest.raises(NotFoundError):
            stages.datasets.get("s")

        broker.start()
        monkeypatch.undo()
        src.max_wait_s, src.batch_size = WAIT, 4
        dv = stages.datasets.ingest(src, name="s")
        assert rows_of(stages, dv) == [0, 1, 2, 3]
        assert stages.datasets.ingest(src, name="s").created is False
        assert pending(broker.port, src.client_id, topic) == []
    finally:
        if sig == signal.SIGKILL:
            broker.stop()
        else:
            broker.start()  # the module's broker, for the tests after this one


def test_unreachable_broker_fails_fast(stages):
    src = MqttSource("127.0.0.1", free_port(), "t", max_wait_s=WAIT)
    t0 = time.monotonic()
    with pytest.raises(
        SourceError, match=r"cannot reach the MQTT broker of mqtt://127\.0\.0\.1:\d+/t"
    ):
        stages.datasets.ingest(src, name="s")
    assert time.monotonic() - t0 < 2


def test_a_payload_that_is_not_json(broker, stages, topic):
    src = source(broker, topic, batch_size=1)
    src.subscribe()
    publish(broker.port, topic, ["temperature=21.5"])
    with pytest.raises(
        SourceError, match=rf"topic '{topic}'.*not JSON.*'temperature=21\.5'.*payload='text'"
    ):
        stages.datasets.ingest(src, name="s")
    with pytest.raises(NotFoundError):
        stages.datasets.get("s")
    # What the message says to do: read the topic as text (same session: the message is still there).
    text = source(broker, topic, payload="text", batch_size=1)
    dv = stages.datasets.ingest(text, name="s")
    assert stages.datasets.load(dv)["payload"].to_list() == ["temperature=21.5"]


def test_credentials_from_an_environment_variable(stages, tmp_path, monkeypatch):
    with Mosquitto(tmp_path / "broker", users={"ops": "s3cret"}) as b:
        kw = {"max_wait_s": WAIT, "client_id": "c-auth"}
        with pytest.raises(
            SourceError, match=r"refused client id 'c-auth'.*Not authori[sz]ed.*password_env"
        ):
            MqttSource("127.0.0.1", b.port, "t", **kw).subscribe()
        src = MqttSource(
            "127.0.0.1",
            b.port,
            "t",
            username="ops",
            password_env="WB_TEST_MQTT_PW",
            batch_size=1,
            **kw,
        )
        with pytest.raises(ConfigError, match=r"\$WB_TEST_MQTT_PW, which is not set"):
            src.subscribe()
        monkeypatch.setenv("WB_TEST_MQTT_PW", "wrong")
        with pytest.raises(SourceError, match="refused"):
            src.subscribe()
        monkeypatch.setenv("WB_TEST_MQTT_PW", "s3cret")
        src.subscribe()
        import paho.mqtt.client as mqtt

        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.username_pw_set("ops", "s3cret")
        pub.connect("127.0.0.1", b.port)
        pub.loop_start()
        pub.publish("t", '{"i": 7}', qos=1).wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()
        dv = stages.datasets.ingest(src, name="s")
        assert rows_of(stages, dv) == [7]
        assert (
            "s3cret" not in json.dumps(dv.source_spec)
            and dv.source_spec["password_env"] == "WB_TEST_MQTT_PW"
        )
        assert dv.source == f"mqtt://ops@127.0.0.1:{b.port}/t"


def test_a_lost_session_is_reported(stages, tmp_path, topic, caplog):
    """A broker killed before it saved anything forgets the session: the next ingest says that
    what was published meanwhile is lost (and returns the last version)."""
    with Mosquitto(tmp_path / "broker") as b:
        src = source(b, topic, batch_size=1)
        src.subscribe()
        publish(b.port, topic, [{"i": 1}])
        v1 = stages.datasets.ingest(src, name="s")
        b.kill()
        b.start()
        with caplog.at_level("WARNING", logger="workbench.datasets._mqtt"):
            again = stages.datasets.ingest(src, name="s")
        assert (again.version, again.created) == (v1.version, False)
        assert f"no session for client id {src.client_id!r}" in caplog.text
        caplog.clear()
        with caplog.at_level("WARNING", logger="workbench.datasets._mqtt"):
            stages.datasets.ingest(src, name="s")
        assert "no session" not in caplog.text  # the session exists again
