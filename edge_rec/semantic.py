"""Semantic recall (seed 000 S3 / seed 003): cosine of candidate vectors against the user's reference vectors.

Vectors are unit norm (the classifier's `vector`), so cosine is a dot product. `VectorStore` keeps a large
candidate matrix computed once (or supplied by the app) in fp32, fp16 (half the memory) or int8 (a quarter, one
scale per row) and answers top-D queries; `recommend()` uses the same scoring on its candidate pool, and over a
catalogue that carries int8 codes (a Store's) screens with the int8 product and re-scores the best in float32.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Hashable, Sequence

import numpy as np
import onnxruntime as ort

from edge_rec.checks import positive_int
from edge_rec.recall import top_d
from edge_rec.resources import PACKAGE
from edge_rec.sessions import make_session

PRECISIONS = ("fp32", "fp16", "int8")
MODES = ("max", "mean")
CHUNK = 4096  # rows widened to float32 at a time
# MatMulInteger + ReduceMax (edge_rec_export/bundle/int8_product.py): onnxruntime's u8 x s8 kernel, about twice
# numpy's float32 product on one AVX2 core.
INT8_GRAPH = PACKAGE / "graphs" / "int8_max_dot.onnx"
# MatMul + ReduceMax in float32: the runtime's float products run in onnxruntime's thread pool (the profile's
# threads), never in numpy's BLAS, which would take every core of the host app (issue 35).
FLOAT_GRAPH = PACKAGE / "graphs" / "float_max_dot.onnx"
ZERO = np.array(128, dtype=np.uint8)  # item codes are stored +128 as uint8, the kernel's fast operand order
# References take 7 bits: the AVX2 kernel sums pairs of u8 x s8 products in int16 (vpmaddubsw saturates), and
# 2 x 255 x 63 < 32768 keeps every pair exact.
REF_LEVELS = 63
SCREEN = 4  # an int8 screen keeps SCREEN x D items for the exact float32 re-score


def similarity(refs: np.ndarray, vectors: np.ndarray, mode: str = "max", threads: int = 1) -> np.ndarray:
    """refs (h, V), vectors (N, V) -> (N,): the max or mean cosine over the references; zeros when h = 0."""
    if mode not in MODES:
        raise ValueError(f"semantic mode must be one of {MODES}, got {mode!r}")
    if not len(refs) or not len(vectors):
        return np.zeros(len(vectors), dtype=np.float32)
    # the mean of the dot products is the dot product with the mean reference
    refs = refs.mean(axis=0, keepdims=True) if mode == "mean" else refs
    return max_dot(vectors, refs.T, threads)


def max_dot(vectors: np.ndarray, refs: np.ndarray, threads: int = 1) -> np.ndarray:
    """vectors (N, V) x refs (V, h) -> (N,) float32: each row's largest product (h = 1: the product), computed in
    onnxruntime with `threads` threads."""
    (best,) = _session(FLOAT_GRAPH, threads).run(["best"], {
        "vectors": np.ascontiguousarray(vectors, dtype=np.float32),
        "refs": np.ascontiguousarray(refs, dtype=np.float32)})
    return best


def int8_codes(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, V) float vectors -> codes (N, V) uint8 (the int8 value + 128) and one scale per row (N,) float32."""
    scale = (np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0).astype(np.float32)
    codes = vectors * (1.0 / scale)[:, None]  # one float32 temporary, rounded in place (about 2x the plain form)
    np.rint(codes, out=codes)
    codes += 128.0
    return codes.astype(np.uint8), scale


@lru_cache(maxsize=None)
def _session(graph, threads: int) -> ort.InferenceSession:
    return make_session(graph, threads)


