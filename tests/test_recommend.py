"""EdgeRecommender on tiny models built in code: the pipeline maths, the ONNX ranking models, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import TITLES, make_rec_bundle
from edge_rec import BundleError, Classification, EdgeRecommender, Item, User
from edge_rec.cli import main as cli
from edge_rec.recall import tag_match, top_d
from edge_rec_export.bundle.quantize import float_matmuls

POOL = [{"id": f"c{i}", "text": t + f" {i}"} for i, t in enumerate(TITLES * 3)]
HISTORY = [{"id": f"h{i}", "text": t} for i, t in enumerate(TITLES[:5])]


def cls(primary="tech", tags=(), index=0.5, dim=16):
    v = np.ones(dim, dtype=np.float32) / np.sqrt(dim)
    return Classification(primary, 0.9, tuple((t, 0.8) for t in tags), index, v)


@pytest.fixture()
def rec(rec_bundle):
    return EdgeRecommender(rec_bundle)


def test_tag_match_formula():
    from edge_rec.items import LabelVocab
    from edge_rec.pool import LabelNames, Pool

    items = [cls("tech", ("ai", "game"), 0.2), cls("sports", (), 0.9), cls("finance", ("stock",), 0.5)]
    pool = Pool.of(["a", "b", "c"], items, LabelVocab(["primary:tech"], 3, 16),
                   LabelNames(["tech", "sports", "finance"], ["ai", "game", "stock", "film"]))
    g = 3.0  # w1 = 0.75, w2 = 0.25
    tags = ["ai", "sports", "stock", "film"]
    m = tag_match(pool.hits(tags), len(tags), pool.index, g)
    np.testing.assert_allclose(m, [0.75 * 1 / 4 + 0.25 * 0.2, 0.75 * 1 / 4 + 0.25 * 0.9, 0.75 * 1 / 4 + 0.25 * 0.5],
                               rtol=1e-6)
    np.testing.assert_allclose(tag_match(pool.hits([]), 0, pool.index, g), [0.05, 0.225, 0.125], rtol=1e-6)  # w2 * c
    assert pool.hits(["game", "ai", "ai", "unknown"]).tolist() == [2, 0, 0]  # labels, not repeats or unknowns
    assert (pool.primary[0], pool.tags[0], pool.tags[1]) == ("tech", ("ai", "game"), ())
    other = Pool.of(["x"], [cls("elsewhere", ("ai", "unlisted"))], LabelVocab(["primary:tech"], 3, 16),
                    LabelNames(["tech"], ["ai"]))
    assert (other.primary[0], other.tags[0]) == ("elsewhere", ("ai", "unlisted"))  # results keep the given names
    assert top_d(np.array([0.1, 0.5, 0.5, 0.9]), 3).tolist() == [3, 1, 2]
    rng = np.random.default_rng(0)
    for scores in (rng.random(1000), rng.integers(0, 4, 1000).astype(np.float32)):  # many ties at the cut
        assert top_d(scores, 100).tolist() == np.argsort(-scores, kind="stable")[:100].tolist()


def test_ranking_models_are_exported_and_quantized(tiny_ranking):
    assert float_matmuls(tiny_ranking["ranker"]) == 0  # every weight MatMul of the INT8 ranker is quantized


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_ranking_follows_recommendation_degree(rec, lam):
    recs = rec.recommend({"id": "u", "history": HISTORY}, POOL, k=len(POOL), lam=lam, recall_top=10, tag_top=10)
    assert recs and {r.interest for r in recs} == {"history"}
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    # With account tags too, the top k takes from each interest in turn, each in its own order of R.
    both = rec.recommend({"id": "u", "interest_tags": ["ai"], "history": HISTORY}, POOL, k=len(POOL), lam=lam,
                         recall_top=10, tag_top=10)
    assert [r.interest for r in both[:4]] == ["history", "account"] * 2
    for source in ("history", "account"):
        mine = [r.score for r in both if r.interest == source]
        assert mine == sorted(mine, reverse=True)
    for r in recs:
        assert r.score == pytest.approx(lam * r.ctr + (1 - lam) * r.index, abs=1e-6)
        assert r.paths and set(r.paths) <= {"model", "tag", "semantic"}
    if lam == 1.0:
        assert [r.ctr for r in recs] == sorted((r.ctr for r in recs), reverse=True)


def test_scores_match_the_torch_models(rec, tiny_ranking):
    """ctr and recall_rate are the torch models' outputs on the same features (the runtime builds them right)."""
    recs = rec.recommend({"history": HISTORY}, POOL, k=len(POOL), recall_top=len(POOL))
    hist = rec._classify([Item(h["id"], h["text"]) for h in HISTORY], "history item")
    pool = rec._classify([Item(c["id"], c["text"]) for c in POOL], "candidate")
    hf, pf = rec.vocab.features(hist), rec.vocab.features(pool)
    order = {c["id"]: i for i, c in enumerate(POOL)}
    rows = [order[r.id] for r in recs]
    for role, attr in (("recall", "recall_rate"), ("ranker", "ctr")):
        model = tiny_ranking["models"][role]
        h = model.cfg.history_length
        feeds = {"hist_labels": hf["labels"][-h:], "hist_index": hf["index"][-h:], "hist_vector": hf["vector"][-h:]}
        pad = h - len(feeds["hist_index"])
        feeds = {k: torch.from_numpy(np.concatenate([np.zeros((pad, *v.shape[1:]), v.dtype), v]))[None]
                 for k, v in feeds.items()}
        feeds["hist_mask"] = torch.tensor([[0.0] * pad + [1.0] * (h - pad)])
        feeds.update({"cand_labels": torch.from_numpy(pf["labels"][rows]),
                      "cand_index": torch.from_numpy(pf["index"][rows]),
                      "cand_vector": torch.from_numpy(pf["vector"][rows])})
        with torch.no_grad():
            expected = model(**{k: feeds[k] for k in model.feed_names}).numpy()
        tol = 0.05 if role == "ranker" else 1e-5  # the ranker is INT8
        np.testing.assert_allclose([getattr(r, attr) for r in recs], expected, atol=tol)


