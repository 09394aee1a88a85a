"""The README as a front door (issue 37): short, every Python block runs as pasted, every rendered figure equal to
what reports/ and the shipped manifest say, every report indexed."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)


def test_the_readme_is_short_and_names_both_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 300
    assert "pip install -e . && edge-rec demo" in text and 'pip install -e ".[export,dev]" && python -m pytest' in text


def test_every_python_block_of_the_readme_runs_as_pasted_from_another_directory(tmp_path):
    blocks = python_blocks(ROOT / "README.md")
    assert blocks
    for block in blocks:
        run = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]


def test_the_rendered_pages_equal_the_committed_ones():
    from edge_rec_export.render_docs import pages, render

    stale = [str(p.relative_to(ROOT)) for p in pages() if render(p.read_text(encoding="utf-8")) !=
             p.read_text(encoding="utf-8")]
    assert not stale, f"run `python -m edge_rec_export.render_docs`: {stale} differ from their rendering"


def test_every_report_is_indexed_and_every_indexed_report_exists():
    from edge_rec_export.render_docs import INDEX

    assert set(INDEX) == {p.name for p in (ROOT / "reports").glob("*.json")}
    for name, (_, page) in INDEX.items():
        assert (ROOT / "docs" / page).is_file(), f"{name}: page {page} does not exist"


@pytest.mark.parametrize("page", sorted((ROOT / "docs").glob("*.md")), ids=lambda p: p.name)
def test_links_between_pages_resolve(page):
    for target in re.findall(r"\]\(([\w./-]+\.md)(?:#[\w-]+)?\)", page.read_text(encoding="utf-8")):
        assert (page.parent / target).is_file(), f"{page.name} links to a missing {target}"
