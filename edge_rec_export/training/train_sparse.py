"""Sparse-domain training on MovieLens-100k: plain CTR vs seed 004 joint training vs seed 002 GAN vs both.

    python -m edge_rec_export.training.train_sparse --out work/sparse --seeds 0 1 2

Two genres are made sparse (`sparse_domains.sparsify`: 10% of their training behaviour kept); every method trains
the student-size CTR model on that log and is judged on the real held-out test clicks, on the sparse domain and
overall. `full` (the same model on the whole log) shows what sparsity costs. One JSON per (seed, method) in --out,
so an interrupted run goes on; the summary (mean and spread over seeds) goes to --report.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from edge_rec_export.models.ctr import CTRConfig, CTRModel
from edge_rec_export.models.gan_augment import DISTANCES, GANConfig, GANObjective
from edge_rec_export.data.interactions import read_movielens, samples
from edge_rec_export.models.joint_ctr import JointCTR, JointCTRConfig
from edge_rec_export.training.sparse_domains import channel_clicks, channels_of, domain_items, domain_report, sparsify
from edge_rec_export.training.train_ranking import STUDENT, ItemTensors, click_loss, fit, report, score

METHODS = ("full", "plain", "joint", "gan", "both")


def run(method: str, seed: int, *, genres: list[str], keep: float, epochs: int, lr: float, batch: int,
        patience: int, gan: dict, channel_weight: float, data_dir: Path, log=print) -> dict:
    full = read_movielens(data_dir, seed=seed)
    domain = domain_items(full.items, [f"genre:{g}" for g in genres])
    clicklog = full if method == "full" else sparsify(full, domain, keep, seed)
    h = STUDENT["history_length"]
    train, val, test = (samples(clicklog.split(n), h) for n in ("train", "val", "test"))
    tensors = ItemTensors(clicklog.items)
    names = clicklog.items.label_names
    n_labels = len(names)
    torch.manual_seed(seed)
    if method in ("joint", "both"):
        genre_ids, channels = channels_of(clicklog.items, "genre:")
        model = JointCTR(JointCTRConfig(n_labels, clicklog.items.labels.shape[1], channel_labels=genre_ids,
                                        channel_weight=channel_weight, **STUDENT))
        objective = click_loss(tensors, train, channel_y=channel_clicks(train, channels),
                               channel_weight=channel_weight)
    else:
        model = CTRModel(CTRConfig(n_labels, clicklog.items.labels.shape[1], **STUDENT))
        objective = click_loss(tensors, train)
    if method in ("gan", "both"):
        objective = GANObjective(GANConfig(n_labels, **gan), tensors, train, domain, objective, seed)
    t0 = time.time()
    fitted = fit(model, tensors, train, val, epochs=epochs, lr=lr, batch=batch, seed=seed, patience=patience,
                 objective=objective, log=log)
    pred = score(model, tensors, test)
    return {"method": method, "seed": seed, "train_rows": len(train), "fit": fitted,
            "train_s": round(time.time() - t0, 1), "sparse": domain_report(pred, test, domain),
            "test": report(pred, test), "notes": clicklog.notes}


def summarise(results: list[dict]) -> dict:
    """Per method: mean and standard deviation over seeds of the sparse-domain and overall figures."""
    out = {}
    for method in METHODS:
        rs = [r for r in results if r["method"] == method]
        if not rs:
            continue
        figures = {"domain_auc": [r["sparse"]["domain_auc"] for r in rs],
                   "domain_visit_gauc": [r["sparse"]["domain_visit_gauc"] for r in rs],
                   "test_auc": [r["test"]["auc"] for r in rs], "test_gauc": [r["test"]["gauc"] for r in rs]}
        out[method] = {"seeds": [r["seed"] for r in rs],
                       **{k: {"mean": round(float(np.mean(v)), 4), "std": round(float(np.std(v)), 4)}
                          for k, v in figures.items()}}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.train_sparse", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--report", type=Path, default=Path("reports/sparse-domains-movielens.json"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    ap.add_argument("--genres", nargs="+", default=["Romance", "Sci-Fi"])
    ap.add_argument("--keep", type=float, default=0.1, help="share of the sparse genres' training behaviour kept")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--channel-weight", type=float, default=0.5, help="seed 004: weight of the channel-click loss")
    ap.add_argument("--distance", choices=DISTANCES, default="mmd", help="seed 002: the distribution term")
    ap.add_argument("--adversarial-weight", type=float, default=0.2)
    ap.add_argument("--distance-weight", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = ap.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    gan = {"distance": a.distance, "adversarial_weight": a.adversarial_weight, "distance_weight": a.distance_weight}
    for seed in a.seeds:
        for method in a.methods:
            path = a.out / f"seed{seed}-{method}.json"
            if path.exists():
                continue
            print(f"== seed {seed} {method}", flush=True)
            r = run(method, seed, genres=a.genres, keep=a.keep, epochs=a.epochs, lr=a.lr, batch=a.batch,
                    patience=a.patience, gan=gan, channel_weight=a.channel_weight, data_dir=a.data,
                    log=lambda m: print(m, flush=True))
            path.write_text(json.dumps(r, indent=1) + "\n")
            print(json.dumps(r["sparse"]), flush=True)
    results = [json.loads(p.read_text()) for p in sorted(a.out.glob("seed*-*.json"))]
    summary = {"setup": {"genres": a.genres, "keep": a.keep, "model": "CTR student size", **STUDENT,
                         "epochs": a.epochs, "lr": a.lr, "batch": a.batch, "patience": a.patience,
                         "channel_weight": a.channel_weight, "gan": gan},
               "methods": summarise(results), "runs": results}
    a.report.parent.mkdir(parents=True, exist_ok=True)
    a.report.write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary["methods"], indent=1))


if __name__ == "__main__":
    main()
