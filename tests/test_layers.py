"""The house's floors are its folders: every funcbench module imports only from the packages below
its own (inside a package, also from its siblings), no arrow points back up, and no two modules
import each other, however indirectly. A new top-level folder or module gets a floor in funcbench.LAYERS."""
import ast
from pathlib import Path

import funcbench

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "funcbench"

# Lowest first: the folders (and the few top-level modules) of funcbench/, as funcbench.LAYERS names them.
FLOORS = [[name] for name, _ in funcbench.LAYERS]
FLOOR = {name: index for index, names in enumerate(FLOORS) for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path):
    """The funcbench modules ``path`` imports (dotted, from funcbench), with the line of each."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - (node.level - 1)] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # from pkg import module, or from module import name
                candidate = f"{module}.{alias.name}"
                found[candidate if _exists(candidate) else module] = node.lineno
        elif isinstance(node, ast.Import):
            found.update({a.name: node.lineno for a in node.names})
    return {name: line for name, line in found.items() if name.split(".")[0] == "funcbench" and name != "funcbench"}


def _exists(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _floor(dotted: str) -> str:
    return dotted.split(".")[1]


def test_every_folder_has_a_floor_and_imports_only_from_below():
    entries = {p.stem for p in PACKAGE.iterdir() if (p.suffix == ".py" or (p / "__init__.py").is_file())} - {"__init__"}
    assert sorted(entries - set(FLOOR)) == [], "give each new folder or module of funcbench/ a floor in funcbench.LAYERS"
    arrows_up = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = module_name(path)
        for imported, line in imports(path).items():
            if _floor(imported) != _floor(own) and FLOOR[_floor(imported)] >= FLOOR[_floor(own)]:
                arrows_up.append(f"{path.relative_to(ROOT)}:{line} -> {imported}")
    assert arrows_up == []


def test_no_module_imports_itself_through_others():
    graph = {module_name(p): set(imports(p)) for p in PACKAGE.rglob("*.py")}
    graph = {m: {i for i in deps if i in graph and i != m and not m.startswith(i + ".")} for m, deps in graph.items()}
    state, cycles = {}, []

    def visit(module, trail):
        state[module] = "open"
        for dep in sorted(graph[module]):
            if state.get(dep) == "open":
                cycles.append(" -> ".join(trail[trail.index(dep):] + [dep]))
            elif dep not in state:
                visit(dep, trail + [dep])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}
