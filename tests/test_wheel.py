"""A non-editable install works: the wheel carries the default bundle and the demo data, installs no generic
top-level package, and `edge-rec demo` plus the README's Python blocks run from another directory (slow: builds the
wheel and installs it with its runtime dependencies into a fresh virtual environment)."""
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from test_docs import python_blocks

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

INSTALLED = """
from edge_rec import default_bundle_path, load_bundle
assert load_bundle(default_bundle_path()).metrics["student_int8_onnx"]["accuracy"] > 0.5
print(default_bundle_path())
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(ROOT)], check=True)
    return next(out.glob("edge_rec-*.whl"))


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"edge_rec", "edge_rec_export"}, tops  # nothing under a generic name such as `export`
    for f in ("manifest.json", "classifier.onnx", "tokenizer.json", "recall.onnx", "ranker.onnx"):
        assert f"edge_rec/assets/zh-news/{f}" in names
    assert {"edge_rec/examples/items.jsonl", "edge_rec/examples/user.json", "edge_rec/examples/titles.txt",
            "edge_rec/py.typed"} <= set(names)


def test_installed_wheel_runs_demo_and_api_from_elsewhere(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", str(wheel)], check=True)
    elsewhere = tmp_path / "app"
    elsewhere.mkdir()
    demo = subprocess.run([str(env_dir / "bin" / "edge-rec"), "demo"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "top 5 of 58" in demo.stdout and str(ROOT) not in demo.stdout  # the installed copy, not the checkout
    for block in python_blocks(ROOT / "README.md"):  # the README's own examples, as pasted
        api = subprocess.run([str(py), "-c", block], cwd=elsewhere, capture_output=True, text=True, timeout=300)
        assert api.returncode == 0, api.stderr
    where = subprocess.run([str(py), "-c", INSTALLED], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert where.returncode == 0 and "site-packages" in where.stdout, where.stderr
    version = subprocess.run([str(env_dir / "bin" / "edge-rec"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip().startswith("edge-rec ")
