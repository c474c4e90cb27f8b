"""Content-addressed artifact store: immutable files named by their SHA-256."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

from workbench.exceptions import ArtifactCorruptError, NotFoundError

__all__ = ["ArtifactStore", "sha256_bytes", "sha256_file"]

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


class ArtifactStore:
    """Immutable blobs under ``root/ab/cdef…`` where ``abcdef…`` is the SHA-256 of the bytes.

    Writes are atomic (temporary file, then rename). Every read re-hashes the
    bytes and raises :class:`ArtifactCorruptError` on a mismatch, so nothing
    is unpickled or served from a damaged file.

    Examples
    --------
    >>> import tempfile
    >>> store = ArtifactStore(tempfile.mkdtemp())
    >>> digest = store.put_bytes(b"hello")
    >>> store.get_bytes(digest)
    b'hello'
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path_for(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFoundError(
                f"{digest!r} is not a SHA-256 hex digest; artifact ids are 64 lowercase hex characters."
            )
        return self.root / digest[:2] / digest[2:]

    def exists(self, digest: str) -> bool:
        return self.path_for(digest).exists()

    def put_bytes(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        dest = self.path_for(digest)
        if dest.exists() and sha256_file(dest) == digest:
            return digest
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return digest

    def put_file(self, path: str | Path) -> str:
        return self.put_bytes(Path(path).read_bytes())

    def get_bytes(self, digest: str) -> bytes:
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

    def put_object(self, obj: Any) -> str:
        """Pickle ``obj`` and store it; returns the digest."""
        buf = io.BytesIO()
        pickle.dump(obj, buf, protocol=pickle.HIGHEST_PROTOCOL)
        return self.put_bytes(buf.getvalue())

    def get_object(self, digest: str) -> Any:
        """Verify the hash, then unpickle. Only load artifacts written by this store."""
        return pickle.loads(self.get_bytes(digest))
