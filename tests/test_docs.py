"""README.md and docs/ cannot drift from the code: generated tables are current, every name of a
benchmark or setting they use exists, every relative link resolves, and the README stays a
five-minute read whose Quick start CI runs."""
import re
from pathlib import Path

import pytest

from funcbench.catalogue import config
from funcbench import docs

ROOT = Path(__file__).resolve().parents[1]
PAGES = docs.files(ROOT)


def test_generated_tables_are_current():
    assert docs.stale(ROOT) == [], "run: python -m funcbench.docs"
    assert all(docs.MARKED.search(p.read_text()) for p in PAGES if p.name in ("README.md", "asv-suite.md"))


def test_an_unknown_table_is_one_line_and_exit_2(tmp_path, capsys, monkeypatch):
    (tmp_path / "README.md").write_text("<!-- generated: nope -->\n<!-- end: nope -->\n")
    monkeypatch.setattr(docs.config, "ROOT", tmp_path)
    assert docs.main(["--check"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_readme_is_a_five_minute_read_whose_quick_start_ci_runs():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    quick = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = quick.split("```bash\n", 1)[1].split("```", 1)[0]
    assert block.splitlines() == ["python3 dev.py dashboard", "python3 dev.py test"]
    assert "python3 dev.py test" in (ROOT / ".ci" / "run").read_text()


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"\w+://", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name}: broken link {target}"
        if anchor and linked.suffix == ".md":
            headings = [_anchor(h) for h in re.findall(r"^#+ (.*)$", linked.read_text(), re.M)]
            assert anchor in headings, f"{page.name}: no heading #{anchor} in {path or page.name}"


def test_every_benchmark_and_setting_named_exists():
    from benchmarks import benchmarks as suite

    classes = {name for name in dir(suite) if isinstance(getattr(suite, name), type)}
    for page in PAGES:
        text = page.read_text()
        for cls, method in re.findall(r"benchmarks\.(<model>|[A-Za-z_]\w*)\.(\w+)", text):
            owner = "ppl_simple_reg" if cls == "<model>" else cls  # a model class with every method
            assert owner in classes and hasattr(getattr(suite, owner), method), \
                f"{page.name}: benchmarks.{cls}.{method} is no benchmark of the suite"
        for name in set(re.findall(r"FUNCBENCH_[A-Z_]+", text)):
            assert name in {s.name for s in config.SETTINGS}, f"{page.name}: {name} is no setting"
