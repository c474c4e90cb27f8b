"""``workbench demo``: the quickstart notebook, top to bottom, in a real Jupyter kernel.

The demo and ``notebooks/quickstart.ipynb`` are one thing: the demo runs the notebook (its
``parameters`` cell overridden, papermill's convention), prints each section's heading and each
cell's printed output as it runs, and writes the executed copy, widgets included, next to the store
(``WORKBENCH_HOME/quickstart.ipynb``) for JupyterLab to open. Every step in it goes through the
public API; the only thing special to the demo is the simulated clients.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from workbench.config import Settings
from workbench.exceptions import NotFoundError, WorkbenchError

__all__ = ["MODEL", "NOTEBOOK", "DemoError", "run_demo"]

MODEL = "breast-cancer"
NOTEBOOK = Path(__file__).with_name("_notebooks") / "quickstart.ipynb"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class DemoError(WorkbenchError):
    """A cell of the demo notebook raised; the executed copy, with the traceback, was written."""


def run_demo(
    home: str | os.PathLike[str] | None = None,
    *,
    num_samples: int = 2,
    serve_port: int | None = None,
    say: Callable[[str], None] = print,
    seed: int = 0,
    notebook: str | os.PathLike[str] | None = None,
    cell_timeout_s: int = 600,
) -> dict[str, Any]:
    """Execute the quickstart notebook in a new kernel, print it as it runs, return a summary.

    The kernel inherits this process's environment (``RAY_ADDRESS`` joins a running Ray; without
    it the notebook starts a private local one and stops it with ``bench.close()``) and runs in
    the current directory. ``home`` and ``serve_port`` default to ``$WORKBENCH_HOME`` /
    ``./.workbench`` and ``$WORKBENCH_SERVE_PORT`` / 8000, as the notebook's own defaults do.

    Returns ``home``, ``notebook`` (the executed copy), ``experiment_id``, ``trials``,
    ``champion``, ``outcome`` (the retrain job's id, status, gate, canary steps and compute
    seconds) and ``elapsed_s``. Raises :class:`DemoError` naming the cell that failed.
    """
    import nbformat
    from nbclient.exceptions import CellExecutionError

    t0 = time.monotonic()
    settings = Settings.from_env(home)
    source = Path(notebook) if notebook is not None else NOTEBOOK
    if not source.is_file():
        raise DemoError(
            f"demo notebook {source} not found: reinstall workbench, or pass the path of "
            "notebooks/quickstart.ipynb from a checkout"
        )
    nb = nbformat.read(source, as_version=4)
    params = {
        "home": str(settings.home),
        "serve_port": serve_port,
        "num_samples": num_samples,
        "seed": seed,
    }
    _inject_parameters(nb, params)
    executed = settings.home / "quickstart.ipynb"
    settings.ensure_home()  # created 0700, like every home

    def heading(cell: Any, cell_index: int, **_: Any) -> None:
        if cell.cell_type == "markdown" and cell.source.startswith("#"):
            title = cell.source.splitlines()[0].lstrip("# ")
            say(f"\n{title}  (t={time.monotonic() - t0:.0f}s)")

    def results(cell: Any, cell_index: int, **_: Any) -> None:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data:
                say(f"  [a widget: open {executed} in JupyterLab to see it]")
            elif out.get("output_type") == "execute_result" and "text/plain" in data:
                say(textwrap.indent(_shorten(data["text/plain"]), "  "))

    client = _printing_client(
        nb,
        say,
        timeout=cell_timeout_s,
        kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
        resources={"metadata": {"path": os.getcwd()}},
        # the kernel's own log at WARNING says its loopback TCP is unencrypted, as every local kernel is
        extra_arguments=["--IPKernelApp.log_level=ERROR"],
        on_cell_start=heading,
        on_cell_executed=results,
    )
    say(f"running {source.name} in a new kernel; state in {settings.home}")
    try:
        client.execute()
    except CellExecutionError as exc:
        index = next(
            (i for i, c in enumerate(nb.cells) if c.get("outputs") and _has_error(c)), None
        )
        raise DemoError(
            f"the demo stopped in cell {index} of {source.name}: "
            f"{exc.ename}: {exc.evalue}. The executed notebook, with the traceback, is {executed}"
        ) from exc
    finally:
        nbformat.write(nb, executed)
    summary = _summary(settings, nb, executed)
    summary["elapsed_s"] = time.monotonic() - t0
    say(f"\nexecuted notebook: {executed}\ndemo finished in {summary['elapsed_s']:.0f}s")
    return summary


def _printing_client(nb: Any, say: Callable[[str], None], **kwargs: Any) -> Any:
    """An ``nbclient.NotebookClient`` that also says each line the kernel prints, as it prints it."""
    from nbclient import NotebookClient

    class PrintingClient(NotebookClient):
        def output(self, outs, msg, display_id, cell_index):  # type: ignore[no-untyped-def]
            content = msg.get("content", {})
            if msg.get("msg_type") == "stream" and content.get("name") == "stdout":
                for line in content.get("text", "").rstrip("\n").split("\n"):
                    say(f"  {line}")
            return super().output(outs, msg, display_id, cell_index)

    return PrintingClient(nb, **kwargs)


def _inject_parameters(nb: Any, params: dict[str, Any]) -> None:
    """Insert a cell that sets ``params`` after the cell tagged ``parameters`` (papermill's way)."""
    import nbformat

    index = next(
        (
            i
            for i, c in enumerate(nb.cells)
            if "parameters" in c.get("metadata", {}).get("tags", [])
        ),
        None,
    )
    if index is None:
        raise DemoError("the demo notebook has no cell tagged 'parameters'")
    cell = nbformat.v4.new_code_cell(
        "# Injected parameters\n" + "".join(f"{k} = {v!r}\n" for k, v in params.items()),
        metadata={"tags": ["injected-parameters"]},
    )
    if nb.get("nbformat_minor", 0) < 5:  # cell ids came with nbformat 4.5
        cell.pop("id", None)
    nb.cells.insert(index + 1, cell)


def _summary(settings: Settings, nb: Any, executed: Path) -> dict[str, Any]:
    """What the notebook left in the store: the first search, the champion, the retrain job."""
    from workbench.api import Workbench

    with Workbench(settings.home) as bench:
        experiments = bench.experiments.list()
        first = experiments[0] if experiments else None
        try:
            champion = bench.registry.get(MODEL, "champion").version
        except NotFoundError:  # a notebook of the caller's own that registers no such model
            champion = None
        jobs = bench.automation.jobs()
        job = jobs[-1] if jobs else None
        outcome = (
            {
                "job_id": job["id"],
                "status": job["status"],
                "gate": job["detail"].get("gate", {}),
                "canary": job["detail"].get("canary", []),
                "compute_s": job["compute_s"],
            }
            if job
            else None
        )
        return {
            "home": str(settings.home),
            "notebook": str(executed),
            "experiment_id": first["id"] if first else None,
            "trials": first["n_trials"] if first else 0,
            "champion": champion,
            "outcome": outcome,
        }


def _has_error(cell: Any) -> bool:
    return any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def _shorten(text: str, lines: int = 12) -> str:
    rows = text.splitlines()
    return "\n".join(
        rows[:lines] + ([f"… ({len(rows) - lines} more lines)"] if len(rows) > lines else [])
    )
