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


def test_info_is_a_summary_and_json_the_whole_manifest(tiny_bundle):
    out = run("info", str(tiny_bundle))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("bundle tiny at") and len(out.stdout.splitlines()) <= 12
    assert "classify only" in out.stdout and ", ".join(LABELS) in out.stdout
    info = json.loads(run("info", str(tiny_bundle), "--json").stdout)
    assert info["name"] == "tiny" and info["primary_labels"] == LABELS and sum(info["file_bytes"].values()) > 0


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


def run_bytes(*args, stdin: bytes, env=None):
    import os
    return subprocess.run([sys.executable, "-m", "edge_rec", *args], capture_output=True, input=stdin,
                          env={**os.environ, **(env or {})})


def test_stdin_bad_line_keeps_the_good_ones_and_names_the_line(tiny_bundle):
    lines = TITLES[:3] + [""] + TITLES[3:5]
    out = run("classify", "--bundle", str(tiny_bundle), "-", stdin="\n".join(lines) + "\n")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert [json.loads(x)["text"] for x in out.stdout.splitlines()] == TITLES[:3]  # everything before line 4
    assert out.stderr.startswith("edge-rec: error: stdin line 4:") and len(out.stderr.splitlines()) == 1
    skip = run("classify", "--bundle", str(tiny_bundle), "--skip-bad", "-", stdin="\n".join(lines) + "\n")
    rows = [json.loads(x) for x in skip.stdout.splitlines()]
    assert skip.returncode == 0 and len(rows) == len(lines)  # one output line per input line, blanks included
    assert rows[3]["line"] == 4 and "empty" in rows[3]["error"] and rows[4]["text"] == TITLES[3]


def test_stdin_is_utf8_whatever_the_locale(tiny_bundle):
    body = "\n".join(TITLES[:3]).encode("utf-8") + b"\n"
    plain = run_bytes("classify", "--bundle", str(tiny_bundle), "-", stdin=body)
    latin = run_bytes("classify", "--bundle", str(tiny_bundle), "-", stdin=b"\xef\xbb\xbf" + body,  # with a BOM
                      env={"PYTHONIOENCODING": "latin-1", "LC_ALL": "C"})
    assert latin.returncode == 0 and latin.stdout == plain.stdout  # same bytes out, UTF-8
    bad = run_bytes("classify", "--bundle", str(tiny_bundle), "-", stdin=body + b"\xff\xfe oops\n")
    assert bad.returncode == 2 and b"stdin line 4: not valid UTF-8" in bad.stderr
    assert len(bad.stdout.splitlines()) == 3


def test_broken_pipe_and_unreadable_inputs_are_one_line(tiny_bundle, tmp_path):
    import os
    proc = subprocess.Popen([sys.executable, "-m", "edge_rec", "classify", "--bundle", str(tiny_bundle), "-"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader goes away at once, as `| head -0` would
    _, err = proc.communicate(("\n".join(TITLES) + "\n").encode() * 200)
    assert proc.returncode == 0 and b"Traceback" not in err
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000, encoding="utf-8")
    for user in (str(tmp_path), str(deep)):  # a directory, JSON nested too deeply
        out = run("recommend", "--user", user, "--items", str(deep))
        assert out.returncode == 2 and len(out.stderr.splitlines()) == 1 and "Traceback" not in out.stderr
    secret = tmp_path / "items.jsonl"
    secret.write_text("{}\n", encoding="utf-8")
    if os.geteuid() != 0:  # root reads anything
        secret.chmod(0)
        out = run("recommend", "--user", str(deep), "--items", str(secret))
        assert out.returncode == 2 and "Traceback" not in out.stderr


def test_classify_stream_is_bounded_and_in_order(tiny_bundle):
    from edge_rec import ContentClassifier

    clf = ContentClassifier(tiny_bundle, cache_size=0)
    texts = (TITLES[i % len(TITLES)] + f" {i}" for i in range(1000))  # a generator: never held whole
    results = list(clf.classify_stream(texts, chunk=64))
    read = []
    first = next(clf.classify_stream((read.append(t) or t for t in TITLES * 40), chunk=256))
    assert first.primary and len(read) == clf.batch_size  # the first result after one batch, not a whole chunk
    single = clf.classify([TITLES[5] + " 997"])[0]
    assert len(results) == 1000 and results[997].primary == single.primary
    got = list(clf.classify_stream(iter(["新闻", "  ", "故宫"]), skip_bad=True))
    assert isinstance(got[1], ValueError) and got[2].primary
    with pytest.raises(ValueError, match="text 1 is empty"):
        list(clf.classify_stream(["新闻", " "]))
    assert clf.classify(" " * 1_000_000 + "x")[0].primary  # a long run of whitespace before text is not "empty"
