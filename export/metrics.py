"""Held-out metrics in numpy (shared by torch and onnxruntime evaluation)."""
from __future__ import annotations

import numpy as np


def accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    return float((pred == gold).mean())


def macro_f1(pred: np.ndarray, gold: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes present in gold or pred."""
    f1s = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (gold == c))
        fp, fn = np.sum((pred == c) & (gold != c)), np.sum((pred != c) & (gold == c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def micro_f1(pred: np.ndarray, gold: np.ndarray) -> float:
    """Multi-label micro F1 over 0/1 matrices (N, K)."""
    tp = np.sum((pred == 1) & (gold == 1))
    denom = 2 * tp + np.sum((pred == 1) & (gold == 0)) + np.sum((pred == 0) & (gold == 1))
    return float(2 * tp / denom) if denom else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denom) if denom else 0.0


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share their mean rank)."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(len(x), dtype=np.float64)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def classifier_report(primary_probs: np.ndarray, tag_probs: np.ndarray, index: np.ndarray, labels: np.ndarray,
                      tags: np.ndarray, index_target: np.ndarray, tag_threshold: float = 0.5) -> dict:
    """All the figures the bundle manifest records for a classifier on one split."""
    pred = primary_probs.argmax(axis=1)
    known = ~np.isnan(index_target)
    return {"n": int(len(labels)), "accuracy": round(accuracy(pred, labels), 4),
            "macro_f1": round(macro_f1(pred, labels, primary_probs.shape[1]), 4),
            "tag_micro_f1": round(micro_f1((tag_probs >= tag_threshold).astype(np.int8), tags.astype(np.int8)), 4),
            "index_mae": round(float(np.abs(index[known] - index_target[known]).mean()), 4),
            "index_spearman": round(spearman(index[known], index_target[known]), 4)}
