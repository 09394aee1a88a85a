"""Simple click-log yardsticks for the ranking models: popularity, item-kNN, EASE^R and implicit ALS.

Each is fitted on the log's training clicks only, its one knob tuned on the validation visits (nDCG@10), and scored
on the test visits with the same report as the CTR models. A visit's user is described by the user's training
interactions *and the visit's own history* (what the CTR models read): on a log split by time a held-out visit's
history holds clicks after the training period, and a user first seen after it has no training row at all.
Never shipped.

    python -m edge_rec_export.training.ranking_baselines movielens --out reports/baselines-movielens.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from edge_rec_export.data.interactions import ClickLog, Impression, add_log_arguments, read_log, samples
from edge_rec_export.training.train_ranking import report

EASE_MAX_ITEMS = 20_000  # EASE inverts an items x items matrix over the items with training interactions
SCORE_TERMS = 1 << 22  # profile terms gathered at once by an item-to-item model's scoring


def interactions(log: ClickLog, shown: bool = False) -> sp.csr_matrix:
    """users x items, 1 where a training visit has a click (or, with `shown`, a really exposed item)."""
    rows, cols = [], []
    for imp in log.train:
        real = len(imp.shown) if imp.real is None else imp.real
        keep = np.arange(real) if shown else np.flatnonzero(imp.clicks[:real] > 0)
        rows += [imp.user] * len(keep)
        cols += imp.shown[keep].tolist()
    users = max(imp.user for part in (log.train, log.val, log.test) for imp in part) + 1
    m = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(users, len(log.items)))
    m.data[:] = 1.0  # repeated pairs count once
    return m


def profiles(x: sp.csr_matrix, visits: list[Impression]) -> sp.csr_matrix:
    """visits x items: 1 where the visit's user has a training interaction (x) or the item is in its history."""
    users = np.array([v.user for v in visits], dtype=np.int64)
    rows = np.repeat(np.arange(len(visits)), [len(v.history) for v in visits])
    cols = np.concatenate([v.history for v in visits]).astype(np.int64) if visits else np.zeros(0, np.int64)
    p = (x[users] + sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(visits), x.shape[1])))
    p = p.tocsr()
    p.data[:] = 1.0
    return p


# A fitted baseline: score(profiles (V, items) csr, visit of each row (n,), item of each row (n,)) -> (n,)
def popularity(x: sp.csr_matrix):
    counts = np.asarray(x.sum(axis=0)).ravel()
    return lambda p, visit, items: counts[items]


def item_knn(x: sp.csr_matrix, k: int):
    """score(u, i) = sum of cosine(i, j) over the user's items j, each item keeping its k nearest neighbours."""
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel()) + 1e-9
    sim = (x.T @ x).tocsr().astype(np.float32)
    sim = sp.diags(1 / norms) @ sim @ sp.diags(1 / norms)
    sim.setdiag(0)
    return item_to_item(_top_k_per_row(sim.tocsr(), k))


def item_to_item(w, columns: np.ndarray | None = None):
    """score = the profile's items' weights toward the item: sum over j in profile of w[j, i], gathered for the
    (visit, item) pairs asked only (a whole profiles @ w product was minutes on 17,000 items), SCORE_TERMS terms at
    a time. `columns`: w covers only these items (the others score 0)."""
    def score(p, visit, items):
        p = sp.csr_matrix(p)
        if columns is not None:
            position = np.full(p.shape[1], -1, dtype=np.int64)
            position[columns] = np.arange(len(columns))
            p, items = p[:, columns].tocsr(), position[items]
        out = np.zeros(len(visit))
        pairs = np.flatnonzero(items >= 0)
        terms = np.diff(p.indptr)[visit[pairs]]  # each pair's profile items
        ends, start = np.cumsum(terms), 0
        while start < len(pairs):
            stop = max(start + 1, int(np.searchsorted(ends, ends[start] - terms[start] + SCORE_TERMS, "right")))
            chunk, n = pairs[start:stop], terms[start:stop]
            at = np.repeat(p.indptr[visit[chunk]] - np.cumsum(n) + n, n) + np.arange(n.sum())  # into p's CSR arrays
            weight = np.asarray(w[p.indices[at], np.repeat(items[chunk], n)]).ravel()
            out[chunk] = np.bincount(np.repeat(np.arange(len(chunk)), n), p.data[at] * weight, len(chunk))
            start = stop
        return out
    return score


def _top_k_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        start, end = m.indptr[r], m.indptr[r + 1]
        data, idx = m.data[start:end], m.indices[start:end]
        keep = np.argsort(-data)[:k]
        rows += [r] * len(keep)
        cols += idx[keep].tolist()
        vals += data[keep].tolist()
    return sp.csr_matrix((vals, (rows, cols)), shape=m.shape)


def active_items(x: sp.csr_matrix) -> np.ndarray:
    """The items (columns) with at least one training interaction."""
    return np.flatnonzero(np.asarray(x.getnnz(axis=0)) > 0)


def ease(x: sp.csr_matrix, lam: float):
    """EASE^R (Steck 2019): B = I - P diagMat(1 / diag(P)), P = (X^T X + lam I)^-1, diag(B) = 0. Fitted over the
    items with training interactions: an item without any has a zero row and column in B, so leaving it out
    changes no score and keeps the inverse to the catalogue's active part."""
    columns = active_items(x)
    xa = x[:, columns]
    g = (xa.T @ xa).toarray().astype(np.float64)
    g[np.diag_indices_from(g)] += lam
    b = spd_inverse(g)
    b /= -np.diag(b).copy()
    np.fill_diagonal(b, 0.0)
    return item_to_item(b, columns)


