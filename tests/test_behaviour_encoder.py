"""Seed 003 behaviour encoder: configs, every fusion/predictor, leakage guard, and a short run that learns."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from conftest import TITLES, random_batch, tiny_model, tiny_teacher, tiny_tokenizer
from edge_rec_export.models.behaviour_encoder import FUSIONS, PREDICTORS, BehaviourEncoderConfig, BehaviourModel
from edge_rec_export.data.interactions import ClickLog, Impression, ItemTable
from edge_rec_export.bundle.classifier_bundle import export_classifier
from edge_rec_export.bundle.onnx_export import run_onnx
from edge_rec_export.bundle.semantic_branch import BranchedInferenceHead, SemanticBranch, compact, load_compact
from edge_rec_export.data.text_vectors import e5_title_encoder, tokenise
from edge_rec_export.training.train_semantic import Events, behaviour_samples, predict, recall_at, train


def test_config_is_checked():
    with pytest.raises(ValueError, match="fusion"):
        BehaviourEncoderConfig(fusion="concat")
    with pytest.raises(ValueError, match="out_dim"):
        BehaviourEncoderConfig(out_dim=0)
    with pytest.raises(ValueError, match="residual head keeps the vector's width"):
        BehaviourEncoderConfig(vector_dim=384, out_dim=128, residual=True)


def test_residual_head_starts_at_the_plain_vector():
    head = BehaviourModel(BehaviourEncoderConfig(vector_dim=12, out_dim=12, hidden=16, residual=True)).item
    x = torch.randn(5, 12)
    torch.testing.assert_close(head(x), torch.nn.functional.normalize(x, dim=-1))


@pytest.mark.parametrize("fusion", FUSIONS)
@pytest.mark.parametrize("predictor", PREDICTORS)
def test_every_fusion_and_predictor_runs(fusion, predictor):
    cfg = BehaviourEncoderConfig(vector_dim=12, out_dim=8, hidden=16, history_length=5, fusion=fusion,
                                 predictor=predictor)
    m = BehaviourModel(cfg)
    mask = torch.tensor([[0, 0, 1, 1, 1.0], [0, 0, 0, 0, 0.0]])  # the second row has no history
    out = m.logits(torch.randn(2, 5, 12), torch.randint(0, 2, (2, 5)), torch.randint(0, 8, (2, 5)), mask,
                   torch.randn(2, 12))
    assert out.shape == (2,) and torch.isfinite(out).all()
    assert torch.allclose(m.item(torch.randn(3, 12)).norm(dim=-1), torch.ones(3), atol=1e-5)


def _toy_log(seed: int = 0) -> ClickLog:
    """Two topics of items (vectors around two centres); each user clicks items of one topic and skips the other."""
    rng = np.random.default_rng(seed)
    n = 80
    topic = np.arange(n) % 2
    centres = rng.normal(size=(2, 16))
    vectors = centres[topic] + 0.8 * rng.normal(size=(n, 16))
    items = ItemTable.build([str(i) for i in range(n)], [[1 + t] for t in topic], np.full(n, 0.5), vectors,
                            ["a", "b"], 1)
    split = {"train": [], "val": [], "test": []}
    for u in range(60):
        likes = u % 2
        for v in range(12):
            shown = 1 + rng.choice(n, 4, replace=False)
            clicks = (topic[shown - 1] == likes).astype(np.float32)
            part = "test" if v == 11 else "val" if v == 10 else "train"
            split[part].append(Impression(u, v, np.zeros(0, np.int64), shown, clicks))
    for imp in split["val"] + split["test"]:  # histories: the user's training clicks
        imp.history = np.array([i for x in split["train"] if x.user == imp.user for i, c in zip(x.shown, x.clicks)
                                if c], dtype=np.int64)
    return ClickLog("toy", items, split["train"], split["val"], split["test"])


def test_samples_use_only_earlier_exposures_and_hide_the_item_itself():
    log = _toy_log()
    cfg = BehaviourEncoderConfig(vector_dim=16, history_length=50)
    events = Events.from_log(log)
    data = behaviour_samples(log, events, "train", cfg)
    first = log.train[0]
    assert (data["hist"][:len(first.shown)] == 0).all()  # the first visit has no earlier exposures
    assert not (data["hist"] == data["cand"][:, None]).any()
    rows = [(imp, j) for imp in log.train for j in range(len(imp.shown))]
    r = next(k for k, (imp, _) in enumerate(rows) if imp.time == 5)
    imp = rows[r][0]
    earlier = [int(i) for x in log.train if x.user == imp.user and x.time < imp.time for i in x.shown]
    assert set(data["hist"][r][data["hist"][r] > 0]) <= set(earlier)


def test_training_learns_behaviour_and_its_vectors_recall_the_topic():
    log = _toy_log()
    cfg = BehaviourEncoderConfig(vector_dim=16, out_dim=8, hidden=32, history_length=20)
    model, table, val_auc = train(log, cfg, epochs=8, lr=5e-3, batch=64, seed=0, log_fn=lambda _: None)
    assert val_auc > 0.85
    torch.testing.assert_close(table, torch.from_numpy(log.items.vectors))  # the frozen vectors
    data = behaviour_samples(log, Events.from_log(log), "val", cfg)
    assert predict(model, table, data).shape == data["y"].shape
    with torch.no_grad():
        f = model.item(table).numpy()
    pool = np.arange(1, len(log.items))
    recalls = []
    for imp in log.test:
        pos = {int(i) for i, c in zip(imp.shown, imp.clicks) if c}
        if pos:
            recalls.append(len(recall_at((f[pool] @ f[imp.history].T).max(axis=1), pool, pos, 20)) / len(pos))
    assert np.mean(recalls) > 0.45, np.mean(recalls)  # random: 20 / 79 = 0.25


def _titled_log(seed: int = 0) -> tuple[ClickLog, list[str]]:
    """The toy log's two topics as titles written with two disjoint character sets."""
    log = _toy_log(seed)
    rng = np.random.default_rng(seed)
    alphabets = ["".join(TITLES[:3]).replace(" ", ""), "".join(TITLES[3:6]).replace(" ", "")]
    topic = log.items.labels[1:, 0] - 1
    titles = ["".join(rng.choice(list(alphabets[t]), 6)) for t in topic]
    return log, titles


