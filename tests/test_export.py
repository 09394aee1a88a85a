"""ONNX export parity, INT8 quantization (structural and numerical), parity errors."""
import numpy as np
import pytest
import torch

from conftest import random_batch, tiny_model
from edge_rec_export.models.classifier import ContentClassifierModel, InferenceHead
from edge_rec_export.models.ngram_wide import WideConfig
from edge_rec_export.bundle.onnx_export import ParityError, check_parity, run_onnx
from edge_rec_export.bundle.quantize import float_matmuls, int8_weights, op_counts


def test_fp32_parity_within_1e4(tiny_export):
    model, fp32, _, diff = tiny_export
    assert diff <= 1e-4
    # And on inputs other than the export sample: other batch sizes and lengths (dynamic axes).
    for batch, length, seed in ((1, 5, 1), (7, 23, 2), (3, 40, 3)):
        worst = check_parity(InferenceHead(model), fp32, random_batch(model.cfg.encoder.vocab_size, batch, length,
                                                                       seed), InferenceHead.output_names, 1e-4)
        assert worst <= 1e-4


@pytest.mark.parametrize("n_tags", [6, 0])
def test_inference_head_merges_gemms_without_changing_the_maths(n_tags):
    """The exported head merges the MMoE's and towers' GEMMs (stacked, block-diagonal): same outputs as the
    model's own forward, with a token wide part and a character part on too."""
    model = tiny_model(seed=3, n_tags=n_tags)
    cfg = model.cfg
    cfg.wide, cfg.char_wide = WideConfig(64, 8), WideConfig(97, cfg.n_primary)
    wide = ContentClassifierModel(cfg).eval()
    for m in (model, wide):
        for p in m.parameters():  # non-zero everywhere, so a misplaced block or slice shows
            torch.nn.init.normal_(p, std=0.2)
    batch = random_batch(model.cfg.encoder.vocab_size, 5, 13, seed=4)
    codes = torch.randint(1, 40000, (5, 9))
    for m, extra in ((model, ()), (wide, (codes,))):
        with torch.no_grad():
            out = m(batch["input_ids"], batch["attention_mask"], *extra)
            got = InferenceHead(m)(batch["input_ids"], batch["attention_mask"], *extra)
        want = (out.primary_logits.softmax(-1), torch.sigmoid(out.tag_logits), out.index, out.vector)
        for name, w, g in zip(InferenceHead.output_names, want, got):
            assert w.shape == g.shape, name
            assert torch.allclose(w, g, atol=1e-5), (name, float((w - g).abs().max()))


def test_parity_check_fails_loudly_on_a_different_model(tiny_export):
    _, fp32, _, _ = tiny_export
    other = tiny_model(seed=1)
    with pytest.raises(ParityError, match="differs from torch"):
        check_parity(InferenceHead(other), fp32, random_batch(other.cfg.encoder.vocab_size), InferenceHead.output_names,
                     1e-4)


def test_int8_graph_is_quantized(tiny_export):
    _, fp32, int8, _ = tiny_export
    n_linear = sum(op_counts(fp32)[op] for op in ("MatMul", "Gemm"))
    # Every weight MatMul/Gemm reads int8 weights (QDQ); only activation x activation MatMuls (attention) do not.
    assert int8_weights(int8) >= n_linear - 2 * 2  # 2 layers x (QK^T, AV)
    assert float_matmuls(int8) == 0
    assert int8.stat().st_size < fp32.stat().st_size


def test_int8_primary_agrees_with_fp32(tiny_export):
    _, fp32, int8, _ = tiny_export
    vocab = tiny_model().cfg.encoder.vocab_size
    agree, total, cosines = 0, 0, []
    for seed in range(10):
        feeds = {k: v.numpy() for k, v in random_batch(vocab, 32, 20, seed=100 + seed).items()}
        p32, _, c32, v32 = run_onnx(fp32, feeds)
        p8, _, c8, v8 = run_onnx(int8, feeds)
        agree += int((p32.argmax(1) == p8.argmax(1)).sum())
        total += len(p32)
        cosines.extend((v32 * v8).sum(axis=1))  # both unit norm
        np.testing.assert_allclose(c8, c32, atol=0.05)
    assert total == 320
    assert agree / total >= 0.95, f"INT8 agrees with fp32 on {agree}/{total}"
    assert np.mean(cosines) >= 0.95, f"mean cosine fp32 vs INT8 vectors {np.mean(cosines):.3f}"


