"""Click-log readers, the user simulator, ranking metrics and a short CTR training run."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED_DATA
from edge_rec_export.data.interactions import Impression, ItemTable, ClickLog, read_bing, read_movielens, samples
from edge_rec_export.training.metrics import auc, gauc, ranking_at_k
from edge_rec_export.data.corpus import Example
from edge_rec_export.data.user_simulator import SimConfig, _visits

needs_data = pytest.mark.skipif(not (SHARED_DATA / "movielens_100k").is_dir(), reason="../shared/data not present")


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 200).astype(float), (rng.random(200) < 0.3).astype(float)
    pairs = [(a > b) + 0.5 * (a == b) for a, ya in zip(s, y) for b, yb in zip(s, y) if ya == 1 and yb == 0]
    assert auc(s, y) == pytest.approx(np.mean(pairs))
    assert np.isnan(auc(s, np.ones(200)))
    assert gauc(np.array([0.9, 0.1, 0.1, 0.9]), np.array([1, 0, 1, 0.0]), np.array([0, 0, 1, 1])) == 0.5


def test_ndcg_and_recall_at_k():
    score = np.array([0.9, 0.8, 0.7, 0.1])
    out = ranking_at_k(score, np.array([0, 1, 0, 0.0]), np.zeros(4), k=2)
    assert out["ndcg@2"] == pytest.approx(1 / np.log2(3)) and out["recall@2"] == 1.0
    assert ranking_at_k(score, np.array([0, 0, 0, 1.0]), np.zeros(4), k=2)["recall@2"] == 0.0


def test_samples_pad_history_on_the_left():
    imp = Impression(7, 0, np.array([3, 4, 5]), np.array([1, 2]), np.array([1.0, 0.0], np.float32))
    s = samples([imp], 5)
    assert s.hist.tolist() == [[0, 0, 3, 4, 5]] * 2 and s.target.tolist() == [1, 2] and s.user.tolist() == [7, 7]
    assert samples([imp], 2).hist.tolist() == [[4, 5]] * 2  # most recent kept


@needs_data
def test_movielens_leave_last_out():
    log = read_movielens(SHARED_DATA)
    assert len(log.items) == 1683 and len(log.test) == len(log.val) > 900
    last_train = {}
    for imp in log.train:
        last_train[imp.user] = max(last_train.get(imp.user, 0), imp.time)
    for val, test in zip(log.val, log.test):
        assert val.user == test.user and val.time <= test.time
        assert test.time >= last_train[test.user]
        assert len(test.shown) == 101 and test.clicks.tolist() == [1.0] + [0.0] * 100
        assert test.shown[0] not in set(test.shown[1:])
        assert val.shown[0] in set(test.history)  # the validation click precedes the test click
    assert all(0 < c < 1 for c in log.items.index[1:])


@needs_data
def test_movielens_history_of_every_rating_and_no_shown_negatives():
    base = read_movielens(SHARED_DATA)
    rated = read_movielens(SHARED_DATA, history="rated", shown_negatives=False)
    for a, b in zip(base.test, rated.test):  # the same evaluation visits, a longer history
        assert np.array_equal(a.shown, b.shown) and set(a.history) <= set(b.history)
    assert sum(len(b.history) > len(a.history) for a, b in zip(base.test, rated.test)) > 500
    assert all(imp.clicks.any() for imp in rated.train)  # no visit without a click left
    assert len(rated.train) < len(base.train)
    with pytest.raises(ValueError, match="history"):
        read_movielens(SHARED_DATA, history="all")


@needs_data
def test_bing_reader_keeps_its_split_and_hides_the_item_from_its_history():
    log = read_bing(SHARED_DATA)
    assert len(log.train) + len(log.val) == 10401 and len(log.test) == 462
    for imp in log.train[:500] + log.test:
        assert imp.shown[0] not in set(imp.history)
    assert log.items.vectors.shape[1] == 0 and log.items.labels.max() == len(log.items.label_names)


def _pool():
    rng = np.random.default_rng(0)
    return [Example(f"t{i}", i % 15, [f"k{i % 7}"] if i % 3 else []) for i in range(300)], rng


def test_simulator_is_seeded_and_splits_by_visit():
    from edge_rec_export.data.corpus import Targets

    pool, _ = _pool()
    targets = Targets.fit(pool, 15, 7)
    cfg = SimConfig(users=20, visits=8, seed=3)
    a, b = _visits(pool, targets, cfg), _visits(pool, targets, cfg)
    assert [imp.clicks.tolist() for imp in a[0]] == [imp.clicks.tolist() for imp in b[0]]
    train, val, test = a
    assert len(train) == 20 * 5 and len(val) == 20 and len(test) == 40
    for imp in test:  # a visit's history is exactly the clicks of the user's earlier visits
        earlier = [i for x in train + val + test if x.user == imp.user and x.time < imp.time
                   for i, y in zip(x.shown, x.clicks) if y]
        assert imp.history.tolist() == earlier


def test_simulated_visits_as_click_log_events_read_back_as_the_same_visits():
    """validation_inputs' zh_news clicks: the simulator's visits over the held-out titles as builder events, which
    from_events turns back into the same visits (shown items, clicks, histories)."""
    from edge_rec_export.data.corpus import Targets, assign_splits
    from edge_rec_export.data.interactions import from_events
    from edge_rec_export.data.texts_input import Event
    from edge_rec_export.data.user_simulator import click_events

    examples, _ = _pool()
    cfg = SimConfig(users=6, visits=5, seed=1)
    rows = list(click_events(examples, "13", cfg))
    train, val, test, _ = assign_splits(examples, "13")
    held = {id(e) for e in val + test}
    assert {r["event"] for r in rows} <= {"click", "impression"} and {r["time"] for r in rows} == set(range(5))
    assert all(id(examples[r["item"]]) in held for r in rows)  # only titles the classifier never trained on
    visits = [imp for part in _visits(val + test, Targets.fit(train, 15), cfg) for imp in part]
    assert len(rows) == sum(len(imp.shown) for imp in visits)
    ids = sorted({str(r["item"]) for r in rows}, key=int)
    items = ItemTable.build(ids, [[1]] * len(ids), np.zeros(len(ids)), None, ["x"], 1)
    log = from_events([Event(str(r["user"]), str(r["item"]), r["time"], r["event"] == "click") for r in rows],
                      items, "sim", held_out=0.2)
    read_back = {(imp.user, imp.time): imp for imp in log.train + log.val + log.test}
    position = {id(e): i for i, e in enumerate(examples)}
    pool = val + test
    # The same items clicked per visit, and the same history; as sets: a title the simulator drew twice for one
    # visit is one shown item in the log.
    for imp in visits:
        back = read_back[(imp.user, imp.time)]
        clicked = {position[id(pool[r - 1])] for r, c in zip(imp.shown, imp.clicks) if c}
        assert {int(items.ids[r]) for r, c in zip(back.shown, back.clicks) if c} == clicked
        assert {int(items.ids[r]) for r in back.history} == {position[id(pool[r - 1])] for r in imp.history}


def test_ctr_model_learns_interest_from_history():
    """Clicks go to candidates sharing the history's label: a few epochs must find that (AUC >> 0.5)."""
    from edge_rec_export.models.ctr import CTRConfig, CTRModel
    import torch
    from edge_rec_export.training.train_ranking import ItemTensors, fit, report, score

    rng = np.random.default_rng(0)
    n = 60
    items = ItemTable.build([str(i) for i in range(n)], [[1 + i % 4] for i in range(n)], rng.random(n), None,
                            ["a", "b", "c", "d"], 2)
    visits = []
    for v in range(600):
        topic = v % 4
        hist = 1 + np.flatnonzero(np.arange(n) % 4 == topic)[rng.integers(0, n // 4, 6)]
        shown = 1 + rng.choice(n, 4, replace=False)
        visits.append(Impression(v, v, hist, shown, ((shown - 1) % 4 == topic).astype(np.float32)))
    log = ClickLog("toy", items, visits[:450], visits[450:500], visits[500:])
    tensors = ItemTensors(items)
    torch.manual_seed(0)
    model = CTRModel(CTRConfig(4, 2, history_length=6, label_dim=8, item_dim=8, hidden=8, mlp=16))
    data = {k: samples(log.split(k), 6) for k in ("train", "val", "test")}
    fit(model, tensors, data["train"], data["val"], epochs=5, lr=1e-2, batch=64, seed=0, log=lambda _: None)
    assert report(score(model, tensors, data["test"]), data["test"])["auc"] > 0.9


def test_ranking_ties_are_broken_against_the_click():
    from edge_rec_export.training.metrics import ranking_at_k

    y = np.array([1.0] + [0.0] * 19)  # the click listed first, as the logs list it
    flat = ranking_at_k(np.zeros(20), y, np.zeros(20), k=10)
    assert flat == {"ndcg@10": 0.0, "recall@10": 0.0}  # a constant score earns nothing
    tied = ranking_at_k(np.array([0.9] * 5 + [0.1] * 15), y, np.zeros(20), k=10)
    assert tied["ndcg@10"] == pytest.approx(1 / np.log2(6))  # fifth of five tied items


def test_ranking_baselines_learn_from_training_clicks():
    """On a log where everyone clicks items 1-3 and never 4-6, every baseline ranks 1-3 first on test visits."""
    from edge_rec_export.data.interactions import ClickLog, Impression, ItemTable
    from edge_rec_export.training.ranking_baselines import MODELS, baselines, interactions

    items = ItemTable.build([str(i) for i in range(6)], [[1]] * 6, np.full(6, 0.5), np.zeros((6, 0), np.float32),
                            ["l"], 1)
    shown = np.array([1, 2, 3, 4, 5, 6])
    clicks = np.array([1, 1, 1, 0, 0, 0], np.float32)
    train = [Impression(u, 0, np.array([], np.int64), shown, clicks) for u in range(8)]
    held = [Impression(u, 1, np.array([1, 2]), np.array([4, 3, 5]), np.array([0, 1, 0], np.float32))
            for u in range(8)]
    log = ClickLog("toy", items, train, held, held)
    assert interactions(log).sum() == 24 and interactions(log, shown=True).sum() == 48
    out = baselines(log)
    assert set(out) == set(MODELS)
    for name, r in out.items():  # (ease_all_ratings counts the unclicked items too: it cannot tell them apart here)
        if name != "ease_all_ratings":
            assert r["test"]["ndcg@10"] == pytest.approx(1.0), name


def test_per_user_figures_for_the_paired_test():
    """Two users, user 7 with two lists: gAUC per user over its rows, nDCG@10 averaged over its lists."""
    from edge_rec_export.data.interactions import Samples
    from edge_rec_export.training.paired_test import per_user

    y = np.array([1, 0, 0, 1, 1, 0], np.float32)
    s = Samples(np.zeros((6, 1), np.int64), np.arange(6), y, np.array([0, 0, 1, 1, 2, 2]), np.array([7, 7, 7, 7, 8, 8]))
    pred = np.array([0.9, 0.1, 0.8, 0.2, 0.3, 0.6])
    out = per_user(pred, s)
    assert out["gauc"] == {7: pytest.approx(0.75), 8: 0.0}
    assert out["ndcg@10"][7] == pytest.approx((1.0 + 1 / np.log2(3)) / 2) and out["ndcg@10"][8] == pytest.approx(1 / np.log2(3))


def test_baselines_read_the_visit_history_of_a_user_new_since_training():
    """A log split by time: held-out users never seen in training, each with a history (items 1, 2) that the CTR
    models read too. Item-item baselines and folded-in ALS score from it: item 3, always clicked with 1 and 2, ranks
    above 4 and 5, which are as popular but clicked with other items."""
    from edge_rec_export.data.interactions import ClickLog, Impression, ItemTable
    from edge_rec_export.training.ranking_baselines import baselines

    items = ItemTable.build([str(i) for i in range(7)], [[1]] * 7, np.full(7, 0.5), np.zeros((7, 0), np.float32),
                            ["l"], 1)
    together = [np.array([1, 2, 3]), np.array([4, 5, 6])]
    train = [Impression(u, 0, np.array([], np.int64), together[u % 2], np.ones(3, np.float32)) for u in range(8)]
    held = [Impression(u, 1, np.array([1, 2]), np.array([4, 3, 5]), np.array([0, 1, 0], np.float32))
            for u in range(8, 12)]
    out = baselines(ClickLog("toy", items, train, held, held))
    for name in ("item_knn", "ease", "implicit_als"):
        assert out[name]["test"]["ndcg@10"] == pytest.approx(1.0), name
    assert out["popularity"]["test"]["ndcg@10"] < 1.0  # ties with 4 and 5, broken against the click


def test_the_ease_inverse_is_the_general_inverse():
    from edge_rec_export.training.ranking_baselines import spd_inverse

    x = np.random.default_rng(0).random((60, 40))
    g = x.T @ x + 3 * np.eye(40)
    np.testing.assert_allclose(spd_inverse(g.copy()), np.linalg.inv(g), rtol=0, atol=1e-12)
