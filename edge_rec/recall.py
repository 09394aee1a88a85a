"""Recall paths that need no model: tag match (seed 000, S3), and top-D selection shared by every path."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def tag_match(hits: np.ndarray, n_tags: int, index: np.ndarray, g: float) -> np.ndarray:
    """m = w1 * (1/M) * sum_j x_j + w2 * c, with w1 = g/(1+g), w2 = 1/(1+g); `hits` (N,) = sum_j x_j, how many of
    the user's M = `n_tags` interest tags each item's labels (primary and tags) contain (the hit term is 0 when
    M = 0); `index` (N,) = c."""
    w1, w2 = g / (1.0 + g), 1.0 / (1.0 + g)
    hit_share = hits.astype(np.float64) / n_tags if n_tags else 0.0
    return (w1 * hit_share + w2 * index.astype(np.float64)).astype(np.float32)


def top_d(scores: np.ndarray, d: int) -> np.ndarray:
    """Positions of the `d` highest scores, best first; ties keep input order."""
    if d <= 0:
        return np.zeros(0, dtype=np.int64)
    if d < len(scores):  # sort only the scores at or above the d-th highest, not the whole pool
        kth = np.partition(scores, len(scores) - d)[len(scores) - d]
        head = np.flatnonzero(scores >= kth)
        return head[np.argsort(-scores[head], kind="stable")][:d]
    return np.argsort(-scores, kind="stable")[:d]


def interleave(orders: Sequence[np.ndarray], k: int) -> list[tuple[int, int]]:
    """Up to k (position, list) pairs taking in turn the best not-yet-taken position of each ranked list."""
    taken, out = set(), []
    heads = [0] * len(orders)
    while len(out) < k and any(h < len(o) for h, o in zip(heads, orders)):
        for which, order in enumerate(orders):
            while heads[which] < len(order) and int(order[heads[which]]) in taken:
                heads[which] += 1
            if heads[which] < len(order) and len(out) < k:
                j = int(order[heads[which]])
                taken.add(j)
                out.append((j, which))
    return out
