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