def test_recall_sides_score_as_the_one_graph_model(rec, tiny_export, tiny_ranking, tmp_path):
    """A bundle shipping the recall model's two sides recommends exactly as the one-graph recall model, per call
    and from a Store, whose catalogue keeps its item sides."""
    from edge_rec import Store
    from edge_rec.scorer import RecallSides

    sided = EdgeRecommender(make_rec_bundle(tmp_path / "sided", tiny_export, tiny_ranking,
                                            roles=("recall", "recall_user", "recall_items", "ranker")))
    assert isinstance(sided.recall, RecallSides) and not isinstance(rec.recall, RecallSides)
    user = {"history": HISTORY, "interest_tags": ["tech"]}
    one, two = (r.recommend(user, POOL, k=len(POOL), recall_top=len(POOL)) for r in (rec, sided))
    assert [r.id for r in one] == [r.id for r in two]
    np.testing.assert_allclose([r.recall_rate for r in one], [r.recall_rate for r in two], atol=1e-6)
    with Store(tmp_path / "s.db", sided.bundle) as store:
        store.add(POOL)
        assert store.pool.features["recall_items"].shape[0] == len(POOL)
        for h in HISTORY:
            store.add([h])
            store.record("u", h["id"], "click")
        got = store.recommend("u", k=5)
    expected = rec.recommend({"history": HISTORY}, POOL, k=5)
    assert [r.id for r in got] == [r.id for r in expected]
    np.testing.assert_allclose([r.recall_rate for r in got], [r.recall_rate for r in expected], atol=1e-6)


def test_recall_keeps_the_union_of_both_paths(rec):
    recs = rec.recommend({"interest_tags": ["tech"], "history": HISTORY}, POOL, k=100, recall_top=3, tag_top=4,
                         semantic_top=0)
    assert 4 <= len(recs) <= 7
    assert sum("model" in r.paths for r in recs) == 3 and sum("tag" in r.paths for r in recs) == 4
    both = rec.recommend({"interest_tags": ["tech"], "history": HISTORY}, POOL, k=100, recall_top=3, tag_top=4,
                         semantic_top=5)
    assert sum("semantic" in r.paths for r in both) == 5 and len(both) >= len(recs)


def test_semantic_path_keeps_the_items_closest_to_the_history(rec):
    """Exact cosine: the candidate identical to a history item has similarity 1 and is kept by the path."""
    pool = [{"id": "same", "text": HISTORY[0]["text"]}] + POOL
    recs = rec.recommend({"history": HISTORY}, pool, k=len(pool), recall_top=1, tag_top=1, semantic_top=3)
    same = next(r for r in recs if r.id == "same")
    assert same.semantic == pytest.approx(1.0, abs=1e-5) and "semantic" in same.paths
    assert sum("semantic" in r.paths for r in recs) == 3
    kept = sorted((r.semantic for r in recs if "semantic" in r.paths), reverse=True)
    assert min(kept) >= max((r.semantic for r in recs if "semantic" not in r.paths), default=-1.0)
    assert not any("semantic" in r.paths for r in rec.recommend({"history": []}, POOL, k=len(POOL)))


