"""Pruned and unpruned teachers give the same outputs on in-vocabulary text."""
import numpy as np
import torch

from conftest import TITLES
from edge_rec_export.models.encoder import Encoder
from edge_rec_export.data.teacher_file import encoder_state_dict
from edge_rec_export.data.tokenizer import build_tokenizer
from edge_rec_export.data.vocab_prune import prune
from test_teacher_file import tiny_teacher


def pooled(tf, texts):
    enc = Encoder(tf.config).eval()
    enc.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in encoder_state_dict(tf).items()})
    tok = build_tokenizer(tf.pieces, tf.scores, tf.unk, tf.bos, tf.eos, tf.norm_map)
    out = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok.encode(t).ids])
            out.append(enc(ids, torch.ones_like(ids))[1][0].numpy())
    return np.stack(out)


def test_pruned_model_matches_on_corpus_text():
    full, _ = tiny_teacher()
    corpus = TITLES[:4]
    pruned, keep = prune(full, corpus)
    assert pruned.config.vocab_size == len(keep) < len(full.pieces)
    assert [pruned.pieces[i] for i in range(len(keep))] == [full.pieces[i] for i in keep]
    np.testing.assert_allclose(pooled(pruned, corpus), pooled(full, corpus), atol=1e-5)


def test_pruned_keeps_specials_and_single_characters():
    full, _ = tiny_teacher()
    pruned, _ = prune(full, ["Hello"])
    assert pruned.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and pruned.pad == 1
    assert "▁Hello" in pruned.pieces and "▁world" not in pruned.pieces
    assert all(p in pruned.pieces for p in full.pieces if len(p.lstrip("▁")) == 1)
