"""Out-of-scope text is flagged: script share + the model's confidence, thresholds from the manifest."""
import json

import numpy as np
import pytest

from conftest import SHARED_DATA, TITLES, make_bundle, make_rec_bundle
from edge_rec import BundleError, ContentClassifier, EdgeRecommender, load_bundle
from edge_rec.scope import Scope, script_share

SCOPE = {"languages": ["zh"], "domain": "test", "scripts": ["Han"], "min_script_share": 0.5,
         "min_primary_prob": 0.0}


@pytest.mark.parametrize("text,share", [("深圳房价", 1.0), ("Hello world news", 0.0), ("iPhone X发布", 0.5),
                                        ("2018!!", 0.0), ("比特币价格大涨 AI 芯片", 9 / 10)])
def test_script_share_counts_han_characters_and_other_words(text, share):
    assert script_share(text, ("Han",)) == pytest.approx(share)


def test_scope_needs_both_the_script_and_the_confidence():
    scope = Scope(("Han",), 0.5, 0.3)
    assert scope.judge("深圳房价", 0.9) == (True, 1.0)
    assert scope.judge("深圳房价", 0.2)[0] is False  # the model cannot place it
    assert scope.judge("Hello world", 0.9) == (False, 0.0)


def test_classifier_flags_text_outside_the_declared_scope(tiny_export, tmp_path):
    scoped = ContentClassifier(make_bundle(tmp_path / "b", tiny_export[2], extra={"scope": SCOPE}))
    results = scoped.classify(TITLES)
    assert [r.in_scope for r in results] == [t != "Hello world news" for t in TITLES]
    assert results[6].scope_score == 0.0 and results[0].to_dict()["in_scope"] is True
    unscoped = ContentClassifier(make_bundle(tmp_path / "u", tiny_export[2]))
    assert all(r.in_scope and r.scope_score == 1.0 for r in unscoped.classify(TITLES))  # no scope, no flag


@pytest.mark.parametrize("bad", [{**SCOPE, "scripts": ["Klingon"]}, {**SCOPE, "scripts": []},
                                 {**SCOPE, "min_script_share": 1.5}, {**SCOPE, "min_primary_prob": None}, "zh"])
def test_loader_refuses_a_bad_scope_section(tiny_export, tmp_path, bad):
    with pytest.raises(BundleError, match="scope"):
        load_bundle(make_bundle(tmp_path / "b", tiny_export[2], extra={"scope": bad}))


def test_recommend_ranks_out_of_scope_candidates_last_or_drops_them(tiny_export, tiny_ranking, tmp_path):
    out = make_rec_bundle(tmp_path / "rec", tiny_export, tiny_ranking)
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    (out / "manifest.json").write_text(json.dumps({**manifest, "scope": SCOPE}), encoding="utf-8")
    rec = EdgeRecommender(out)
    pool = [{"id": i, "text": t} for i, t in enumerate(TITLES)]
    ranked = rec.recommend({"history": []}, pool, k=8, recall_top=8, tag_top=8)
    assert ranked[-1].id == 6 and not ranked[-1].in_scope and all(r.in_scope for r in ranked[:-1])
    assert 6 not in {r.id for r in rec.recommend({"history": []}, pool, k=8, out_of_scope="drop")}
    kept = rec.recommend({"history": []}, pool, k=8, recall_top=8, tag_top=8, out_of_scope="keep")
    assert [r.id for r in kept] == [r.id for r in sorted(kept, key=lambda r: -r.score)]
    with pytest.raises(ValueError, match="out_of_scope"):
        rec.recommend({"history": []}, pool, out_of_scope="hide")


@pytest.mark.skipif(not (SHARED_DATA / "ag_news_test").is_dir(), reason="../shared/data not present")
def test_shipped_bundle_flags_english_and_keeps_chinese_news():
    """The targets: >= 95% of English news titles flagged, <= 2% of held-out in-scope titles flagged."""
    import csv

    bundle = load_bundle()
    measured = bundle.manifest["scope"]["measured"]
    assert measured["ag_news_english_flagged"] >= 0.95 and measured["in_scope_test_flagged"] <= 0.02
    with open(SHARED_DATA / "ag_news_test" / "test.csv", encoding="utf-8", newline="") as f:
        english = [row["title"] for row, _ in zip(csv.DictReader(f), range(300))]
    clf = ContentClassifier(bundle, profile="pc")
    assert np.mean([not r.in_scope for r in clf.classify(english)]) >= 0.95
