"""Where workbench keeps its state: ``WORKBENCH_HOME``, the storage root, and the paths under them."""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.exceptions import ConfigError, UnsafeHomeError
from workbench.lineage import is_uri, mask_uri

__all__ = [
    "Settings",
    "join_location",
    "resolve_home",
    "resolve_storage",
    "secure_home",
    "storage_refusal",
]

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from collections.abc import Sequence

DEFAULT_HOME = ".workbench"


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute workbench home: ``home``, else ``$WORKBENCH_HOME``, else ``./.workbench``."""
    raw = home if home is not None else os.environ.get("WORKBENCH_HOME", DEFAULT_HOME)
    return Path(raw).expanduser().resolve()


def secure_home(home: str | os.PathLike[str]) -> Path:
    """Create ``home`` with mode ``0700`` when it is missing; refuse one that is not safe.

    An existing home must be a directory owned by this user and writable by nobody else: a
    home owned by another user, or writable by its group or by others, raises
    :class:`UnsafeHomeError` naming the ``chown``/``chmod`` to run (whoever can write it can
    plant artifacts and rows). One that others may read (``0755``, made before homes were
    created ``0700``) is accepted with a warning. Returns the absolute path.

    Examples
    --------
    >>> import tempfile, os
    >>> home = secure_home(os.path.join(tempfile.mkdtemp(), "wb"))
    >>> oct(home.stat().st_mode & 0o777)
    '0o700'
    """
    path = Path(home).expanduser().absolute()
    try:
        path.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
        return path
    info = path.stat()
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafeHomeError(
            f"WORKBENCH_HOME {path} is not a directory; point WORKBENCH_HOME at a folder."
        )
    me = os.geteuid()
    if info.st_uid != me:
        raise UnsafeHomeError(
            f"WORKBENCH_HOME {path} is owned by uid {info.st_uid}, not by you (uid {me}): whoever "
            f"owns it can plant models and records. Use a home of your own, or take it over with "
            f"`chown -R {me} {path}`."
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UnsafeHomeError(
            f"WORKBENCH_HOME {path} is writable by its group or by others (mode "
            f"{oct(info.st_mode & 0o777)}): they could plant models and records. Run "
            f"`chmod 700 {path}`."
        )
    if info.st_mode & 0o077:
        log.warning(
            "WORKBENCH_HOME %s can be read by others (mode %s); run `chmod 700 %s` to keep "
            "artifacts and logged requests private",
            path,
            oct(info.st_mode & 0o777),
            path,
        )
    return path


def resolve_storage(storage: str | os.PathLike[str] | None = None) -> str | None:
    """The storage root: ``storage``, else ``$WORKBENCH_STORAGE``, else ``None`` (``WORKBENCH_HOME`` itself).

    A URI (``s3://bucket/prefix``, ``gs://``, ``abfs://``, ``hdfs://``, ``file:///shared``) is
    kept as given, without a trailing slash; a plain path is made absolute.
    """
    raw = storage if storage is not None else os.environ.get("WORKBENCH_STORAGE") or None
    if raw is None:
        return None
    text = str(raw).strip()
    if not text:
        return None
    if is_uri(text):
        base, sep, query = text.partition("?")
        return base.rstrip("/") + sep + query
    return str(Path(text).expanduser().resolve())


def join_location(root: str, name: str) -> str:
    """``root/name`` for a path or a URI, keeping a URI's ``?query`` at the end.

    Examples
    --------
    >>> join_location("s3://b/p?endpoint_override=h:9000&scheme=http", "tune")
    's3://b/p/tune?endpoint_override=h:9000&scheme=http'
    """
    base, sep, query = root.partition("?")
    return base.rstrip("/") + "/" + name + sep + query


@dataclass(frozen=True)
class Settings:
    """Resolved locations of the lineage database, the artifact store and Tune's storage.

    ``storage`` unset (the embedded default): artifacts in ``home/artifacts``, Tune in
    ``home/tune``. Set (``Workbench(storage=…)`` or ``$WORKBENCH_STORAGE``): both under it,
    as ``storage/artifacts`` and ``storage/tune``; ``lineage.db`` stays in ``home``.
    """

    home: Path
    storage: str | None = None

    @classmethod
    def from_env(
        cls,
        home: str | os.PathLike[str] | None = None,
        *,
        storage: str | os.PathLike[str] | None = None,
    ) -> Settings:
        return cls(home=resolve_home(home), storage=resolve_storage(storage))

    def ensure_home(self) -> Path:
        """Create the home ``0700`` or refuse an unsafe one (:func:`secure_home`); returns it."""
        return secure_home(self.home)

    @property
    def db_path(self) -> Path:
        return self.home / "lineage.db"

    @property
    def artifacts_dir(self) -> Path:
        """The embedded default's artifact folder, ``home/artifacts`` (see :attr:`artifacts_root`)."""
        return self.home / "artifacts"

    @property
    def artifacts_root(self) -> str:
        """Where artifacts live: ``storage/artifacts`` (a URI or path), else ``home/artifacts``."""
        if self.storage is None:
            return str(self.artifacts_dir)
        return join_location(self.storage, "artifacts")

    @property
    def tune_root(self) -> str:
        """Tune's ``storage_path``: ``storage/tune`` (a URI or path), else ``home/tune``."""
        if self.storage is None:
            return str(self.home / "tune")
        return join_location(self.storage, "tune")

    def tune_path(self, name: str) -> str:
        """The Tune experiment folder ``name`` under :attr:`tune_root` (credentials included: do not record)."""
        return join_location(self.tune_root, name)

    def resolve_tune_path(self, recorded: str) -> str:
        """The usable location of a recorded (credential-masked) Tune path: this storage's own
        URI when the recorded one is this storage's experiment folder, else ``recorded``."""
        name = recorded.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]
        mine = self.tune_path(name)
        return mine if mask_uri(mine) == recorded else recorded

    @property
    def storage_shared(self) -> bool:
        """True when the storage is a URI (``file://`` included): the user says every node reaches it."""
        return self.storage is not None and is_uri(self.storage)

    @property
    def storage_display(self) -> str:
        """The storage root with credentials masked (or ``home``'s folders when unset)."""
        return mask_uri(self.storage) if self.storage is not None else str(self.home)


