"""HttpSource against a real HTTP server on loopback: pagination styles, auth, retries, guards."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import polars as pl
import pytest

from workbench.datasets import Datasets, HttpSource, as_source, source_from_spec
from workbench.datasets._http import _next_link, _retry_after
from workbench.exceptions import ConfigError, NotFoundError, SourceError
from workbench.lineage import ArtifactStore, Store

TOKEN = "s3cret-t0ken-value"
KEY = "k3y-value-in-query"
ROWS = [{"id": i, "name": f"r{i}", "score": i / 10} for i in range(1, 8)]  # 7 rows


class _Api(BaseHTTPRequestHandler):
    """Routes by path; ``server.hits`` counts requests per path."""

    def log_message(self, *args):  # keep the test output quiet
        pass

    def _send(self, status, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802 (the stdlib's name)
        parts = urlsplit(self.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        self.server.hits[path] += 1
        self.server.requests.append((path, q, dict(self.headers)))
        n = self.server.hits[path]
        if path == "/list":
            return self._send(200, ROWS[:3])
        if path == "/pages":  # ?page=N&per_page=S, {"data": [...]}; empty after the last
            page, size = int(q.get("page", 1)), int(q.get("per_page", 3))
            return self._send(200, {"data": ROWS[(page - 1) * size : page * size]})
        if path == "/offset":  # ?offset=&limit=, capped at 2 a page whatever the limit
            off, lim = int(q["offset"]), min(int(q["limit"]), 2)
            return self._send(200, {"result": {"items": ROWS[off : off + lim]}})
        if path == "/cursor":  # cursor = index of the next row; null at the end
            start, size = int(q.get("cursor", 0)), 3
            nxt = start + size if start + size < len(ROWS) else None
            return self._send(200, {"items": ROWS[start : start + size], "meta": {"next": nxt}})
        if path == "/next-url":  # Django REST framework style: "next" is the whole next URL
            start = int(q.get("from", 0))
            nxt = f"http://127.0.0.1:{self.server.server_port}/next-url?from={start + 4}"
            return self._send(
                200, {"results": ROWS[start : start + 4], "next": nxt if start + 4 < 7 else None}
            )
        if path == "/link":  # Link headers, the first relative, the others absolute
            p = int(q.get("p", 1))
            headers = {}
            if p == 1:
                headers["Link"] = '</link?p=2>; rel="next", </link?p=3>; rel="last"'
            elif p == 2:
                base = f"http://127.0.0.1:{self.server.server_port}"
                headers["Link"] = (
                    f'<{base}/link?p=1>; rel="prev first", <{base}/link?p=3>; rel=next'
                )
            return self._send(200, ROWS[(p - 1) * 3 : p * 3], headers)
        if path == "/auth":
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                return self._send(
                    401, {"error": "bad credentials", "got": self.headers.get("Authorization")}
                )
            if q.get("api_key") != KEY:
                return self._send(403, {"error": "no key"})
            return self._send(200, {"data": ROWS[:2]})
        if path == "/flaky":  # 429 (Retry-After: 0), then 500, then the rows
            if n == 1:
                return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
            if n == 2:
                return self._send(500, {"error": "oops"})
            return self._send(200, ROWS[:4])
        if path == "/busy":  # always 429, asking for no wait at all
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        if path == "/down":
            return self._send(503, {"error": "maintenance"})
        if path == "/malformed":
            return self._send(200, b'{"data": [{"id": 1}, ')
        if path == "/object":
            return self._send(200, {"data": {"id": 1}, "count": 1})
        if path == "/forever":  # always a full page and a next link
            p = int(q.get("p", 1))
            return self._send(200, [{"id": p}], {"Link": f"</forever?p={p + 1}>; rel=next"})
        if path == "/self-link":  # page 2 links back to page 1
            p = int(q.get("p", 1))
            nxt = "/self-link?p=2" if p == 1 else "/self-link"
            return self._send(200, [{"id": p}], {"Link": f"<{nxt}>; rel=next"})
        if path == "/same-cursor":
            return self._send(200, {"items": [{"id": n}], "next": "abc"})
        if path == "/nested":
            return self._send(
                200,
                [
                    {"id": 1, "user": {"name": "a", "geo": {"lat": 1.5}}, "tags": ["x", "y"]},
                    {"id": 2, "user": None, "tags": []},
                ],
            )
        if path == "/redirect":  # to the same server under another host name
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{self.server.server_port}/echo")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/echo":
            return self._send(200, [{"auth": self.headers.get("Authorization") or ""}])
        return self._send(404, {"error": "no such route"})


@pytest.fixture(scope="module")
def api():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    server.hits = Counter()
    server.requests = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def base(api):
    api.hits.clear()
    api.requests.clear()
    return f"http://127.0.0.1:{api.server_port}"


@pytest.fixture
def datasets(tmp_path):
    store = Store(tmp_path / "l.db")
    yield Datasets(store, ArtifactStore(tmp_path / "art"))
    store.close()


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("TEST_API_TOKEN", TOKEN)
    monkeypatch.setenv("TEST_API_KEY", KEY)


def read(src):
    return src.fetch({}).frame


# ------------------------------------------------------------------------ pagination
def test_a_single_page_list_through_as_source_and_ingest(api, base, datasets):
    src = as_source(f"{base}/list")
    assert isinstance(src, HttpSource) and src.to_spec() == {"kind": "http", "url": f"{base}/list"}
    dv = datasets.ingest(f"{base}/list", name="api")
    assert dv.created and dv.n_rows == 3 and dv.source == f"{base}/list"
    assert datasets.load(dv).equals(pl.DataFrame(ROWS[:3]))
    assert api.hits["/list"] == 1


def test_page_numbers_from_one_until_an_empty_page(api, base):
    df = read(HttpSource(f"{base}/pages", records="data", pagination="page", page_size=3))
    assert df.equals(pl.DataFrame(ROWS))
    pages = [(q["page"], q["per_page"]) for p, q, _ in api.requests]
    assert pages == [("1", "3"), ("2", "3"), ("3", "3"), ("4", "3")]  # page 4 is empty: the end


def test_offset_moves_by_the_records_received(api, base):
    # the server caps a page at 2 records whatever limit asks: offsets follow what came back
    df = read(
        HttpSource(f"{base}/offset", records="result.items", pagination="offset", page_size=5)
    )
    assert df["id"].to_list() == list(range(1, 8))
    assert [q["offset"] for _, q, _ in api.requests] == ["0", "2", "4", "6", "7"]
    assert {q["limit"] for _, q, _ in api.requests} == {"5"}


def test_cursor_from_a_field_of_the_page_and_a_next_url(api, base):
    src = HttpSource(
        f"{base}/cursor?sort=id", records="items", pagination="cursor", cursor_field="meta.next"
    )
    assert read(src)["id"].to_list() == list(range(1, 8))
    sent = [q for _, q, _ in api.requests]
    assert [q.get("cursor") for q in sent] == [None, "3", "6"]  # stops on next: null
    assert all(q["sort"] == "id" for q in sent)  # the URL's own query goes with every page
    drf = HttpSource(
        f"{base}/next-url", records="results", pagination="cursor", cursor_field="next"
    )
    assert read(drf)["id"].to_list() == list(range(1, 8))
    assert api.hits["/next-url"] == 2


def test_link_headers_relative_and_absolute(api, base):
    df = read(HttpSource(f"{base}/link", pagination="link"))
    assert df["id"].to_list() == list(range(1, 8))
    assert [q.get("p") for _, q, _ in api.requests] == [None, "2", "3"]


def test_max_rows_stops_reading(api, base):
    df = read(
        HttpSource(f"{base}/pages", records="data", pagination="page", page_size=3, max_rows=4)
    )
    assert df["id"].to_list() == [1, 2, 3, 4]
    assert api.hits["/pages"] == 2  # no third page asked for


def test_nested_objects_flattened_or_kept_as_structs(api, base):
    flat = read(HttpSource(f"{base}/nested"))
    assert flat.columns == ["id", "user.name", "user.geo.lat", "tags"]
    assert flat["user.geo.lat"].to_list() == [1.5, None]
    assert flat["tags"].to_list() == [["x", "y"], []]
    kept = read(HttpSource(f"{base}/nested", flatten=False))
    assert kept.columns == ["id", "user", "tags"] and isinstance(kept.schema["user"], pl.Struct)


# ------------------------------------------------------------------------------ auth
def test_credentials_come_from_the_environment_and_are_never_recorded(
    api, base, datasets, creds, monkeypatch
):
    src = HttpSource(
        f"{base}/auth",
        records="data",
        headers_env={"Authorization": "Bearer ${TEST_API_TOKEN}"},
        params_env={"api_key": "TEST_API_KEY"},
    )
    dv = datasets.ingest(src, name="private")
    assert dv.n_rows == 2
    _, q, headers = api.requests[-1]
    assert headers["Authorization"] == f"Bearer {TOKEN}" and q["api_key"] == KEY
    recorded = json.dumps([dv.source, dv.source_spec, dv.source_state, repr(src)])
    assert TOKEN not in recorded and KEY not in recorded
    assert dv.source_spec["headers_env"] == {"Authorization": "Bearer ${TEST_API_TOKEN}"}

    again = source_from_spec(dv.source_spec)  # a schedule reads it back from the store
    assert read(again).equals(datasets.load(dv))

    # without the header: 401, saying how to pass one (naming the variables there are)
    with pytest.raises(SourceError, match=r"page 1\): refused with HTTP 401.*headers_env"):
        read(HttpSource(f"{base}/auth", records="data"))
    with pytest.raises(SourceError, match=r"HTTP 401.*check that TEST_API_KEY.*headers_env"):
        read(HttpSource(f"{base}/auth", records="data", params_env={"api_key": "TEST_API_KEY"}))
    # a wrong key: 403; the key in the failing URL is masked
    monkeypatch.setenv("TEST_API_KEY", "wrong-key")
    with pytest.raises(SourceError, match="HTTP 403") as info:
        read(src)
    assert "wrong-key" not in str(info.value) and "api_key=***" in str(info.value)
    monkeypatch.delenv("TEST_API_TOKEN")
    with pytest.raises(ConfigError, match="TEST_API_TOKEN, which is not set"):
        read(src)


def test_a_401_body_echoing_the_token_is_masked(api, base, monkeypatch):
    monkeypatch.setenv("TEST_API_TOKEN", "not-the-right-one")
    src = HttpSource(f"{base}/auth", headers_env={"Authorization": "TEST_API_TOKEN"})
    with pytest.raises(SourceError, match="HTTP 401") as info:
        read(src)
    assert "not-the-right-one" not in str(info.value) and "***" in str(info.value)


def test_credentials_are_not_sent_to_another_host_on_redirect(api, base, creds):
    src = HttpSource(f"{base}/redirect", headers_env={"Authorization": "TEST_API_TOKEN"})
    assert read(src)["auth"].to_list() == [""]  # localhost is not 127.0.0.1: dropped
    assert read(HttpSource(f"{base}/echo", headers_env={"Authorization": "TEST_API_TOKEN"}))[
        "auth"
    ].to_list() == [TOKEN]


def test_secrets_written_into_the_spec_are_refused():
    with pytest.raises(ConfigError, match="headers_env"):
        HttpSource("https://api.example.com/x", headers={"Authorization": "Bearer abc"})
    with pytest.raises(ConfigError, match="params_env"):
        HttpSource("https://api.example.com/x?api_key=abc")
    with pytest.raises(ConfigError, match="params_env"):
        HttpSource("https://api.example.com/x", params={"token": "abc"})
    with pytest.raises(ConfigError, match="credentials"):
        HttpSource("https://user:pw@api.example.com/x")
    with pytest.raises(ConfigError, match="environment variable"):
        HttpSource("https://api.example.com/x", headers_env={"Authorization": "Bearer abc.def"})
    with pytest.raises(ConfigError, match="cursor_field"):
        HttpSource("https://api.example.com/x", pagination="cursor")
    with pytest.raises(ConfigError, match="unknown pagination"):
        HttpSource("https://api.example.com/x", pagination="pages")


# --------------------------------------------------------------------------- retries
def test_429_and_500_are_retried_with_retry_after(api, base):
    df = read(HttpSource(f"{base}/flaky", backoff_s=0.01))
    assert df.height == 4 and api.hits["/flaky"] == 3  # 429, 500, then the rows


def test_retry_after_is_what_the_wait_is(api, base):
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"HTTP 429.*all 3 tries"):
        read(HttpSource(f"{base}/busy", retries=2, backoff_s=20, max_backoff_s=20))
    assert time.monotonic() - started < 5  # Retry-After: 0, not 20 s and 40 s of backoff
    assert api.hits["/busy"] == 3


def test_link_header_and_retry_after_parsing():
    assert _next_link(['<https://a/x?page=2>; rel="next", <https://a/x?page=9>; rel="last"']) == (
        "https://a/x?page=2"
    )
    assert _next_link(['<https://a/1>; rel="prev first"', "<https://a/3>; title=x; REL=next"]) == (
        "https://a/3"
    )
    assert _next_link(['<https://a/9>; rel="last"']) is None and _next_link([]) is None
    assert _retry_after("7") == 7.0 and _retry_after(None) is None and _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 < _retry_after(later) <= 30
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_retries_exhausted_is_an_error_and_nothing_is_recorded(api, base, datasets):
    src = HttpSource(f"{base}/down?x=1", retries=2, backoff_s=0.01)
    with pytest.raises(SourceError, match=r"HTTP 503.*all 3 tries.*nothing was recorded"):
        datasets.ingest(src, name="down")
    assert api.hits["/down"] == 3
    with pytest.raises(NotFoundError):
        datasets.get("down")


def test_a_refused_connection_is_retried_then_an_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(SourceError, match=r"could not be reached.*all 2 tries"):
        read(HttpSource(f"http://127.0.0.1:{port}/x", retries=1, backoff_s=0.01))


def test_a_404_is_not_retried(api, base):
    with pytest.raises(SourceError, match=r"page 1\).*HTTP 404.*check the URL"):
        read(HttpSource(f"{base}/nope", backoff_s=0.01))
    assert api.hits["/nope"] == 1


# ----------------------------------------------------------------- malformed, endless
def test_malformed_json_and_records_that_are_not_a_list(api, base, datasets):
    with pytest.raises(SourceError, match=r"/malformed \(page 1\): the answer is not valid JSON"):
        datasets.ingest(HttpSource(f"{base}/malformed", records="data"), name="bad")
    with pytest.raises(SourceError, match=r"records='data' is a JSON object, not a list"):
        read(HttpSource(f"{base}/object", records="data"))
    with pytest.raises(SourceError, match=r"has no field 'items'.*\['data', 'count'\]"):
        read(HttpSource(f"{base}/object", records="items"))
    with pytest.raises(SourceError, match="a JSON object, not a list of records"):
        read(HttpSource(f"{base}/object"))
    assert datasets.list() == []


def test_pages_that_never_end_hit_the_page_guard(api, base):
    with pytest.raises(SourceError, match=r"page 5\): still a next page after max_pages=5") as info:
        read(HttpSource(f"{base}/forever", pagination="link", max_pages=5))
    assert "raise max_pages" in str(info.value) and api.hits["/forever"] == 5
    with pytest.raises(SourceError, match=r"same cursor in 'next' twice.*cursor_field='next'"):
        read(
            HttpSource(
                f"{base}/same-cursor", records="items", pagination="cursor", cursor_field="next"
            )
        )
    assert api.hits["/same-cursor"] == 2
    with pytest.raises(SourceError, match=r"page 2\): page 2's next page is one already read"):
        read(HttpSource(f"{base}/self-link", pagination="link"))
    assert api.hits["/self-link"] == 2
