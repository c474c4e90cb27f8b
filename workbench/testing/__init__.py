"""Throwaway servers on loopback for trying the data stage in a notebook and for tests.

``start_postgres()`` starts a PostgreSQL server (Debian's ``postgresql``) in a temporary folder on a
free port of 127.0.0.1; ``Mosquitto(folder).start()`` an MQTT broker (Debian's ``mosquitto``) with
its state in ``folder``, and ``publish`` sends messages to it with a real paho client. Each is ended
by its pid (``stop()``, a ``with`` block, or the interpreter's exit). Nothing here is imported by
``import workbench``.
"""

from workbench.testing._mosquitto import MOSQUITTO, Mosquitto, mosquitto_available, pending, publish
from workbench.testing._postgres import Postgres, postgres_available, start_postgres

__all__ = [
    "start_postgres",
    "Postgres",
    "postgres_available",
    "Mosquitto",
    "MOSQUITTO",
    "mosquitto_available",
    "publish",
    "pending",
]
