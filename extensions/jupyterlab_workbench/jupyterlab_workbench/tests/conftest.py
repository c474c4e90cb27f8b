"""pytest-jupyter's fixtures and hooks for these tests only.

Star-imported into this conftest (not ``pytest_plugins``) so its autouse fixtures (an event loop
per test, a ServerApp cleanup) and its coroutine-test hooks apply to this directory alone, not to
the rest of the suite.
"""

from __future__ import annotations

import pytest
from pytest_jupyter.jupyter_core import *  # noqa: F403
from pytest_jupyter.jupyter_server import *  # noqa: F403


@pytest.fixture
def wb_home(tmp_path, monkeypatch):
    """A fresh WORKBENCH_HOME for the server under test."""
    path = tmp_path / "wbhome"
    monkeypatch.setenv("WORKBENCH_HOME", str(path))
    return path


@pytest.fixture
def jp_server_config(wb_home):
    # A server with a token (pytest-jupyter's default) and our extension on.
    return {"ServerApp": {"jpserver_extensions": {"jupyterlab_workbench": True}}}