def test_classified_candidates_and_texts_mix(rec):
    pool = [Item("a", classification=cls("tech", ("ai",), 0.9)), {"id": "b", "text": TITLES[1]},
            Item("c", classification=cls("sports", (), 0.1))]
    recs = rec.recommend(User("u", ("ai",), ()), pool, k=3)
    assert {r.id for r in recs} == {"a", "b", "c"}
    assert next(r for r in recs if r.id == "a").tag_match > next(r for r in recs if r.id == "c").tag_match


def test_history_texts_share_the_classifier_cache(rec):
    rec.recommend({"history": HISTORY}, POOL[:4])
    before = len(rec.classifier.cache)
    rec.recommend({"history": HISTORY}, POOL[:4])
    assert len(rec.classifier.cache) == before


def test_a_candidate_sharing_a_history_id_gets_its_own_classification(rec):
    """The cache is keyed by id but remembers the text: a candidate never inherits a history item's result."""
    history = [{"id": "x", "text": TITLES[0]}]
    [r] = rec.recommend({"history": history}, [{"id": "x", "text": TITLES[5]}], k=1)
    fresh = rec.classifier.classify(TITLES[5])[0]
    assert (r.primary, r.index) == (fresh.primary, pytest.approx(fresh.index, abs=1e-6))


def test_derived_interest_tags_without_account_tags(rec):
    recs = rec.recommend({"history": [Item("h", classification=cls("sports", ("game",)))]},
                         [Item("x", classification=cls("sports")), Item("y", classification=cls("finance"))],
                         match_g=100.0, k=2)
    by_id = {r.id: r for r in recs}
    assert by_id["x"].tag_match > by_id["y"].tag_match


@pytest.mark.parametrize("user,candidates,kwargs,error", [
    ({"history": HISTORY}, POOL, {"k": 0}, ValueError),
    ({"history": HISTORY}, POOL, {"k": -3}, ValueError),
    ({"history": HISTORY}, POOL, {"lam": 1.5}, ValueError),
    ({"history": HISTORY}, POOL, {"lam": float("nan")}, ValueError),
    ({"history": HISTORY}, POOL, {"match_g": 0}, ValueError),
    ({"history": HISTORY}, POOL, {"recall_top": 2.5}, ValueError),
    ({"history": HISTORY}, POOL, {"gamma": 1}, TypeError),
    ({"history": HISTORY}, POOL, {"semantic_top": -1}, ValueError),
    ({"history": HISTORY}, POOL, {"semantic_mode": "median"}, ValueError),
    ({"history": HISTORY}, [{"text": "no id"}], {}, ValueError),
    ({"history": HISTORY}, [{"id": "x"}], {}, ValueError),
    ({"history": HISTORY}, [{"id": "x", "text": ""}], {}, ValueError),
    ({"history": HISTORY}, [{"id": "x", "text": b"bytes"}], {}, TypeError),
    ({"history": HISTORY}, [{"id": "x", "text": "a"}, {"id": "x", "text": "b"}], {}, ValueError),
    ({"history": HISTORY}, [{"id": ["unhashable"], "text": "a"}], {}, TypeError),
    ({"history": HISTORY}, "not a list", {}, TypeError),
    ({"history": HISTORY}, [42], {}, TypeError),
    ({"history": HISTORY}, [Item("x", classification=cls(index=float("nan")))], {}, ValueError),
    ({"history": HISTORY}, [Item("x", classification=cls(index=float("inf")))], {}, ValueError),
    ({"history": HISTORY}, [Item("x", classification=Classification("tech", 1.0, (), 0.5,
                                                                      np.full(16, np.nan, np.float32)))], {}, ValueError),
    ({"history": [{"id": "h"}]}, POOL, {}, ValueError),
    ({"history": "text"}, POOL, {}, TypeError),
    ({"interest_tags": "ai"}, POOL, {}, TypeError),
    ({"interest_tags": [1, 2]}, POOL, {}, TypeError),
    ({"histroy": []}, POOL, {}, ValueError),
    ("user", POOL, {}, TypeError),
])
def test_bad_users_and_candidates_get_clear_errors(rec, user, candidates, kwargs, error):
    with pytest.raises(error):
        rec.recommend(user, candidates, **kwargs)


