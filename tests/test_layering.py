"""The layering of DESIGN.md, kept: every module's imports (top level and inside functions) are parsed with
``ast`` and none may run against an arrow the design forbids.

- ``diffbrain`` and ``analysis`` import nothing of ours;
- ``slurm`` and ``hpc`` never import ``sweeps``; ``hpc`` never imports ``slurm``;
- inside ``diffbrain``, ``neuron``, ``fitting`` and ``network`` never import ``diffbrain.experiments``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("diffbrain", "analysis", "sweeps", "slurm", "hpc")

# (importing package, imported package prefix): arrows DESIGN.md forbids
FORBIDDEN = [
    *(("diffbrain", other) for other in OURS if other != "diffbrain"),
    *(("analysis", other) for other in OURS if other != "analysis"),
    ("slurm", "sweeps"),
    ("hpc", "sweeps"),
    ("hpc", "slurm"),
    *((f"diffbrain.{layer}", "diffbrain.experiments") for layer in ("neuron", "fitting", "network")),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source`` (relative ones resolved against ``module``),
    wherever it stands: top level, in a function, under ``if TYPE_CHECKING``."""
    found = []
    package = module.split(".") if is_package else module.split(".")[:-1]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from pkg import sub` may import a submodule: count it as pkg.sub too
            found += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return sorted(found)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(module: str, imports: list[tuple[int, str]]) -> list[str]:
    """One line per import statement that runs against a forbidden arrow."""
    out: dict[tuple[int, str], str] = {}
    for line, name in imports:
        for importer, imported in FORBIDDEN:
            if _within(module, importer) and _within(name, imported):
                out.setdefault((line, imported), f"{module}:{line} imports {name} ({importer} must not import "
                                                 f"{imported})")
    return list(out.values())


def our_modules() -> list[Path]:
    return sorted(p for package in OURS for p in (ROOT / package).rglob("*.py"))


def test_the_checker_sees_imports_inside_functions_and_relative_ones():
    source = (
        "import numpy\n"
        "def f():\n"
        "    from sweeps.spec import Sweep\n"
        "    import slurm.submit\n"
        "from ..experiments import base\n"
        "from . import events\n"
    )
    found = violations("hpc.runner", imported_modules(source, "hpc.runner"))
    assert [v.split(" (")[0] for v in found] == ["hpc.runner:3 imports sweeps.spec",
                                                  "hpc.runner:4 imports slurm.submit"]
    nested = imported_modules(source, "diffbrain.network.run")
    assert (5, "diffbrain.experiments") in nested and (6, "diffbrain.network.events") in nested
    assert violations("diffbrain.network.run", nested)[0].startswith("diffbrain.network.run:3 imports sweeps.spec")
    assert any("imports diffbrain.experiments" in v for v in violations("diffbrain.network.run", nested))
    assert violations("sweeps.cli.sweep", imported_modules(source, "sweeps.cli.sweep")) == []


def test_every_package_is_checked():
    modules = our_modules()
    assert {module_name(p).split(".")[0] for p in modules} == set(OURS)
    assert len(modules) > 50


@pytest.mark.parametrize("package", OURS)
def test_no_import_runs_against_the_design(package):
    problems = []
    for path in sorted((ROOT / package).rglob("*.py")):
        module = module_name(path)
        problems += violations(module, imported_modules(path.read_text(), module, path.name == "__init__.py"))
    assert problems == []
