"""JSON APIs over HTTP as a source: every page of records read, retried when the server is busy, bounded.

Only the standard library's ``urllib`` speaks HTTP here: workbench's runtime dependencies hold
no HTTP client of their own (``httpx`` comes in only with JupyterLab), and reading pages one after
another needs nothing ``urllib`` lacks.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from workbench.datasets._sources import Fetched, Source, register_source
from workbench.exceptions import ConfigError, SourceError
from workbench.lineage import mask_uri

if TYPE_CHECKING:
    import polars as pl

__all__ = ["HttpSource"]

#: How the pages of a paginated API are walked (``None``: the URL is the only page).
PAGINATIONS = ("page", "offset", "cursor", "link")

#: Query parameters that carry a secret: masked in every message, refused in ``url`` and ``params``
#: (a spec is recorded in the store; such values belong in ``params_env``).
_SECRET_PARAMS = {
    "access_key",
    "access_token",
    "account_key",
    "api-key",
    "api_key",
    "apikey",
    "client_secret",
    "password",
    "sas_token",
    "secret",
    "secret_key",
    "session_token",
    "signature",
    "token",
}
#: Headers that carry a credential: refused in ``headers`` (recorded), allowed in ``headers_env``.
_SECRET_HEADERS = {
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "private-token",
}
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")
# one link-value of an RFC 8288 Link header: <target>; param; param...
_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_REL = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|([^\s;,]+))""", re.IGNORECASE)
_SNIPPET = 200

_DEFAULTS: dict[str, Any] = {
    "records": None,
    "pagination": None,
    "page_size": None,
    "page_param": "page",
    "size_param": None,
    "offset_param": "offset",
    "cursor_field": None,
    "cursor_param": "cursor",
    "params": None,
    "params_env": None,
    "headers": None,
    "headers_env": None,
    "flatten": True,
    "retries": 5,
    "backoff_s": 0.5,
    "max_backoff_s": 30.0,
    "max_rows": None,
    "max_pages": 1000,
    "timeout_s": 30.0,
}


