"""SqlSource against a real PostgreSQL 15 server (password login over TCP) and a SQLite file."""

from __future__ import annotations

import sqlite3
import time
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest

from workbench.datasets import Datasets, SqlSource, as_source, source_from_spec
from workbench.exceptions import ConfigError, SourceError
from workbench.lineage import ArtifactStore, Store
from workbench.testing import postgres_available, start_postgres

pytestmark = pytest.mark.skipif(
    not postgres_available(), reason="PostgreSQL 15 server not installed"
)

ENV = "WB_TEST_PG_PASSWORD"


@pytest.fixture(scope="module")
def pg():
    server = start_postgres()
    try:
        server.psql(
            "create table sales (id bigint primary key, at timestamp not null, amount float8, "
            "region text);"
            "insert into sales select g, timestamp '2024-01-01' + g * interval '1 minute', "
            "g * 1.5, case when g % 2 = 0 then 'north' else 'south' end "
            "from generate_series(1, 100) g;"
            'create table "we""ird" (id int, "o\'k" text); insert into "we""ird" values (1, \'x\');'
        )
        yield server
    finally:
        server.stop()
    assert not server.alive() and not server.root.exists()


@pytest.fixture
def datasets(tmp_path):
    store = Store(tmp_path / "lineage.db")
    yield Datasets(store, ArtifactStore(tmp_path / "artifacts"))
    store.close()


@pytest.fixture
def password_env(pg, monkeypatch):
    monkeypatch.setenv(ENV, pg.password)
    return ENV


def _secret_forms(password: str) -> list[str]:
    return [password, quote(password, safe=""), quote(password)]


def _assert_nothing_holds(password: str, *texts: str, folder: Path | None = None) -> None:
    for text in texts:
        for form in _secret_forms(password):
            assert form not in text, text
    if folder is not None:  # the store's database (and WAL), the artifacts: every byte written
        for path in folder.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for form in _secret_forms(password):
                    assert form.encode() not in data, path


def test_server_starts_in_seconds_with_password_logins(pg):
    # the module's budget: one server start, ~1 s on an idle machine (initdb + start)
    assert pg.start_s < 10, pg.start_s
    assert pg.alive() and pg.psql("select count(*) from sales").strip() == "100"
    assert ":" in pg.password and "/" in pg.password and "@" in pg.password


def test_table_and_query(pg, datasets, password_env):
    src = SqlSource(pg.uri_without_password, table="sales", password_env=password_env)
    dv = datasets.ingest(src, name="sales")
    frame = datasets.load(dv)
    assert dv.created and dv.version == 1 and dv.n_rows == 100
    assert frame.columns == ["id", "at", "amount", "region"]
    assert frame.get_column("id").to_list() == list(range(1, 101))
    assert dv.schema["at"].startswith("Datetime") and dv.schema["amount"] == "Float64"
    assert dv.source == f"postgresql://***@127.0.0.1:{pg.port}/wb table sales"
    assert dv.source_spec == {
        "kind": "sql",
        "uri": pg.uri_without_password,
        "table": "sales",
        "password_env": ENV,
    }
    assert dv.source_state == {}

    north = SqlSource(
        pg.uri_without_password,
        query="select id, amount from sales where region = 'north' order by id;",
        password_env=password_env,
    )
    got = north.fetch({})
    assert got.frame.get_column("id").to_list() == list(range(2, 101, 2))
    assert got.state == {} and not got.unchanged

    # a table name is a quoted identifier: quotes in it are doubled, not pasted
    weird = SqlSource(pg.uri_without_password, table='we"ird', password_env=password_env)
    assert weird.fetch({}).frame.to_dicts() == [{"id": 1, "o'k": "x"}]


