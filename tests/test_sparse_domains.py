"""Sparse-domain training: the sparsified log, seed 004's joint model and seed 002's adversarial objective."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_rec_export.models.ctr import CTRConfig, CTRModel
from edge_rec_export.models.gan_augment import GANConfig, GANObjective, distance
from edge_rec_export.data.interactions import ClickLog, Impression, ItemTable, Samples, samples
from edge_rec_export.models.joint_ctr import JointCTR, JointCTRConfig
from edge_rec_export.training.sparse_domains import channel_clicks, channels_of, domain_items, domain_report, sparsify
from edge_rec_export.training.train_ranking import ItemTensors, click_loss, fit, score

GENRES = ["genre:a", "genre:b", "genre:c"]
SIZE = dict(history_length=5, label_dim=8, vector_proj=8, item_dim=8, hidden=8, mlp=16, dropout=0.0)


def genre_log(n_items: int = 30, users: int = 20, visits: int = 12, seed: int = 0) -> ClickLog:
    """Each item has one genre (row r -> genre r % 3) and its own id label; each user likes one genre and clicks
    its items, each click shown with two sampled negatives; the last click per user is the test visit."""
    rng = np.random.default_rng(seed)
    genre = np.arange(1, n_items + 1) % 3
    names = GENRES + [f"item:{i}" for i in range(n_items)]
    items = ItemTable.build([str(i) for i in range(n_items)], [[g + 1, 4 + i] for i, g in enumerate(genre)],
                            rng.random(n_items), None, names, 2)
    train, test = [], []
    for u in range(users):
        liked = np.flatnonzero(genre == u % 3) + 1
        clicks = rng.choice(liked, visits)
        for t, item in enumerate(clicks):
            negatives = rng.choice(np.setdiff1d(np.arange(1, n_items + 1), liked), 2, replace=False)
            imp = Impression(u, t, clicks[:t], np.concatenate([[item], negatives]), np.array([1, 0, 0], np.float32),
                             real=1)
            (test if t == visits - 1 else train).append(imp)
    return ClickLog("genres", items, train, test[:5], test)


def test_domain_items_and_unknown_labels():
    log = genre_log()
    domain = domain_items(log.items, ["genre:c"])
    assert domain[0] == False and domain.sum() == 10  # noqa: E712 (row 0 is padding)
    assert domain[2] and domain[5] and not domain[1] and not domain[3]
    with pytest.raises(ValueError, match="unknown labels \\['genre:z'\\]"):
        domain_items(log.items, ["genre:z"])


def test_sparsify_drops_domain_visits_and_their_clicks_from_later_histories():
    log = genre_log()
    domain = domain_items(log.items, ["genre:c"])
    sparse = sparsify(log, domain, keep=0.2, seed=0)
    before = sum(domain[imp.shown[0]] for imp in log.train)
    after = sum(domain[imp.shown[0]] for imp in sparse.train)
    assert 0 < after < 0.45 * before
    assert sum(not domain[imp.shown[0]] for imp in sparse.train) == sum(not domain[imp.shown[0]] for imp in log.train)
    kept = {(imp.user, int(imp.shown[0])) for imp in sparse.train if domain[imp.shown[0]]}
    for imp in sparse.train + sparse.test:  # a history holds only clicks the sparse log still has
        assert all(not domain[h] or (imp.user, int(h)) in kept for h in imp.history)
    assert len(sparse.test) == len(log.test) and [i.shown.tolist() for i in sparse.test] == \
        [i.shown.tolist() for i in log.test]
    assert "kept 20%" in sparse.notes
    assert [i.shown.tolist() for i in sparsify(log, domain, keep=1.0).train] == [i.shown.tolist() for i in log.train]
    with pytest.raises(ValueError, match="keep must be in"):
        sparsify(log, domain, keep=0.0)


def test_channel_clicks_follow_the_visits_click():
    s = Samples(np.zeros((5, 2), np.int64), np.array([1, 2, 4, 3, 5]), np.array([1, 0, 0, 0, 0], np.float32),
                np.array([0, 0, 0, 1, 1]), np.zeros(5, np.int64))
    channels = np.zeros((6, 3), bool)
    channels[[1, 4], 0] = channels[2, 1] = channels[[3, 5], 2] = True
    # visit 0 clicked item 1 (channel 0): item 4 shares it, item 2 does not; visit 1 has no click
    assert channel_clicks(s, channels).tolist() == [1, 0, 1, 0, 0]


def test_domain_report_of_a_perfect_and_a_domain_blind_scorer():
    log = genre_log()
    domain = domain_items(log.items, ["genre:c"])
    s = samples(log.test, 5)
    perfect = domain_report(s.y.copy(), s, domain)
    assert perfect["domain_auc"] == perfect["domain_visit_gauc"] == perfect["auc"] == 1.0
    assert perfect["domain_clicks"] == sum(domain[imp.shown[0]] for imp in log.test)
    blind = domain_report(s.y - 2 * domain[s.target], s, domain)  # domain items pushed below everything else
    assert blind["domain_auc"] == 1.0 and blind["domain_visit_gauc"] == 0.0


def joint_model(log: ClickLog, weight: float = 0.5) -> JointCTR:
    torch.manual_seed(0)
    return JointCTR(JointCTRConfig(len(log.items.label_names), 2, channel_labels=(1, 2, 3), channel_weight=weight,
                                   **SIZE))


def test_joint_model_towers_exchange_hidden_vectors():
    log = genre_log()
    model = joint_model(log).eval()
    tensors = ItemTensors(log.items)
    s = samples(log.train, 5)
    feeds = tensors.feeds(s.hist[:8], s.target[:8], model.feed_names)
    item, channel = model.both(**feeds)
    assert item.shape == channel.shape == (8,)
    torch.testing.assert_close(model.logits(**feeds), item)
    torch.testing.assert_close(model(**feeds), torch.sigmoid(item))
    with torch.no_grad():  # the channel tower's weights reach the item click through the exchange
        model.channel_tower[0].weight.mul_(3.0)
    assert not torch.allclose(model.logits(**feeds), item)
    with pytest.raises(ValueError, match="channel_labels"):
        JointCTRConfig(len(log.items.label_names), 2, channel_labels=(0,), **SIZE)


def test_joint_training_learns_the_item_task():
    log = genre_log()
    model, tensors = joint_model(log), ItemTensors(log.items)
    train, test = samples(log.train, 5), samples(log.test, 5)
    ids, channels = channels_of(log.items, "genre:")
    assert ids == [1, 2, 3] and channels.sum(axis=1).tolist() == [0] + [1] * 30
    objective = click_loss(tensors, train, channel_y=channel_clicks(train, channels))
    fit(model, tensors, train, test, epochs=10, lr=1e-2, batch=64, seed=0, patience=10, objective=objective,
        log=lambda m: None)
    assert domain_report(score(model, tensors, test), test, np.ones(len(log.items), bool))["auc"] > 0.9


@pytest.mark.parametrize("kind", ["mmd", "kl", "euclidean"])
def test_distribution_distances(kind):
    torch.manual_seed(0)
    x, p = torch.randn(16, 4), torch.softmax(torch.randn(6), 0)
    same = distance(kind, x, x.clone(), p, p.clone())
    apart = distance(kind, x, x + 3.0, p, torch.softmax(torch.randn(6) * 3, 0))
    assert abs(float(same)) < 1e-5 and float(apart) > 0.05


def test_gan_objective_alternates_generator_and_discriminator_steps():
    log = genre_log()
    domain = domain_items(log.items, ["genre:c"])
    tensors, train = ItemTensors(log.items), samples(log.train, 5)
    torch.manual_seed(0)
    model = CTRModel(CTRConfig(len(log.items.label_names), 2, **SIZE))
    objective = GANObjective(GANConfig(len(log.items.label_names), dim=8, noise_dim=4), tensors, train, domain,
                             click_loss(tensors, train))
    before = [p.detach().clone() for p in objective.generator.parameters()]
    idx = np.arange(len(train))
    with_adv = objective(model, idx)
    plain = click_loss(tensors, train)(model, idx)
    assert torch.isfinite(with_adv) and with_adv.item() != pytest.approx(plain.item())
    assert any(not torch.equal(a, b) for a, b in zip(before, objective.generator.parameters()))  # G stepped
    assert all(p.grad is None for p in model.parameters())  # ... without touching D
    fit(model, tensors, train, samples(log.test, 5), epochs=3, lr=1e-2, batch=64, seed=0, objective=objective,
        log=lambda m: None)
    test = samples(log.test, 5)
    assert domain_report(score(model, tensors, test), test, domain)["auc"] > 0.8
    with pytest.raises(ValueError, match="distance"):
        GANConfig(10, distance="cosine")


def test_train_all_with_channels_trains_joint_models_that_export(tmp_path):
    from edge_rec_export.bundle.package_ranking import export_ranking_model, onnx_scores
    from edge_rec_export.training.train_ranking import load, train_all

    log = genre_log(users=9, visits=6)
    results = train_all(log, tmp_path, epochs=1, lr=1e-2, batch=64, seed=0, channels="genre:", logf=lambda m: None)
    assert {"dssm", "ctr_teacher", "ctr_student"} <= results.keys()
    student, metrics = load(tmp_path / "ctr_student.pt")
    assert isinstance(student, JointCTR) and student.cfg.channel_labels == (1, 2, 3)
    assert metrics == results["ctr_student"]
    tensors = ItemTensors(log.items)
    path, diff = export_ranking_model(student, tensors, log.test[:3], tmp_path / "ranker.onnx")
    assert diff < 1e-4
    torch_scores = np.concatenate([score(student, tensors, samples([imp], student.cfg.history_length))
                                   for imp in log.test[:3]])
    np.testing.assert_allclose(onnx_scores(path, tensors, log.test[:3]), torch_scores, atol=1e-4)
    with pytest.raises(ValueError, match="no label starts with 'shelf:'"):
        train_all(log, tmp_path / "x", epochs=1, lr=1e-2, batch=64, seed=0, channels="shelf:", logf=lambda m: None)
