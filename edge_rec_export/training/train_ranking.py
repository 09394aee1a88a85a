"""Train, distill and evaluate the ranking models (DSSM recall, CTR teacher, CTR student) on a click log.

    python -m edge_rec_export.training.train_ranking movielens --data ../shared/data --out work/ranking/movielens
    python -m edge_rec_export.training.train_ranking bing      --data ../shared/data --out work/ranking/bing

Each run writes its checkpoints (config + weights) and `report.json` with held-out figures for every model.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from edge_rec_export.models.ctr import CTRConfig, CTRModel
from edge_rec_export.models.dssm import DSSM, DSSMConfig
from edge_rec_export.data.interactions import (ClickLog, ItemTable, Samples, add_log_arguments, history_event_types,
                                              read_log, samples)
from edge_rec_export.models.joint_ctr import JointCTR, JointCTRConfig
from edge_rec_export.training.sparse_domains import channel_clicks, channels_of
from edge_rec_export.training.metrics import ranking_report


class ItemTensors:
    """An ItemTable on a device, gathering model feeds for (history rows, target rows)."""

    def __init__(self, items: ItemTable, device="cpu"):
        self.labels = torch.from_numpy(items.labels).to(device)
        self.index = torch.from_numpy(items.index).to(device)
        self.vectors = torch.from_numpy(items.vectors.astype(np.float32)).to(device)
        identity = np.zeros(len(items), np.int64) if items.identity is None else items.identity
        self.identity = torch.from_numpy(identity).to(device)
        self.device = device

    def feeds(self, hist: np.ndarray, target: np.ndarray, names=None, pop: np.ndarray | None = None,
              hist_event: np.ndarray | None = None) -> dict[str, torch.Tensor]:
        """Every feed, or only those in `names` (a model's `feed_names`); `pop` (N,): the targets' popularity at
        their visits; `hist_event` (as `hist`): the history items' event codes (None: every one a click)."""
        h = torch.from_numpy(hist).to(self.device)
        t = torch.from_numpy(target).to(self.device)
        out = {"hist_labels": self.labels[h], "hist_index": self.index[h], "hist_vector": self.vectors[h],
               "hist_item": self.identity[h], "hist_mask": (h > 0).float(),
               "hist_event": (h > 0).long() if hist_event is None else torch.from_numpy(hist_event).to(self.device),
               "cand_labels": self.labels[t],
               "cand_index": self.index[t], "cand_vector": self.vectors[t], "cand_item": self.identity[t],
               "cand_pop": torch.from_numpy(np.zeros(len(target), np.float32) if pop is None
                                            else pop.astype(np.float32)).to(self.device)}
        return out if names is None else {k: out[k] for k in names}


def batch_feeds(model, tensors: ItemTensors, s: Samples, idx: np.ndarray) -> dict[str, torch.Tensor]:
    """The model's feeds for rows `idx` of `s`."""
    return tensors.feeds(s.hist[idx], s.target[idx], model.feed_names, None if s.pop is None else s.pop[idx],
                         None if s.hist_event is None else s.hist_event[idx])


def logits(model, tensors: ItemTensors, s: Samples, idx: np.ndarray) -> torch.Tensor:
    return model.logits(**batch_feeds(model, tensors, s, idx))


@torch.no_grad()
def score(model, tensors: ItemTensors, s: Samples, batch: int = 4096) -> np.ndarray:
    """Click probabilities of every row of `s`; the rows of one visit share a history, which is read once."""
    model.eval()
    out = []
    for i in range(0, len(s), batch):
        idx = np.arange(i, min(i + batch, len(s)))
        h = s.hist.shape[1]  # a history is its items and their events
        both = s.hist[idx] if s.hist_event is None else np.concatenate([s.hist[idx], s.hist_event[idx]], axis=1)
        distinct, hist_of = np.unique(both, axis=0, return_inverse=True)
        feeds = tensors.feeds(np.ascontiguousarray(distinct[:, :h]), s.target[idx], model.feed_names,
                              None if s.pop is None else s.pop[idx],
                              None if s.hist_event is None else np.ascontiguousarray(distinct[:, h:]))
        out.append(torch.sigmoid(model.logits(**feeds, hist_of=torch.from_numpy(hist_of.reshape(-1)))).cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def report(pred: np.ndarray, s: Samples) -> dict:
    return ranking_report(pred, s.y, s.user, s.group)


def click_loss(tensors: ItemTensors, train: Samples, soft: np.ndarray | None = None, alpha: float = 0.5,
               channel_y: np.ndarray | None = None, channel_weight: float = 0.5):
    """The training objective: BCE(click) (+ alpha * BCE(teacher probability) when `soft` is given); with
    `channel_y`, seed 004's total loss (1 - channel_weight) * that + channel_weight * BCE(channel click)."""
    y = torch.from_numpy(train.y).to(tensors.device)
    soft_t = None if soft is None else torch.from_numpy(soft).to(tensors.device)
    channel_t = None if channel_y is None else torch.from_numpy(channel_y).to(tensors.device)

    def objective(model, idx: np.ndarray) -> torch.Tensor:
        if channel_t is None:
            out = logits(model, tensors, train, idx)
        else:
            out, channel = model.both(**batch_feeds(model, tensors, train, idx))
        loss = F.binary_cross_entropy_with_logits(out, y[idx])
        if soft_t is not None:
            loss = (1 - alpha) * loss + alpha * F.binary_cross_entropy_with_logits(out, soft_t[idx])
        if channel_t is not None:
            loss = (1 - channel_weight) * loss + channel_weight * F.binary_cross_entropy_with_logits(
                channel, channel_t[idx])
        return loss
    return objective


def fit(model, tensors: ItemTensors, train: Samples, val: Samples, *, epochs: int, lr: float, batch: int,
        seed: int, soft: np.ndarray | None = None, alpha: float = 0.5, patience: int = 2, objective=None,
        log=print, resume: Path | None = None, epoch_rows: int | None = None) -> dict:
    """Adam on `objective(model, batch rows) -> loss` (default: `click_loss`); keeps the best val AUC, stopping
    after `patience` epochs without a better one. With `epoch_rows`, an epoch is that many rows at most, a fresh
    random sample of the training rows each time. With `resume`, every finished epoch is saved there (model,
    optimizer, shuffling state, the best so far) and a run that finds the file goes on after its last epoch."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    objective = objective or click_loss(tensors, train, soft, alpha)
    best, best_state, waited, start = -1.0, None, 0, 0
    if resume is not None and resume.exists():
        ckpt = torch.load(resume, map_location="cpu", weights_only=False)
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["opt"])
        rng.bit_generator.state = ckpt["rng"]
        torch.set_rng_state(ckpt["torch_rng"])
        best, best_state, waited, start = ckpt["best"], ckpt["best_state"], ckpt["waited"], ckpt["epoch"]
        log(f"resumed after epoch {start} (best val AUC so far {best:.4f})")
    ran = start
    for epoch in range(start, epochs):
        if waited >= patience:
            break
        model.train()
        t0, total = time.time(), 0.0
        order = rng.permutation(len(train))[:epoch_rows]
        for i in tqdm(range(0, len(order), batch), desc=f"epoch {epoch + 1}/{epochs}", unit="batch", leave=False,
                      mininterval=5.0):
            idx = order[i:i + batch]
            loss = objective(model, idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        val_auc = report(score(model, tensors, val), val)["auc"]
        log(f"epoch {epoch + 1}: loss {total / len(order):.4f}  val AUC {val_auc:.4f}  ({time.time() - t0:.0f} s)")
        if val_auc > best:
            best, waited = val_auc, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
        ran = epoch + 1
        if resume is not None:
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": rng.bit_generator.state,
                        "torch_rng": torch.get_rng_state(), "best": best, "best_state": best_state,
                        "waited": waited, "epoch": epoch + 1}, resume)
    model.load_state_dict(best_state)
    return {"best_val_auc": round(best, 4), "epochs_run": ran}


def popularity(log: ClickLog, s: Samples) -> np.ndarray:
    """Baseline: each item's click count in the training visits."""
    counts = np.zeros(len(log.items))
    for imp in log.train:
        np.add.at(counts, imp.shown, imp.clicks)
    return counts[s.target]


def save(model, path: Path, metrics: dict) -> None:
    torch.save({"kind": type(model).__name__, "config": model.cfg.to_dict(), "state": model.state_dict(),
                "metrics": metrics}, path)


def load(path: Path):
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    cls, cfg_cls = {"CTRModel": (CTRModel, CTRConfig), "JointCTR": (JointCTR, JointCTRConfig),
                    "DSSM": (DSSM, DSSMConfig)}[ckpt["kind"]]
    model = cls(cfg_cls(**ckpt["config"]))
    model.load_state_dict(ckpt["state"])
    return model.eval(), ckpt["metrics"]


# Model sizes: the teacher is what seed 001 describes; the student halves the widths and shortens the history.
TEACHER = dict(history_length=50, label_dim=32, vector_proj=32, item_dim=32, hidden=32, mlp=64)
STUDENT = dict(history_length=20, label_dim=16, vector_proj=16, item_dim=16, hidden=16, mlp=32)
DSSM_SIZE = dict(history_length=50, label_dim=32, hidden=64, out_dim=32)


def train_all(log: ClickLog, out: Path, *, epochs: int, lr: float, batch: int, seed: int, device="cpu",
              with_vector: bool = True, patience: int = 2, channels: str | None = None, logf=print,
              models: tuple[str, ...] = ("dssm", "ctr_teacher", "ctr_student"), epoch_rows: int | None = None
              ) -> dict:
    """DSSM, CTR teacher and distilled CTR student on `log`; returns held-out figures for each (and popularity).

    With `channels` (a label-name prefix such as "genre:"), both CTR models are seed 004's joint item/channel
    models. A model whose checkpoint is already in `out` is loaded instead of trained, so an interrupted run goes
    on. `models` names the ones to train (the student needs the teacher); `epoch_rows`: see `fit`."""
    wanted = models
    if "ctr_student" in wanted and "ctr_teacher" not in wanted:
        raise ValueError("the CTR student is distilled from the CTR teacher: train both")
    out.mkdir(parents=True, exist_ok=True)
    tensors = ItemTensors(log.items, device)
    n_labels, k = len(log.items.label_names), log.items.labels.shape[1]
    v = log.items.vectors.shape[1] if with_vector else 0
    hist = {name: TEACHER["history_length"] for name in ("train", "val", "test")}
    data = {name: samples(log.split(name), hist[name]) for name in hist}
    results = {"data": {"name": log.name, "notes": log.notes, **{n: len(s) for n, s in data.items()},
                        "items": len(log.items) - 1, "labels": n_labels}}
    results["popularity"] = report(popularity(log, data["test"]), data["test"])
    fits = {}
    channel_ids, channel_sets = channels_of(log.items, channels) if channels else (None, None)

    n_items = int(log.items.identity.max(initial=0)) if log.items.identity is not None else 0
    pop = log.items.popularity is not None
    n_events = history_event_types(log)

    def ctr(size: dict) -> CTRModel:
        if channels:
            return JointCTR(JointCTRConfig(n_labels, k, vector_dim=v, channel_labels=channel_ids, **size))
        return CTRModel(CTRConfig(n_labels, k, vector_dim=v, n_items=n_items, popularity=pop, n_events=n_events,
                                  **size))

    builders = {"dssm": lambda: DSSM(DSSMConfig(n_labels, k, n_items=n_items, n_events=n_events, **DSSM_SIZE)),
                "ctr_teacher": lambda: ctr(TEACHER), "ctr_student": lambda: ctr(STUDENT)}
    short = {n: samples(log.split(n), STUDENT["history_length"]) for n in hist}
    models = {}
    for name in (n for n in builders if n in wanted):
        path, split_data = out / f"{name}.pt", short if name == "ctr_student" else data
        partial = out / f"{name}.epochs.pt"  # this model's finished epochs, until it is saved whole
        if path.exists():  # a finished step of an interrupted run
            logf(f"== {name}: loaded {path}")
            models[name] = model = load(path)[0]
        else:
            logf(f"== {name}")
            torch.manual_seed(seed)  # the initial weights too: the same flags give the same model
            models[name] = model = builders[name]()
            train = split_data["train"]
            soft = score(models["ctr_teacher"], tensors, data["train"]) if name == "ctr_student" else None
            joint = channels and name != "dssm"
            objective = click_loss(tensors, train, soft, channel_y=channel_clicks(train, channel_sets) if joint
                                   else None)
            model.to(device)
            fits[name] = fit(model, tensors, train, split_data["val"], epochs=epochs, lr=lr, batch=batch,
                             seed=seed, patience=patience, objective=objective, log=logf, resume=partial,
                             epoch_rows=epoch_rows)
        model.to(device)
        results[name] = report(score(model, tensors, split_data["test"]), split_data["test"])
        save(model.cpu(), path, results[name])
        partial.unlink(missing_ok=True)
        model.to(device)
    results["fit"] = fits
    (out / "report.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.train_ranking", description=__doc__.split("\n")[0])
    add_log_arguments(ap)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-vector", action="store_true", help="CTR models without the items' semantic vectors")
    ap.add_argument("--patience", type=int, default=2, help="epochs without a better val AUC before stopping")
    ap.add_argument("--channels", help="label-name prefix of the channels (e.g. genre:): seed 004's joint "
                    "item/channel CTR models")
    ap.add_argument("--models", default="dssm,ctr_teacher,ctr_student",
                    help="comma-separated models to train (the student needs the teacher)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args(argv)
    print(json.dumps(train_all(read_log(a, bing_vectors=True), a.out, epochs=a.epochs, lr=a.lr, batch=a.batch, seed=a.seed,
                               device=a.device, patience=a.patience, channels=a.channels,
                               with_vector=not a.no_vector, models=tuple(a.models.split(","))), indent=1))


if __name__ == "__main__":
    main()