def test_watermark_increments_then_nothing_new_then_from_the_spec(pg, datasets, password_env):
    pg.psql("create table events (id serial primary key, v int); insert into events (v) "
            "select g from generate_series(1, 50) g")  # fmt: skip
    src = SqlSource(pg.uri_without_password, table="events", watermark="id", password_env=ENV)
    first = datasets.ingest(src, name="events")
    assert first.created and first.n_rows == 50
    assert first.source_state == {"column": "id", "watermark": 50, "type": "int"}

    pg.psql("insert into events (v) select g from generate_series(51, 70) g")
    second = datasets.ingest(src, name="events")
    assert second.created and second.version == 2 and second.n_rows == 20
    assert datasets.load(second).get_column("id").to_list() == list(range(51, 71))  # new rows only
    assert second.source_state == {"column": "id", "watermark": 70, "type": "int"}

    third = datasets.ingest(src, name="events")
    assert not third.created and third.id == second.id
    assert [v.version for v in datasets.list() if v.name == "events"] in ([1, 2], [2, 1])

    # the recorded spec, read back as a schedule would, goes on from the recorded watermark
    again = source_from_spec(second.source_spec)
    assert isinstance(again, SqlSource) and again.to_spec() == src.to_spec()
    pg.psql("insert into events (v) values (71), (72), (73)")
    fourth = datasets.ingest(again, name="events")
    assert fourth.version == 3 and datasets.load(fourth).get_column("v").to_list() == [71, 72, 73]
    assert fourth.source_state["watermark"] == 73


def test_timestamp_watermark_on_a_query(pg, password_env):
    src = SqlSource(
        pg.uri_without_password,
        query="select id, at from sales where region = 'south'",
        watermark="at",
        password_env=password_env,
    )
    first = src.fetch({})
    assert first.state == {"column": "at", "watermark": "2024-01-01T01:39:00", "type": "timestamp"}
    # from a recorded cursor of 01:30 on: the south rows of minutes 91..99 (id 91, 93, ... 99)
    later = src.fetch({**first.state, "watermark": "2024-01-01T01:30:00"})
    assert sorted(later.frame.get_column("id")) == [91, 93, 95, 97, 99] and not later.unchanged
    assert src.fetch(first.state).unchanged


def test_recorded_watermarks_are_literals_of_their_type(pg, password_env):
    src = SqlSource(pg.uri_without_password, table="sales", watermark="region", password_env=ENV)
    # a quote in a text watermark is doubled: it compares, it does not end the literal
    got = src.fetch({"column": "region", "watermark": "n' or '1'='1", "type": "text"})
    assert set(got.frame.get_column("region").to_list()) == {"north", "south"}
    assert got.frame.height == 100  # 'north' and 'south' both sort after "n' or..."
    bad = SqlSource(pg.uri_without_password, table="sales", watermark="id", password_env=ENV)
    for value in ("1; drop table sales", True, "1 or 1=1", 1.5):
        with pytest.raises(ConfigError, match="not a valid int"):
            bad.fetch({"column": "id", "watermark": value, "type": "int"})
    with pytest.raises(ConfigError, match="not a valid timestamp"):
        bad.fetch(
            {"column": "id", "watermark": "2024-01-01'; drop table sales; --", "type": "timestamp"}
        )
    with pytest.raises(ConfigError, match="not by 'id'"):
        bad.fetch({"column": "amount", "watermark": 3.0, "type": "float"})
    assert pg.psql("select count(*) from sales").strip() == "100"


def test_inline_password_is_ingested_but_never_recorded(pg, datasets, tmp_path):
    # the password as a user would paste it: unencoded, with ':', '/' and '@' in it
    raw = f"postgresql://{pg.user}:{pg.password}@127.0.0.1:{pg.port}/{pg.database}"
    for uri in (raw, pg.uri):
        src = SqlSource(uri, table="sales")
        assert src.uri == pg.uri_without_password and src._inline_password.value == pg.password
        dv = datasets.ingest(src, name="inline", target="region")
        assert dv.n_rows == 100 and dv.source_spec == {"kind": "sql"}
        with pytest.raises(ConfigError, match='password_env="VAR"') as info:
            src.to_spec()
        _assert_nothing_holds(
            pg.password,
            src.describe(),
            repr(src),
            str(vars(src)),
            str(info.value),
            dv.source,
            str(dv.source_spec),
            str(datasets.get("inline")),
            folder=tmp_path,
        )
    with pytest.raises(ConfigError, match="ingested with its password inline"):
        source_from_spec(dv.source_spec)
    with pytest.raises(ConfigError, match="one way"):
        SqlSource(pg.uri, table="sales", password_env=ENV)
    masked = SqlSource(f"postgresql://127.0.0.1:{pg.port}/wb?user=wb&password=hunter2", table="t")
    assert "hunter2" not in masked.describe() and masked.uri.endswith("?user=wb")
    with pytest.raises(ConfigError):
        masked.to_spec()


