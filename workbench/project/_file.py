"""Reading ``workbench.yaml``: YAML with the line of every node, JSON Schema validation, and the
:class:`Project` it describes. Pure: nothing here opens a store or imports Ray."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from workbench.exceptions import ConfigError

__all__ = [
    "Project",
    "ProjectFileError",
    "load",
    "loads",
    "schema",
    "SCHEMA_PATH",
    "DEFAULT_FILE",
    "resolve_env",
]

#: The file ``workbench plan`` and ``apply`` read when none is named.
DEFAULT_FILE = "workbench.yaml"
#: The published JSON Schema of the format (also linked from docs/project-file.md).
SCHEMA_PATH = Path(__file__).with_name("schema.json")
#: The sections that hold lists of named items, in the order ``apply`` works through them.
SECTIONS = ("datasets", "experiments", "deployments", "monitors", "policies")
_ENV = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ProjectFileError(ConfigError):
    """A project file that cannot be read or does not follow the schema; the message names the
    file, the line and the field path (``workbench.yaml:12: experiments[0].space.C: ...``)."""


@cache
def schema() -> dict[str, Any]:
    """The JSON Schema of ``workbench.yaml`` (``workbench/project/schema.json``)."""
    text = resources.files("workbench.project").joinpath("schema.json").read_text()
    return json.loads(text)


@dataclass(frozen=True)
class Project:
    """A validated project file: its sections as plain data, and where each field was written.

    ``datasets``, ``experiments``, ``deployments``, ``monitors`` and ``policies`` are lists of
    mappings in the schema's shape; ``gate`` and ``alerts`` mappings (empty when absent).
    ``lines`` maps a field path such as ``("experiments", 0, "space")`` to its 1-based line.
    """

    datasets: list[dict[str, Any]] = field(default_factory=list)
    experiments: list[dict[str, Any]] = field(default_factory=list)
    gate: dict[str, Any] = field(default_factory=dict)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    alerts: dict[str, Any] = field(default_factory=dict)
    monitors: list[dict[str, Any]] = field(default_factory=list)
    policies: list[dict[str, Any]] = field(default_factory=list)
    path: str = "<string>"
    lines: Mapping[tuple[Any, ...], int] = field(default_factory=dict, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The file's content (sections that are empty left out), as :func:`loads` would read it."""
        out: dict[str, Any] = {"version": 1}
        for key in ("datasets", "experiments", "gate", "deployments", "alerts", "monitors"):
            if getattr(self, key):
                out[key] = getattr(self, key)
        if self.policies:
            out["policies"] = self.policies
        return out

    def line(self, *path: Any) -> int | None:
        """The line where ``path`` (or its nearest parent written in the file) starts."""
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None

    def error(self, path: tuple[Any, ...], message: str) -> ProjectFileError:
        """A :class:`ProjectFileError` for ``path``, naming this file, the line and the field."""
        return ProjectFileError(_where(self.path, self.line(*path), path) + message)


def load(path: str | os.PathLike[str] = DEFAULT_FILE) -> Project:
    """Read and validate a project file.

    Raises
    ------
    ProjectFileError
        The file is missing, is not YAML, or breaks the schema: one error, the first by line,
        naming the file, the line and the field path.

    Examples
    --------
    >>> from workbench.project import load                              # doctest: +SKIP
    >>> load("workbench.yaml").experiments[0]["name"]                   # doctest: +SKIP
    'cancer'
    """
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ProjectFileError(
            f"cannot read project file {str(p)!r}: {exc.strerror or exc}; write one (see "
            "docs/project-file.md) or `workbench export-project --out workbench.yaml`"
        ) from None
    return loads(text, path=str(p))


