"""The edge-rec CLI, run as a user would."""
import json
import subprocess
import sys

import pytest

from conftest import LABELS, TITLES


def run(*args, stdin=None):
    return subprocess.run([sys.executable, "-m", "edge_rec", *args], capture_output=True, text=True, input=stdin)


@pytest.mark.parametrize("cmd", [[], ["info"], ["classify"], ["demo"]])
def test_help(cmd):
    out = run(*cmd, "--help")
    assert out.returncode == 0 and "usage: edge-rec" in out.stdout


def test_info(tiny_bundle):
    out = run("info", str(tiny_bundle))
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["name"] == "tiny" and info["primary_labels"] == LABELS and info["bytes_total"] > 0


def test_classify_json_lines_in_order(tiny_bundle):
    out = run("classify", "--bundle", str(tiny_bundle), *TITLES[:3])
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["text"] for r in rows] == TITLES[:3]
    for r in rows:
        assert r["primary"] in LABELS and {"primary_prob", "tags", "index"} <= set(r)


def test_classify_stdin(tiny_bundle):
    out = run("classify", "--bundle", str(tiny_bundle), "-", stdin="\n".join(TITLES[:2]) + "\n")
    assert out.returncode == 0, out.stderr
    assert len(out.stdout.splitlines()) == 2


def test_clean_errors(tmp_path, tiny_bundle):
    out = run("classify", "--bundle", str(tmp_path / "missing"), "x")
    assert out.returncode == 2 and out.stderr.startswith("edge-rec: error: bundle directory not found")
    assert "Traceback" not in out.stderr
    out = run("classify", "--bundle", str(tiny_bundle), "   ")
    assert out.returncode == 2 and "text 0 is empty" in out.stderr
