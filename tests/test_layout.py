"""The code's shape: imports go one way (no cycles between modules, the library never imports the trainer,
lazy imports inside functions included), no private names cross modules, no file grows long without saying why, and both command lines
import cleanly."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("irvis", "train")
LONG_FILE_LINES = 420  # "about 400"
LONG_FILE_REASON = "Why one file:"  # a long module says why in its docstring, after these words


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _sources() -> dict[str, Path]:
    files = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")}
    files.update({p.stem: p for p in ROOT.glob("*.py")})
    return files


def _imports(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, list[str]]]:
    """(imported module, names) of every import statement: module level and inside functions alike, since a
    lazy import still ties the two modules together (it only defers the failure to the first call)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((base, [a.name for a in node.names]))
    return found


def _graph() -> tuple[dict[str, set[str]], list[str]]:
    """Edges between the project's modules (any import, lazy ones included), and every private name imported
    across modules."""
    sources = _sources()
    edges: dict[str, set[str]] = {m: set() for m in sources}
    private = []
    for module, path in sources.items():
        tree = ast.parse(path.read_text(), str(path))
        for target, names in _imports(tree, module, path.name == "__init__.py"):
            submodules = [f"{target}.{name}" for name in names if f"{target}.{name}" in sources]
            edges[module].update(submodules)  # from package import submodule
            if target in sources and len(submodules) < len(names):  # names defined by the module itself
                edges[module].add(target)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (*PACKAGES, *sources):
                private += [f"{module}: from {node.module} import {a.name}" for a in node.names
                            if a.name.startswith("_") and not a.name.startswith("__")]
    for module in edges:
        edges[module].discard(module)
    return edges, private


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_module_imports_are_acyclic():
    edges, _ = _graph()
    assert edges["train.loop"] >= {"train.checkpoint", "train.objective", "train.export"}  # the walk sees imports
    assert "train.loop" in edges["train.__main__"]  # and the ones inside functions
    assert _cycle(edges) is None, " -> ".join(_cycle(edges))


def test_a_lazy_import_is_an_edge():
    tree = ast.parse("def f():\n    from train.bench import rows\n    if x:\n        import train.loop\n")
    assert _imports(tree, "irvis.bench", False) == [("train.bench", ["rows"]), ("train.loop", [])]


def test_cycle_detection_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_library_never_imports_the_trainer():
    edges, _ = _graph()
    wrong = sorted(f"{m} -> {n}" for m, ns in edges.items() if m.split(".")[0] == "irvis"
                   for n in ns if n.split(".")[0] != "irvis")
    assert not wrong


def test_export_sits_above_the_checkpoint_layout_not_the_loop():
    edges, _ = _graph()
    assert "train.loop" not in edges["train.export"] and "train.checkpoint" in edges["train.export"]


def test_no_private_names_cross_modules():
    _, private = _graph()
    assert not private


def test_long_files_say_why():
    long = []
    for module, path in _sources().items():
        lines = len(path.read_text().splitlines())
        if lines > LONG_FILE_LINES and LONG_FILE_REASON not in (ast.get_docstring(ast.parse(path.read_text())) or ""):
            long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert not long, f"over {LONG_FILE_LINES} lines without '{LONG_FILE_REASON}' in the module docstring: {long}"


@pytest.mark.parametrize("package", PACKAGES)
def test_command_line_imports_cleanly(package):
    run = subprocess.run([sys.executable, "-m", package, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert f"python -m {package}" in run.stdout and not run.stderr.strip()


def test_the_space_configuration_is_the_readme_front_matter():
    """One source: a Space reads README.md's front matter; no second copy to drift from it."""
    import gradio
    from huggingface_hub import SpaceCard

    data = SpaceCard.load(ROOT / "README.md").data
    assert data.sdk == "gradio" and data.sdk_version == gradio.__version__ and (ROOT / data.app_file).is_file()
    assert not list(ROOT.glob("SPACE_README*"))
