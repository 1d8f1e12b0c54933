"""The package's shape: no import cycles among ocrframe's modules (the graph is built from the
source), plugins import only the public API, every component reaches the registries through the
plugin hook, and importing the package stays cheap."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import PLUGIN_TEMPLATE, REPO

PACKAGE = REPO / "ocrframe"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported_names(path: Path, name: str) -> set[str]:
    """Every module an import statement of ``path`` names (in functions too), as dotted names;
    ``from a import b`` names both ``a`` and ``a.b``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and path.name == "__init__.py":
            found.add(node.value)  # modules the package imports by name, when an attribute is first used
    return found


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {name: {m for m in imported_names(path, name) if m in modules and m != name}
            for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_import_graph_is_read_from_the_source():
    graph = import_graph()
    assert "ocrframe.registry" in graph["ocrframe.plugins"]
    assert "ocrframe.checkpoint" in graph["ocrframe.inference"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_ocrframe_modules_import_each_other_without_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_plugins_import_only_the_public_api():
    import ocrframe

    sources = [*REPO.glob("plugins/*/ocrframe_*/*.py"), *REPO.glob("plugins/*/benchmarks/*.py"),
               *(PLUGIN_TEMPLATE / "ocrframe_tinyconv").glob("*.py")]
    assert len(sources) > 10
    private = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                private += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("ocrframe.")]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ocrframe":
                names = {alias.name for alias in node.names}
                if node.module != "ocrframe" or not names <= set(ocrframe.__all__):
                    private.append(f"{path.name}: from {node.module} import {', '.join(sorted(names))}")
    assert not private, "plugins reach past ocrframe's public API: " + "; ".join(private)
    for name in ocrframe.__all__:
        assert getattr(ocrframe, name) is not None


def test_every_core_component_is_registered_through_the_plugin_hook():
    from mmengine import registry as mm

    from ocrframe.plugins import load_plugins
    from ocrframe.registry import SLOTS

    load_plugins()
    slot_registries = {id(registry) for _, registry in SLOTS}
    for name, registry in SLOTS:
        for component, origin in registry.origins.items():
            if registry.module_dict[component].__module__.startswith("ocrframe."):
                assert origin.plugin == "core", f"{name} {component} was registered by {origin}"
    runner_pieces = {name: set(registry.module_dict) for name, registry in SLOTS if name in SLOTS.RUNNER_NAMES}
    for expected, slot in [("TimeBudgetHook", "hook"), ("AutocastOptimWrapper", "optim_wrapper"),
                           ("ResumableIterBasedTrainLoop", "loop"), ("WidthBucketBatchSampler", "data_sampler"),
                           ("pad_collate", "function"), ("AnyDeviceDDP", "model_wrapper")]:
        assert expected in runner_pieces[slot]
        assert getattr(SLOTS, slot).origins[expected].plugin == "core"
    assert "AnyDeviceDDP" in mm.MODEL_WRAPPERS.module_dict  # where the Runner looks model wrappers up
    for root in (r for r in vars(mm).values() if isinstance(r, mm.Registry) and r.parent is None):
        child = root.children.get("ocrframe")
        if child is not None and id(child) not in slot_registries:
            assert not child.module_dict, f"{root.name}: registered outside the slots: {sorted(child.module_dict)}"


def test_importing_the_package_is_cheap():
    script = (
        "import sys\n"
        "from ocrframe import hookimpl\n"
        "from mmengine.runner import CheckpointLoader\n"
        "heavy = ['onnx', 'onnxruntime', 'rapidfuzz', 'editdistance', 'ocrframe.inference', 'ocrframe.model',\n"
        "         'ocrframe.checkpoint', 'ocrframe_ctc']\n"
        "print(' '.join(m for m in heavy if m in sys.modules) or '-')\n"
        "print(CheckpointLoader._schemes[''].__module__)\n"
        "from ocrframe import Charset\n"
        "import ocrframe.checkpoint\n"
        "print(CheckpointLoader._schemes[''].__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded, loader_on_import, loader_when_used = result.stdout.split()
    assert loaded == "-", f"importing ocrframe imported {loaded}"
    assert loader_on_import.startswith("mmengine.")
    assert loader_when_used == "ocrframe.checkpoint"
