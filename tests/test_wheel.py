"""A non-editable install works: the wheel carries the default bundle and the demo data, installs no generic
top-level package, and `edge-rec demo` plus the README's API example run from another directory (slow: builds the
wheel and installs it with its runtime dependencies into a fresh virtual environment)."""
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow

API_EXAMPLE = """
from edge_rec import ContentClassifier, EdgeRecommender, default_bundle_path, load_bundle
clf = ContentClassifier(profile="phone")
r = clf.classify("上港1:3不敌鹿岛鹿角，是运气不好，还是心态不好？")[0]
assert r.primary == "sports", r
assert load_bundle(default_bundle_path()).metrics["student_int8_onnx"]["accuracy"] > 0.5
recs = EdgeRecommender().recommend({"history": [{"id": "a1", "text": "上港1:3不敌鹿岛鹿角"}]},
                                   [{"id": "n1", "text": "詹姆斯带队取胜"}, {"id": "n2", "text": "宝马新车发布"}], k=2)
assert len(recs) == 2
print("api ok", default_bundle_path())
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
    api = subprocess.run([str(py), "-c", API_EXAMPLE], cwd=elsewhere, capture_output=True, text=True, timeout=300)
    assert api.returncode == 0, api.stderr
    assert "site-packages" in api.stdout
    version = subprocess.run([str(env_dir / "bin" / "edge-rec"), "--version"], capture_output=True, text=True)
    assert version.stdout.strip().startswith("edge-rec ")
