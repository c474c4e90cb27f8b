"""Content-addressed artifact store: immutable files named by their SHA-256, on a local path or a storage URI."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import re
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from workbench.exceptions import ArtifactCorruptError, ConfigError, NotFoundError
from workbench.lineage._db import is_sha256_hex

__all__ = [
    "ArtifactStore",
    "default_cache_dir",
    "is_uri",
    "mask_uri",
    "sha256_bytes",
    "sha256_file",
]

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# query parameters of pyarrow's S3/GCS/ABFS URIs that carry a secret: never printed
_SECRET_PARAMS = {"access_key", "secret_key", "session_token", "account_key", "sas_token", "token"}


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def is_uri(location: str | os.PathLike[str]) -> bool:
    """True for ``scheme://…`` (``s3://``, ``gs://``, ``abfs://``, ``hdfs://``, ``file://``), False for a plain path."""
    return bool(_URI.match(str(location)))


def mask_uri(uri: str) -> str:
    """``uri`` with its credentials (``user:password@``, ``?secret_key=``…) replaced by ``***``.

    Examples
    --------
    >>> mask_uri("s3://AKIA:SECRET@bucket/p?endpoint_override=h:9000&secret_key=abc")
    's3://***@bucket/p?endpoint_override=h:9000&secret_key=***'
    """
    if not is_uri(uri):
        return uri
    parts = urlsplit(uri)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = [
            (k, "***" if k.lower() in _SECRET_PARAMS else v)
            for k, v in parse_qsl(query, keep_blank_values=True)
        ]
        query = urlencode(pairs, safe=":/*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def default_cache_dir() -> Path:
    """This node's artifact cache: ``$WORKBENCH_CACHE``, else ``<system temp>/workbench-cache``."""
    raw = os.environ.get("WORKBENCH_CACHE")
    return Path(raw).expanduser() if raw else Path(tempfile.gettempdir()) / "workbench-cache"


def _private_dirs(path: Path) -> None:
    """Create ``path`` and its missing parents, each ``0700`` (only the owner lists or enters them)."""
    missing = []
    while not path.exists():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask


def _write_atomic(dest: Path, data: bytes, *, mode: int = 0o400) -> None:
    # read-only to its owner (the home is 0700 too): artifacts may hold personal data
    _private_dirs(dest.parent)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, dest)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ArtifactStore:
    """Immutable blobs under ``root/ab/cdef…`` where ``abcdef…`` is the SHA-256 of the bytes.

    ``root`` is a local path (the embedded default, ``WORKBENCH_HOME/artifacts``) or a
    ``pyarrow.fs`` URI that every node reaches (``s3://bucket/prefix``, ``gs://…``,
    ``abfs://…``, ``hdfs://…``, ``file:///a/shared/mount``). An S3 endpoint comes from
    ``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3`` or the URI's ``?endpoint_override=host:port&scheme=http``;
    credentials from the usual AWS environment or the URI.

    Writes are atomic (a local temporary file then a rename; one PUT per S3 object).
    Every read re-hashes the bytes and raises :class:`ArtifactCorruptError` on a
    mismatch, so nothing is unpickled or served from a damaged file. Reads from a URI go
    through this node's cache (``cache_dir``, default :func:`default_cache_dir`), keyed
    by hash and re-verified on every read; a corrupt cache entry is dropped and fetched again.

    Examples
    --------
    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest = store.put_bytes(b"hello")
    >>> store.get_bytes(digest)
    b'hello'
    >>> remote = ArtifactStore("file://" + tempfile.mkdtemp(), cache_dir=tempfile.mkdtemp())
    >>> remote.get_bytes(remote.put_bytes(b"hello"))
    b'hello'
    """

    def __init__(
        self, root: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
    ):
        self.uri = str(root)
        self.remote = is_uri(self.uri)
        self.remote_reads = 0  # objects fetched from the URI (cache misses); tests count them
        self._fs: Any = None
        if self.remote:
            self.root: Any = mask_uri(self.uri.split("?", 1)[0]).rstrip("/")
            self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
            self._fs, self._base = self._filesystem()
        else:
            self.root = Path(root)
            self.cache_dir = None

    def _filesystem(self) -> tuple[Any, str]:
        import pyarrow.fs as pafs

        try:
            fs, base = pafs.FileSystem.from_uri(self.uri)
        except Exception as exc:  # a bad URI, or S3 resolving the bucket's region over the network
            raise self._storage_error("be opened", exc) from exc
        return fs, base.rstrip("/")

    @property
    def display(self) -> str:
        """Where the artifacts live, credentials masked: safe to print and to record."""
        return mask_uri(self.uri)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_fs"] = None  # rebuilt from the URI on the node that unpickles it
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.remote:
            self._fs, self._base = self._filesystem()

    # ---------------------------------------------------------------- naming
    def path_for(self, digest: str) -> Any:
        """The local path (or, on a URI, the filesystem path) of ``digest``."""
        if not is_sha256_hex(digest):
            raise NotFoundError(
                f"{digest!r} is not a SHA-256 hex digest; artifact ids are 64 lowercase hex characters."
            )
        if self.remote:
            return f"{self._base}/{digest[:2]}/{digest[2:]}"
        return self.root / digest[:2] / digest[2:]

    def _cache_path(self, digest: str) -> Path:
        assert self.cache_dir is not None
        return self.cache_dir / digest[:2] / digest[2:]

    def _storage_error(self, what: str, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"artifact storage {self.display} could not {what}: {str(exc).splitlines()[0][:300]}. "
            "Check the URI (s3://bucket/prefix, gs://…, abfs://…, hdfs://…, file:///a/shared/path), that the bucket/path exists, that this node reaches the endpoint "
            "(AWS_ENDPOINT_URL or ?endpoint_override=host:port&scheme=http) and that its "
            "credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the cloud's usual ones) may write it."
        )

    # ---------------------------------------------------------------- reading
    def exists(self, digest: str) -> bool:
        if not self.remote:
            return self.path_for(digest).exists()
        import pyarrow.fs as pafs

        try:
            info = self._fs.get_file_info(self.path_for(digest))
        except OSError as exc:
            raise self._storage_error("be read", exc) from exc
        return info.type == pafs.FileType.File

    def get_bytes(self, digest: str) -> bytes:
        if self.remote:
            return self._get_remote(digest)
        path = self.path_for(digest)
        if not path.exists():
            raise NotFoundError(
                f"artifact {digest[:12]}… is missing from {self.root}; restore WORKBENCH_HOME from a backup "
                "or re-register the model/dataset that produced it."
            )
        data = path.read_bytes()
        actual = sha256_bytes(data)
        if actual != digest:
            raise ArtifactCorruptError(
                f"artifact {digest[:12]}… at {path} is corrupt (its SHA-256 is {actual[:12]}…); it was not loaded. "
                "Restore the file from a backup or re-register the model/dataset that produced it."
            )
        return data

    def _get_remote(self, digest: str) -> bytes:
        key = self.path_for(digest)
        cached = self._cache_path(digest)
        try:
            data = cached.read_bytes()
        except OSError:
            pass  # not cached on this node
        else:
            if sha256_bytes(data) == digest:
                return data
            log.warning(
                "cached artifact %s… at %s is corrupt: dropped, fetching it again",
                digest[:12],
                cached,
            )
            cached.unlink(missing_ok=True)
        import pyarrow.fs as pafs

        try:
            with self._fs.open_input_stream(key) as f:
                data = f.readall()
        except FileNotFoundError as exc:
            raise NotFoundError(
                f"artifact {digest[:12]}… is missing from {self.display}; restore the object from a backup "
                "or re-register the model/dataset that produced it."
            ) from exc
        except OSError as exc:
            if self._fs.get_file_info(key).type == pafs.FileType.NotFound:
                raise NotFoundError(
                    f"artifact {digest[:12]}… is missing from {self.display}; restore the object from a "
                    "backup or re-register the model/dataset that produced it."
                ) from exc
            raise self._storage_error("be read", exc) from exc
        self.remote_reads += 1
        actual = sha256_bytes(data)
        if actual != digest:
            raise ArtifactCorruptError(
                f"artifact {digest[:12]}… at {self.display}/{digest[:2]}/{digest[2:]} is corrupt (its SHA-256 "
                f"is {actual[:12]}…); it was not loaded. Restore the object from a backup or re-register "
                "the model/dataset that produced it."
            )
        try:
            _write_atomic(cached, data)
        except OSError as exc:  # a full or read-only cache costs a refetch next time, nothing else
            log.warning("could not cache artifact %s… at %s: %s", digest[:12], cached, exc)
        return data

    # ---------------------------------------------------------------- writing
    def put_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        if self.remote:
            self._put_remote(digest, data)
            return digest
        dest = self.path_for(digest)
        if dest.exists() and sha256_file(dest) == digest:
            return digest
        _write_atomic(dest, data)
        return digest

    def _put_remote(self, digest: str, data: bytes) -> None:
        import pyarrow.fs as pafs

        key = self.path_for(digest)
        try:
            info = self._fs.get_file_info(key)
            # content-addressed: an object of the right size is this one (reads verify it anyway)
            if info.type == pafs.FileType.File and info.size == len(data):
                return
            self._write_object(key, data)
        except OSError as exc:
            raise self._storage_error("be written", exc) from exc

    def _write_object(self, key: str, data: bytes) -> None:
        parent = key.rsplit("/", 1)[0]
        if self._fs.type_name == "local":
            # a shared mount: write beside the target, then rename over it (atomic on one filesystem)
            self._fs.create_dir(parent, recursive=True)
            tmp = f"{parent}/.tmp-{uuid.uuid4().hex}"
            try:
                with self._fs.open_output_stream(tmp) as f:
                    f.write(data)
                self._fs.move(tmp, key)
            except BaseException:
                try:
                    self._fs.delete_file(tmp)
                except OSError:
                    pass
                raise
        else:
            # object stores: a PUT (or a completed multipart upload) is atomic per object
            with self._fs.open_output_stream(key) as f:
                f.write(data)

    def put_file(self, path: str | Path) -> str:
        return self.put_bytes(Path(path).read_bytes())

    def put_object(self, obj: Any) -> str:
        """Pickle ``obj`` and store it; returns the digest."""
        buf = io.BytesIO()
        pickle.dump(obj, buf, protocol=pickle.HIGHEST_PROTOCOL)
        return self.put_bytes(buf.getvalue())

    def get_object(self, digest: str) -> Any:
        """Verify the hash, then unpickle. Only load artifacts written by this store."""
        return pickle.loads(self.get_bytes(digest))

    # ---------------------------------------------------------------- probing
    def probe(self) -> float:
        """Write, read back and delete a small object under the root; returns the seconds it took.

        Raises
        ------
        ConfigError
            Naming the URI (credentials masked) when it cannot be reached, read or written:
            a missing bucket, a wrong endpoint, missing or refused credentials.
        """
        start = time.perf_counter()
        if not self.remote:
            _private_dirs(self.root)
            return time.perf_counter() - start
        key = f"{self._base}/.probe-{uuid.uuid4().hex}"
        payload = b"workbench storage probe"
        try:
            self._write_object(key, payload)
            with self._fs.open_input_stream(key) as f:
                back = f.readall()
            self._fs.delete_file(key)
        except OSError as exc:
            raise self._storage_error("be written", exc) from exc
        if back != payload:
            raise ConfigError(
                f"artifact storage {self.display} returned other bytes than were written to it; "
                "check the endpoint points at a real object store."
            )
        return time.perf_counter() - start

    def __repr__(self) -> str:
        return f"ArtifactStore({self.display if self.remote else str(self.root)!r})"