@register_source
class HttpSource(Source):
    """A JSON API read page by page into one frame.

    Each page is a JSON document; ``records`` says where its list of records is. The pages are
    walked one of four ways (``pagination``) until a page has no records or no next page:

    - ``"page"``: ``?page=1``, ``2``, ... (``page_param``; ``page_size`` sent as ``size_param``,
      ``per_page`` unless named);
    - ``"offset"``: ``?offset=0&limit=N``, the offset moved by the records each page gave
      (``offset_param``, ``size_param`` ``limit`` unless named, ``page_size`` 100 unless given);
    - ``"cursor"``: the next cursor read from the page's ``cursor_field`` (a dotted path such as
      ``"meta.next_cursor"``) and sent as ``cursor_param``; a cursor that is a whole
      ``http(s)://`` URL (Django REST framework's ``next``) is followed as the next page's URL;
    - ``"link"``: the ``Link: <...>; rel="next"`` header (RFC 8288, as GitHub's API sends it).

    Credentials never reach the store: ``headers_env`` and ``params_env`` name the environment
    variables that hold them, read at each fetch; :meth:`describe`, :meth:`to_spec` and every
    error hold the variable names only, and a token written into ``url``, ``params`` or
    ``headers`` is refused. They are sent only to the URL's own host and scheme (a redirect or
    a next link elsewhere gets the public headers only).

    Busy or failing servers (HTTP 429, 5xx, a refused or cut connection, a timeout) are retried
    ``retries`` times, waiting ``backoff_s`` doubled at each try, or what ``Retry-After`` asks,
    at most ``max_backoff_s`` a wait. Anything else that goes wrong (401/403/404 and other 4xx, a
    page that is not JSON, ``records`` that is not a list, more than ``max_pages`` pages, a
    cursor or next link that repeats) is a :class:`~workbench.exceptions.SourceError` naming the
    URL (query secrets masked) and the page: nothing is recorded.

    Records become a polars frame (:func:`polars.from_dicts` over all records, so a column's type
    is inferred from every page); nested objects are flattened into ``parent.child`` columns
    (``flatten=False`` keeps them as struct columns); lists stay list columns.

    Parameters
    ----------
    url : str
        The first page's ``http(s)://`` URL (no credentials in it).
    records : str, optional
        Dotted path of the list of records in each page (``"data"``, ``"result.items"``);
        None: the page itself is the list.
    pagination : {"page", "offset", "cursor", "link"}, optional
        How to reach the next page; None reads the URL alone.
    page_size : int, optional
        Records asked for per page (sent as ``size_param``).
    page_param, size_param, offset_param, cursor_param : str
        Names of the query parameters the API expects.
    cursor_field : str, optional
        Dotted path of the next cursor in each page (``pagination="cursor"``).
    params : dict, optional
        Query parameters sent with the first page (and every page of ``"page"``, ``"offset"``
        and ``"cursor"``), no secrets.
    params_env : dict, optional
        Query parameters whose value is an environment variable: ``{"api_key": "MY_API_KEY"}``.
    headers : dict, optional
        Extra request headers, no credentials (``Accept: application/json`` is sent unless given).
    headers_env : dict, optional
        Headers whose value comes from the environment: ``{"Authorization": "MY_API_TOKEN"}``
        (the variable's whole value), or a template with ``${VAR}``:
        ``{"Authorization": "Bearer ${MY_API_TOKEN}"}``.
    flatten : bool
        Flatten nested objects into ``parent.child`` columns (default) or keep struct columns.
    retries : int
        Retries of one page after its first try (429, 5xx, connection errors, timeouts).
    backoff_s, max_backoff_s : float
        First wait between tries (doubled each retry) and the longest single wait.
    max_rows : int, optional
        Stop once this many records are read (the frame holds exactly ``max_rows``).
    max_pages : int
        A read that still has a next page after this many is an error, not an endless loop.
    timeout_s : float
        Socket timeout of each request (connect, and each read of the answer).

    Examples
    --------
    >>> src = HttpSource(
    ...     "https://api.example.com/v1/orders",
    ...     records="data",
    ...     pagination="cursor",
    ...     cursor_field="meta.next_cursor",
    ...     headers_env={"Authorization": "Bearer ${ORDERS_API_TOKEN}"},
    ... )
    >>> src.describe()
    'https://api.example.com/v1/orders'
    >>> dv = wb.datasets.ingest(src, name="orders")                   # doctest: +SKIP
    """

    kind = "http"

    def __init__(
        self,
        url: str,
        *,
        records: str | None = None,
        pagination: str | None = None,
        page_size: int | None = None,
        page_param: str = "page",
        size_param: str | None = None,
        offset_param: str = "offset",
        cursor_field: str | None = None,
        cursor_param: str = "cursor",
        params: dict[str, Any] | None = None,
        params_env: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        headers_env: dict[str, str] | None = None,
        flatten: bool = True,
        retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_rows: int | None = None,
        max_pages: int = 1000,
        timeout_s: float = 30.0,
    ):
        self.url = str(url)
        self.records = records
        self.pagination = pagination
        self.page_size = page_size
        self.page_param = page_param
        self.size_param = size_param
        self.offset_param = offset_param
        self.cursor_field = cursor_field
        self.cursor_param = cursor_param
        self.params = dict(params or {})
        self.params_env = dict(params_env or {})
        self.headers = dict(headers or {})
        self.headers_env = dict(headers_env or {})
        self.flatten = flatten
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_rows = max_rows
        self.max_pages = max_pages
        self.timeout_s = timeout_s
        self._check()

    # ------------------------------------------------------------------ Source
    def describe(self) -> str:
        return self._mask(self.url)

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"kind": self.kind, "url": self.url}
        for name, default in _DEFAULTS.items():
            value = getattr(self, name)
            if value != default and value != {}:
                spec[name] = value
        return spec

    def fetch(self, state: dict[str, Any]) -> Fetched:
        """Read every page (up to ``max_rows`` records) into one frame; ``state`` is not used.

        Examples
        --------
        >>> HttpSource("https://api.example.com/v1/items").fetch({}).frame   # doctest: +SKIP
        """
        secret_headers = {
            name: self._env_value(name, ref) for name, ref in self.headers_env.items()
        }
        secret_params = {name: self._env_value(name, ref) for name, ref in self.params_env.items()}
        secrets = [v for v in (*secret_headers.values(), *secret_params.values()) if v]
        public = {"Accept": "application/json", "User-Agent": "workbench", **self.headers}
        origin = _origin(self.url)
        opener = _opener(set(secret_headers))

        rows: list[Any] = []
        url = self._first_url(secret_params)
        seen = {url}
        cursor: str | None = None
        for page in range(1, self.max_pages + 1):
            same_origin = _origin(url) == origin
            headers = {**public, **secret_headers} if same_origin else public
            body, links = self._get(opener, url, headers, page=page, secrets=secrets)
            doc = self._parse(body, url, page=page, secrets=secrets)
            items = self._records(doc, url, page=page)
            rows.extend(items)
            if self.max_rows is not None and len(rows) >= self.max_rows:
                del rows[self.max_rows :]
                break
            if not items or self.pagination is None:
                break
            nxt, cursor = self._next(url, doc, links, page=page, cursor=cursor, n_rows=len(rows))
            if nxt is None:
                break
            # a next link carries the API's own parameters; a key in the query string is often
            # left out of it (a server does not echo secrets), so it is added back
            nxt = _with_params(nxt, secret_params, only_missing=True)
            if nxt in seen:
                raise SourceError(
                    self._where(url, page)
                    + f": page {page}'s next page is one already read, so the pages never end; "
                    + self._loop_hint()
                    + "; nothing was recorded."
                )
            if page == self.max_pages:
                raise SourceError(
                    self._where(url, page)
                    + f": still a next page after max_pages={self.max_pages} pages "
                    f"({len(rows)} records). If the API really has more pages, raise max_pages "
                    "(or set max_rows to read only the first rows); otherwise "
                    + self._loop_hint()
                    + "; nothing was recorded."
                )
            seen.add(nxt)
            url = nxt
        return Fetched(self._frame(rows), self.describe())

    # --------------------------------------------------------------- checking
    def _check(self) -> None:
        where = f"HttpSource({self.describe()})"
        parts = urlsplit(self.url)
        if parts.scheme.lower() not in {"http", "https"} or not parts.netloc:
            raise ConfigError(
                f"{where}: {self.url!r} is not an http(s):// URL; pass the API's full address."
            )
        if "@" in parts.netloc:
            raise ConfigError(
                f"{where}: the URL holds credentials, which would be recorded with every version; "
                "put them in an environment variable and pass "
                "headers_env={'Authorization': 'Basic ${MY_API_BASIC}'} instead."
            )
        in_url = [k for k, _ in parse_qsl(parts.query) if k.lower() in _SECRET_PARAMS]
        in_params = [k for k in self.params if str(k).lower() in _SECRET_PARAMS]
        if in_url or in_params:
            name = (in_url or in_params)[0]
            raise ConfigError(
                f"{where}: the query parameter {name!r} looks like a secret, which would be "
                f"recorded with every version; pass params_env={{{name!r}: 'MY_API_KEY'}} "
                "(the name of an environment variable holding it) instead."
            )
        in_headers = [h for h in self.headers if h.lower() in _SECRET_HEADERS]
        if in_headers:
            raise ConfigError(
                f"{where}: the header {in_headers[0]!r} carries a credential, which would be "
                f"recorded with every version; pass headers_env={{{in_headers[0]!r}: "
                "'Bearer ${MY_API_TOKEN}'} (naming an environment variable) instead."
            )
        for name, ref in {**self.headers_env, **self.params_env}.items():
            if not isinstance(ref, str) or not (_ENV_NAME.match(ref) or _ENV_REF.search(ref)):
                raise ConfigError(
                    f"{where}: {name!r} must name an environment variable ('MY_API_TOKEN') or hold "
                    "a template with one ('Bearer ${MY_API_TOKEN}'), never the secret itself."
                )
        if self.pagination is not None and self.pagination not in PAGINATIONS:
            raise ConfigError(
                f"{where}: unknown pagination {self.pagination!r}; use one of {list(PAGINATIONS)} "
                "or None for a single page."
            )
        if self.pagination == "cursor" and not self.cursor_field:
            raise ConfigError(
                f"{where}: cursor pagination needs cursor_field, the field of each page that "
                "holds the next cursor (a dotted path such as 'meta.next_cursor')."
            )
        for name in ("retries", "max_pages", "page_size", "max_rows"):
            value = getattr(self, name)
            least = 0 if name == "retries" else 1
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool) or value < least
            ):
                raise ConfigError(f"{where}: {name} must be an integer >= {least}, got {value!r}.")
        for name in ("backoff_s", "max_backoff_s", "timeout_s"):
            value = getattr(self, name)
            if (
                not isinstance(value, int | float)
                or value < 0
                or (name == "timeout_s" and not value)
            ):
                raise ConfigError(f"{where}: {name} must be a positive number, got {value!r}.")

    def _env_value(self, name: str, ref: str) -> str:
        def lookup(var: str) -> str:
            value = os.environ.get(var)
            if not value:
                raise ConfigError(
                    f"HttpSource({self.describe()}): {name!r} comes from the environment variable "
                    f"{var}, which is not set; export {var} (the API's credential) and read again."
                )
            return value

        if _ENV_NAME.match(ref):
            return lookup(ref)
        return _ENV_REF.sub(lambda m: lookup(m.group(1) or m.group(2)), ref)

    # ------------------------------------------------------------------ pages
    def _size_param(self) -> str:
        return self.size_param or ("limit" if self.pagination == "offset" else "per_page")

    def _first_url(self, secret_params: dict[str, str]) -> str:
        params: dict[str, Any] = dict(self.params)
        if self.pagination == "page":
            params[self.page_param] = 1
            if self.page_size:
                params[self._size_param()] = self.page_size
        elif self.pagination == "offset":
            params[self.offset_param] = 0
            params[self._size_param()] = self.page_size or 100
        elif self.page_size and self.pagination is not None:
            params[self._size_param()] = self.page_size
        return _with_params(self.url, {**params, **secret_params})

    def _next(
        self,
        url: str,
        doc: Any,
        links: list[str],
        *,
        page: int,
        cursor: str | None,
        n_rows: int,
    ) -> tuple[str | None, str | None]:
        """The next page's URL (None at the end) and the cursor it was built from."""
        if self.pagination == "page":
            return _with_params(url, {self.page_param: page + 1}), None
        if self.pagination == "offset":
            return _with_params(url, {self.offset_param: n_rows}), None
        if self.pagination == "link":
            target = _next_link(links)
            return (urljoin(url, target) if target else None), None
        value = _dig(doc, str(self.cursor_field))
        if value is _MISSING or value is None or value == "" or value is False:
            return None, None
        if isinstance(value, dict | list):
            raise SourceError(
                self._where(url, page)
                + f": cursor_field {self.cursor_field!r} holds a JSON {type(value).__name__}, "
                "not a cursor; name the field that holds the next cursor itself; nothing was recorded."
            )
        value = str(value)
        if value == cursor:
            raise SourceError(
                self._where(url, page)
                + f": the server gave the same cursor in {self.cursor_field!r} twice, so the "
                "pages never end; " + self._loop_hint() + "; nothing was recorded."
            )
        if value.lower().startswith(("http://", "https://")):
            return urljoin(url, value), value
        return _with_params(url, {self.cursor_param: value}), value

    def _loop_hint(self) -> str:
        return {
            "cursor": f"check that cursor_field={self.cursor_field!r} holds the next page's "
            f"cursor and that the API reads it as cursor_param={self.cursor_param!r}",
            "link": "check that the API's Link header points to the next page, or use "
            "another pagination",
            "page": f"check that the API reads the page number as page_param={self.page_param!r} "
            "and answers an empty page after the last one",
            "offset": f"check that the API reads offset_param={self.offset_param!r} and "
            f"size_param={self._size_param()!r} and answers an empty page after the last one",
        }.get(str(self.pagination), "check the pagination settings")

    def _get(
        self,
        opener: Any,
        url: str,
        headers: dict[str, str],
        *,
        page: int,
        secrets: list[str],
    ) -> tuple[bytes, list[str]]:
        """One page's body and Link headers, retried on 429, 5xx and connection errors."""
        import http.client
        import ssl
        import urllib.error
        import urllib.request

        for attempt in range(self.retries + 1):
            wait: float | None = None
            try:
                request = urllib.request.Request(url, headers=headers)
                with opener.open(request, timeout=self.timeout_s) as response:
                    body = response.read()
                    if response.headers.get("Content-Encoding", "").lower() == "gzip":
                        body = gzip.decompress(body)
                    return body, response.headers.get_all("Link") or []
            except urllib.error.HTTPError as exc:
                status, reason = exc.code, exc.reason
                retry_after = exc.headers.get("Retry-After") if exc.headers else None
                try:
                    detail = _masked(_text(exc.read()), secrets)
                except (OSError, http.client.HTTPException):
                    detail = ""
                finally:
                    exc.close()
                if status != 429 and status < 500:
                    raise SourceError(self._refused(url, page, status, reason, detail)) from None
                problem = f"answered HTTP {status} {reason}"
                wait = _retry_after(retry_after)
            except urllib.error.URLError as exc:
                if isinstance(exc.reason, ssl.SSLCertVerificationError):
                    raise SourceError(
                        self._where(url, page) + f": its TLS certificate could not be verified "
                        f"({exc.reason.verify_message}); check the host name, or install the CA "
                        "that signed it (SSL_CERT_FILE); nothing was recorded."
                    ) from None
                problem = f"could not be reached ({exc.reason})"
            except (OSError, http.client.HTTPException) as exc:
                # a timeout, a reset or a connection closed mid-answer: worth another try
                problem = f"failed mid-request ({type(exc).__name__}: {exc})"
            if attempt == self.retries:
                break
            delay = wait if wait is not None else self.backoff_s * 2**attempt
            time.sleep(min(delay, self.max_backoff_s))
        raise SourceError(
            self._where(url, page)
            + f": {problem} on all {self.retries + 1} tries. Check that the API is up and "
            "reachable from here, then ingest again (or raise retries / backoff_s for a server "
            "that needs longer); nothing was recorded."
        )

    def _refused(self, url: str, page: int, status: int, reason: str, detail: str) -> str:
        envs = sorted({*self.headers_env.values(), *self.params_env.values()})
        named = ", ".join(envs)
        if status == 401:
            todo = f"check that {named} holds a valid, unexpired credential" if envs else ""
            if not self.headers_env:
                todo += (
                    (" (or " if envs else "the API needs credentials: ")
                    + (
                        "pass headers_env={'Authorization': 'Bearer ${MY_API_TOKEN}'} naming the "
                        "environment variable that holds the token"
                    )
                    + (")" if envs else "")
                )
        elif status == 403:
            todo = (
                f"check that the credential in {named} may read this resource"
                if envs
                else "the API refuses anonymous reads: pass credentials through headers_env"
            )
        elif status == 404:
            todo = "check the URL" + (" and the pagination settings" if page > 1 else "")
        else:
            todo = "check the request (URL, params, page_size) against the API's documentation"
        said = f" (the server said: {detail!r})" if detail else ""
        return (
            self._where(url, page)
            + f": refused with HTTP {status} {reason}{said}; {todo}. Nothing was recorded."
        )

    def _parse(self, body: bytes, url: str, *, page: int, secrets: list[str]) -> Any:
        try:
            return json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            start = _masked(_text(body), secrets)
            raise SourceError(
                self._where(url, page)
                + f": the answer is not valid JSON ({exc}); it starts {start!r}. Check that the URL "
                "is the API's JSON endpoint (not a web page) and ask for JSON; nothing was recorded."
            ) from None

    def _records(self, doc: Any, url: str, *, page: int) -> list[dict[str, Any]]:
        if self.records is None:
            found = doc
            if isinstance(doc, dict):
                lists = [k for k, v in doc.items() if isinstance(v, list)]
                hint = f" (its lists: {lists})" if lists else f" (its fields: {list(doc)[:10]})"
                raise SourceError(
                    self._where(url, page)
                    + f": the page is a JSON object, not a list of records{hint}; pass records= "
                    "naming the field that holds the records; nothing was recorded."
                )
        else:
            found = _dig(doc, self.records)
            if found is _MISSING:
                fields = list(doc)[:10] if isinstance(doc, dict) else type(doc).__name__
                raise SourceError(
                    self._where(url, page)
                    + f": the page has no field {self.records!r} (it has: {fields}); pass the "
                    "dotted path of the list of records as records=; nothing was recorded."
                )
            if found is None:  # some APIs end with "data": null
                found = []
        if not isinstance(found, list):
            what = f"records={self.records!r}" if self.records else "the page"
            raise SourceError(
                self._where(url, page)
                + f": {what} is a JSON {_json_type(found)}, not a list of records; point "
                "records= at the list of records; nothing was recorded."
            )
        for i, item in enumerate(found):
            if not isinstance(item, dict):
                raise SourceError(
                    self._where(url, page)
                    + f": record {i} is a JSON {_json_type(item)}, not an object; point records= "
                    "at a list of objects; nothing was recorded."
                )
        return found

    def _frame(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        import polars as pl

        if not rows:
            return pl.DataFrame()
        try:
            frame = pl.from_dicts(rows, infer_schema_length=None)
            while self.flatten:
                structs = [c for c, t in frame.schema.items() if isinstance(t, pl.Struct)]
                if not structs:
                    break
                # an object that is always {} has no columns to give (and Parquet cannot store it)
                empty = [c for c in structs if not frame.schema[c].fields]
                frame = frame.drop(empty)
                nested = [c for c in structs if c not in empty]
                if nested:
                    frame = frame.unnest(nested, separator=".")
        except Exception as exc:
            raise SourceError(
                f"HTTP source {self.describe()}: its {len(rows)} records do not make one table "
                f"({type(exc).__name__}: {exc}); check records= (or pass flatten=False to keep "
                "nested objects as struct columns); nothing was recorded."
            ) from None
        return frame

    # ------------------------------------------------------------- messages
    def _mask(self, url: str) -> str:
        return _mask_query(mask_uri(url), {k.lower() for k in self.params_env})

    def _where(self, url: str, page: int) -> str:
        return f"HTTP source {self._mask(url)} (page {page})"


# ---------------------------------------------------------------------- helpers
class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Any = _Missing()


def _dig(doc: Any, path: str) -> Any:
    """``doc["a"]["b"]`` for ``"a.b"``; ``_MISSING`` where a step is absent."""
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def _json_type(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), "number" if isinstance(value, int | float) else "null"
    )