def spd_inverse(a: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite matrix from its Cholesky factor, in float64 (torch's LAPACK):
    2.7x faster than numpy's general inverse here (8,000 items: 4.2 s vs 11.5 s on 2 cores) to 2e-15; EASE's grid
    inverts one per knob, and at 17,000 items they were most of the ranking step."""
    import torch

    return torch.cholesky_inverse(torch.linalg.cholesky(torch.from_numpy(a))).numpy()


def implicit_als(x: sp.csr_matrix, reg: float, factors: int = 64, iterations: int = 15, alpha: float = 10.0,
                 seed: int = 0):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008): confidence 1 + alpha on observed pairs."""
    rng = np.random.default_rng(seed)
    users = rng.normal(0, 0.01, (x.shape[0], factors))
    items = rng.normal(0, 0.01, (x.shape[1], factors))
    xt = x.T.tocsr()
    for _ in range(iterations):
        users = _als_step(x, items, reg, alpha)
        items = _als_step(xt, users, reg, alpha)
    # a visit's user vector is folded in from its profile: the same solve as the users' step
    return lambda p, visit, i: np.einsum("nf,nf->n", _als_step(p, items, reg, alpha)[visit], items[i])


def _als_step(x: sp.csr_matrix, other: np.ndarray, reg: float, alpha: float) -> np.ndarray:
    gram = other.T @ other + reg * np.eye(other.shape[1])
    out = np.zeros((x.shape[0], other.shape[1]))
    for r in range(x.shape[0]):
        idx = x.indices[x.indptr[r]:x.indptr[r + 1]]
        if len(idx):
            y = other[idx]
            out[r] = np.linalg.solve(gram + alpha * y.T @ y, (1 + alpha) * y.sum(axis=0))
    return out


def visit_scores(score, x: sp.csr_matrix, visits: list[Impression]):
    """A fitted baseline's scores of every shown item of `visits`, and those rows (samples with history 1)."""
    rows = samples(visits, 1)
    return score(profiles(x, visits), rows.group, rows.target).astype(np.float64), rows


def evaluate(score, x: sp.csr_matrix, visits: list[Impression]) -> dict:
    return report(*visit_scores(score, x, visits))


def tuned(log: ClickLog, name: str):
    """Baseline `name` fitted on the log's training interactions at every knob of its grid, the knob with the best
    validation nDCG@10 kept: (its fitted score, the interactions x, the knob, validation nDCG@10 per knob)."""
    fit, grid, shown = MODELS[name]
    x = interactions(log, shown)
    p, rows = profiles(x, log.val), samples(log.val, 1)  # the validation profiles, built once for every knob
    val, best, kept = {}, None, None
    for knob in grid:  # one fitted model held at a time besides the best (EASE's: 2.3 GB for 17,000 items)
        score = fit(x, knob)
        val[knob] = report(score(p, rows.group, rows.target).astype(np.float64), rows)
        if best is None or val[knob]["ndcg@10"] > val[best]["ndcg@10"]:
            best, kept = knob, score
        del score
    return kept, x, best, val


MODELS = {  # name -> (fit(x, knob), knob grid, uses shown-but-not-clicked items)
    "popularity": (lambda x, _: popularity(x), [None], False),
    "item_knn": (item_knn, [20, 50, 200], False),
    "ease": (ease, [100.0, 250.0, 750.0, 2000.0], False),
    "ease_all_ratings": (ease, [100.0, 250.0, 750.0, 2000.0], True),
    "implicit_als": (lambda x, knob: implicit_als(x, knob[0], alpha=knob[1]), [(10.0, 1.0), (30.0, 20.0), (100.0, 20.0)],
                     False),  # (regularisation, confidence alpha)
}


def baselines(log: ClickLog, say=lambda _: None) -> dict:
    """Every baseline's validation-tuned knob, its validation and test figures; `say` hears each as it is done."""
    out = {}
    for name in MODELS:
        active = len(active_items(interactions(log, MODELS[name][2])))
        if name.startswith("ease") and active > EASE_MAX_ITEMS:
            out[name] = {"skipped": f"{active} items with training interactions > {EASE_MAX_ITEMS}"}
            continue
        t0 = time.time()
        score, x, best, val = tuned(log, name)
        out[name] = {"knob": best, "val_ndcg@10": {str(k): v["ndcg@10"] for k, v in val.items()}, "val": val[best],
                     "test": evaluate(score, x, log.test), "seconds": round(time.time() - t0, 1)}
        say(f"   baseline {name}: validation nDCG@10 {val[best]['ndcg@10']:.4f} ({out[name]['seconds']:.0f} s, "
            f"{active:,} items)")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.ranking_baselines", description=__doc__.split("\n")[0])
    add_log_arguments(ap)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0, help="movielens: the seed of its evaluation negatives, as in "
                    "train_ranking (compare a model with the baselines of its own seed)")
    a = ap.parse_args(argv)
    log = read_log(a)
    result = {"log": log.name, "baselines": baselines(log)}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
