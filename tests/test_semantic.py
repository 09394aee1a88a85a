"""The int8 semantic product: the committed graph, exact integer arithmetic at the code range's extremes, and the
screened top-d against the exact float32 one."""
from __future__ import annotations

import numpy as np
import pytest

from edge_rec.recall import top_d
from edge_rec.semantic import INT8_GRAPH, REF_LEVELS, ZERO, _session, int8_codes, int8_similarity, \
    most_similar, similarity


def unit(rng, n, v=64):
    x = rng.standard_normal((n, v)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_committed_graphs_are_the_ones_the_export_side_builds():
    pytest.importorskip("onnx")
    from edge_rec_export.bundle.product_graphs import GRAPH_BYTES

    for name, make in GRAPH_BYTES.items():
        assert (INT8_GRAPH.parent / name).read_bytes() == make()


def test_integer_products_are_exact_at_the_extremes():
    """Codes 0 and 255 against references +-REF_LEVELS: no int16 saturation in the u8 x s8 kernel."""
    rng = np.random.default_rng(0)
    codes = rng.choice(np.array([0, 255, 1, 254], dtype=np.uint8), size=(300, 384))
    refs = rng.choice(np.array([-REF_LEVELS, REF_LEVELS], dtype=np.int8), size=(384, 7))
    refs[:, 0] = REF_LEVELS
    (best,) = _session(INT8_GRAPH, 1).run(["best"], {"codes": codes, "refs": refs, "zero": ZERO})
    exact = ((codes.astype(np.int64) - 128) @ refs.astype(np.int64)).max(axis=1)
    np.testing.assert_array_equal(best, exact)


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_int8_similarity_is_close_to_float32(mode):
    rng = np.random.default_rng(1)
    vectors, refs = unit(rng, 2000), unit(rng, 30)
    codes, scale = int8_codes(vectors)
    rough = int8_similarity(refs, codes, scale, mode)
    assert rough.dtype == np.float32 and rough.shape == (2000,)
    assert np.abs(rough - similarity(refs, vectors, mode)).max() < 0.02
    assert not int8_similarity(refs[:0], codes, scale, mode).any()


@pytest.mark.parametrize("mode", ["max", "mean"])
def test_screened_top_d_is_the_exact_top_d(mode):
    rng = np.random.default_rng(2)
    vectors, refs = unit(rng, 20000), unit(rng, 50)
    penalty = np.zeros(20000, dtype=np.float32)
    penalty[rng.choice(20000, 500, replace=False)] = np.inf  # excluded items never come back
    codes, scale = int8_codes(vectors)
    exact = top_d(similarity(refs, vectors, mode) - penalty, 100)
    screened = most_similar(refs, {"vector": vectors, "vector_codes": codes, "vector_scale": scale}, 100, penalty,
                            mode)
    np.testing.assert_array_equal(screened, exact)
    np.testing.assert_array_equal(most_similar(refs, {"vector": vectors}, 100, penalty, mode), exact)


def test_ties_keep_pool_order_under_the_screen():
    rng = np.random.default_rng(3)
    vectors = np.repeat(unit(rng, 50), 40, axis=0)  # every vector 40 times
    codes, scale = int8_codes(vectors)
    refs = unit(rng, 5)
    zero = np.zeros(len(vectors), dtype=np.float32)
    screened = most_similar(refs, {"vector": vectors, "vector_codes": codes, "vector_scale": scale}, 30, zero)
    np.testing.assert_array_equal(screened, top_d(similarity(refs, vectors) - zero, 30))


def test_vector_store_similarities_are_cosines_whatever_the_lengths():
    from edge_rec import VectorStore

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 16)).astype(np.float32) * rng.uniform(0.1, 10, size=(50, 1)).astype(np.float32)
    ref = rng.normal(size=16).astype(np.float32) * 7
    cosines = vectors @ ref / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(ref))
    for precision, tolerance in (("fp32", 1e-5), ("fp16", 2e-3), ("int8", 2e-2)):
        top = VectorStore([f"i{j}" for j in range(50)], vectors, precision).top(ref, 5)
        assert all(abs(sim - cosines[int(i[1:])]) < tolerance for i, sim in top), precision