def storage_refusal(
    settings: Settings, *, alive_nodes: int, unseen: Sequence[str] | None = None
) -> ConfigError | None:
    """The :class:`ConfigError` for a local-path storage on a cluster of ``alive_nodes`` > 1, else None.

    A plain path (the embedded ``home/artifacts`` and ``home/tune``, or ``storage="/a/path"``)
    is on one node's disk: a replica or trial on another node cannot read it, and Tune
    refuses local checkpoints across nodes. A ``file://`` URI is the user saying every
    node mounts that path. ``unseen``, when given, are the nodes that were asked and could
    not see a file written into the path: empty means every node sees it (nodes on one host
    sharing its disk, a shared mount), so nothing is refused.

    Examples
    --------
    >>> storage_refusal(Settings.from_env("/tmp/wb"), alive_nodes=1) is None
    True
    >>> storage_refusal(Settings.from_env("/tmp/wb", storage="file:///mnt/shared"), alive_nodes=3) is None
    True
    >>> "WORKBENCH_STORAGE" in str(storage_refusal(Settings.from_env("/tmp/wb"), alive_nodes=2))
    True
    """
    if alive_nodes <= 1 or settings.storage_shared or (unseen is not None and not unseen):
        return None
    where = settings.storage or f"{settings.artifacts_dir} and {settings.home / 'tune'}"
    which = f" (not seen from node {', '.join(unseen)})" if unseen else ""
    return ConfigError(
        f"this Ray cluster has {alive_nodes} alive nodes, but artifacts and Tune's storage are on the "
        f"local path {where}, which the other nodes cannot read{which}. Set WORKBENCH_STORAGE=s3://bucket/prefix "
        "(or gs://, abfs://, hdfs://), or pass Workbench(storage='s3://bucket/prefix'); if every node "
        "mounts one shared folder at the same path, say so with storage='file:///that/path'."
    )
