"""Evaluation as the field reports it: leave-last-out, every item of the catalogue ranked (Krichene & Rendle 2020:
sampled metrics can disagree with full ranking). Never shipped.

Each user's events in time order (ties in file order): the last is the test item, the one before it validation, the
rest train. Every model is fitted on the training events only and reads a user's training + validation events at
test; the items of those events are not ranked again. The bundle side is the whole on-device pipeline: a `Store`
holding every text, each user's events recorded, `Store.recommend(user, k=10)` (recall + rank over the full
catalogue). Beside it popularity, item-kNN, EASE^R, implicit ALS (knobs tuned on validation nDCG@10) and a small
SASRec (models/sasrec.py, stopped on validation). HR@10 and nDCG@10 per user; each model against the bundle, paired
over users (t-test and Wilcoxon).

    python -m edge_rec_export.training.full_catalogue split --clicks work/byo/movielens/clicks.jsonl --out work/llo
    cp -r work/bundles/ml-quick2 work/bundles/ml-llo      # its classifier; its ranking models trained again:
    edge-rec-export rank --bundle work/bundles/ml-llo --texts work/byo/movielens/texts.jsonl \
        --clicks work/llo/clicks.jsonl --work work/ml-llo-rank
    python -m edge_rec_export.training.full_catalogue evaluate --texts work/byo/movielens/texts.jsonl \
        --clicks work/byo/movielens/clicks.jsonl --bundle work/bundles/ml-llo --out reports/full-catalogue-movielens.json
"""
from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm import tqdm

from edge_rec_export.data.texts_input import labelled_by_id, rows
from edge_rec_export.models.sasrec import SASRec, SASRecConfig
from edge_rec_export.training.paired_test import paired
from edge_rec_export.training.ranking_baselines import ease, implicit_als, item_knn, popularity

K = 10
MIN_EVENTS = 3  # a user needs one event to train on, one to validate and one to test


@dataclass
class Split:
    items: list[str]  # column -> item id: every text
    train: dict[str, list[dict]]  # user -> training events (time order)
    val: dict[str, dict]  # user -> validation event
    test: dict[str, dict]  # user -> test event


def split(clicks: Path, items: list[str]) -> Split:
    """Leave-last-out by user; users with fewer than MIN_EVENTS events only train."""
    by_user: dict[str, list[tuple[float, int, dict]]] = defaultdict(list)
    for n, row in rows(clicks):
        by_user[str(row["user"])].append((float(row["time"]), n, row))
    out = Split(items, {}, {}, {})
    for user, events in by_user.items():
        events = [row for _, _, row in sorted(events, key=lambda e: e[:2])]
        if len(events) < MIN_EVENTS:
            out.train[user] = events
            continue
        out.train[user], out.val[user], out.test[user] = events[:-2], events[-2], events[-1]
    return out


def matrix(sp_: Split, users: list[str], with_val: bool) -> sp.csr_matrix:
    """users x items: 1 where the user has a training (and, `with_val`, the validation) event on the item."""
    col = {i: c for c, i in enumerate(sp_.items)}
    r, c = [], []
    for u, user in enumerate(users):
        events = sp_.train.get(user, []) + ([sp_.val[user]] if with_val and user in sp_.val else [])
        for e in events:
            r.append(u)
            c.append(col[str(e["item"])])
    m = sp.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(users), len(sp_.items)))
    m.data[:] = 1.0
    return m


def full_ranks(scores: np.ndarray, seen: sp.csr_matrix, target: np.ndarray) -> np.ndarray:
    """Each row's target rank among the items not seen (0 = first); ties count half (expected rank under a random
    tie break)."""
    scores = scores.astype(np.float64, copy=True)
    scores[seen.nonzero()] = -np.inf
    t = scores[np.arange(len(target)), target][:, None]
    return (scores > t).sum(axis=1) + 0.5 * ((scores == t).sum(axis=1) - 1)


def figures(ranks: np.ndarray) -> dict[str, np.ndarray]:
    """Per-user HR@K and nDCG@K from 0-based ranks."""
    hit = ranks < K
    return {f"hr@{K}": hit.astype(np.float64), f"ndcg@{K}": np.where(hit, 1.0 / np.log2(ranks + 2.0), 0.0)}


