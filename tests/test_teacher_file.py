"""The E5S1 reader, on a tiny file this test writes in the same format."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from conftest import TITLES, tiny_teacher
from edge_rec_export.models.encoder import Encoder
from edge_rec_export.data.teacher_file import (F32, Q4_0, RawTensor, TeacherFormatError, encoder_state_dict,
                                 read_teacher, write_teacher)
from edge_rec_export.data.tokenizer import build_tokenizer


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
