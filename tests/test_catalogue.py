"""The catalogue job (edge_rec/catalogue.py): streaming, resumable by id, JSON lines or Parquet, imported by the
store as written; run on the shipped bundle with the demo's 58 held-out titles."""
import json
import subprocess
import sys

import numpy as np
import pytest

from edge_rec import ContentClassifier, Store
from edge_rec.catalogue import CatalogueError, classified_items, classify_catalogue
from edge_rec.resources import shipped

ITEMS = shipped("examples") / "items.jsonl"


@pytest.fixture(scope="module")
def clf():
    return ContentClassifier(profile="pc", cache_size=0)


@pytest.fixture(scope="module")
def items() -> list[dict]:
    return [json.loads(line) for line in ITEMS.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def test_rows_are_the_classifier_answers_and_a_rerun_skips_them(tmp_path, clf, items):
    out = tmp_path / "out.jsonl"
    assert classify_catalogue(clf, ITEMS, out, chunk=16) == {"written": 58, "skipped": 0, "bad": 0}
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    want = clf.classify([it["text"] for it in items])
    assert [r["id"] for r in rows] == [it["id"] for it in items]
    for row, w in zip(rows, want):
        assert row["primary"] == w.primary and abs(row["primary_prob"] - w.primary_prob) < 1e-5
        np.testing.assert_allclose(row["vector"], w.vector, atol=1e-5)
        assert row["bundle"] == clf.bundle.classification_key
    assert classify_catalogue(clf, ITEMS, out) == {"written": 0, "skipped": 58, "bad": 0}
    assert len(out.read_text(encoding="utf-8").splitlines()) == 58


def test_a_crash_mid_line_is_resumed_without_loss_or_duplicates(tmp_path, clf, items):
    out = tmp_path / "out.jsonl"
    classify_catalogue(clf, write_jsonl(tmp_path / "first.jsonl", items[:20]), out)
    text = out.read_text(encoding="utf-8")
    out.write_text(text[:-40], encoding="utf-8")  # the last row cut short, as a killed process leaves it
    assert classify_catalogue(clf, ITEMS, out) == {"written": 39, "skipped": 19, "bad": 0}
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert sorted(ids) == sorted(it["id"] for it in items)


def test_the_partial_last_line_is_found_across_blocks(tmp_path):
    from edge_rec.catalogue import _drop_partial_line

    for text, want in (("a\nbbbbbbbbb", "a\n"), ("a\nb\n", "a\nb\n"), ("cccccc", "")):
        path = tmp_path / "o.jsonl"
        path.write_text(text)
        _drop_partial_line(path, block=3)
        assert path.read_text() == want


@pytest.mark.parametrize("fmt", ["fp16", "int8"])
def test_parquet_parts_with_compact_vectors(tmp_path, clf, items, fmt, monkeypatch):
    pytest.importorskip("pyarrow")
    import edge_rec.catalogue as catalogue

    monkeypatch.setattr(catalogue, "PART_ROWS", 25)  # several parts, each renamed into place whole
    out = tmp_path / "out.parquet"
    classify_catalogue(clf, ITEMS, out, vector=fmt)
    names = sorted(p.name for p in out.iterdir())
    assert len(names) >= 2 and all(n.startswith("part-") and n.endswith(".parquet") for n in names)  # no temp files
    got = list(classified_items(out))
    want = clf.classify([it["text"] for it in items])
    assert [g[0] for g in got] == [it["id"] for it in items]
    cos = [float(g[2].vector @ w.vector) / float(np.linalg.norm(g[2].vector)) for g, w in zip(got, want)]
    assert min(cos) > 0.999 and all(g[2].primary == w.primary for g, w in zip(got, want))
    with pytest.raises(CatalogueError, match="resume it with the same bundle and --vector-format"):
        classify_catalogue(clf, ITEMS, out, vector="fp32" if fmt == "int8" else "int8")


def test_parquet_input_gives_the_same_rows(tmp_path, clf, items):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    src = tmp_path / "items.parquet"
    pq.write_table(pa.Table.from_pylist(items), src)
    classify_catalogue(clf, src, tmp_path / "a.jsonl")
    classify_catalogue(clf, ITEMS, tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_text(encoding="utf-8") == (tmp_path / "b.jsonl").read_text(encoding="utf-8")


def test_a_bad_record_stops_the_job_keeping_what_was_written_or_is_listed(tmp_path, clf, items):
    src = write_jsonl(tmp_path / "in.jsonl", [*items[:10], {"id": "blank", "text": " "}, items[20]])
    out = tmp_path / "out.jsonl"
    with pytest.raises(CatalogueError, match=r"in.jsonl:11: id 'blank': 'text' must be a non-empty string"):
        classify_catalogue(clf, src, out, chunk=4)
    assert len(out.read_text(encoding="utf-8").splitlines()) == 10  # everything before the bad line
    assert classify_catalogue(clf, src, out, skip_bad=True) == {"written": 1, "skipped": 10, "bad": 1}
    assert "in.jsonl:11" in (tmp_path / "out.jsonl.errors.jsonl").read_text(encoding="utf-8")


def test_the_store_imports_the_output_without_classifying(tmp_path, clf, items):
    out = tmp_path / "out.jsonl"
    classify_catalogue(clf, ITEMS, out, vector="int8")
    with Store(tmp_path / "s.db") as store:
        calls = []
        real = store.recommender.classifier.classify
        store.recommender.classifier.classify = lambda texts, *a, **k: calls.append(len(texts)) or real(texts, *a, **k)
        assert store.add_classified(out) == 58 and len(store) == 58 and calls == []
        recs = store.recommend("u1", k=5, interest_tags=["sports"])
        assert len(recs) == 5 and all(r.id in {it["id"] for it in items} for r in recs)
    rows = out.read_text(encoding="utf-8").splitlines()
    out.write_text("\n".join(rows[:3] + [rows[3].replace(clf.bundle.classification_key.split('"')[-2], "x")]) + "\n",
                   encoding="utf-8")
    with Store(tmp_path / "t.db") as store, pytest.raises(ValueError, match="row 4 .* another bundle"):
        store.add_classified(out)


def test_cli_catalogue_job(tmp_path):
    run = [sys.executable, "-m", "edge_rec", "classify"]
    out = subprocess.run([*run, "--input", str(ITEMS), "--output", str(tmp_path / "o.jsonl"), "--vector-format",
                          "none"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"output": str(tmp_path / "o.jsonl"), "written": 58, "skipped": 0, "bad": 0}
    bad = subprocess.run([*run, "--input", str(ITEMS)], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--output" in bad.stderr
    imported = subprocess.run([sys.executable, "-m", "edge_rec", "store", "--db", str(tmp_path / "s.db"), "import",
                               str(tmp_path / "o.jsonl")], capture_output=True, text=True)
    assert imported.returncode == 2 and "no vector" in imported.stderr and "Traceback" not in imported.stderr
