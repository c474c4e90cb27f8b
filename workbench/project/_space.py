"""A project file's search space as ray.tune domains, and back from an experiment's record.

The experiments stage records a space as ``{key: repr(value)}``. A plain Tune domain's repr is
``<ray.tune.search.sample.Float object at 0x...>``, which says nothing and changes every run, so
the domains built here carry their spec as their repr (``loguniform(0.001, 0.1)``): the record
then says what was searched, :func:`recorded_space` reads it back (``export-project``), and
:func:`space_record` is what ``plan`` compares with the record.
"""

from __future__ import annotations

import ast
import re
from typing import Any

__all__ = ["to_tune", "space_record", "recorded_space", "DOMAINS", "OPAQUE"]

#: The sampling domains a project file may write, each ``{name: args}``.
DOMAINS = ("loguniform", "uniform", "randint", "lograndint", "choice", "grid")
#: What :func:`recorded_space` returns for a recorded value it cannot read back (a Tune domain
#: made in a notebook without this module).
OPAQUE = object()
_CALL = re.compile(r"^(loguniform|uniform|randint|lograndint|choice)\((.*)\)$", re.S)


def _spec_text(kind: str, args: Any) -> str:
    if kind == "choice":
        return f"choice({list(args)!r})"
    return f"{kind}({args[0]!r}, {args[1]!r})"


def _labelled(domain: Any, text: str) -> Any:
    """``domain`` as an instance of a subclass of its own class whose repr is ``text``."""
    domain.__class__ = __getattr__(f"Labelled{type(domain).__name__}")
    domain._wb_spec = text
    return domain


_SUBCLASSES: dict[str, type] = {}


def __getattr__(name: str) -> type:
    """``LabelledFloat``, ``LabelledInteger``, ``LabelledCategorical``: built on first use (so
    importing this module imports no Ray) and found by name when Tune unpickles a space."""
    if not name.startswith("Labelled"):
        raise AttributeError(name)
    if name not in _SUBCLASSES:
        from ray.tune.search import sample

        base = getattr(sample, name.removeprefix("Labelled"), None)
        if not isinstance(base, type):
            raise AttributeError(name)
        cls = type(name, (base,), {"__repr__": lambda self: self._wb_spec, "__module__": __name__})
        _SUBCLASSES[name] = cls
    return _SUBCLASSES[name]


def to_tune(space: dict[str, Any]) -> dict[str, Any]:
    """The project file's space as Tune's ``param_space``: ``{loguniform: [a, b]}`` →
    ``tune.loguniform(a, b)``, ``{grid: [...]}`` → ``tune.grid_search([...])``, constants as is.

    >>> to_tune({"C": {"loguniform": [0.001, 0.1]}, "family": "logistic_regression"})["C"]
    loguniform(0.001, 0.1)
    """
    from ray import tune

    out: dict[str, Any] = {}
    for key, value in space.items():
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DOMAINS:
            kind, args = next(iter(value.items()))
            if kind == "grid":
                out[key] = tune.grid_search(list(args))
                continue
            maker = getattr(tune, kind)
            domain = maker(list(args)) if kind == "choice" else maker(args[0], args[1])
            out[key] = _labelled(domain, _spec_text(kind, args))
        else:
            out[key] = value
    return out


def space_record(space: dict[str, Any]) -> dict[str, str]:
    """What the experiments stage records for this space (``{key: repr(tune value)}``), without
    building Tune domains.

    >>> space_record({"C": {"grid": [0.1, 1.0]}, "family": "logistic_regression"})
    {'C': "{'grid_search': [0.1, 1.0]}", 'family': "'logistic_regression'"}
    """
    out: dict[str, str] = {}
    for key, value in space.items():
        if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DOMAINS:
            kind, args = next(iter(value.items()))
            out[key] = (
                repr({"grid_search": list(args)}) if kind == "grid" else _spec_text(kind, args)
            )
        else:
            out[key] = repr(value)
    return out


def recorded_space(record: dict[str, Any]) -> dict[str, Any] | None:
    """The project-file space an experiment's recorded ``search_space`` describes, or None when a
    value cannot be read back (:data:`OPAQUE`: a domain made outside a project file).

    >>> recorded_space({"C": "loguniform(0.001, 0.1)", "k": "{'grid_search': [1, 2]}",
    ...                 "family": "'svm'", "_resources": {"cpu": 1.0}})
    {'C': {'loguniform': [0.001, 0.1]}, 'k': {'grid': [1, 2]}, 'family': 'svm'}
    """
    out: dict[str, Any] = {}
    for key, text in record.items():
        if key.startswith("_"):
            continue
        value = _read(text)
        if value is OPAQUE:
            return None
        out[key] = value
    return out


def _read(text: Any) -> Any:
    if not isinstance(text, str):
        return OPAQUE
    m = _CALL.match(text)
    try:
        if m:
            args = ast.literal_eval(f"[{m.group(2)}]")
            return {m.group(1): args[0] if m.group(1) == "choice" else args}
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return OPAQUE
    if isinstance(value, dict):
        if set(value) == {"grid_search"}:
            return {"grid": list(value["grid_search"])}
        return OPAQUE  # a mapping constant is not a project-file value
    return value