BASELINES = {  # name -> (fit(x, knob), knob grid), as in ranking_baselines
    "popularity": (lambda x, _: popularity(x), [None]),
    "item_knn": (item_knn, [20, 50, 200]),
    "ease": (ease, [100.0, 250.0, 750.0, 2000.0]),
    "implicit_als": (lambda x, knob: implicit_als(x, knob[0], alpha=knob[1]), [(10.0, 1.0), (30.0, 20.0),
                                                                               (100.0, 20.0)]),
}


def dense_scores(score, profiles: sp.csr_matrix) -> np.ndarray:
    """A fitted baseline's score of every item for every profile row."""
    n, items = profiles.shape
    return score(profiles, np.repeat(np.arange(n), items), np.tile(np.arange(items), n)).reshape(n, items)


def targets(s: Split, users: list[str], part: str) -> np.ndarray:
    col = {i: c for c, i in enumerate(s.items)}
    return np.array([col[str(getattr(s, part)[u]["item"])] for u in users])


def baseline(name: str, s: Split, users: list[str]) -> tuple[np.ndarray, dict]:
    """Test ranks of the `users` by baseline `name`, fitted on every user's training events (knob tuned on
    validation nDCG@K), and its validation figure per knob."""
    fit, grid = BASELINES[name]
    x = matrix(s, sorted(s.train), False)
    seen_val, seen_test = matrix(s, users, False), matrix(s, users, True)
    val = {}
    for knob in grid:
        ranks = full_ranks(dense_scores(fit(x, knob), seen_val), seen_val, targets(s, users, "val"))
        val[knob] = float(figures(ranks)[f"ndcg@{K}"].mean())
    best = max(grid, key=lambda k: val[k])
    ranks = full_ranks(dense_scores(fit(x, best), seen_test), seen_test, targets(s, users, "test"))
    return ranks, {"knob": best, f"val_ndcg@{K}": {str(k): round(v, 4) for k, v in val.items()}}


def sequences(s: Split, users: list[str], with_val: bool, length: int) -> torch.Tensor:
    """Each user's last `length` training (+ validation) item rows (column + 1), left-padded with 0."""
    col = {i: c + 1 for c, i in enumerate(s.items)}
    out = torch.zeros(len(users), length, dtype=torch.long)
    for u, user in enumerate(users):
        seq = [col[str(e["item"])] for e in s.train.get(user, []) + ([s.val[user]] if with_val else [])][-length:]
        if seq:
            out[u, -len(seq):] = torch.tensor(seq)
    return out


def sasrec(s: Split, users: list[str], seed: int, epochs: int = 400, every: int = 5, patience: int = 6,
           batch: int = 64, lr: float = 3e-3) -> tuple[np.ndarray, dict]:
    """Test ranks of the `users` by a SASRec trained on every user's training sequence (next item at every
    position), stopped on validation nDCG@K (checked every `every` epochs), the best state kept. The defaults are
    the better of two settings tried on validation (lr 1e-3, batch 128, patience 3 stopped at epoch 45 with
    validation nDCG@10 0.031, still rising; these reach their best after 150)."""
    torch.manual_seed(seed)
    cfg = SASRecConfig(n_items=len(s.items))
    model = SASRec(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    train = sequences(s, sorted(s.train), False, cfg.max_len + 1)
    train = train[(train > 0).sum(dim=1) >= 2]
    seen_val, seen_test = matrix(s, users, False), matrix(s, users, True)
    val_in, test_in = sequences(s, users, False, cfg.max_len), sequences(s, users, True, cfg.max_len)

    def ranks(seq, seen, target) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model.scores(seq[i:i + 512])[:, 1:] for i in range(0, len(seq), 512)])
        model.train()
        return full_ranks(scores.numpy(), seen, target)

    best, best_state, history, waited = -1.0, None, {}, 0
    for epoch in tqdm(range(1, epochs + 1), desc="sasrec", unit="epoch"):
        for picked in torch.randperm(len(train)).split(batch):
            seq = train[picked]
            logits = model(seq[:, :-1]) @ model.items.weight.T
            loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), seq[:, 1:].reshape(-1),
                                               ignore_index=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if epoch % every:
            continue
        history[epoch] = float(figures(ranks(val_in, seen_val, targets(s, users, "val")))[f"ndcg@{K}"].mean())
        if history[epoch] > best:
            best, best_state, waited = history[epoch], copy.deepcopy(model.state_dict()), 0
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    chosen = max(history, key=history.get)
    return ranks(test_in, seen_test, targets(s, users, "test")), {
        "config": cfg.to_dict(), "epochs": chosen, f"val_ndcg@{K}": {str(e): round(v, 4) for e, v in history.items()}}


