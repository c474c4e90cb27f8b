"""Reading executed notebooks in tests."""

from __future__ import annotations


def reachable_widget_states(states: dict, roots: list[str]) -> list[dict]:
    """The widget models ``roots`` and every model they reference (``IPY_MODEL_<id>``)."""
    seen, todo = set(), list(roots)
    while todo:
        mid = todo.pop()
        if mid in seen or mid not in states:
            continue
        seen.add(mid)
        text = repr(states[mid].get("state", {}))
        todo += [m for m in states if f"IPY_MODEL_{m}" in text]
    return [states[m] for m in seen]


def execute_notebook(path, folder, env: dict | None = None):
    """Run the notebook at ``path`` top to bottom in a fresh ``python3`` kernel whose working
    folder is ``folder`` (so its store lands in ``folder/.workbench``); the kernel's environment is
    this one without ``WORKBENCH_HOME``, plus ``env``. Returns ``(notebook, stream text)``: the
    executed notebook and everything its cells printed, in order."""
    import nbformat
    import pytest
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    mp = pytest.MonkeyPatch()
    mp.delenv("WORKBENCH_HOME", raising=False)
    for key, value in (env or {}).items():
        mp.setenv(key, str(value))
    try:
        NotebookClient(
            nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(folder)}}
        ).execute()
    finally:
        mp.undo()
    text = "\n".join(
        o.get("text", "")
        for c in nb.cells
        for o in c.get("outputs", [])
        if o.get("output_type") == "stream"
    )
    return nb, text


def error_outputs(nb) -> list[dict]:
    """The error outputs of an executed notebook's cells."""
    return [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