def test_bad_texts_are_named_by_item_and_id(rec):
    with pytest.raises(ValueError, match=r"candidate 2 \(id 'bad'\): text is empty"):
        rec.recommend({"history": HISTORY}, POOL[:2] + [{"id": "bad", "text": "  "}])
    history = [{"id": f"h{i}", "text": TITLES[i % len(TITLES)]} for i in range(60)] + [{"id": "hb", "text": b"x"}]
    with pytest.raises(TypeError, match=r"history item 60 \(id 'hb'\): text is bytes"):
        rec.recommend({"history": history}, POOL[:2])


def test_documented_edge_cases(rec):
    assert rec.recommend({"history": HISTORY}, []) == []
    assert len(rec.recommend({}, POOL, k=5)) == 5  # no tags, no history: still ranks
    with pytest.raises(ValueError, match=r"interest tag 'gmae' is not a label .* closest: \['game'"):
        rec.recommend({"interest_tags": ["gmae"], "history": []}, POOL, k=5)  # never a silent no-op
    assert len(rec.recommend({"history": HISTORY}, POOL[:3], k=50)) == 3  # k beyond the pool: all of it
    dup_history = {"history": HISTORY + HISTORY}  # the same item twice in a history is fine
    assert rec.recommend(dup_history, POOL, k=3)


def test_huge_history_uses_only_the_recent_window(rec):
    long = [Item(f"h{i}", classification=cls(("tech", "sports")[i % 2], index=(i % 7) / 7)) for i in range(10_000)]
    window = max(rec.recall.history_length, rec.ranker.history_length)
    a = rec.recommend({"history": long}, POOL, k=10)
    b = rec.recommend({"history": long[-window:]}, POOL, k=10)
    assert [(r.id, r.score) for r in a] == [(r.id, r.score) for r in b]


def test_bundle_without_ranking_models_is_refused(tiny_bundle):
    with pytest.raises(BundleError, match="ranking"):
        EdgeRecommender(tiny_bundle)


def test_bad_pipeline_knob_in_manifest_fails_at_load(tiny_export, tiny_ranking, tmp_path):
    bundle = make_rec_bundle(tmp_path / "b", tiny_export, tiny_ranking, pipeline={"lam": 2.0})
    with pytest.raises(ValueError, match="lam"):
        EdgeRecommender(bundle)


def test_manifest_knobs_are_the_defaults(tiny_export, tiny_ranking, tmp_path):
    bundle = make_rec_bundle(tmp_path / "b", tiny_export, tiny_ranking, pipeline={"k": 2, "lam": 1.0})
    recs = EdgeRecommender(bundle).recommend({"history": HISTORY}, POOL)
    assert len(recs) == 2 and all(r.score == pytest.approx(r.ctr) for r in recs)


def test_swapped_ranker_is_refused(tiny_export, tiny_ranking, tmp_path):
    import shutil

    bundle = make_rec_bundle(tmp_path / "b", tiny_export, tiny_ranking)
    shutil.copyfile(bundle / "recall.onnx", bundle / "ranker.onnx")
    with pytest.raises(BundleError, match="ranker.onnx"):
        EdgeRecommender(bundle)


