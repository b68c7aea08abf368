"""The house keeps its shape (docs/architecture.md, "The rooms"): each room of ops/ imports only the
rooms below it, kernels/ import nothing of ours, no project module imports itself through a circle,
the environment is read in one place, and every asset lives in a module named after it."""

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("ops", "kernels", "assets", "pipelines")
LEAVES = {"ops.occ3d", "ops.geometry", "ops.runtime", "ops.hub", "ops.configs", "ops.report"}
# room -> the rooms it may import (a room always may import itself)
ALLOWED = {
    **{leaf: {"ops.occ3d"} for leaf in LEAVES},
    "ops.data": LEAVES,
    "ops.storage": LEAVES | {"ops.data"},
    "ops.evaluation": LEAVES | {"ops.data", "ops.storage"},
    "ops.perception": LEAVES | {"ops.data", "ops.storage"},
    "ops.fusion": LEAVES | {"ops.data", "ops.storage", "kernels"},
    "ops.model": LEAVES | {"ops.data", "ops.storage", "ops.evaluation"},
    "ops.demo_world": LEAVES | {"ops.data", "ops.storage", "ops.fusion"},
    "kernels": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str) -> set[str]:
    """Project modules a file imports anywhere (module level or inside functions)."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def room(module: str) -> str:
    """ops.fusion.lift -> ops.fusion; ops.occ3d -> ops.occ3d; kernels.vote -> kernels; assets.x -> assets."""
    parts = module.split(".")
    if parts[0] != "ops":
        return parts[0]
    return ".".join(parts[:2]) if len(parts) > 1 else "ops"


def violations(files: dict[str, str]) -> list[str]:
    """`module imports module (room -> room)` for every import outside ALLOWED; files: module -> source."""
    out = []
    for module, source in sorted(files.items()):
        here = room(module)
        if here not in ALLOWED:
            continue
        for target in sorted(imported(source)):
            there = room(target)
            if there not in (here, "ops") and there not in ALLOWED[here]:
                out.append(f"{module} imports {target} ({here} -> {there})")
    return out


def project_files() -> dict[str, str]:
    return {module_name(p): p.read_text() for pkg in ("ops", "kernels") for p in sorted((REPO / pkg).rglob("*.py"))}


def test_every_room_of_ops_is_listed():
    rooms = {room(m) for m in project_files()} - {"ops"}
    assert rooms <= set(ALLOWED), f"rooms without a rule in ALLOWED: {sorted(rooms - set(ALLOWED))}"


def test_rooms_import_only_downward():
    assert violations(project_files()) == []


def test_the_checker_sees_wrong_way_imports():
    """The rule fires on the imports the house once had (and would again)."""
    bad = {
        "ops.model.train": "from ops.perception.loading import resolve_device",
        "ops.fusion.scene": "def f():\n    from ops.perception.serving import ensure_ray\n",
        "ops.perception.base": "from ops.fusion.lift import check_intrinsics",
        "ops.storage.fingerprints": "from ops.perception.simulated import truth_file",
        "kernels.vote": "from ops.occ3d import GRID",
        "ops.data.keyframes": "import assets.frames",
    }
    found = violations(bad)
    assert {f.split()[0] for f in found} == set(bad), found
    assert violations({"ops.model.train": "from ops.storage.scene_store import SceneStore"}) == []


def test_no_import_circles_between_project_modules():
    files = {module_name(p): p.read_text() for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    graph = {
        m: {t for t in imported(src) if t in files and t != m and not m.startswith(t + ".")} for m, src in files.items()
    }
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for t in sorted(graph[m]):
            if state.get(t) == 1:
                pytest.fail("import circle: " + " -> ".join(path[path.index(t) :] + [t]))
            if t not in state:
                visit(t, path + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])


def test_the_environment_is_read_in_settings_only_and_never_written():
    found = []
    for pkg in PACKAGES:
        for p in (REPO / pkg).rglob("*.py"):
            rel, text = p.relative_to(REPO).as_posix(), p.read_text()
            if rel != "pipelines/settings.py" and re.search(r"os\.(environ|getenv)\W[^\n]*EASYOCC_", text):
                found.append(f"{rel} reads an EASYOCC_ variable")
            if re.search(r"os\.environ(\[[^\]]+\]\s*=[^=]|\.setdefault|\.update|\.pop)", text):
                found.append(f"{rel} writes the environment")
    assert found == []


def test_each_asset_lives_in_a_module_named_after_it():
    from pipelines.definitions import defs

    for key in defs.resolve_asset_graph().get_all_asset_keys():
        name = key.path[-1]
        assert (REPO / "assets" / f"{name}.py").is_file(), f"asset {name} is not in assets/{name}.py"


def test_nothing_refers_outside_the_repository():
    found = []
    for p in [*REPO.glob("*.md"), *(REPO / "docs").rglob("*.md"), *(REPO / "benchmarks").glob("*.md")] + [
        p for pkg in (*PACKAGES, "benchmarks", "tests") for p in (REPO / pkg).rglob("*.py")
    ]:
        if p.resolve() == Path(__file__).resolve():
            continue
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if re.search(r"\.\./shared|ALGORITHM\.md|ARCHITECTURE\.md|PERFORMANCE\.md|STYLE\.md", line):
                found.append(f"{p.relative_to(REPO)}:{i}: {line.strip()}")
    assert found == []
