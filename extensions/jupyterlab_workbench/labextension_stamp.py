"""Hash of the sources the committed labextension was built from.

``python labextension_stamp.py --write`` after ``make labextension``; ``--check`` (and the test
``test_labextension_is_built_from_these_sources``) fails when ``src/``, ``style/``,
``package.json`` or ``tsconfig.json`` changed but the built assets were not rebuilt.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
STAMP = HERE / "jupyterlab_workbench" / "labextension.sha256"
BUILT = HERE / "jupyterlab_workbench" / "labextension"


def sources() -> list[Path]:
    files = [HERE / "package.json", HERE / "tsconfig.json"]
    files += sorted(p for p in (HERE / "src").glob("*.ts"))
    files += sorted((HERE / "style").glob("*"))
    return files


def digest() -> str:
    h = hashlib.sha256()
    for path in sources():
        h.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        h.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return h.hexdigest()


def main(argv: list[str]) -> int:
    if argv[1:] == ["--write"]:
        STAMP.write_text(digest() + "\n")
        return 0
    if argv[1:] == ["--check"]:
        recorded = STAMP.read_text().strip() if STAMP.exists() else "(none)"
        if recorded != digest() or not (BUILT / "package.json").exists():
            print(
                "the labextension under jupyterlab_workbench/labextension was not built from these "
                "sources: run `make labextension` and commit the result",
                file=sys.stderr,
            )
            return 1
        return 0
    print("usage: labextension_stamp.py --write | --check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