def _fails(src: SqlSource, password: str, state: dict | None = None) -> tuple[SourceError, float]:
    """The SourceError a fetch raises, with its whole printed traceback checked for the password."""
    t0 = time.perf_counter()
    with pytest.raises(SourceError) as info:
        src.fetch(state or {})
    took = time.perf_counter() - t0
    printed = "".join(traceback.format_exception(info.value))
    _assert_nothing_holds(password, printed, str(info.value))
    assert info.value.__cause__ is None or password not in str(info.value.__cause__)
    return info.value, took


def test_wrong_password_fails_fast_and_masked(pg, monkeypatch):
    monkeypatch.setenv(ENV, "not-" + pg.password)
    err, took = _fails(
        SqlSource(pg.uri_without_password, table="sales", password_env=ENV), "not-" + pg.password
    )
    assert "refused the login of user 'wb'" in str(err) and "password" in str(err)
    assert f"postgresql://***@127.0.0.1:{pg.port}/wb table sales" in str(err)
    assert f"${ENV}" in str(err)
    assert took < 5, took  # not connectorx's 30 s of retries
    inline = f"postgresql://wb:{quote('wrong:pw/x', safe='')}@127.0.0.1:{pg.port}/wb"
    err, took = _fails(SqlSource(inline, table="sales"), "wrong:pw/x")
    assert "refused the login" in str(err) and took < 5

    monkeypatch.delenv(ENV)
    with pytest.raises(ConfigError, match=f"\\${ENV}, which is not set"):
        SqlSource(pg.uri_without_password, table="sales", password_env=ENV).fetch({})


def test_unreachable_server(pg):
    from workbench.runtime import free_port

    port = free_port()
    err, took = _fails(SqlSource(f"postgresql://wb:{quote(pg.password, safe='')}@127.0.0.1:{port}/wb",
                                 table="sales"), pg.password)  # fmt: skip
    assert f"cannot reach the database of postgresql://***@127.0.0.1:{port}/wb" in str(err)
    assert "Connection refused" in str(err) and "server is running" in str(err)
    assert took < 5, took


def test_bad_query_unknown_table_unknown_watermark(pg, password_env):
    uri = pg.uri  # the password inline: none of these messages may show it
    err, _ = _fails(SqlSource(uri, query="selec id frm sales"), pg.password)
    assert "the query of postgresql://***@" in str(
        err
    ) and 'syntax error at or near "selec"' in str(err)
    assert "Check the SQL" in str(err)

    err, _ = _fails(SqlSource(uri, table="public.nope"), pg.password)
    assert "table 'public.nope' does not exist" in str(err)

    err, _ = _fails(SqlSource(uri, table="sales", watermark="seq"), pg.password)
    assert "the watermark column 'seq' is not among the columns" in str(err) and "'id'" in str(err)
    err, _ = _fails(
        SqlSource(uri, table="sales", watermark="seq"),
        pg.password,
        {"column": "seq", "watermark": 3, "type": "int"},
    )
    assert "the watermark column 'seq' does not exist" in str(err)

    err, _ = _fails(SqlSource(uri[: uri.rindex("/")] + "/nodb", table="sales"), pg.password)
    assert 'database "nodb" does not exist' in str(err)


