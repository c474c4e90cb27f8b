"""A declarative project file, ``workbench.yaml``: load and validate it, plan and apply it against a
store, export one from a store set up in a notebook (see docs/project-file.md)."""

from workbench.project._export import dump, export_project
from workbench.project._file import (
    DEFAULT_FILE,
    SCHEMA_PATH,
    Project,
    ProjectFileError,
    load,
    loads,
    schema,
)
from workbench.project._plan import Change, Plan, apply, plan
from workbench.project._space import to_tune

__all__ = [
    "Project",
    "ProjectFileError",
    "Plan",
    "Change",
    "load",
    "loads",
    "plan",
    "apply",
    "export_project",
    "dump",
    "to_tune",
    "schema",
    "SCHEMA_PATH",
    "DEFAULT_FILE",
]
