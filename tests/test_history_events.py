"""History events keep their type (click, long_view, like, share) from the log through training to the runtime and
the Store (issue 33, item 1)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_rec.items import HISTORY_EVENTS
from edge_rec_export.data.interactions import (ClickLog, Impression, ItemTable, from_events, history_event_types,
                                              history_events, samples)
from edge_rec_export.data.texts_input import Event

CLICK, LONG_VIEW, LIKE = (HISTORY_EVENTS.index(e) + 1 for e in ("click", "long_view", "like"))


def test_a_visits_history_keeps_each_items_event():
    items = ItemTable.build([f"i{k}" for k in range(6)], [[1]] * 6, np.zeros(6), None, ["primary:A"], 2)
    events = [Event("u", "i0", 0.0, True, name="click"), Event("u", "i1", 1.0, False, viewed=True, name="long_view"),
              Event("u", "i2", 2.0, True, name="like"), Event("u", "i3", 3.0, True, name="share"),
              Event("u", "i4", 4.0, True, name="click"), Event("u", "i5", 5.0, True, name="click")]
    log = from_events(events, items, "events", held_out=0.2)
    last = max(log.train + log.val + log.test, key=lambda imp: imp.time)
    assert last.history.tolist() == [1, 2, 3, 4, 5]
    assert last.history_events.tolist() == [CLICK, LONG_VIEW, LIKE, HISTORY_EVENTS.index("share") + 1, CLICK]
    s = samples([last], 3)
    assert s.hist.tolist()[0] == [3, 4, 5] and s.hist_event.tolist()[0] == [LIKE, 4, CLICK]
    assert history_event_types(log) == len(HISTORY_EVENTS)
    assert history_events(log) == {"click": 2, "long_view": 1, "like": 1, "share": 1}  # what the build says
    clicks_only = from_events([Event("u", f"i{k}", float(k), True) for k in range(6)], items, "clicks", held_out=0.2)
    assert history_event_types(clicks_only) == 0  # nothing to learn: the models read no event input


def opposite_signals_log(seed: int = 0) -> ClickLog:
    """Histories of one label's items; liked, the user clicks that label; only viewed long, the other one. The
    history's items alone cannot tell the two apart."""
    rng = np.random.default_rng(seed)
    n = 40
    items = ItemTable.build([str(i) for i in range(n)], [[1 + i % 2] for i in range(n)], np.full(n, 0.5), None,
                            ["primary:A", "primary:B"], 2)
    visits = []
    for v in range(800):
        topic, liked = v % 2, (v // 2) % 2 == 0
        hist = 1 + np.flatnonzero(np.arange(n) % 2 == topic)[rng.integers(0, n // 2, 5)]
        shown = 1 + rng.choice(n, 4, replace=False)
        wanted = topic if liked else 1 - topic
        visits.append(Impression(v, v, hist, shown, ((shown - 1) % 2 == wanted).astype(np.float32),
                                 history_events=np.full(5, LIKE if liked else LONG_VIEW)))
    return ClickLog("opposite", items, visits[:600], visits[600:700], visits[700:])


@pytest.mark.parametrize("model", ["ctr", "dssm"])
def test_models_learn_what_the_event_type_says(model):
    from edge_rec_export.models.ctr import CTRConfig, CTRModel
    from edge_rec_export.models.dssm import DSSM, DSSMConfig
    from edge_rec_export.training.train_ranking import ItemTensors, fit, report, score

    log = opposite_signals_log()
    tensors = ItemTensors(log.items)
    data = {k: samples(log.split(k), 5) for k in ("train", "val", "test")}
    auc = {}
    for n_events in (0, history_event_types(log)):
        torch.manual_seed(0)
        m = (CTRModel(CTRConfig(2, 2, history_length=5, label_dim=8, item_dim=8, hidden=8, mlp=16, n_events=n_events))
             if model == "ctr" else DSSM(DSSMConfig(2, 2, history_length=5, label_dim=8, hidden=16, out_dim=8,
                                                    n_events=n_events)))
        fit(m, tensors, data["train"], data["val"], epochs=6, lr=1e-2, batch=64, seed=0, log=lambda _: None)
        auc[n_events] = report(score(m, tensors, data["test"]), data["test"])["auc"]
    assert auc[0] < 0.65 and auc[len(HISTORY_EVENTS)] > 0.9, auc


@pytest.fixture(scope="module")
def event_ranking(tmp_path_factory):
    """Tiny recall and ranker models that read history events, exported to ONNX (checked against torch)."""
    from conftest import tiny_click_log
    from edge_rec_export.bundle.package_ranking import export_ranking_model, export_recall_sides
    from edge_rec_export.models.ctr import CTRConfig, CTRModel
    from edge_rec_export.models.dssm import DSSM, DSSMConfig
    from edge_rec_export.training.train_ranking import ItemTensors

    items, visits = tiny_click_log()
    for imp in visits:
        imp.history_events = np.resize([CLICK, LONG_VIEW, LIKE], len(imp.history))
    n_labels, n_events = len(items.label_names), len(HISTORY_EVENTS)
    torch.manual_seed(0)
    dssm = DSSM(DSSMConfig(n_labels, 3, history_length=6, label_dim=8, hidden=16, out_dim=8, n_events=n_events))
    ctr = CTRModel(CTRConfig(n_labels, 3, vector_dim=16, history_length=4, label_dim=8, vector_proj=8, item_dim=8,
                             hidden=8, mlp=16, dropout=0.0, n_events=n_events))
    with torch.no_grad():  # trained models have learned event tables; these start near the identity
        for m in (dssm, ctr):
            m.event.scale.weight[1:].normal_(std=1.0)
    work = tmp_path_factory.mktemp("events")
    tensors = ItemTensors(items)
    recall, _ = export_ranking_model(dssm, tensors, visits, work / "recall.onnx")
    sides, _ = export_recall_sides(dssm, tensors, visits, recall, work)
    ranker, _ = export_ranking_model(ctr, tensors, visits, work / "ranker.onnx")
    return {"recall": recall, **sides, "ranker": ranker}, ctr.eval()


def event_bundle(out, tiny_export, files, section):
    from conftest import RANK_LABELS, make_bundle
    from edge_rec_export.bundle.package_ranking import add_to_bundle

    make_bundle(out, tiny_export[1])
    add_to_bundle(out, files, {"ranking": {"labels": RANK_LABELS, **section}, "pipeline": {"lam": 1.0}})
    return out


def test_runtime_and_store_give_the_models_each_history_items_event(event_ranking, tiny_export, tmp_path):
    from edge_rec import EdgeRecommender, Store
    from edge_rec.classifier import Classification

    files, ctr = event_ranking
    out = event_bundle(tmp_path / "b", tiny_export, files, {"history_events": list(HISTORY_EVENTS)})
    rec = EdgeRecommender(out)
    vector = np.ones(16, np.float32) / 4.0
    pool = [{"id": f"c{i}", "classification": Classification(p, 0.9, (), 0.5, vector)}
            for i, p in enumerate(["tech", "sports", "finance", "tech"])]
    history = pool[:2]
    knobs = dict(k=len(pool), recall_top=len(pool), tag_top=len(pool))

    def ctrs(events):
        return {r.id: r.ctr for r in rec.recommend({"history": history, "events": events}, pool, **knobs)}

    liked, viewed = ctrs(["like", "like"]), ctrs(["long_view", "long_view"])
    assert ctrs([]) == ctrs(["click", "click"]) and liked != viewed
    # The ranker's p is the torch model's on the event codes the runtime built.
    f = rec.vocab.features([p["classification"] for p in pool])
    h = rec.vocab.features([p["classification"] for p in history])
    feeds = {"hist_labels": np.pad(h["labels"], ((2, 0), (0, 0)))[None], "hist_index": np.pad(h["index"], (2, 0))[None],
             "hist_vector": np.pad(h["vector"], ((2, 0), (0, 0)))[None], "hist_event": np.array([[0, 0, LIKE, LIKE]]),
             "hist_mask": np.array([[0, 0, 1, 1]], np.float32), "cand_labels": f["labels"], "cand_index": f["index"],
             "cand_vector": f["vector"]}
    with torch.no_grad():
        expected = ctr(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in feeds.items()}).numpy()
    np.testing.assert_allclose([liked[p["id"]] for p in pool], expected, atol=1e-5)
    with pytest.raises(ValueError, match="2 events for 1 history items"):
        rec.recommend({"history": history[:1], "events": ["like", "like"]}, pool)
    with pytest.raises(ValueError, match="unknown history event 'hide'"):
        rec.recommend({"history": history, "events": ["like", "hide"]}, pool)
    # A Store gives each history item its latest event of the history kinds (a later impression changes nothing).
    texts = {"c0": "科技 新闻", "c1": "体育 比赛", "c2": "财经 股市", "c3": "科技 手机"}
    stored = {}
    for last in ("like", "long_view"):
        with Store(tmp_path / f"{last}.db", out) as store:
            store.add([{"id": i, "text": t} for i, t in texts.items()])
            for item in ("c0", "c1"):
                store.record("u", item, "click", time=1.0)
                store.record("u", item, last, time=2.0)
                store.record("u", item, "impression", time=3.0)
            got = {r.id: r.ctr for r in store.recommend("u", k=4)}
        direct = {r.id: r.ctr for r in rec.recommend(
            {"history": [{"id": i, "text": texts[i]} for i in ("c0", "c1")], "events": [last, last]},
            [{"id": i, "text": texts[i]} for i in ("c2", "c3")], **knobs)}
        assert set(got) == {"c2", "c3"} and got == pytest.approx(direct)
        stored[last] = got
    assert stored["like"] != pytest.approx(stored["long_view"])


def test_a_bundle_whose_models_read_events_must_name_their_codes(event_ranking, tiny_export, tmp_path):
    from edge_rec import EdgeRecommender
    from edge_rec.bundle import BundleError

    files, _ = event_ranking
    for section in ({}, {"history_events": ["click", "like"]}):
        out = event_bundle(tmp_path / f"b{len(section)}", tiny_export, files, section)
        with pytest.raises(BundleError, match="history_events"):
            EdgeRecommender(out)


def test_a_model_reading_events_starts_from_the_same_weights_as_one_that_does_not():
    """Same seed, same initial weights but the event tables (made last): the event input is the only difference."""
    from edge_rec_export.models.ctr import CTRConfig, CTRModel
    from edge_rec_export.models.dssm import DSSM, DSSMConfig

    for make in (lambda n: CTRModel(CTRConfig(5, 2, history_length=4, n_events=n)),
                 lambda n: DSSM(DSSMConfig(5, 2, history_length=4, n_events=n))):
        states = []
        for n in (0, len(HISTORY_EVENTS)):
            torch.manual_seed(3)
            states.append(make(n).state_dict())
        assert set(states[1]) - set(states[0]) == {"event.scale.weight", "event.shift.weight"}
        assert (states[1]["event.scale.weight"] == 1).all() and states[1]["event.shift.weight"].abs().max() < 0.5
        assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