def test_sqlite_file(tmp_path, datasets):
    path = tmp_path / "shop.db"
    with sqlite3.connect(path) as con:
        con.execute("create table orders (id integer primary key, placed datetime, total real)")
        con.executemany(
            "insert into orders values (?, ?, ?)",
            [(i, f"2024-02-{i:02d} 08:00:00", i * 2.0) for i in range(1, 11)],
        )
    src = SqlSource(f"sqlite://{path}", table="orders", watermark="placed")
    first = datasets.ingest(src, name="orders")
    assert first.n_rows == 10 and first.source_spec["uri"] == f"sqlite://{path}"
    assert first.source_state == {
        "column": "placed",
        "watermark": "2024-02-10T08:00:00",
        "type": "timestamp",
    }
    with sqlite3.connect(path) as con:
        con.execute("insert into orders values (11, '2024-02-11 08:00:00', 22.0)")
    second = datasets.ingest(src, name="orders")
    assert second.n_rows == 1 and datasets.load(second).get_column("id").to_list() == [11]
    assert not datasets.ingest(src, name="orders").created

    query = SqlSource(f"sqlite://{path}", query="select id, total from orders where total > 15")
    assert query.fetch({}).frame.get_column("id").to_list() == [8, 9, 10, 11]

    missing = tmp_path / "missing.db"
    with pytest.raises(SourceError, match="there is no SQLite database at"):
        SqlSource(f"sqlite://{missing}", table="orders").fetch({})
    assert not missing.exists()
    with pytest.raises(SourceError, match="table 'nope' does not exist"):
        SqlSource(f"sqlite://{path}", table="nope").fetch({})


def test_arguments_and_bare_uris():
    with pytest.raises(ConfigError, match="exactly one of table"):
        SqlSource("sqlite:///x.db")
    with pytest.raises(ConfigError, match="exactly one of table"):
        SqlSource("sqlite:///x.db", table="t", query="select 1")
    with pytest.raises(ConfigError, match="database URI"):
        SqlSource("shop.db", table="t")
    with pytest.raises(ConfigError, match="environment variable"):
        SqlSource("sqlite:///x.db", table="t", password_env="not a name")
    with pytest.raises(ConfigError, match="needs a table or a query"):
        as_source("postgresql://wb@127.0.0.1:5432/wb")
    src = SqlSource("sqlite:///x.db", query="select  id,\n amount from sales", watermark="id")
    assert (
        repr(src) == "SqlSource(sqlite:///x.db query 'select id, amount from sales' watermark id)"
    )
    assert source_from_spec(src.to_spec()).to_spec() == src.to_spec()


def test_statements_per_dialect_and_a_pickled_source():
    from workbench.datasets._sql import _literal

    pg_src = SqlSource("postgresql://etl:pw@db:5432/shop", table="s.t", watermark='my "col"')
    assert pg_src._statement(("text", "o'k\\")) == (
        'select * from "s"."t" where "my ""col""" > E\'o\'\'k\\\\\''
    )
    my = SqlSource("mysql://etl@db/shop", table="t`x", watermark="w")
    assert my._statement(("text", "a\\'")) == "select * from `t``x` where `w` > 'a\\\\'''"
    ora = SqlSource("oracle://etl@db:1521/x", query="select 1 w from dual;", watermark="w")
    assert ora._statement(("date", "2024-01-02")) == (
        "select * from (select 1 w from dual) _wb_query where \"w\" > date '2024-01-02'"
    )
    assert _literal("timestamptz", "2024-01-01T02:00:00+02:00", "postgresql") == (
        "timestamptz '2024-01-01 00:00:00+00:00'"
    )
    assert (
        _literal("timestamp", "2024-01-01T02:00:00.5", "sqlite") == "'2024-01-01 02:00:00.500000'"
    )
    assert _literal("decimal", "1E+3", "postgresql") == "1000"
    assert _literal("float", 0.1, "postgresql") == "0.1"
    for kind, value in (
        ("float", "nan"),
        ("decimal", "Infinity"),
        ("date", "2024-13-01"),
        ("text", 5),
    ):
        with pytest.raises(ConfigError, match="not a valid"):
            _literal(kind, value, "postgresql")
    with pytest.raises(ConfigError, match="unknown type"):
        pg_src._since({"column": 'my "col"', "watermark": 1, "type": "blob"})

    import pickle

    again = pickle.loads(pickle.dumps(pg_src))  # as a scheduler actor receives it
    assert again._connect_uri() == "postgresql://etl:pw@db:5432/shop"
    assert "pw" not in repr(vars(again)) and "pw" not in again.describe()


