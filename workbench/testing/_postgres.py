"""A throwaway PostgreSQL 15 server on loopback, for tests, notebooks and benchmarks.

``start_postgres()`` creates a cluster in a fresh temporary directory, starts it on a free port of
127.0.0.1 with password (SCRAM) authentication over TCP, and returns a :class:`Postgres` whose
``uri`` a client connects with and whose ``psql`` runs setup SQL as the superuser over the unix
socket (trusted, so no password is needed there). ``stop()`` (or leaving a ``with`` block, or the
interpreter's exit) ends the server by its pid with SIGQUIT, what ``pg_ctl stop -m immediate``
sends, falling back on ``pg_ctl`` and SIGKILL, and removes the directory.

PostgreSQL refuses to run as root: as root the cluster belongs to the ``postgres`` system user and
every server command runs through ``runuser -u postgres --``.

Examples
--------
>>> with start_postgres() as pg:                                              # doctest: +SKIP
...     pg.psql("create table t (id int); insert into t values (1), (2)")
...     pl.read_database_uri("select * from t", pg.uri, engine="connectorx")
>>> pg = start_postgres(password="pw"); pg.uri                               # doctest: +SKIP
'postgresql://wb:pw@127.0.0.1:41233/wb'
>>> pg.stop()                                                                  # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from workbench.runtime import free_port

__all__ = ["BIN", "Postgres", "postgres_available", "start_postgres"]

BIN = Path(os.environ.get("WORKBENCH_PG_BIN", "/usr/lib/postgresql/15/bin"))


def postgres_available() -> bool:
    """Whether the PostgreSQL server binaries are installed (``$WORKBENCH_PG_BIN`` or PG 15's)."""
    return (BIN / "initdb").exists() and (BIN / "pg_ctl").exists()


@dataclass
class Postgres:
    """A running server: where it listens, who may log in, how to stop it."""

    port: int
    user: str
    password: str
    database: str
    root: Path
    pid: int
    start_s: float
    """Seconds from ``initdb`` to accepting connections."""
    host: str = "127.0.0.1"
    _as_owner: list[str] = field(default_factory=list, repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def uri(self) -> str:
        """``postgresql://user:password@127.0.0.1:port/database`` (the password inline, encoded)."""
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.database}"

    @property
    def uri_without_password(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def psql(self, sql: str, *, timeout_s: float = 120) -> str:
        """Run ``sql`` as the superuser over the unix socket; its output (unaligned, tuples only)."""
        cmd = [
            *self._as_owner,
            str(BIN / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            str(self.socket_dir),
            "-p",
            str(self.port),
            "-U",
            self.user,
            "-d",
            self.database,
        ]
        out = subprocess.run(
            cmd, input=sql, capture_output=True, text=True, timeout=timeout_s, check=False
        )
        if out.returncode != 0:
            raise RuntimeError(f"psql failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def reload(self) -> None:
        """Make the server re-read ``pg_hba.conf`` and its settings (``pg_reload_conf()``)."""
        assert self.psql("select pg_reload_conf()").strip() == "t"

    def add_hba(self, line: str) -> None:
        """Put an authentication rule first in ``pg_hba.conf`` (``"host all bob 127.0.0.1/32 md5"``)."""
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(line.rstrip() + "\n" + hba.read_text())
        self.reload()

    def enable_ssl(self) -> None:
        """Turn TLS on with a fresh self-signed certificate (clients then negotiate it)."""
        cert, key = self.data_dir / "server.crt", self.data_dir / "server.key"
        _run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj"]
            + ["/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
            60,
        )
        os.chmod(key, 0o600)
        if self._as_owner:
            for path in (cert, key):
                shutil.chown(path, "postgres", "postgres")
        self.psql("alter system set ssl = on")
        self.reload()

    def alive(self) -> bool:
        """Whether the postmaster still runs (an exited one waiting to be reaped is not)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        try:
            # the postmaster is not our child: init reaps it, at its own pace
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        return state not in ("Z", "X")

    def __enter__(self) -> Postgres:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """End the server and delete its directory (once: later calls do nothing).

        SIGQUIT to the postmaster is what ``pg_ctl stop -m immediate`` sends, without its polling
        (~1 s); ``pg_ctl`` is the fallback should the signal not end it, SIGKILL the last resort.
        """
        if self._stopped:
            return  # the pid may belong to another process by now
        self._stopped = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGQUIT)
        if not self._wait_gone(5) and self.data_dir.exists():
            subprocess.run(
                [*self._as_owner, str(BIN / "pg_ctl"), "stop", "-m", "immediate", "-w", "-t", "10"]
                + ["-D", str(self.data_dir)],
                capture_output=True,
                timeout=30,
                check=False,
            )
        if not self._wait_gone(5):
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self._wait_gone(5)
        shutil.rmtree(self.root, ignore_errors=True)

    def _wait_gone(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.alive():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True


def start_postgres(
    *,
    user: str = "wb",
    password: str = "s3cr:et/p@ss",
    database: str = "wb",
    timeout_s: float = 60,
    settings: dict[str, str] | None = None,
) -> Postgres:
    """Create and start a PostgreSQL cluster on a free loopback port; the running :class:`Postgres`.

    ``user`` is the cluster's superuser, with ``password`` required over TCP (``scram-sha-256``);
    the unix socket in the cluster's directory is trusted (setup via :meth:`Postgres.psql`). The
    default password holds ``:``, ``/`` and ``@`` so a client that does not percent-encode it
    fails. Durability is off (``fsync``, ``full_page_writes``): the data is thrown away.
    ``settings`` adds server options (``{"shared_buffers": "256MB"}``).

    Examples
    --------
    >>> pg = start_postgres(password="pw")                                     # doctest: +SKIP
    >>> pg.start_s < 3                                                         # doctest: +SKIP
    True
    """
    if not postgres_available():
        raise RuntimeError(f"PostgreSQL server binaries not found in {BIN}")
    as_owner: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="wb-pg-"))
    if os.geteuid() == 0:
        # root may not run the server: the cluster is the postgres user's, every command runs as it
        as_owner = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres", "postgres")
    t0 = time.perf_counter()
    try:
        pwfile = root / "pw"
        pwfile.write_text(password + "\n")
        os.chmod(pwfile, 0o644)  # initdb (as postgres) must read it; deleted right after
        (root / "sock").mkdir()
        if as_owner:
            shutil.chown(root / "sock", "postgres", "postgres")
        _run(
            [*as_owner, str(BIN / "initdb"), "-D", str(root / "data"), "-U", user]
            + ["--pwfile", str(pwfile), "--auth-host=scram-sha-256", "--auth-local=trust"]
            + ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            timeout_s,
        )
        pwfile.unlink()
        port = free_port()
        options = {
            "listen_addresses": "127.0.0.1",
            "fsync": "off",
            "full_page_writes": "off",
            "synchronous_commit": "off",
            **(settings or {}),
        }
        opts = f"-p {port} -k {root / 'sock'} " + " ".join(
            f"-c {k}={v}" for k, v in options.items()
        )
        _run(
            [*as_owner, str(BIN / "pg_ctl"), "start", "-w", "-t", str(int(timeout_s))]
            + ["-D", str(root / "data"), "-l", str(root / "data" / "server.log"), "-o", opts],
            timeout_s + 5,
        )
        pid = int((root / "data" / "postmaster.pid").read_text().split()[0])
        pg = Postgres(
            port=port,
            user=user,
            password=password,
            database="postgres",
            root=root,
            pid=pid,
            start_s=0.0,
            _as_owner=as_owner,
        )
        if database != "postgres":
            pg.psql(f'create database "{database}"')
            pg.database = database
        pg.start_s = time.perf_counter() - t0
        # a notebook kernel or script that ends without stop() does not leave the server running
        atexit.register(pg.stop)
        return pg
    except BaseException:
        pidfile = root / "data" / "postmaster.pid"
        if pidfile.exists():
            with contextlib.suppress(Exception):
                os.kill(int(pidfile.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(root, ignore_errors=True)
        raise


def _run(cmd: list[str], timeout_s: float) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    if out.returncode != 0:
        raise RuntimeError(
            f"{Path(cmd[cmd.index('--') + 1] if '--' in cmd else cmd[0]).name} "
            f"failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}"
        )
