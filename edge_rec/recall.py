"""Recall paths that need no model: tag match (seed 000, S3), and top-D selection shared by every path."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from edge_rec.classifier import Classification


def tag_match(items: Sequence[Classification], interest_tags: Sequence[str], g: float) -> np.ndarray:
    """m = w1 * (1/M) * sum_j x_j + w2 * c, with w1 = g/(1+g), w2 = 1/(1+g); x_j = 1 if the item's labels (primary
    and tags) contain the user's j-th interest tag, M = number of interest tags (the hit term is 0 when M = 0)."""
    w1, w2 = g / (1.0 + g), 1.0 / (1.0 + g)
    m = len(interest_tags)
    hits = label_hits(items, interest_tags).astype(np.float64)
    index = np.array([c.index for c in items], dtype=np.float64)
    return (w1 * (hits / m if m else 0.0) + w2 * index).astype(np.float32)


def label_hits(items: Sequence[Classification], tags: Sequence[str]) -> np.ndarray:
    """(N,) how many of `tags` each item's labels (primary and tags) contain."""
    wanted = set(tags)
    return np.array([len(wanted.intersection(c.labels)) for c in items], dtype=np.int64)


def top_d(scores: np.ndarray, d: int) -> np.ndarray:
    """Positions of the `d` highest scores, best first; ties keep input order."""
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