def test_title_encoder_vectors_are_unit_and_batch_independent():
    tf, _ = tiny_teacher()
    titles = TITLES[:5]
    enc = e5_title_encoder(titles, tf).eval()
    table = enc.table(batch=2)
    assert table.shape == (6, tf.config.hidden) and (table[0] == 0).all()
    torch.testing.assert_close(table[1:].norm(dim=-1), torch.ones(5))
    with torch.no_grad():
        torch.testing.assert_close(enc(torch.tensor([4, 1])), table[[4, 1]], atol=1e-5, rtol=1e-5)


@pytest.mark.slow  # about two minutes of training on 2 cores: CI runs it with the other slow-marked tests
def test_end_to_end_training_learns_what_a_head_over_frozen_vectors_cannot():
    """The random tiny encoder's vectors barely tell the topics apart (cosine 0.91 within, 0.90 across): the head
    over them stays near chance, while training the encoder with it separates the topics' characters."""
    tf, _ = tiny_teacher()
    log, titles = _titled_log()
    log.items.vectors = e5_title_encoder(titles, tf).table().numpy()
    cfg = BehaviourEncoderConfig(vector_dim=tf.config.hidden, out_dim=tf.config.hidden, hidden=32, history_length=20,
                                 residual=True, fusion="multiply")
    kwargs = dict(epochs=10, lr=5e-3, batch=64, seed=0, log_fn=lambda _: None)
    _, _, frozen_auc = train(log, cfg, **kwargs)
    encoder = e5_title_encoder(titles, tf)
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    _, table, val_auc = train(log, cfg, encoder=encoder, encoder_lr=3e-3, **kwargs)
    assert frozen_auc < 0.7 and val_auc > 0.9, (frozen_auc, val_auc)
    moved = [k for k, v in encoder.state_dict().items() if not torch.equal(v, before[k])]
    assert "model.encoder.word.weight" in moved and "model.encoder.layers.1.ff_out.weight" in moved
    torch.testing.assert_close(table, encoder.table())  # the encoder is left at its best epoch, the table's


def test_classifier_branch_starts_at_the_classifier_vector_and_trains_only_its_layers(tmp_path):
    clf = tiny_model()
    titles = TITLES[:6]
    path = compact(clf, tiny_tokenizer(), titles, pad_id=1, path=tmp_path / "branch.pt")
    enc = load_compact(path).eval()
    assert enc.model.encoder.word.num_embeddings < clf.cfg.encoder.vocab_size  # only the rows the titles use
    ids, mask = tokenise(tiny_tokenizer(), titles, pad_id=1)
    with torch.no_grad():
        torch.testing.assert_close(enc.table()[1:], clf(ids, mask).vector, atol=1e-6, rtol=1e-5)
    branch = SemanticBranch.of(clf)
    assert branch.encoder.word is clf.encoder.word and branch.encoder.layers[0] is not clf.encoder.layers[0]
    trainable = {n for n, p in branch.named_parameters() if p.requires_grad}
    assert trainable == {f"encoder.{k}" for k in branch.encoder.state_dict() if k.startswith("layers.")} | {
        "project.weight", "project.bias"}
    assert set(branch.trained_state()) == trainable


def test_branched_classifier_exports_one_embedding_table_with_parity(tmp_path):
    clf = tiny_model()
    head = BehaviourModel(BehaviourEncoderConfig(vector_dim=16, out_dim=16, hidden=8, residual=True)).item
    torch.nn.init.normal_(head.mlp[-1].weight)  # away from the identity, so the head's maths is exercised
    branched = BranchedInferenceHead(clf, SemanticBranch.of(clf), head)
    fp32, int8, diff = export_classifier(clf, tmp_path, random_batch(clf.cfg.encoder.vocab_size), branched)
    assert diff < 1e-4
    graph = onnx.load(str(fp32)).graph
    assert [o.name for o in graph.output][-1] == "semantic_vector"
    vocab = clf.cfg.encoder.vocab_size
    assert sum(1 for t in graph.initializer if t.dims and t.dims[0] == vocab) == 1  # the word table, once
    vec = run_onnx(int8, {k: v.numpy() for k, v in random_batch(vocab).items()})[-1]
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-3)