def int8_similarity(refs: np.ndarray, codes: np.ndarray, scale: np.ndarray, mode: str = "max",
                    threads: int = 1) -> np.ndarray:
    """As `similarity`, over int8 codes (`int8_codes`): (N,) float32 within about 1e-2 of the float32 figure."""
    if not len(refs):
        return np.zeros(len(codes), dtype=np.float32)
    refs = refs.mean(axis=0, keepdims=True) if mode == "mean" else refs
    step = max(float(np.abs(refs).max()), 1e-12) / REF_LEVELS
    q = np.ascontiguousarray(np.rint(refs / step).astype(np.int8).T)  # (V, h)
    (best,) = _session(INT8_GRAPH, threads).run(["best"], {"codes": codes, "refs": q, "zero": ZERO})
    return best.astype(np.float32) * (scale * np.float32(step))


def most_similar(refs: np.ndarray, features: dict[str, np.ndarray], d: int, penalty: np.ndarray, mode: str = "max",
                 threads: int = 1) -> np.ndarray:
    """Positions of the `d` items whose similarity minus `penalty` (N,) is highest, best first, ties in pool order.
    Items that carry int8 codes ("vector_codes", "vector_scale": a Store's catalogue) are screened with the int8
    product and the best SCREEN x d re-scored exactly, so the result is exact unless an item outside the screen
    would have made the top d (measured on real titles in the README)."""
    vectors = features["vector"]
    codes = features.get("vector_codes")
    if codes is None or d <= 0 or SCREEN * d >= len(vectors):
        return top_d(similarity(refs, vectors, mode, threads) - penalty, d)
    rough = int8_similarity(refs, codes, features["vector_scale"], mode, threads) - penalty
    head = np.sort(top_d(rough, SCREEN * d))
    return head[top_d(similarity(refs, vectors[head], mode, threads) - penalty[head], d)]


def unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero: it is similar to nothing)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)


class VectorStore:
    """Candidate vectors for semantic recall over a large, mostly static pool."""

    def __init__(self, ids: Sequence[Hashable], vectors: np.ndarray, precision: str = "fp32"):
        vectors = np.asarray(vectors, dtype=np.float32)
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if vectors.ndim != 2 or len(ids) != len(vectors):
            raise ValueError(f"expected one vector per id as an (N, V) matrix; got {len(ids)} ids and shape "
                             f"{vectors.shape}")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors hold NaN or infinite values")
        vectors = unit(vectors)  # similarities are cosines whatever the vectors' lengths (the classifier's are unit)
        self.ids = list(ids)
        self.precision = precision
        self.scale = None
        if precision == "int8":
            self.data, self.scale = int8_codes(vectors)
        else:
            self.data = vectors.astype(np.float16 if precision == "fp16" else np.float32)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + (self.scale.nbytes if self.scale is not None else 0)

    def top(self, refs: np.ndarray, d: int, mode: str = "max") -> list[tuple[Hashable, float]]:
        """The `d` (id, cosine similarity) pairs most similar to the reference vectors refs (V,) or (h, V), best
        first."""
        positive_int("d", d)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        refs = np.asarray(refs, dtype=np.float32)
        refs = refs[None] if refs.ndim == 1 else refs
        width = self.data.shape[1]
        if refs.ndim != 2 or refs.shape[1] != width or not len(refs):
            raise ValueError(f"refs must be one {width}-d vector or an (h, {width}) matrix with h >= 1, got shape "
                             f"{refs.shape}")
        if not np.isfinite(refs).all():
            raise ValueError("refs hold NaN or infinite values")
        refs = unit(refs)
        if self.scale is not None:
            scores = int8_similarity(refs, self.data, self.scale, mode)
        else:
            scores = np.empty(len(self.data), dtype=np.float32)
            # numpy has no fp16 BLAS: widen one block at a time so the float32 copy stays small.
            for start in range(0, len(self.data), CHUNK):
                scores[start:start + CHUNK] = similarity(refs, self.data[start:start + CHUNK].astype(np.float32), mode)
        return [(self.ids[i], float(scores[i])) for i in top_d(scores, d)]
