"""The ``workbench`` command: a thin layer over the Python API (errors become one-line click errors
with an exit code; see docs/cli.md). One module per family of commands, each registering on the
one ``cli`` group."""

from workbench.cli import _commands, _governance  # noqa: F401  (they register their commands)
from workbench.cli._base import EXIT_DENIED, cli, main

__all__ = ["cli", "main", "EXIT_DENIED"]

if __name__ == "__main__":  # pragma: no cover
    import sys

    main(sys.argv[1:])