def test_cli_recommend(rec_bundle, tmp_path, capsys):
    user, items = tmp_path / "user.json", tmp_path / "items.jsonl"
    user.write_text(json.dumps({"id": "u1", "interest_tags": ["ai"], "history": HISTORY}), encoding="utf-8")
    items.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in POOL) + "\n", encoding="utf-8")
    assert cli(["recommend", "--bundle", str(rec_bundle), "--user", str(user), "--items", str(items), "--k", "4"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 4 and {"id", "score", "ctr", "index", "recall_rate", "tag_match", "semantic", "paths"} <= set(lines[0])
    assert [x["interest"] for x in lines] == ["history", "account"] * 2  # the top k takes from each in turn
    for source in ("history", "account"):
        mine = [x["score"] for x in lines if x["interest"] == source]
        assert mine == sorted(mine, reverse=True)
    # The file is classified as it streams in: the same answers as the library given the whole list.
    library = EdgeRecommender(rec_bundle).recommend({"id": "u1", "interest_tags": ["ai"], "history": HISTORY}, POOL, k=4)
    assert [(x["id"], round(x["score"], 5)) for x in lines] == [(r.id, round(r.score, 5)) for r in library]
    items.write_text('{"id": 1, "text": "ok"}\n{broken\n', encoding="utf-8")
    assert cli(["recommend", "--bundle", str(rec_bundle), "--user", str(user), "--items", str(items)]) == 2
    assert "items.jsonl:2" in capsys.readouterr().err
    items.write_text('{"id": 1, "text": "ok"}\n\n{"id": 2, "text": "  "}\n', encoding="utf-8")
    assert cli(["recommend", "--bundle", str(rec_bundle), "--user", str(user), "--items", str(items)]) == 2
    assert "items.jsonl:3: id 2: text is empty" in capsys.readouterr().err


@pytest.mark.parametrize("precision,tol", [("fp32", 1e-6), ("fp16", 2e-3), ("int8", 2e-2)])
def test_vector_store_top_d_matches_exact_cosine(precision, tol):
    from edge_rec import VectorStore

    rng = np.random.default_rng(0)
    v = rng.normal(size=(5000, 32)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    refs = v[[3, 7]]
    store = VectorStore(list(range(5000)), v, precision)
    exact = (v @ refs.T).max(axis=1)
    top = store.top(refs, 20)
    assert top[0][0] in (3, 7) and top[0][1] == pytest.approx(1.0, abs=tol)
    np.testing.assert_allclose([s for _, s in top], np.sort(exact)[::-1][:20], atol=tol)
    assert store.nbytes <= {"fp32": 1.0, "fp16": 0.5, "int8": 0.29}[precision] * v.nbytes
    mean = store.top(refs, 5, mode="mean")
    np.testing.assert_allclose([s for _, s in mean], np.sort((v @ refs.T).mean(axis=1))[::-1][:5], atol=tol)


@pytest.mark.parametrize("args", [([1, 2], np.zeros((3, 4))), ([1], np.full((1, 4), np.nan)), ([1], np.zeros(4))])
def test_vector_store_refuses_bad_matrices(args):
    from edge_rec import VectorStore

    with pytest.raises(ValueError):
        VectorStore(*args)
    with pytest.raises(ValueError, match="precision"):
        VectorStore([1], np.zeros((1, 4)), "int4")


@pytest.mark.parametrize("refs,d,mode,match", [
    (np.ones(8), -1, "max", "d must be"), (np.ones(8), 0, "max", "d must be"), (np.ones(8), 2.5, "max", "d must be"),
    (np.ones(8), 3, "median", "mode"), (np.ones(16), 3, "max", "8-d"), (np.ones((2, 4)), 3, "max", "8-d"),
    (np.full(8, np.nan), 3, "max", "NaN"), (np.zeros((0, 8)), 3, "max", "h >= 1")])
def test_vector_store_top_checks_its_arguments(refs, d, mode, match):
    from edge_rec import VectorStore

    store = VectorStore(list(range(10)), np.eye(10, 8, dtype=np.float32))
    with pytest.raises(ValueError, match=match):
        store.top(refs, d, mode)
    assert store.top(np.eye(8)[2], 1) == [(2, 1.0)]


def test_lam_is_tuned_on_validation_visits_and_reported_beside_lam_1(tiny_ranking):
    from conftest import tiny_click_log
    from edge_rec_export.data.interactions import ClickLog
    from edge_rec_export.bundle.package_ranking import LAM_GRID, onnx_scores, tune_lam
    from edge_rec_export.training.train_ranking import ItemTensors

    items, visits = tiny_click_log()
    log = ClickLog("tiny", items, visits, visits, visits)
    tensors = ItemTensors(items)
    r = tune_lam(tiny_ranking["ranker"], tensors, log)
    assert r["lam_tuned_on_val"] in LAM_GRID and len(r["val_ndcg@10"]) == len(LAM_GRID)
    # Validation and test are the same visits here, so the tuned lam cannot do worse than lam = 1 on test.
    assert r["test_tuned_lam"]["ndcg@10"] >= r["test_lam_1"]["ndcg@10"]
    from edge_rec_export.data.interactions import samples
    from edge_rec_export.training.train_ranking import report
    assert r["test_lam_1"] == report(onnx_scores(tiny_ranking["ranker"], tensors, visits), samples(visits, 1))