def test_model_config_validation():
    from edge_rec_export.models.encoder import EncoderConfig
    with pytest.raises(ValueError, match="divisible"):
        EncoderConfig(hidden=30, heads=4)
    with pytest.raises(ValueError, match="layers"):
        EncoderConfig(layers=0)


def test_mean_pool_ignores_padding():
    model = tiny_model()
    b = random_batch(model.cfg.encoder.vocab_size, 1, 9, seed=5)
    n = int(b["attention_mask"].sum())
    with torch.no_grad():
        short = model(b["input_ids"][:, :n], b["attention_mask"][:, :n])
        long_ = model(b["input_ids"], b["attention_mask"])
    torch.testing.assert_close(short.primary_logits, long_.primary_logits, atol=1e-5, rtol=1e-5)


def test_hashed_ngrams_ignore_padding_and_see_order():
    from edge_rec_export.models.ngram_wide import HashedNgrams, WideConfig

    torch.manual_seed(0)
    wide = HashedNgrams(WideConfig(buckets=1009, dim=8))
    ids, mask = torch.tensor([[0, 40, 41, 42, 2]]), torch.ones(1, 5, dtype=torch.long)
    padded = torch.cat([ids, torch.full((1, 3), 1)], 1), torch.cat([mask, torch.zeros(1, 3, dtype=torch.long)], 1)
    torch.testing.assert_close(wide(ids, mask), wide(*padded))
    swapped = torch.tensor([[0, 41, 40, 42, 2]])  # same unigrams, other bigrams/trigrams
    assert not torch.allclose(wide(ids, mask), wide(swapped, mask))
    with pytest.raises(ValueError, match="orders"):
        WideConfig(buckets=10, orders=(4,))


def test_hashed_tfidf_is_a_linear_model_on_its_sparse_features():
    """The character part's graph computes x W + b for the x that scikit-learn is fitted on (sparse_features),
    whatever the padding; a repeated n-gram counts twice (tf)."""
    from edge_rec.char_codes import char_codes
    from edge_rec_export.models.ngram_wide import HashedTfidf, WideConfig, hashed_ngrams

    torch.manual_seed(0)
    part = HashedTfidf(WideConfig(buckets=997, dim=5))
    torch.nn.init.normal_(part.table.weight)
    torch.nn.init.normal_(part.bias)
    torch.nn.init.uniform_(part.idf.weight, 1.0, 6.0)
    codes = torch.from_numpy(char_codes(["股市大涨股市", "故宫", "a", "Hello 世界"], width=20))
    x = part.sparse_features(codes)
    with torch.no_grad():
        want = x @ part.table.weight.numpy() + part.bias.numpy()
        torch.testing.assert_close(part(codes), torch.from_numpy(want).float(), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(part(codes[:, :10]), part(codes))  # padding changes nothing
    idx, valid = hashed_ngrams(codes[:1], (codes[:1] > 0).long(), part.cfg)
    idf = part.idf.weight[:, 0].detach().numpy()
    gu = int(idx[0, 0])  # the first n-gram is the unigram 股, which occurs twice
    assert x[0].nnz < int(valid.sum()) == 6 + 5 + 4
    norm = np.sqrt(np.square(idf[idx[0][valid[0] > 0].numpy()]).sum())
    np.testing.assert_allclose(x[0, gu], 2 * idf[gu] / norm, rtol=1e-5)


def test_tag_threshold_grid_contains_its_optimum():
    from edge_rec_export.bundle.package_classifier import TAG_GRID, best_threshold

    assert TAG_GRID[0] <= 0.005 and TAG_GRID[-1] >= 0.99
    assert best_threshold(lambda t: -(t - 0.65) ** 2 + 1) == 0.65  # an optimum above 0.5 is found
    # An optimum at the edge is returned, not raised: a user's build must not end there after all its training.
    assert best_threshold(lambda t: -t) == TAG_GRID[0] and best_threshold(lambda t: t) == TAG_GRID[-1]
