"""Semantic recall (seed 000 S3 / seed 003): cosine of candidate vectors against the user's reference vectors.

Vectors are unit norm (the classifier's `vector`), so cosine is a dot product. `VectorStore` keeps a large
candidate matrix computed once (or supplied by the app) in fp32, fp16 (half the memory) or int8 (a quarter, one
scale per row) and answers top-D queries; `recommend()` uses the same scoring on its candidate pool.
"""
from __future__ import annotations

from typing import Hashable, Sequence

import numpy as np

from edge_rec.checks import positive_int
from edge_rec.recall import top_d

PRECISIONS = ("fp32", "fp16", "int8")
MODES = ("max", "mean")
CHUNK = 4096  # rows widened to float32 at a time


def similarity(refs: np.ndarray, vectors: np.ndarray, mode: str = "max") -> np.ndarray:
    """refs (h, V), vectors (N, V) -> (N,): the max or mean cosine over the references; zeros when h = 0."""
    if mode not in MODES:
        raise ValueError(f"semantic mode must be one of {MODES}, got {mode!r}")
    if not len(refs):
        return np.zeros(len(vectors), dtype=np.float32)
    sims = vectors @ refs.T  # (N, h)
    return (sims.max(axis=1) if mode == "max" else sims.mean(axis=1)).astype(np.float32)


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
        self.ids = list(ids)
        self.precision = precision
        self.scale = None
        if precision == "int8":
            self.scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0  # (N,)
            self.data = np.round(vectors / self.scale[:, None]).astype(np.int8)
        else:
            self.data = vectors.astype(np.float16 if precision == "fp16" else np.float32)

    @property
    def nbytes(self) -> int:
        return self.data.nbytes + (self.scale.nbytes if self.scale is not None else 0)

    def top(self, refs: np.ndarray, d: int, mode: str = "max") -> list[tuple[Hashable, float]]:
        """The `d` (id, similarity) pairs most similar to the reference vectors refs (V,) or (h, V), best first."""
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
        scores = np.empty(len(self.data), dtype=np.float32)
        # numpy has no BLAS for fp16/int8: widen one block at a time so the float32 copy stays small.
        for start in range(0, len(self.data), CHUNK):
            block = self.data[start:start + CHUNK].astype(np.float32, copy=False)
            scores[start:start + CHUNK] = similarity(refs, block, mode)
        if self.scale is not None:
            scores *= self.scale
        return [(self.ids[i], float(scores[i])) for i in top_d(scores, d)]