def loads(text: str, *, path: str = "<string>") -> Project:
    """:func:`load` on the text of a project file (``path`` only names it in errors)."""
    import jsonschema
    import yaml

    try:
        loader = _loader()
        node = yaml.compose(text, Loader=loader)
        data = yaml.load(text, Loader=loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context_mark", None)
        if context is not None and context.line + 1 != line:
            problem += f" ({getattr(exc, 'context', None) or 'opened'} on line {context.line + 1})"
        raise ProjectFileError(f"{_where(path, line, ())}not valid YAML: {problem}") from None
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _record_lines(node, (), lines)
    if data is None:
        data = {}
    validator = jsonschema.Draft202012Validator(schema())
    errors = list(validator.iter_errors(data))
    if errors:
        first = min(errors, key=lambda e: (_line_of(lines, tuple(e.absolute_path)), len(e.path)))
        where = tuple(first.absolute_path)
        if first.validator == "additionalProperties" and isinstance(first.instance, dict):
            extra = sorted(set(first.instance) - set(first.schema.get("properties", {})))
            where = (*where, extra[0]) if extra else where  # the line of the unknown key itself
        raise ProjectFileError(_where(path, _line_of(lines, where), where) + _message(first))
    project = Project(
        datasets=list(data.get("datasets") or []),
        experiments=list(data.get("experiments") or []),
        gate=dict(data.get("gate") or {}),
        deployments=list(data.get("deployments") or []),
        alerts=dict(data.get("alerts") or {}),
        monitors=list(data.get("monitors") or []),
        policies=list(data.get("policies") or []),
        path=path,
        lines=lines,
    )
    _check_references(project)
    return project


def resolve_env(project: Project, path: tuple[Any, ...], value: str | None) -> str | None:
    """``value`` with a whole-value ``${NAME}`` replaced by the environment variable NAME (the
    file keeps the reference, never the secret); an unset variable is an error naming the line."""
    if value is None:
        return None
    m = _ENV.match(value)
    if not m:
        return value
    resolved = os.environ.get(m.group(1))
    if not resolved:
        raise project.error(
            path, f"environment variable {m.group(1)} is not set; export it (the URL) and rerun"
        )
    return resolved


# ----------------------------------------------------------------- helpers
@cache
def _loader() -> Any:
    """PyYAML's SafeLoader, reading ``1e-3`` as a float as YAML 1.2 does (YAML 1.1, PyYAML's
    version, wants ``1.0e-3`` and would read a learning rate of ``1e-3`` as a string)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"""
            r"""|^[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?$"""
            r"""|^[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?$"""
            r"""|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$""",
            re.X,
        ),
        list("-+0123456789."),
    )
    return Loader


def _where(path: str, line: int | None, field_path: tuple[Any, ...]) -> str:
    return f"{path}:{line if line is not None else '?'}: " + (
        f"{_dotted(field_path)}: " if field_path else ""
    )


def _dotted(field_path: tuple[Any, ...]) -> str:
    out = ""
    for part in field_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _record_lines(node: Any, path: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> None:
    import yaml

    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1  # a field's line is where its key is written
            _record_lines(value, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _record_lines(item, (*path, i), lines)


def _line_of(lines: Mapping[tuple[Any, ...], int], path: tuple[Any, ...]) -> int:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return 0


def _message(error: Any) -> str:
    """A jsonschema error as one sentence, with the deepest cause of an ``anyOf``/``oneOf``."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        deepest = max(error.context, key=lambda e: len(e.absolute_path))
        if len(deepest.absolute_path) > len(error.absolute_path):
            return _message(deepest)
        if error.validator == "oneOf" and "drift" in json.dumps(error.schema)[:400]:
            return (
                f"{json.dumps(error.instance, default=str)} is not a trigger; use "
                "{drift: MONITOR, windows: N}, {cron: EXPR} or {performance: {...}}"
            )
        if "domain" in json.dumps(error.schema):
            return (
                f"{json.dumps(error.instance, default=str)} is neither a constant nor one "
                "sampling domain: use one of loguniform, uniform, randint, lograndint "
                "(each [low, high]), choice or grid (each a list)"
            )
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return f"unknown field; allowed here: {', '.join(allowed)}" + (
            f" (also unknown: {extra[1:]})" if len(extra) > 1 else ""
        )
    if error.validator == "enum":
        return f"{error.instance!r} is not one of {error.validator_value}"
    return error.message


def _check_references(project: Project) -> None:
    """Names unique within a section; what is not the schema's to say."""
    for section in SECTIONS:
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(project, section)):
            name = item["name"]
            if name in seen:
                raise project.error(
                    (section, i, "name"),
                    f"{section} has two entries named {name!r} (the other is {section}[{seen[name]}])",
                )
            seen[name] = i
    for i, exp in enumerate(project.experiments):
        if exp.get("metric") is None and exp.get("mode") is not None:
            raise project.error(("experiments", i, "mode"), "give mode only with metric")
