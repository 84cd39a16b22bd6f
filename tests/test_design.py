"""The rules the code keeps: no import cycles, CLIs that never import each other, a light core
(no torch where none is needed), no side effects at import, every import a declared dependency,
a wheel that ships the configs under ``coordrl`` only, README's option tables equal to the
parsers."""

from __future__ import annotations

import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Source folder -> the package it installs as (pyproject's package-dir).
PACKAGE_DIRS = {"coordrl": "coordrl", "agents": "coordrl.agents", "envs": "coordrl.envs"}
CLI_MODULES = {
    "coordrl.train",
    "coordrl.evaluate",
    "coordrl.sweep",
    "coordrl.compare",
    "coordrl.paper",
}
#: Modules that must import without torch or SB3.
LIGHT_MODULES = [
    "coordrl",
    "coordrl._cli",
    "coordrl.files",
    "coordrl.hardware",
    "coordrl.runs",
    "coordrl.variant",
    "coordrl.sweep",
    "coordrl.compare",
    "coordrl.train",
    "coordrl.evaluate",
]
LIGHT_PACKAGES = ["coordrl.sweeps", "coordrl.analysis"]


def _modules() -> dict[str, Path]:
    """Every module of the installed package, by import name."""
    out = {}
    for folder, package in PACKAGE_DIRS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([package, *parts])] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """coordrl modules imported anywhere in a module (top level or inside functions)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            submodules = {f"{base}.{a.name}" for a in node.names} & set(MODULES)
            found.update(submodules)
            if len(submodules) < len(node.names):  # names from the module itself, not submodules
                found.add(base)
    return {m for m in found if m in MODULES and m != "coordrl" and m != name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_the_module_list_is_complete():
    assert {"coordrl.training", "coordrl.agents.config", "coordrl.envs.factory"} <= set(MODULES)
    assert not (ROOT / "coordrl" / "sweep_ray.py").exists()


def test_no_import_cycles():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(GRAPH[node]):
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep) :] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_no_module_imports_a_cli():
    offenders = {name: sorted(deps & CLI_MODULES) for name, deps in GRAPH.items()}
    assert {k: v for k, v in offenders.items() if v} == {}


def _fresh(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout


def test_core_modules_import_without_torch():
    light = LIGHT_MODULES + [
        m for m in MODULES if any(m == p or m.startswith(p + ".") for p in LIGHT_PACKAGES)
    ]
    out = _fresh(
        "import importlib, json, sys\n"
        f"for m in {light!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted(m for m in ('torch', 'stable_baselines3') if m in sys.modules)))"
    )
    assert json.loads(out) == [], f"torch/SB3 imported by one of {light}"


def test_importing_coordrl_has_no_side_effects():
    """Environment variables, signal handlers, gymnasium's registry, sys.path and the working
    directory are as they were after importing every module (the third-party libraries they
    use are imported first, so that only coordrl's own effects are measured)."""
    out = _fresh(
        "import importlib, json, os, signal, sys\n"
        "import gymnasium, ale_py, torch, stable_baselines3, matplotlib, rliable\n"
        "try:\n    import minatar.gym\nexcept ImportError:\n    pass\n"
        "def snap():\n"
        "    return {'env': dict(os.environ), 'sig': [str(signal.getsignal(s)) for s in "
        "(signal.SIGINT, signal.SIGTERM)], 'gym': sorted(gymnasium.registry), "
        "'path': list(sys.path), 'cwd': sorted(os.listdir('.'))}\n"
        "before = snap()\n"
        f"for m in {sorted(MODULES)!r}:\n"
        "    if m.endswith('__main__'): continue\n"
        "    importlib.import_module(m)\n"
        "after = snap()\n"
        "print(json.dumps({k: [sorted(set(map(str, after[k])) ^ set(map(str, before[k])))] "
        "if before[k] != after[k] else None for k in before}))"
    )
    assert {k: v for k, v in json.loads(out).items() if v} == {}


def _third_party_imports() -> set[str]:
    stdlib = set(sys.stdlib_module_names)
    names = set()
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return {n for n in names if n not in stdlib and n != "coordrl" and n != "__future__"}


def test_every_import_is_a_declared_dependency():
    requires = importlib.metadata.requires("coordrl") or []
    declared = {
        re.split(r"[ ;<>=!\[~]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requires
    }
    owners = importlib.metadata.packages_distributions()
    missing = {}
    for name in sorted(_third_party_imports()):
        dists = {d.lower().replace("_", "-") for d in owners.get(name, [name])}
        if not dists & declared:
            missing[name] = sorted(dists)
    assert missing == {}, f"imported but not declared in pyproject.toml: {missing}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("coordrl-*.whl")
    return path


def test_the_wheel_ships_configs_inside_coordrl_only(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.startswith("coordrl")} == set(), top
    for required in (
        "coordrl/configs/ppo.yaml",
        "coordrl/configs/a2c.yaml",
        "coordrl/configs/dqn.yaml",
        "coordrl/configs/sweeps/pixel.yaml",
        "coordrl/agents/config.py",
        "coordrl/envs/factory.py",
        "coordrl/sweeps/layout.py",
        "coordrl/analysis/stats.py",
        "coordrl/training.py",
    ):
        assert required in names, f"{required} missing from {wheel.name}"


def test_readme_option_tables_match_the_parsers():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import readme_options
    finally:
        sys.path.pop(0)
    text = (ROOT / "README.md").read_text()
    blocks = readme_options.BLOCK_RE.findall(text)
    assert {b[1] for b in blocks} == set(readme_options.PARSERS), "a CLI has no options table"
    assert readme_options.render(text) == text, "run: python scripts/readme_options.py"
