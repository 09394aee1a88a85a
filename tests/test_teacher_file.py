"""The E5S1 reader, on a tiny file this test writes in the same format."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import TITLES, tiny_pieces
from export.encoder import Encoder, EncoderConfig
from export.teacher_file import (F32, Q4_0, RawTensor, TeacherFile, TeacherFormatError, encoder_state_dict,
                                 read_teacher, write_teacher)
from export.tokenizer import build_tokenizer


def tiny_teacher(seed: int = 0) -> tuple[TeacherFile, dict]:
    rng = np.random.default_rng(seed)
    pieces, scores = tiny_pieces()
    cfg = EncoderConfig(vocab_size=len(pieces) + 3, hidden=32, layers=2, heads=4, ff=64, max_positions=40, pad_id=1)
    h, ff = cfg.hidden, cfg.ff
    arrays = {"emb.word": rng.normal(0, 0.5, (cfg.vocab_size, h)), "emb.pos": rng.normal(0, 0.1, (40, h)),
              "emb.type": rng.normal(0, 0.1, (2, h)), "emb.ln.w": 1 + rng.normal(0, 0.05, h),
              "emb.ln.b": rng.normal(0, 0.05, h)}
    for layer in range(cfg.layers):
        for name, shape in (("q", (h, h)), ("k", (h, h)), ("v", (h, h)), ("ao", (h, h)), ("fi", (ff, h)),
                            ("fo", (h, ff))):
            arrays[f"l{layer}.{name}.w"] = rng.normal(0, 0.2, shape)
            arrays[f"l{layer}.{name}.b"] = rng.normal(0, 0.05, shape[0])
        for ln in ("aln", "oln"):
            arrays[f"l{layer}.{ln}.w"] = 1 + rng.normal(0, 0.05, h)
            arrays[f"l{layer}.{ln}.b"] = rng.normal(0, 0.05, h)
    tensors = {k: RawTensor.from_numpy(v, Q4_0 if v.ndim == 2 and not k.startswith(("emb.pos", "emb.type"))
                                       else F32) for k, v in arrays.items()}
    tf = TeacherFile(cfg, 2, 32, pieces, scores, 0, 2, 1, 3, {0x01: [], 0x09: [32], 0xFF21: [0x41]}, tensors)
    return tf, arrays


def test_roundtrip_and_dequantization(tmp_path):
    tf, arrays = tiny_teacher()
    back = read_teacher(write_teacher(tf, tmp_path / "t.bin"))
    assert back.config.ln_eps == pytest.approx(tf.config.ln_eps)  # stored as f32
    assert replace(back.config, ln_eps=tf.config.ln_eps) == tf.config and back.pieces == tf.pieces and back.norm_map == tf.norm_map
    assert (back.bos, back.eos, back.pad, back.unk) == (0, 2, 1, 3)
    np.testing.assert_array_equal(back.scores, tf.scores)
    for name, ref in arrays.items():
        got = back.array(name)
        assert got.shape == ref.shape
        if tf.tensors[name].dtype == F32:
            np.testing.assert_allclose(got, ref, rtol=1e-6)
        else:  # 4-bit: error at most half a step of each block's scale (max |x| / 7)
            step = np.abs(ref.reshape(-1, 32)).max(axis=1, keepdims=True) / 7
            assert np.all(np.abs(got.reshape(-1, 32) - ref.reshape(-1, 32)) <= step * 0.5 + 1e-3)


def test_q4_nibble_layout():
    """Low nibble of byte j is value j, high nibble is value j + 16; value = (nibble - 8) * scale."""
    scale = np.float16(0.5).tobytes()
    nibbles = bytes((j % 16) | (((j + 3) % 16) << 4) for j in range(16))
    values = RawTensor(Q4_0, 32, scale + nibbles).to_numpy()
    expected = [((j % 16) - 8) * 0.5 for j in range(16)] + [(((j + 3) % 16) - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(values, expected)


def test_weights_load_into_encoder(tmp_path):
    tf, _ = tiny_teacher()
    back = read_teacher(write_teacher(tf, tmp_path / "t.bin"))
    enc = Encoder(back.config)
    enc.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in encoder_state_dict(back).items()})
    tok = build_tokenizer(back.pieces, back.scores, back.unk, back.bos, back.eos, back.norm_map)
    ids = torch.tensor([tok.encode(TITLES[0]).ids])
    _, pooled = enc(ids, torch.ones_like(ids))
    assert pooled.shape == (1, 32) and torch.isfinite(pooled).all()


def test_tokenizer_normalisation_and_template():
    tf, _ = tiny_teacher()
    tok = build_tokenizer(tf.pieces, tf.scores, tf.unk, tf.bos, tf.eos, tf.norm_map)
    enc = tok.encode("Hello\x01\tworld")  # \x01 dropped, \t becomes a space
    assert enc.tokens == ["<s>", "▁Hello", "▁world", "</s>"]


def test_rejects_bad_files(tmp_path):
    (tmp_path / "bad.bin").write_bytes(b"NOPE" + b"\0" * 64)
    with pytest.raises(TeacherFormatError, match="not an E5S1"):
        read_teacher(tmp_path / "bad.bin")
    tf, _ = tiny_teacher()
    data = write_teacher(tf, tmp_path / "t.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:60])
    with pytest.raises(TeacherFormatError, match="ends early"):
        read_teacher(tmp_path / "short.bin")
