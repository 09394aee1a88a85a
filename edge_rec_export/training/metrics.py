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
    """All the figures the bundle manifest records for a classifier on one split; a figure the split has no targets
    for (no tags, no index targets) is None, not NaN (a manifest is strict JSON)."""
    pred = primary_probs.argmax(axis=1)
    known = ~np.isnan(index_target)
    return {"n": int(len(labels)), "accuracy": round(accuracy(pred, labels), 4),
            "macro_f1": round(macro_f1(pred, labels, primary_probs.shape[1]), 4),
            "tag_micro_f1": round(micro_f1((tag_probs >= tag_threshold).astype(np.int8), tags.astype(np.int8)), 4)
            if tags.shape[1] else None,
            "index_mae": round(float(np.abs(index[known] - index_target[known]).mean()), 4) if known.any() else None,
            "index_spearman": round(spearman(index[known], index_target[known]), 4) if known.any() else None}


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count half); nan when y has one class only."""
    pos = y > 0.5
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if not n_pos or not n_neg:
        return float("nan")
    return float((_ranks(score)[pos].sum() - n_pos * (n_pos - 1) / 2) / (n_pos * n_neg))


def auc_by_group(score: np.ndarray, y: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(groups with both classes, their AUC, their size)."""
    groups, aucs, sizes = [], [], []
    for g in np.unique(group):
        sel = group == g
        a = auc(score[sel], y[sel])
        if not np.isnan(a):
            groups.append(g), aucs.append(a), sizes.append(int(sel.sum()))
    return np.array(groups), np.array(aucs), np.array(sizes)


def gauc(score: np.ndarray, y: np.ndarray, group: np.ndarray) -> float:
    """AUC within each group (user) with both classes, averaged weighted by the group's size."""
    _, aucs, sizes = auc_by_group(score, y, group)
    return float((aucs * sizes).sum() / sizes.sum()) if len(sizes) else float("nan")


def ranking_by_group(score: np.ndarray, y: np.ndarray, group: np.ndarray, k: int = 10
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lists with at least one click, their nDCG@k, their Recall@k). Ties are broken against the clicks (a clicked
    item tied with unclicked ones ranks after them), so a constant or saturated score earns nothing."""
    gains = 1.0 / np.log2(np.arange(2, k + 2))
    groups, ndcgs, recalls = [], [], []
    for g in np.unique(group):
        sel = np.flatnonzero(group == g)
        rel = y[sel][np.lexsort((y[sel], -score[sel]))]  # by score, then unclicked before clicked
        n_rel = int(rel.sum())
        if not n_rel:
            continue
        groups.append(g)
        ndcgs.append(float((rel[:k] * gains[:len(rel[:k])]).sum() / gains[:min(n_rel, k)].sum()))
        recalls.append(float(rel[:k].sum() / n_rel))
    return np.array(groups), np.array(ndcgs), np.array(recalls)


def ranking_at_k(score: np.ndarray, y: np.ndarray, group: np.ndarray, k: int = 10) -> dict:
    """Mean nDCG@k and Recall@k over lists (groups) with at least one click (ranking_by_group)."""
    _, ndcgs, recalls = ranking_by_group(score, y, group, k)
    return {f"ndcg@{k}": float(np.mean(ndcgs)), f"recall@{k}": float(np.mean(recalls))}


def ranking_report(score: np.ndarray, y: np.ndarray, user: np.ndarray, group: np.ndarray, k: int = 10) -> dict:
    """AUC, gAUC (by user) and, where lists hold more than one item, nDCG@k / Recall@k (by list)."""
    out = {"n": int(len(y)), "auc": auc(score, y), "gauc": gauc(score, y, user)}
    if len(np.unique(group)) < len(group):
        out.update(ranking_at_k(score, y, group, k))
    return {key: (round(v, 4) if isinstance(v, float) else v) for key, v in out.items()}