def _with_params(url: str, params: dict[str, Any], *, only_missing: bool = False) -> str:
    """``url`` with ``params`` in its query string (replacing those already there)."""
    if not params:
        return url
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in pairs}
    if only_missing:
        params = {k: v for k, v in params.items() if k not in present}
        if not params:
            return url
    else:
        pairs = [(k, v) for k, v in pairs if k not in params]
    pairs += [(k, str(v)) for k, v in params.items()]
    return urlunsplit(parts._replace(query=urlencode(pairs)))


def _mask_query(url: str, extra: set[str]) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    names = _SECRET_PARAMS | extra
    pairs = [
        (k, "***" if k.lower() in names else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(pairs, safe=":/*")))


def _masked(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _text(body: bytes) -> str:
    return body[:_SNIPPET].decode("utf-8", "replace").strip()


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def _next_link(headers: list[str]) -> str | None:
    """The target of ``rel="next"`` in RFC 8288 Link headers, if any."""
    for header in headers:
        for target, params in _LINK.findall(header):
            for rel in _REL.finditer(params):
                if "next" in (rel.group(1) or rel.group(2) or "").lower().split():
                    return target.strip()
    return None


def _retry_after(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):  # not '²' (isdigit) nor 5,000 digits
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _opener(secret_headers: set[str]) -> Any:
    """A urllib opener whose redirects to another host or scheme drop the credential headers.

    urllib's own redirect handler copies every header to the new URL, wherever it points.
    """
    import urllib.request

    drop = {h.capitalize() for h in secret_headers}

    class _Redirects(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, req, fp, code, msg, headers, newurl):
            new = super().redirect_request(req, fp, code, msg, headers, newurl)
            if new is not None and _origin(newurl) != _origin(req.full_url):
                for name in drop:
                    new.remove_header(name)
            return new

    return urllib.request.build_opener(_Redirects)