def test_md5_and_clear_text_logins_and_tls(pg):
    """Every login the probe speaks, against the server's own check of it: a right password reads,
    a wrong one is refused at once. Runs last: it turns TLS on (off again at the end)."""
    pg.psql(
        "set password_encryption = 'md5'; create role md5user login password 'm:d5/pw';"
        "create role plainuser login password 'pl@in'; grant select on sales to md5user, plainuser"
    )
    pg.psql("create role tlsuser login password 'tl:s'; grant select on sales to tlsuser")  # SCRAM
    pg.add_hba("host all md5user 127.0.0.1/32 md5")
    pg.add_hba("host all plainuser 127.0.0.1/32 password")

    def check(user: str, password: str, query: str = "") -> None:
        base = f"postgresql://{user}:{{}}@127.0.0.1:{pg.port}/{pg.database}{query}"
        good = SqlSource(base.format(quote(password, safe="")), table="sales")
        assert good.fetch({}).frame.height == 100, user
        err, took = _fails(SqlSource(base.format("wrong"), table="sales"), "wrong")
        assert f"refused the login of user {user!r}" in str(err) and took < 5, (user, took)

    check("md5user", "m:d5/pw")
    check("plainuser", "pl@in")
    pg.enable_ssl()
    try:
        # tlsuser may log in over TLS only: a probe that did not negotiate TLS would be turned
        # away by the reject rule (not a password error) and leave connectorx to retry for 30 s
        pg.add_hba("host all tlsuser 127.0.0.1/32 scram-sha-256")
        pg.add_hba("hostnossl all tlsuser 127.0.0.1/32 reject")
        check("tlsuser", "tl:s")
        check("tlsuser", "tl:s", "?sslmode=require")
        check("wb", pg.password)
    finally:
        pg.psql("alter system set ssl = off")
        pg.reload()


def test_a_scheduled_sql_source_goes_on_from_its_cursor(pg, datasets, monkeypatch):
    """What the scheduler actor runs: the stored spec (password by env var), once per fire time."""
    pg.psql(
        "create table ticks (id serial primary key, v int); insert into ticks (v) values (1), (2)"
    )
    monkeypatch.setenv(ENV, pg.password)
    src = SqlSource(pg.uri_without_password, table="ticks", watermark="id", password_env=ENV)
    t0 = time.time() // 60 * 60 - 120
    datasets.schedule(src, name="ticks", cron="* * * * *", since=t0)
    assert datasets.schedules()[0].source == src.to_spec()
    runs = datasets.run_due_schedules(now=t0 + 61)
    assert [r["status"] for r in runs] == ["recorded"], runs
    pg.psql("insert into ticks (v) values (3)")
    assert [r["status"] for r in datasets.run_due_schedules(now=t0 + 121)] == ["recorded"]
    assert datasets.load(datasets.get("ticks")).get_column("v").to_list() == [3]
    assert [r["status"] for r in datasets.run_due_schedules(now=t0 + 181)] == ["unchanged"]

    monkeypatch.setenv(ENV, "not-the-password")
    failed = datasets.run_due_schedules(now=t0 + 241)
    assert [r["status"] for r in failed] == ["failed"], failed
    assert "refused the login" in failed[0]["error"]
    _assert_nothing_holds(pg.password, str(datasets.ingestion_runs("ticks")))
    _assert_nothing_holds("not-the-password", str(datasets.ingestion_runs("ticks")))
