"""The ``workbench`` command: a thin layer over the Python API (errors become one-line click errors
with an exit code; see docs/cli.md). One module per family of commands, each registering on the
one ``cli`` group."""

from workbench.cli import (  # noqa: F401  (each module registers its commands)
    _commands,
    _governance,
    _lifecycle,
    _operations,
    _project,
)
from workbench.cli._base import EXIT_DENIED, cli, main

__all__ = ["cli", "main", "EXIT_DENIED"]

if __name__ == "__main__":  # pragma: no cover
    import sys

    main(sys.argv[1:])
