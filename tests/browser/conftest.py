"""Browser fixtures: a real JupyterLab started per test session, and Debian's chromium driven by Playwright.

- ``lab``: a running JupyterLab per test module (``.url``, ``.token``, ``.home`` = its
  ``WORKBENCH_HOME``, ``.root_dir``) whose server and kernels join the session's local Ray
  (``RAY_ADDRESS``) and its Serve (``WORKBENCH_SERVE_PORT``), so a deployment made by the test
  process is visible to the server extension and to notebooks; the module's Serve apps are
  deleted when it ends (``serve_apps``).
- ``page``: a Playwright page logged in to ``lab`` with JupyterLab started; a screenshot of it is
  saved to ``tests/browser/artifacts/<test>.png`` when the test ends, and the kernels it started
  are shut down.

Chromium is the system one (``/usr/bin/chromium``, ``executable_path``); nothing downloads a
browser. Helpers to open a notebook and run a cell are in ``tests/browser/_lab.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser._lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    open_lab,
    screenshot,
    start_lab,
    stop_lab,
)


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (`apt-get install -y chromium`; "
            ".ci/run does it) or point WORKBENCH_CHROMIUM at a Chromium binary."
        )
    return CHROMIUM


@pytest.fixture(scope="module")
def lab(tmp_path_factory, ray_cluster, serve_apps):
    """A real JupyterLab on a free loopback port, with a token, and a fresh store, per test module.

    It starts in ~2 s; one per module keeps one module's records out of another's assertions.
    """
    root = tmp_path_factory.mktemp("lab")
    home = root / ".workbench"
    home.mkdir()
    server = start_lab(
        root,
        home,
        extra_env={
            "RAY_ADDRESS": ray_cluster.address,
            "WORKBENCH_SERVE_PORT": str(serve_apps.port),
        },
    )
    yield server
    stop_lab(server)


@pytest.fixture(scope="module")
def browser(chromium_path):
    """Chromium per module (~1 s): Playwright's sync API keeps an asyncio loop running while it is
    open, which breaks any later test that uses asyncio, so it must end with the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, lab, request):
    """A fresh browser context and page, logged in to ``lab``, JupyterLab started."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    open_lab(pg, lab)
    yield pg
    try:
        screenshot(pg, request.node.name)
    finally:
        context.close()
        # End the kernels this test started: an idle kernel that joined Ray would otherwise hold
        # its memory (and its Ray driver) until the module ends.
        for kernel in lab.api("GET", "api/kernels") or []:
            lab.api("DELETE", f"api/kernels/{kernel['id']}")
