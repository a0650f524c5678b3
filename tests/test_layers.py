"""The house's floors: every funcbench module imports only from floors below its own (or, inside
a package, its siblings), so no arrow points back up. A new module gets a floor here."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Lowest first. What a floor holds:
FLOORS = [
    ["config", "tools", "tasks", "timing", "environment", "engines", "shard_manifest", "cost_table", "packing",
     "files", "text"],  # settings, machine tools, task implementations, clocks, environment facts, CI engines' shard
    # variables, the shard contract, the committed cost table, longest-first packing, files set aside
    ["models"],                                                 # getters
    ["registry"],                                               # the single truth: cells, why_not, builds
    ["measurement", "injection", "compilation"],                # holding values, test-only work, compile cost
    ["process"],                                                # a benchmark process's state
    ["prepared", "instructions", "policy"],                     # the prepared op, counts, asv params
    ["cost_ratio", "cuda_memory", "report"],                    # one-value metrics, tables
    ["results_files"],                                          # the one rule for asv results files, one load each
    ["results_rows", "results_environment"],                    # their rows; what their environments ran on
    ["asv_driver", "asv_results"],                              # the one asv adapter, the one results reader
    ["interleave", "shard_plan", "reference_costs", "merge"],   # two sides measured together; the shard plan, the
    # cost table from a reference run; the shards' merge
    ["shard_run", "main_job", "dashboard"],                     # one shard's asv run; the main job's plan; the
    # published dashboard
    ["commands"],                                                    # the command line
    ["audit", "docs", "__main__"],                              # the suite's own measurements, generated docs
]
FLOOR = {name: index for index, names in enumerate(FLOORS) for name in names}


def funcbench_imports(path: Path):
    """The funcbench modules ``path`` imports, as top-level names under funcbench."""
    package = path.relative_to(ROOT).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = list(package[:len(package) - (node.level - 1)])
            parts = base + (node.module.split(".") if node.module else [])
            names = [parts + [alias.name] for alias in node.names] if node.module is None else [parts]
            found.update(tuple(n) for n in names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("funcbench"):
            found.add(tuple(node.module.split(".")))
        elif isinstance(node, ast.Import):
            found.update(tuple(a.name.split(".")) for a in node.names if a.name.startswith("funcbench"))
    return {parts[1] for parts in found if len(parts) > 1 and parts[0] == "funcbench"}


def test_every_module_has_a_floor_and_imports_only_from_below():
    arrows_up = []
    for path in sorted((ROOT / "funcbench").rglob("*.py")):
        name = path.relative_to(ROOT / "funcbench").parts[0].removesuffix(".py")
        if name == "__init__":
            continue
        assert name in FLOOR, f"funcbench/{name} has no floor in tests/test_layers.py"
        for imported in funcbench_imports(path) - {name}:
            assert imported in FLOOR, f"{path} imports funcbench.{imported}, which has no floor"
            if FLOOR[imported] >= FLOOR[name]:
                arrows_up.append(f"{path.relative_to(ROOT)} -> funcbench.{imported}")
    assert arrows_up == []

