"""SQL databases as a source: a table or a query, read whole or incrementally by a watermark column.

Rows are read with ``polars.read_database_uri(..., engine="connectorx")`` (PostgreSQL, SQLite,
MySQL, SQL Server, Oracle, Redshift...; PostgreSQL and SQLite are the ones tested here).

The statements this module builds are the *user's* database's, not the workbench store's (which
only ``workbench.lineage`` speaks to); they are written in lower case, the store's are upper case.
Nothing a user passes is pasted into them as is: identifiers are quoted (embedded quotes doubled)
and a watermark is re-parsed to its recorded type and written back as a literal of that type.

A password is never recorded: :meth:`SqlSource.to_spec` names the environment variable that holds
it (``password_env``), :meth:`SqlSource.describe` and every error message mask it, and an error
from the driver is re-raised with its text scrubbed and without the driver's exception chained
(its message may carry the connection string).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import socket
import struct
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from workbench.datasets._sources import Fetched, Source, register_source
from workbench.exceptions import ConfigError, SourceError
from workbench.lineage import mask_uri

if TYPE_CHECKING:
    import ssl

    import polars as pl

__all__ = ["SqlSource"]

#: Seconds to reach a database server before the read is given up as unreachable. connectorx's
#: connection pool retries a refused or failed login for 30 s; the probe answers in milliseconds.
CONNECT_TIMEOUT_S = 10.0

_DEFAULT_PORTS = {
    "postgresql": 5432,
    "mysql": 3306,
    "mssql": 1433,
    "oracle": 1521,
    "redshift": 5439,
}
_DIALECTS = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "redshift": "redshift",
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "mssql": "mssql",
    "oracle": "oracle",
}
_WATERMARK_TYPES = ("int", "float", "decimal", "date", "timestamp", "timestamptz", "text")


@register_source
class SqlSource(Source):
    """A table or a query of a SQL database, read with connectorx.

    Parameters
    ----------
    uri : str
        ``postgresql://user@host:port/db``, ``sqlite:///abs/path.db`` (``sqlite://rel.db``), or any
        URI connectorx reads. A password may be inline (``user:pw@``) for an interactive ingest, but
        such a source cannot be stored (:meth:`to_spec` raises): use ``password_env``.
    table : str, optional
        A table (or view) name, ``"schema.table"`` allowed; quoted as an identifier.
    query : str, optional
        A query returning the rows. Exactly one of ``table`` and ``query``.
    watermark : str, optional
        A column that grows with every new row (a serial id, an insertion timestamp). Then each
        ingest reads only the rows whose watermark is greater than the last version's maximum, and
        **each incremental version holds those new rows only** (not the whole table); with
        nothing new, ``ingest`` returns the last version unchanged. Rows whose watermark is null,
        or that arrive later with a watermark at or below the maximum already read, are never
        read. Integer, float, decimal, date, timestamp and text columns are supported (SQLite
        timestamps compare as text, in its ``YYYY-MM-DD HH:MM:SS`` form).
    password_env : str, optional
        The environment variable that holds the password, read at each fetch (never recorded).

    Examples
    --------
    >>> src = SqlSource("postgresql://etl@db:5432/shop", table="sales", watermark="id",
    ...                 password_env="SHOP_DB_PASSWORD")                        # doctest: +SKIP
    >>> wb.datasets.ingest(src, name="sales").n_rows                            # doctest: +SKIP
    1000
    >>> SqlSource("sqlite:///data/shop.db", query="select id, amount from sales where amount > 0")
    SqlSource(sqlite:///data/shop.db query 'select id, amount from sales where amount > 0')
    """

    kind = "sql"

    def __init__(
        self,
        uri: str,
        *,
        table: str | None = None,
        query: str | None = None,
        watermark: str | None = None,
        password_env: str | None = None,
    ):
        if not isinstance(uri, str) or "://" not in uri:
            raise ConfigError(
                f"SqlSource needs a database URI such as postgresql://user@host:5432/db or "
                f"sqlite:///path/to.db, got {_scrub_uri_text(str(uri))!r}."
            )
        if (table is None) == (query is None):
            raise ConfigError(
                "SqlSource needs exactly one of table='name' and query='select ...'; "
                f"got {'both' if table is not None else 'neither'}."
            )
        for name, value in (("table", table), ("query", query), ("watermark", watermark)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"SqlSource {name} must be a non-empty string, got {value!r}.")
        if password_env is not None and (
            not isinstance(password_env, str)
            or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", password_env)
        ):
            raise ConfigError(
                f"password_env names an environment variable (letters, digits, _), got {password_env!r}."
            )
        scheme = uri.split("://", 1)[0].lower()
        self.dialect = _DIALECTS.get(scheme.split("+", 1)[0], "ansi")
        # the password is kept apart from the URI so that nothing public (attributes, spec,
        # describe, repr) holds it; _connect_uri() puts it back for the driver only
        self.uri, inline = _split_password(uri)
        self._inline_password = None if inline is None else _Secret(inline)
        if self._inline_password is not None and password_env is not None:
            raise ConfigError(
                f"{self._display_uri()} has a password inline and password_env={password_env!r}; "
                "give it one way: drop it from the URI and keep password_env."
            )
        self.table = table
        self.query = query
        self.watermark = watermark
        self.password_env = password_env

    # ---------------------------------------------------------------- Source
    def describe(self) -> str:
        what = f"table {self.table}" if self.table is not None else f"query {_short(self.query)!r}"
        if self.watermark:
            what += f" watermark {self.watermark}"
        return f"{self._display_uri()} {what}"

    def to_spec(self) -> dict[str, Any]:
        if self._inline_password is not None:
            raise ConfigError(
                f"{self._display_uri()} carries its password inline, which is never recorded; "
                "to store or schedule this source, put the password in an environment variable "
                'and pass SqlSource(uri_without_password, ..., password_env="VAR").'
            )
        spec: dict[str, Any] = {"kind": self.kind, "uri": self.uri}
        if self.table is not None:
            spec["table"] = self.table
        else:
            spec["query"] = self.query
        if self.watermark is not None:
            spec["watermark"] = self.watermark
        if self.password_env is not None:
            spec["password_env"] = self.password_env
        return spec

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SqlSource:
        if "uri" not in spec:
            # what ingest records when to_spec() refused: a source given its password inline
            raise ConfigError(
                "this SQL source was ingested with its password inline, so its URI was not "
                "recorded and it cannot be read again from the record; ingest it with "
                'SqlSource(uri_without_password, ..., password_env="VAR") to make it re-readable.'
            )
        args = {k: v for k, v in spec.items() if k != "kind"}
        return cls(**args)

    def fetch(self, state: dict[str, Any]) -> Fetched:
        since = self._since(state)
        sql = self._statement(since)
        frame = self._read(sql)
        if not self.watermark:
            return Fetched(frame, self.describe())
        if self.watermark not in frame.columns:
            raise SourceError(
                f"cannot read {self.describe()}: the watermark column {self.watermark!r} is not "
                f"among the columns it returns {frame.columns}. Pass watermark= one of them."
            )
        if since is not None and frame.height == 0:
            return Fetched(frame, self.describe(), state=dict(state), unchanged=True)
        top = frame.get_column(self.watermark).max()
        if top is None:  # every watermark null: nothing to go on from; read all again next time
            return Fetched(
                frame, self.describe(), state={"column": self.watermark, "watermark": None}
            )
        kind, value = _to_state(top, frame.schema[self.watermark], self)
        return Fetched(
            frame,
            self.describe(),
            state={"column": self.watermark, "watermark": value, "type": kind},
        )

    # -------------------------------------------------------------- helpers
    def _since(self, state: dict[str, Any]) -> tuple[str, Any] | None:
        """The recorded ``(type, value)`` to read on from, or None for a full read."""
        if not self.watermark or not state or state.get("watermark") is None:
            return None
        column = state.get("column")
        if column != self.watermark:
            raise ConfigError(
                f"the last version of this dataset was read from {self.describe()} up to "
                f"{column}={state.get('watermark')!r}, not by {self.watermark!r}; pass "
                f"watermark={column!r}, or ingest under a new dataset name to start again."
            )
        kind = state.get("type")
        if kind not in _WATERMARK_TYPES:
            raise ConfigError(
                f"the recorded watermark of {self.describe()} has an unknown type {kind!r}; "
                "ingest under a new dataset name to start again."
            )
        return kind, state["watermark"]

    def _statement(self, since: tuple[str, Any] | None) -> str:
        if self.table is not None:
            base = "select * from " + ".".join(
                _quote_ident(p, self.dialect) for p in self.table.split(".")
            )
        else:
            base = self.query.strip().rstrip(";").strip()
        if since is None:
            return base
        # a table is filtered in place (an index on the column applies); a query is wrapped so
        # the filter applies to what it returns, whatever its own where/group by/limit
        alias = "_wb_query" if self.dialect == "oracle" else "as _wb_query"  # Oracle: no "as"
        inner = base if self.table is not None else f"select * from ({base}) {alias}"
        column = _quote_ident(self.watermark, self.dialect)
        return f"{inner} where {column} > {_literal(since[0], since[1], self.dialect)}"

    def _read(self, sql: str) -> pl.DataFrame:
        import polars as pl

        uri = self._connect_uri()
        if self.dialect == "sqlite":
            path = _sqlite_path(self.uri)
            if path and not Path(path).exists():
                # connectorx would create an empty database there and report "no such table"
                raise SourceError(
                    f"cannot read {self.describe()}: there is no SQLite database at {path}. "
                    "Check the path (sqlite:///absolute/path.db or sqlite://relative.db)."
                )
        else:
            self._probe(uri)
        failure: str | None = None
        try:
            return pl.read_database_uri(sql, uri, engine="connectorx")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # connectorx panics surface as pyo3's PanicException
            failure = self._scrub(f"{type(exc).__name__}: {exc}")
        # raised outside the except block so that the driver's exception (whose text may hold the
        # connection string) is neither the cause nor the context of ours
        raise self._classify(failure)

    def _probe(self, uri: str) -> None:
        """Fail fast (and clearly) on an unreachable server or refused login."""
        parts = urlsplit(uri)
        host = parts.hostname
        if not host or host.startswith("/"):
            return  # a unix socket, or a host the driver resolves from the query string
        try:
            port = parts.port or _DEFAULT_PORTS.get(self.dialect)
        except ValueError:
            raise SourceError(
                f"cannot read {self.describe()}: the port in the URI is not a number. Fix the URI."
            ) from None
        if port is None:
            return
        try:
            sock = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise SourceError(
                f"cannot reach the database of {self.describe()} at {host}:{port} ({reason}). "
                "Check the host and port, that the server is running and that it accepts "
                "connections from here; then ingest again."
            ) from None
        with sock:
            if self.dialect not in ("postgresql", "redshift"):
                return
            params = dict(parse_qsl(parts.query))
            user = unquote(parts.username or "") or params.get("user", "")
            if not user:
                return
            db = unquote(parts.path.lstrip("/")) or user
            result = _pg_login(
                sock, host, user, db, _password_of(uri), params.get("sslmode", "prefer")
            )
        if result is None:
            return
        code, message = result
        message = self._scrub(message)
        if code == "28P01":
            raise SourceError(
                f"the database of {self.describe()} refused the login of user {user!r}: {message}. "
                "Check the user and the password"
                + (f" (in ${self.password_env})" if self.password_env else "")
                + "; then ingest again."
            )
        if code == "3D000":
            raise SourceError(
                f"cannot read {self.describe()}: {message}. Check the database name in the URI."
            )

    def _classify(self, text: str) -> SourceError:
        low = text.lower()
        where = self.describe()
        if (
            "password authentication failed" in low
            or "access denied for user" in low
            or "login failed" in low
        ):
            return SourceError(
                f"the database of {where} refused the login: {text}. Check the user and the password; "
                "then ingest again."
            )
        if any(
            s in low
            for s in ("connection refused", "error connecting", "timed out waiting for connection",
                      "failed to lookup address", "name or service not known", "could not connect")
        ):  # fmt: skip
            return SourceError(
                f"cannot reach the database of {where}: {text}. Check the host and port and that "
                "the server is running; then ingest again."
            )
        if self.watermark and _names_column(low, self.watermark.lower()):
            return SourceError(
                f"cannot read {where}: the watermark column {self.watermark!r} does not exist "
                f"({text}). Pass watermark= a column the {'table' if self.table else 'query'} returns."
            )
        if self.table is not None and (
            "no such table" in low
            or ("relation" in low and "does not exist" in low)
            or "doesn't exist" in low
        ):
            return SourceError(
                f"cannot read {where}: table {self.table!r} does not exist ({text}). Check the table "
                "name (schema.table for another schema) and the database in the URI."
            )
        return SourceError(
            f"the {'read' if self.table is not None else 'query'} of {where} failed: {text}. "
            "Check the SQL (run it in the database's own client) and ingest again."
        )

    def _connect_uri(self) -> str:
        password = self._inline_password.value if self._inline_password is not None else None
        if self.password_env is not None:
            password = os.environ.get(self.password_env)
            if password is None:
                raise ConfigError(
                    f"{self.describe()} reads its password from ${self.password_env}, which is not "
                    "set; set it in the environment of the process that ingests (and of the "
                    "scheduler), then ingest again."
                )
        if password is None:
            return self.uri
        return _with_password(self.uri, password)

    def _secrets(self) -> list[str]:
        found = []
        with contextlib.suppress(ConfigError):
            uri = self._connect_uri()
            pw = _password_of(uri)
            if pw:
                found += [pw, quote(pw, safe=""), quote(pw)]
            found.append(uri)
        return sorted({s for s in found if s}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets():
            text = text.replace(secret, mask_uri(secret) if "://" in secret else "***")
        return _scrub_uri_text(text)

    def _display_uri(self) -> str:
        if "@" not in self.uri and "?" not in self.uri:
            return self.uri  # nothing to mask (and mask_uri would turn sqlite:/// into sqlite:/)
        return mask_uri(_mask_query(self.uri))


# ------------------------------------------------------------------ URIs and secrets
class _Secret:
    """A password that prints as ``***`` (in ``repr``, ``vars()``, a debugger, a log line)."""

    __slots__ = ("value",)

    def __init__(self, value: str):
        self.value = value

    def __repr__(self) -> str:
        return "***"

    __str__ = __repr__


def _split_password(uri: str) -> tuple[str, str | None]:
    """``uri`` without its password (inline or ``?password=``), and the password (None if none).

    The user part ends at the *last* ``@``: a password pasted without percent-encoding may hold
    ``:``, ``/``, ``?`` or ``@``, and must come out whole rather than stay in the host or path.
    """
    scheme, rest = uri.split("://", 1)
    password = None
    at = rest.rfind("@")
    if at >= 0:
        userinfo, after = rest[:at], rest[at + 1 :]
        user, colon, raw = userinfo.partition(":")
        if colon:
            password = unquote(raw)
        rest = f"{user}@{after}"
    parts = urlsplit(f"{scheme}://{rest}")
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if k.lower() != "password"]
        if len(kept) != len(pairs):
            password = next(v for k, v in pairs if k.lower() == "password")
            query = urlencode(kept, safe=":/")
            return urlunsplit(parts._replace(query=query)), password
    return f"{scheme}://{rest}", password


def _with_password(uri: str, password: str) -> str:
    parts = urlsplit(uri)
    netloc = parts.netloc
    user, hostport = netloc.rsplit("@", 1) if "@" in netloc else ("", netloc)
    netloc = f"{user}:{quote(password, safe='')}@{hostport}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _password_of(uri: str) -> str | None:
    return _split_password(uri)[1]


def _mask_query(uri: str) -> str:
    parts = urlsplit(uri)
    if not parts.query:
        return uri
    pairs = [
        (k, "***" if k.lower() in ("password", "pwd", "pass") else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe=":/*")))


#: greedy to the last ``@`` of the word: an unencoded password may hold ``/`` or ``@``
_URI_WITH_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s'\"]*@")
_PASSWORD_PARAM = re.compile(r"(?i)\b(password|pwd)=([^\s&'\"]+)")


def _scrub_uri_text(text: str) -> str:
    """Any ``scheme://user:pw@`` and ``password=...`` in free text masked."""
    text = _URI_WITH_USERINFO.sub(r"\1***@", text)
    return _PASSWORD_PARAM.sub(r"\1=***", text)


def _sqlite_path(uri: str) -> str:
    rest = uri.split("://", 1)[1]
    return unquote(rest.split("?", 1)[0])


def _short(text: str | None, limit: int = 120) -> str:
    one = " ".join((text or "").split())
    return one if len(one) <= limit else one[: limit - 3] + "..."


def _names_column(low: str, column: str) -> bool:
    """Whether a driver message says that ``column`` does not exist."""
    return (
        f'column "{column}" does not exist' in low
        or f"no such column: {column}" in low
        or f"unknown column '{column}'" in low
        or f"invalid column name '{column}'" in low
        or (f'"{column}"' in low and "invalid identifier" in low)
    )


# ------------------------------------------------------------------ SQL text
def _quote_ident(name: str, dialect: str) -> str:
    """``name`` as a quoted identifier: its own quote characters doubled, so it cannot end early."""
    if "\x00" in name:
        raise ConfigError(f"an identifier cannot hold a NUL character: {name!r}.")
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    if dialect == "mssql":
        return "[" + name.replace("]", "]]") + "]"
    return '"' + name.replace('"', '""') + '"'


def _literal(kind: str, value: Any, dialect: str) -> str:
    """A SQL literal of type ``kind`` for ``value``: re-parsed to that type first, never pasted."""
    bad = ConfigError(
        f"the recorded watermark {value!r} is not a valid {kind}; ingest under a new dataset name "
        "to start again."
    )
    try:
        if kind == "int":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise bad
            return str(int(value))
        if kind == "float":
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise bad
            number = float(value)
            if number != number or number in (float("inf"), float("-inf")):
                raise bad
            return repr(number)
        if kind == "decimal":
            dec = Decimal(str(value))
            if not dec.is_finite():
                raise bad
            return format(dec, "f")
        if kind == "text":
            if not isinstance(value, str) or "\x00" in value:
                raise bad
            return _quote_text(value, dialect)
        if kind == "date":
            day = date.fromisoformat(str(value)).isoformat()
            if dialect == "sqlite":
                return f"'{day}'"
            return f"cast('{day}' as date)" if dialect == "mssql" else f"date '{day}'"
        if kind in ("timestamp", "timestamptz"):
            moment = datetime.fromisoformat(str(value))
            if kind == "timestamptz":
                moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
            if dialect in ("sqlite", "mysql", "mssql"):
                # these keep no zone with the value: compare in UTC wall-clock time
                text = moment.replace(tzinfo=None).isoformat(sep=" ")
                if dialect == "sqlite":
                    return f"'{text}'"
                if dialect == "mssql":
                    return f"cast('{text}' as datetime2)"
                return f"timestamp '{text}'"
            text = moment.isoformat(sep=" ")
            if kind == "timestamptz":
                return (
                    f"timestamptz '{text}'"
                    if dialect in ("postgresql", "redshift")
                    else (f"timestamp with time zone '{text}'")
                )
            return f"timestamp '{text}'"
    except (ValueError, TypeError, InvalidOperation):
        raise bad from None
    raise bad


def _quote_text(value: str, dialect: str) -> str:
    if dialect == "mysql":
        # MySQL reads backslash escapes in string literals by default
        return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    if dialect in ("postgresql", "redshift") and "\\" in value:
        # an escape string reads the same whatever standard_conforming_strings is set to
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + value.replace("'", "''") + "'"


def _to_state(top: Any, dtype: Any, src: SqlSource) -> tuple[str, Any]:
    """The JSON-safe ``(type, value)`` recorded for a watermark maximum of polars type ``dtype``."""
    import polars as pl

    if dtype.is_integer():
        return "int", int(top)
    if dtype.is_float():
        number = float(top)
        if number != number or number in (float("inf"), float("-inf")):
            raise SourceError(
                f"cannot read {src.describe()}: the watermark column {src.watermark!r} has a "
                f"maximum of {number}; use a column of finite values."
            )
        return "float", number
    if isinstance(dtype, pl.Decimal):
        return "decimal", format(Decimal(top), "f")
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            return "timestamptz", top.astimezone(UTC).isoformat()
        return "timestamp", top.isoformat()
    if isinstance(dtype, pl.Date):
        return "date", top.isoformat()
    if dtype == pl.String:
        return "text", str(top)
    raise ConfigError(
        f"the watermark column {src.watermark!r} of {src.describe()} is of type {dtype}; use an "
        "integer, float, decimal, date, timestamp or text column that grows with each new row."
    )


# ------------------------------------------------------------------ PostgreSQL login probe
@dataclass
class _PgReply:
    kind: bytes
    body: bytes


def _pg_login(
    sock: socket.socket, host: str, user: str, database: str, password: str | None, sslmode: str
) -> tuple[str, str] | None:
    """Log in to a PostgreSQL server as the driver would; ``(sqlstate, message)`` if refused.

    None when the login succeeded, or when the probe cannot tell (an authentication method or
    TLS setting it does not speak): the driver then finds out itself. The password goes only
    where the driver would send it: over TLS when the server offers it (``sslmode`` prefer or
    require), never in clear text to a server that would not get it in clear from the driver;
    with certificate checks asked for (verify-ca, verify-full) the probe does not log in.
    """
    import ssl

    if sslmode in ("verify-ca", "verify-full"):
        return None
    conn: socket.socket | ssl.SSLSocket = sock
    try:
        conn.settimeout(CONNECT_TIMEOUT_S)
        if sslmode in ("prefer", "require"):
            conn.sendall(struct.pack("!ii", 8, 80877103))
            answer = _recv_exact(conn, 1)
            if answer == b"S":
                context = ssl.create_default_context()
                # what libpq's prefer/require check: nothing about the certificate
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
                conn = context.wrap_socket(sock, server_hostname=host)
            elif sslmode == "require":
                return None
        params = b"user\x00" + user.encode() + b"\x00database\x00" + database.encode() + b"\x00\x00"
        conn.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        scram: _Scram | None = None
        for _ in range(1000):  # a login is a handful of messages; bounded all the same
            reply = _pg_read(conn)
            if reply.kind == b"E":
                return _pg_error(reply.body)
            if reply.kind == b"Z":
                return None  # ready for a query: logged in, to an existing database
            if reply.kind != b"R":
                continue  # parameter status, backend key, notices
            (code,) = struct.unpack("!i", reply.body[:4])
            if code == 0:
                continue  # authenticated; the database is checked after this
            if password is None:
                return None  # the driver will say what is missing
            if code == 3:  # clear-text password: sent as the driver would, on this same channel
                _pg_send(conn, b"p", password.encode() + b"\x00")
            elif code == 5:  # md5
                salt = reply.body[4:8]
                inner = hashlib.md5(password.encode() + user.encode()).hexdigest()
                outer = hashlib.md5(inner.encode() + salt).hexdigest()
                _pg_send(conn, b"p", b"md5" + outer.encode() + b"\x00")
            elif code == 10:  # SASL
                mechanisms = reply.body[4:].split(b"\x00")
                if b"SCRAM-SHA-256" not in mechanisms:
                    return None
                scram = _Scram(password)
                first = scram.client_first()
                _pg_send(
                    conn,
                    b"p",
                    b"SCRAM-SHA-256\x00" + struct.pack("!i", len(first)) + first,
                )
            elif code == 11 and scram is not None:  # SASL continue
                _pg_send(conn, b"p", scram.client_final(reply.body[4:]))
            elif code == 12:  # SASL final
                continue
            else:
                return None
        return None
    except (OSError, ValueError, struct.error, ssl.SSLError):
        return None
    finally:
        with contextlib.suppress(OSError):
            conn.sendall(b"X\x00\x00\x00\x04")  # Terminate
        if conn is not sock:
            conn.close()  # the TLS socket took the caller's socket over


def _recv_exact(conn: socket.socket | ssl.SSLSocket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _pg_read(conn: socket.socket | ssl.SSLSocket) -> _PgReply:
    head = _recv_exact(conn, 5)
    (length,) = struct.unpack("!i", head[1:])
    if length < 4 or length > 1 << 20:
        raise ValueError("not a PostgreSQL reply")
    return _PgReply(head[:1], _recv_exact(conn, length - 4))


def _pg_send(conn: socket.socket | ssl.SSLSocket, kind: bytes, body: bytes) -> None:
    conn.sendall(kind + struct.pack("!i", len(body) + 4) + body)


def _pg_error(body: bytes) -> tuple[str, str]:
    fields = {f[:1]: f[1:].decode("utf-8", "replace") for f in body.split(b"\x00") if f}
    return fields.get(b"C", ""), fields.get(b"M", "refused")


class _Scram:
    """The client side of SCRAM-SHA-256 (RFC 7677), as PostgreSQL uses it (no channel binding)."""

    def __init__(self, password: str):
        self.password = password.encode()
        self.nonce = base64.b64encode(secrets.token_bytes(18)).decode()
        self.first_bare = f"n=,r={self.nonce}"

    def client_first(self) -> bytes:
        return f"n,,{self.first_bare}".encode()

    def client_final(self, server_first: bytes) -> bytes:
        attrs = dict(item.split("=", 1) for item in server_first.decode().split(","))
        if not attrs["r"].startswith(self.nonce):
            raise ValueError("server nonce")
        salted = hashlib.pbkdf2_hmac(
            "sha256", self.password, base64.b64decode(attrs["s"]), int(attrs["i"])
        )
        client_key = hmac.digest(salted, b"Client Key", "sha256")
        stored = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        message = f"{self.first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.digest(stored, message, "sha256")
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