def store_ranks(bundle: Path, texts: Path, s: Split, users: list[str]) -> tuple[np.ndarray, dict]:
    """Test ranks of the `users` by the bundle's whole pipeline: a Store holding every text, each user's training
    and validation events recorded, `recommend(user, k=K)`; a target outside the top K ranks K (a miss)."""
    from edge_rec import Store

    text = {i: t.text for i, t in labelled_by_id(texts).items()}
    ranks = np.full(len(users), float(K))
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "store.db", bundle) as store:
        t0 = time.perf_counter()
        store.add({"id": i, "text": text[i]} for i in s.items)
        for user in users:
            for e in s.train[user] + [s.val[user]]:
                store.record(user, str(e["item"]), e["event"], time=float(e["time"]))
        t1 = time.perf_counter()
        for u, user in enumerate(tqdm(users, desc="store.recommend", unit="user")):
            ids = [r.id for r in store.recommend(user, k=K)]
            target = str(s.test[user]["item"])
            if target in ids:
                ranks[u] = ids.index(target)
        t2 = time.perf_counter()
        return ranks, {"items": len(store), "fill_seconds": round(t1 - t0, 1),
                       "recommend_ms_per_user": round(1000 * (t2 - t1) / len(users), 2)}


def evaluate(texts: Path, clicks: Path, bundle: Path, seed: int) -> dict:
    """Every model's HR@K and nDCG@K over the users with a test event, and each against the bundle, paired."""
    s = split(clicks, list(labelled_by_id(texts)))
    users = sorted(s.test)
    ranks, about = {}, {}
    ranks["bundle"], about["bundle"] = store_ranks(bundle, texts, s, users)
    for name in BASELINES:
        t0 = time.perf_counter()
        ranks[name], about[name] = baseline(name, s, users)
        about[name]["seconds"] = round(time.perf_counter() - t0, 1)
    t0 = time.perf_counter()
    ranks["sasrec"], about["sasrec"] = sasrec(s, users, seed)
    about["sasrec"]["seconds"] = round(time.perf_counter() - t0, 1)
    per_user = {name: figures(r) for name, r in ranks.items()}
    metrics = tuple(per_user["bundle"])
    as_sums = lambda name: {m: {u: [float(v)] for u, v in enumerate(per_user[name][m])} for m in metrics}
    return {"bundle": str(bundle), "texts": str(texts), "clicks": str(clicks), "users": len(users),
            "items": len(s.items), "protocol": f"leave-last-out by user, full catalogue, seen items excluded; "
                                                f"ties count half; HR@{K} and nDCG@{K} averaged over users",
            "test": {name: {m: round(float(v.mean()), 4) for m, v in f.items()} for name, f in per_user.items()},
            "models": about,
            "paired": {name: paired({"model": as_sums("bundle"), "baseline": as_sums(name)}, metrics)
                       for name in ranks if name != "bundle"}}


def write_training_log(s: Split, out: Path) -> Path:
    """The training events as a click log for `edge-rec-export rank` / `build`."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "clicks.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for user in sorted(s.train):
            for e in s.train[user]:
                f.write(json.dumps(e) + "\n")
    return path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.full_catalogue",
                                 description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    one = sub.add_parser("split", help="write the training events (all but each user's last two) as a click log")
    one.add_argument("--clicks", type=Path, required=True)
    one.add_argument("--out", type=Path, required=True)
    two = sub.add_parser("evaluate", help="the bundle's Store and the baselines on the held-out events")
    two.add_argument("--texts", type=Path, required=True)
    two.add_argument("--clicks", type=Path, required=True)
    two.add_argument("--bundle", type=Path, required=True)
    two.add_argument("--out", type=Path, required=True)
    two.add_argument("--seed", type=int, default=0, help="SASRec's seed")
    a = ap.parse_args(argv)
    if a.command == "split":
        path = write_training_log(split(a.clicks, []), a.out)  # items are not needed to split
        print(f"{path}: training events of every user (the last two of each user with >= {MIN_EVENTS} held out)")
        return
    result = evaluate(a.texts, a.clicks, a.bundle, a.seed)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "paired"}, indent=1))


if __name__ == "__main__":
    main()
