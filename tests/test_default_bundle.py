"""The shipped bundle: integrity, recorded figures, and accuracy through the runtime's own tokenizer path."""
import numpy as np
import pytest

from conftest import SHARED_DATA
from edge_rec import ContentClassifier, default_bundle_path, load_bundle


@pytest.fixture(scope="module")
def bundle():
    return load_bundle(default_bundle_path())


def test_manifest_records_every_step(bundle):
    m = bundle.metrics
    for step in ("teacher_fp32_torch", "student_fp32_torch", "student_fp32_onnx", "student_int8_onnx"):
        assert {"accuracy", "macro_f1", "tag_micro_f1", "index_mae", "index_spearman"} <= set(m[step])
    assert m["int8_retention_of_teacher_accuracy"] >= 0.97
    assert m["parity_fp32_onnx_vs_torch_max_abs"] <= 1e-4
    assert sum(f["bytes"] for f in bundle.manifest["files"].values()) < 25_000_000
    assert len(bundle.primary_labels) == 15 and len(bundle.tags) == 300


def test_shipped_student_beats_its_yardstick(bundle):
    """The INT8 student above the TF-IDF + linear SVM trained on the same split, on the Toutiao test titles and on
    all test titles (the issue's target margin, 2 points, is not met yet: README)."""
    held = bundle.metrics["held_out"]
    for split in ("test_toutiao", "test"):
        assert held[split]["student_int8_onnx"]["accuracy"] > held[split]["tfidf_reference"]["accuracy"], split
    assert {i["name"] for i in bundle.manifest["models"]["classifier"]["inputs"]} == {"input_ids", "attention_mask",
                                                                                   "char_ids"}


def test_int8_graph_is_quantized(bundle):
    from edge_rec_export.bundle.quantize import float_matmuls, int8_weights
    path = bundle.model_file("classifier")
    assert int8_weights(path) >= 2 * 6  # 2 layers x (q, k, v, out, ff in, ff out)
    assert float_matmuls(path) == 0


@pytest.mark.skipif(not (SHARED_DATA / "toutiao_partial").is_dir(), reason="../shared/data not present")
def test_held_out_accuracy_through_the_runtime(bundle):
    """Raw test titles through tokenizer + session + post-processing agree with the accuracy measured at export."""
    from edge_rec_export.data.news_data import bundle_splits
    test = bundle_splits(SHARED_DATA, bundle.metrics)[2][:600]
    results = ContentClassifier(bundle, profile="pc").classify([e.title for e in test])
    acc = np.mean([bundle.primary_labels.index(r.primary) == e.label for r, e in zip(results, test)])
    recorded = bundle.metrics["student_int8_onnx"]["accuracy"]
    assert acc >= recorded - 0.04, f"runtime accuracy {acc:.3f} on 600 test titles vs {recorded} at export"


@pytest.mark.skipif(not (SHARED_DATA / "toutiao_partial").is_dir(), reason="../shared/data not present")
def test_answers_do_not_depend_on_batch_mates(bundle):
    """1,000 held-out titles, each alone (batch 1) and 64 at a time: no top-1 label changes and primary
    probabilities agree within 1e-3 (static INT8: fixed activation scales; dynamic INT8 changed 7 labels here)."""
    from edge_rec_export.data.news_data import bundle_splits
    titles = [e.title for e in bundle_splits(SHARED_DATA, bundle.metrics)[2][:1000]]
    alone = ContentClassifier(bundle, batch_size=1, cache_size=0).classify(titles)
    batched = ContentClassifier(bundle, batch_size=64, cache_size=0).classify(titles)
    assert sum(a.primary != b.primary for a, b in zip(alone, batched)) == 0
    assert max(abs(a.primary_prob - b.primary_prob) for a, b in zip(alone, batched)) <= 1e-3
    assert sum(a.labels != b.labels for a, b in zip(alone, batched)) == 0


