"""Browser fixtures: a real JupyterLab started per test module, and Debian's chromium driven by Playwright.

- ``lab``: a running JupyterLab per test module (``.url``, ``.token``, ``.home`` = its
  ``WORKBENCH_HOME``, ``.root_dir``) whose server and kernels join the session's local Ray
  (``RAY_ADDRESS``) and its Serve (``WORKBENCH_SERVE_PORT``), so a deployment made by the test
  process is visible to the server extension and to notebooks; the module's Serve apps are
  deleted when it ends (``serve_apps``).
- ``lab_page``: one Playwright page (in a browser context of its own) per module.
- ``page``: ``lab_page`` with a fresh JupyterLab loaded in it (nothing of an earlier test's app
  state); a screenshot of it is saved to
  ``tests/browser/artifacts/<test>.png`` when the test ends, and the kernels it started are shut
  down. A module may override it (``test_widgets_browser.py`` keeps one notebook and kernel).

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
    FAILED,
    end_kernels,
    open_lab,
    screenshot,
    start_lab,
    stop_lab,
)

VIEWPORT = {"width": 1400, "height": 900}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed:
        item.stash[FAILED] = True
    return report


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


@pytest.fixture(scope="module")
def lab_page(browser, lab):
    """One browser page per module for ``lab``: each test loads JupyterLab anew in it (``page``),
    which reuses the page's renderer and cache: a load cost ~1.7 s of chromium CPU here, ~3.6 s
    in a new browser context."""
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    # Loading JupyterLab again over a notebook with unsaved cells asks "leave the page?": yes.
    pg.on("dialog", lambda d: d.accept() if d.type == "beforeunload" else d.dismiss())
    yield pg
    context.close()


@pytest.fixture
def page(lab_page, lab, request):
    """The module's page with a fresh JupyterLab started (nothing of an earlier test's app state)."""
    lab_page.set_viewport_size(VIEWPORT)
    open_lab(lab_page, lab)
    yield lab_page
    try:
        screenshot(lab_page, request.node.name)
    finally:
        # End the kernels this test started: an idle kernel that joined Ray would otherwise hold
        # its memory (and its Ray driver) until the module ends.
        end_kernels(lab)
