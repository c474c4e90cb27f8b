"""Tune's saved state, checked before ``Tuner.restore`` unpickles it.

``Tuner.restore`` unpickles ``tuner.pkl`` (the Tuner, its trainable and run config), the
searcher's and callbacks' ``*.pkl`` and the trials in ``experiment_state-*.json`` (cloudpickled,
hex-encoded): whoever can write those files runs code in the next resume. So the folder must be
one of this workbench's own (under its Tune root), and its files must hash to what the search
recorded:

- when a search starts, the hash of ``tuner.pkl`` (Tune writes it once, when the Tuner is built,
  and ``Tuner.restore`` never rewrites it);
- when a search's ``fit`` returns or fails (and Tune has synced its final snapshot), the hash of
  every top-level ``*.pkl`` and ``*.json`` file, marked ``complete``: then a planted extra file is
  refused too.

A driver killed mid-search (the usual reason to resume) leaves only the first record: its
snapshot files changed after it, legitimately, so they cannot be checked; ``tuner.pkl`` is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.exceptions import ConfigError, TamperedError
from workbench.lineage import is_uri, mask_uri, sha256_bytes

if TYPE_CHECKING:
    from workbench.config import Settings

__all__ = ["checked_tune_path", "state_record", "verify_state"]

TUNER_PKL = "tuner.pkl"


def checked_tune_path(settings: Settings, recorded: str) -> str:
    """The usable location of a recorded Tune path, when it is an experiment folder under this
    workbench's Tune root (``home/tune`` or ``storage/tune``); else ``ConfigError`` naming it.

    Examples
    --------
    >>> checked_tune_path(bench.settings, "/tmp/elsewhere")           # doctest: +SKIP
    Traceback (most recent call last):
    ConfigError: the recorded Tune path '/tmp/elsewhere' is outside this workbench's Tune root ...
    """
    refusal = ConfigError(
        f"the recorded Tune path {mask_uri(str(recorded))!r} is outside this workbench's Tune root "
        f"{mask_uri(settings.tune_root)!r}; Tune state is restored only from the workbench's own "
        "folders. Start the search again"
    )
    if not isinstance(recorded, str) or not recorded:
        raise refusal
    path = settings.resolve_tune_path(recorded)
    root = settings.tune_root
    if is_uri(root) or is_uri(path):
        name = path.partition("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if name in ("", ".", "..") or path != settings.tune_path(name):
            raise refusal
        return path
    here, base = Path(path).resolve(), Path(root).resolve()
    if here == base or base not in here.parents:
        raise refusal
    return str(here)


def _files(location: str, *, names: set[str] | None = None) -> dict[str, str]:
    """SHA-256 of the top-level ``*.pkl``/``*.json`` files of a Tune folder (local or a URI)."""
    wanted = (lambda n: n.endswith((".pkl", ".json"))) if names is None else names.__contains__
    if not is_uri(location):
        base = Path(location)
        if not base.is_dir():
            return {}
        return {
            p.name: sha256_bytes(p.read_bytes())
            for p in sorted(base.iterdir())
            if p.is_file() and wanted(p.name)
        }
    from pyarrow import fs as pafs

    filesystem, root = pafs.FileSystem.from_uri(location)
    out = {}
    for info in filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True)):
        name = info.path.rstrip("/").rsplit("/", 1)[-1]
        if info.type == pafs.FileType.File and wanted(name):
            with filesystem.open_input_file(info.path) as f:
                out[name] = sha256_bytes(f.readall())
    return dict(sorted(out.items()))


def state_record(location: str, *, complete: bool) -> str:
    """What ``experiments.tune_state_hash`` holds: JSON ``{"files": {name: sha256}, "complete"}``;
    ``complete=False`` hashes ``tuner.pkl`` alone."""
    files = _files(location) if complete else _files(location, names={TUNER_PKL})
    return json.dumps({"files": files, "complete": complete}, sort_keys=True)


def verify_state(location: str, recorded: str | None, *, experiment_id: int) -> None:
    """``TamperedError`` unless the Tune folder's files hash to the record (a file changed,
    missing, or, for a complete record, one added); ``ConfigError`` when nothing was recorded."""
    if not recorded:
        raise ConfigError(
            f"experiment {experiment_id} has no recorded hash of its Tune state (it was started "
            "by an older workbench), so its pickles cannot be checked before Tune unpickles them; "
            "start the search again"
        )
    record = json.loads(recorded)
    expected: dict[str, str] = record.get("files", {})
    if TUNER_PKL not in expected:
        raise TamperedError(
            f"the recorded Tune state of experiment {experiment_id} names no {TUNER_PKL}"
        )
    found = _files(location) if record.get("complete") else _files(location, names=set(expected))
    changed = sorted(n for n in expected if found.get(n) != expected[n])
    added = sorted(set(found) - set(expected)) if record.get("complete") else []
    if changed or added:
        what = "; ".join(
            part
            for part in (
                f"changed or missing: {changed}" if changed else "",
                f"added: {added}" if added else "",
            )
            if part
        )
        raise TamperedError(
            f"the Tune state of experiment {experiment_id} at {mask_uri(location)} is not what "
            f"the search wrote ({what}); it was not restored and nothing was recorded. Start the "
            "search again, or restore the files from a backup"
        )