def test_manifest_records_the_ranking_models(bundle):
    r = bundle.metrics["ranking"]
    for step in ("ctr_teacher_fp32_torch", "ctr_student_fp32_torch", "recall_dssm_fp32_onnx",
                 "ctr_student_fp32_onnx", "ctr_student_int8_onnx"):
        assert 0.5 < r[step]["auc"] <= 1.0
    assert max(r["parity_fp32_onnx_vs_torch_max_abs"].values()) <= 1e-4
    assert r["ctr_student_fp32_onnx"]["auc"] > r["recall_dssm_fp32_onnx"]["auc"]  # ranking beats recall
    assert {"recall", "ranker"} <= set(bundle.manifest["models"])


def test_recommendations_follow_the_users_history(bundle):
    """A user who clicked only sports titles gets the other sports titles near the top of 60 real titles."""
    import json

    from edge_rec import EdgeRecommender
    from edge_rec.cli import EXAMPLES

    items = [json.loads(line) for line in (EXAMPLES / "items.jsonl").read_text(encoding="utf-8").splitlines()]
    rec = EdgeRecommender(bundle)
    sports = [{"id": it["id"], "text": it["text"]} for it, c in
              zip(items, rec.classifier.classify([it["text"] for it in items])) if c.primary == "sports"]
    pool = [it for it in items if it["id"] not in {s["id"] for s in sports[:2]}]
    ranked = rec.recommend({"history": sports[:2]}, pool, k=len(pool), recall_top=len(pool))
    ranks = [i for i, r in enumerate(ranked) if r.primary == "sports"]
    assert len(ranks) >= 2 and np.mean(ranks) < len(pool) / 4, [(r.primary, round(r.score, 3)) for r in ranked]


@pytest.mark.skipif(not (SHARED_DATA / "toutiao_partial").is_dir(), reason="../shared/data not present")
def test_stated_interests_change_the_results(bundle):
    """A pool of 300 held-out titles, 20 per category: an account tag alone fills the top 10 with its category; a
    history in A plus an account tag B gets both; an unknown tag is an error naming the closest labels."""
    from collections import defaultdict

    from edge_rec import EdgeRecommender
    from edge_rec_export.data.news_data import NAMES, bundle_splits

    by_label = defaultdict(list)
    for e in bundle_splits(SHARED_DATA, bundle.metrics)[2]:
        by_label[NAMES[e.label]].append(e.title)
    pool = [{"id": f"{name}-{i}", "text": t} for name in NAMES for i, t in enumerate(by_label[name][:20])]
    rec = EdgeRecommender(bundle, profile="pc")
    category = lambda r: r.id.rsplit("-", 1)[0]  # noqa: E731  (the title's true category)
    for tag in ("game", "sports", "car", "entertainment", "tech"):
        top = rec.recommend({"interest_tags": [tag]}, pool, k=10)
        assert sum(category(r) == tag for r in top) >= 8, (tag, [category(r) for r in top])
    no_tags = [r.id for r in rec.recommend({}, pool, k=10)]
    assert no_tags != [r.id for r in rec.recommend({"interest_tags": ["game"]}, pool, k=10)]
    for a, b in (("sports", "car"), ("game", "finance"), ("entertainment", "sports")):
        history = [{"id": f"h{i}", "text": t} for i, t in enumerate(by_label[a][20:27])]
        got = {category(r) for r in rec.recommend({"interest_tags": [b], "history": history}, pool, k=10)}
        assert {a, b} <= got or (b == "finance" and {a, "stock"} <= got), (a, b, got)
    with pytest.raises(ValueError, match="closest: .*'game'"):
        rec.recommend({"interest_tags": ["gmae"]}, pool)


def test_demo_runs_on_the_shipped_bundle(capsys):
    from edge_rec.cli import main

    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "top 5 of 58" in out and "for account" in out and "for history" in out and "in_scope=False" in out
