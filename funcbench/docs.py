"""The tables in README.md and docs/ that restate code, made from the code so they cannot drift.

A generated table sits between two markers in a markdown file::

    <!-- generated: tiers -->
    ...
    <!-- end: tiers -->

    python -m funcbench.docs            # rewrite every marked table from the code
    python -m funcbench.docs --check    # exit 1 naming each table that differs (tests/test_docs.py)
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from funcbench.catalogue import config, metrics, registry
from funcbench.measurement import policy
from funcbench.measurement.instructions import COUNTING
from funcbench.catalogue.tasks import APIS, TASKS, task_label

FILES = ("README.md", "docs/*.md")
MARKED = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end: (?P=name) -->)", re.S)


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    line = lambda cells: "| " + " | ".join(str(c) for c in cells) + " |\n"  # noqa: E731
    return line(header) + "|" + "---|" * len(header) + "\n" + "".join(line(r) for r in rows)


def _tasks(tasks: Sequence[str]) -> str:
    return "all ten" if tuple(tasks) == TASKS else ", ".join(tasks)


def models_table() -> str:
    """What the suite measures, one row per model of the registry."""
    rows = []
    for model, spec in registry.MODELS.items():
        eager = {api: registry.selected_tasks(model, api) for api in ("autograd", "func")}
        tasks = _tasks(eager["autograd"]) + ("" if eager["func"] else " (autograd only)")
        compiled = registry.selected_tasks(model, "compile")
        if compiled:
            tasks += "; " + ", ".join(task_label(t, "compile") for t in compiled)
        needs = ", ".join(spec.requires) or "—"
        rows.append((model, spec.summary, spec.tier, tasks, spec.small, needs))
    return _table(("model", "what", "tier", "default tasks", "`small` preset (inputs only)", "needs"), rows)


def settings_table() -> str:
    rows = [(f"`{s.name}`", s.default or "(unset)", s.accepts, s.what) for s in config.SETTINGS]
    return _table(("variable", "default", "values", "what"), rows)


def _models_of(tier: str) -> str:
    return ", ".join(m for m, spec in registry.MODELS.items() if spec.tier == tier)


def _policy_row(label: str, models: str, p: dict) -> tuple:
    low, high, seconds = p["repeat"]
    warmup = f"{p['warmup_time']} s" if p["warmup_time"] else "the checked call"
    return (label, models, p["rounds"], f"{low}–{high}, up to {seconds} s", warmup, f"{p['timeout']} s")


def tiers_table() -> str:
    """asv's sampling per tier (policy.TIER_POLICIES) and for compiled cells (policy.COMPILED_POLICY)."""
    rows = [_policy_row(tier, _models_of(tier), p) for tier, p in policy.TIER_POLICIES.items()]
    rows.append(_policy_row("compiled cells (`time_compiled_op`, any tier)", "—", policy.COMPILED_POLICY))
    return _table(("tier", "models", "rounds", "samples per round (`repeat`)", "warm-up", "timeout"), rows)


def counting_table() -> str:
    """Calls per counted cell (instructions.COUNTING) and how many cells each tier has by default."""
    rows = []
    for tier, (warmup, calls) in COUNTING.items():
        cells = len(registry.select([tier]))
        rows.append((f"`{tier}`" + (" (default)" if config.INSTRUCTIONS.default == tier else ""), _models_of(tier),
                     cells, warmup, calls))
    return _table(("selection", "models", "eager cells", "uncounted calls after the checked one", "counted calls"), rows)


def metrics_table() -> str:
    """The metric vocabulary (funcbench.catalogue.metrics)."""
    rows = [(f"`{m.name}`", m.unit, ", ".join(f"`{x}`" for x in m.methods), m.clock or "—", ", ".join(m.devices),
             m.what) for m in metrics.VOCABULARY]
    return _table(("metric", "unit", "asv methods", "clock", "devices", "what"), rows)


def apis_table() -> str:
    from funcbench.catalogue.tasks import API_LABELS

    rows = [(f"`api={api}`", API_LABELS[api], f"`{task_label('vjp', api)}`") for api in APIS]
    return _table(("api", "what", "report row (vjp)"), rows)


def _what(path: Path) -> str:
    """The first sentence of a module's docstring (of a package: its __init__'s)."""
    source = path / "__init__.py" if path.is_dir() else path
    doc = ast.get_docstring(ast.parse(source.read_text())) if source.is_file() else None
    if not doc:
        return "—"
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    return re.split(r"(?<=\.)\s", paragraph, maxsplit=1)[0].replace("|", "\\|")


def modules_table() -> str:
    """Every module of funcbench/, by layer (funcbench.LAYERS: the folders), with its docstring's first line."""
    import funcbench

    package = Path(funcbench.__file__).parent
    rows = []
    for layer, what in funcbench.LAYERS:
        path = package / layer if (package / layer).is_dir() else package / f"{layer}.py"
        rows.append((f"**`{layer}/`**" if path.is_dir() else f"**`{layer}.py`**", what))
        if path.is_dir():
            for module in sorted(p for p in path.iterdir() if p.suffix == ".py" and p.name != "__init__.py"
                                 or (p / "__init__.py").is_file()):
                rows.append((f"`{layer}/{module.name}{'/' if module.is_dir() else ''}`", _what(module)))
    return _table(("module", "what it does"), rows)


TABLES: Dict[str, Callable[[], str]] = {"models": models_table, "settings": settings_table, "tiers": tiers_table,
                                        "counting": counting_table, "apis": apis_table, "modules": modules_table,
                                        "metrics": metrics_table}


def files(root: Optional[Path] = None) -> List[Path]:
    root = root or config.ROOT
    return sorted({p for pattern in FILES for p in root.glob(pattern)})


class UnknownTable(KeyError):
    """A marker names a table funcbench.docs does not make."""


def render(name: str) -> str:
    if name not in TABLES:
        raise UnknownTable(f"no generated table {name!r}; tables: {', '.join(TABLES)}")
    return TABLES[name]()


def regenerate(text: str) -> str:
    """``text`` with every marked table made anew."""
    return MARKED.sub(lambda m: m.group(1) + render(m.group("name")) + m.group(4), text)


def stale(root: Optional[Path] = None) -> List[str]:
    """'file: table' for every marked table that differs from what the code makes."""
    root = root or config.ROOT
    out = []
    for path in files(root):
        text = path.read_text()
        for match in MARKED.finditer(text):
            if match.group("body") != render(match.group("name")):
                out.append(f"{path.relative_to(root)}: {match.group('name')}")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m funcbench.docs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say which tables differ (exit 1 if any)")
    args = parser.parse_args(argv)
    try:
        return _rewrite(args.check)
    except UnknownTable as error:
        print(f"python -m funcbench.docs: {error.args[0]}", file=sys.stderr)
        return 2


def _rewrite(check: bool) -> int:
    if check:
        differ = stale()
        for line in differ:
            print(f"stale generated table: {line} (python -m funcbench.docs rewrites it)", file=sys.stderr)
        return 1 if differ else 0
    for path in files():
        text = path.read_text()
        new = regenerate(text)
        if new != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(config.ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
