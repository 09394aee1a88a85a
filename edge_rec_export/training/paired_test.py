"""A trained ranking model against a baseline, user by user, over several seeds: each seed's model is scored on its
own seed's test visits beside the baseline fitted (knob tuned on validation) on that seed's training log as
ranking_baselines reads it (the --ml-* flags change only how the model's log is read; the test visits' shown items
are the same either way); every
user's gAUC and nDCG@10 are averaged over the seeds, and the per-user differences tested (paired t-test and
Wilcoxon signed-rank, two-sided).

    python -m edge_rec_export.training.paired_test movielens --data ../shared/data \
        --run 0:work/ml/seed0 --run 1:work/ml/seed1 --run 2:work/ml/seed2 \
        --model ctr_student --baseline ease_all_ratings --out reports/paired-movielens.json

With `--bundle`, the model side is a built bundle as it ships: the click log read as the builder read it (`events
--texts T --clicks C`, items classified by the bundle), each test visit's items scored by the bundle's ranker and
mixed with its prior at its lam (R, the ranking stage of `EdgeRecommender.recommend`), against every baseline:

    python -m edge_rec_export.training.paired_test events --texts T --clicks C --bundle bundles/ml \
        --out reports/paired-ml-bundle.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import stats

from edge_rec_export.data.interactions import ClickLog, add_log_arguments, read_log, samples
from edge_rec_export.training.metrics import auc_by_group, ranking_by_group
from edge_rec_export.training.ranking_baselines import MODELS, tuned, visit_scores
from edge_rec_export.training.train_ranking import ItemTensors, load, score


def per_user(pred: np.ndarray, s) -> dict[str, dict[int, float]]:
    """user -> gAUC (AUC over the user's test rows) and user -> mean nDCG@10 over the user's test lists."""
    users, aucs, _ = auc_by_group(pred, s.y, s.user)
    lists, ndcgs, _ = ranking_by_group(pred, s.y, s.group)
    owner = dict(zip(s.group.tolist(), s.user.tolist()))
    by_user: dict[int, list[float]] = {}
    for g, v in zip(lists.tolist(), ndcgs.tolist()):
        by_user.setdefault(owner[g], []).append(v)
    return {"gauc": dict(zip(users.tolist(), aucs.tolist())),
            "ndcg@10": {u: float(np.mean(v)) for u, v in by_user.items()}}


def baseline_scores(log: ClickLog, name: str) -> tuple[np.ndarray, object]:
    """The baseline's test scores, its knob tuned on the validation visits as in ranking_baselines."""
    score, x, best, _ = tuned(log, name)
    return visit_scores(score, x, log.test)[0], best


def compare(logs: dict[int, tuple[ClickLog, ClickLog]], runs: dict[int, Path], model_name: str, baseline: str) -> dict:
    """Per-seed means and the paired test over users of (model - baseline), metrics averaged over the seeds; `logs`:
    seed -> (the model's log, the baseline's log)."""
    sums = {side: {m: {} for m in ("gauc", "ndcg@10")} for side in ("model", "baseline")}
    seeds = {}
    for seed, run in runs.items():
        log, base_log = logs[seed]
        model, _ = load(run / f"{model_name}.pt")
        s = samples(log.test, model.cfg.history_length)
        base, knob = baseline_scores(base_log, baseline)
        rows = samples(base_log.test, 1)
        if not (np.array_equal(rows.group, s.group) and np.array_equal(rows.target, s.target)):
            raise ValueError(f"seed {seed}: the model's test visits show other items than the baseline's")
        sides = {"model": score(model, ItemTensors(log.items), s).astype(np.float64), "baseline": base}
        seeds[seed] = {"run": str(run), "baseline_knob": knob}
        for side, pred in sides.items():
            figures = per_user(pred, s)
            seeds[seed][side] = {m: round(float(np.mean(list(v.values()))), 4) for m, v in figures.items()}
            for m, v in figures.items():
                for u, x in v.items():
                    sums[side][m].setdefault(u, []).append(x)
    return {"model": model_name, "baseline": baseline, "seeds": seeds, "paired": paired(sums)}


def paired(sums: dict, metrics: tuple[str, ...] = ("gauc", "ndcg@10")) -> dict:
    """sums: side ("model", "baseline") -> metric -> user -> values (one per seed) -> per metric the paired tests
    over the users both sides have, of the users' means."""
    out = {}
    for m in metrics:
        users = sorted(set(sums["model"][m]) & set(sums["baseline"][m]))
        a = np.array([np.mean(sums["model"][m][u]) for u in users])
        b = np.array([np.mean(sums["baseline"][m][u]) for u in users])
        d = a - b
        out[m] = {"users": len(users), "model": round(float(a.mean()), 4), "baseline": round(float(b.mean()), 4),
                  "difference": round(float(d.mean()), 4),
                  "standard_error": round(float(d.std(ddof=1) / np.sqrt(len(d))), 4),
                  "t_test_p": float(stats.ttest_rel(a, b).pvalue), "wilcoxon_p": float(stats.wilcoxon(a, b).pvalue)}
    return out


def compare_bundle(bundle_dir: Path, texts: Path, clicks: Path) -> dict:
    """The bundle's R on the builder's test visits against every baseline fitted on the same log."""
    from edge_rec import load_bundle
    from edge_rec_export.build import ranking_log
    from edge_rec_export.bundle.package_ranking import BASELINE_NAMES, item_priors, onnx_scores
    from edge_rec_export.data.texts_input import labelled_by_id, read_events

    bundle = load_bundle(bundle_dir)
    by_id = {i: t.text for i, t in labelled_by_id(texts).items()}
    log = ranking_log(read_events(clicks, set(by_id)), by_id, bundle_dir, bundle.name)
    prior, lam = bundle.pipeline.get("prior", "index"), bundle.pipeline["lam"]
    s = samples(log.test, 1)
    degree = lam * onnx_scores(bundle.model_file("ranker"), ItemTensors(log.items), log.test) \
        + (1 - lam) * item_priors(log.items)[prior][s.target]

    def one_seed(pred: np.ndarray) -> dict:  # per_user's figures as `paired` takes them (one value per user)
        return {m: {u: [x] for u, x in v.items()} for m, v in per_user(pred, s).items()}

    model = one_seed(degree.astype(np.float64))
    out = {"bundle": str(bundle_dir), "prior": prior, "lam": lam, "test_visits": len(log.test), "paired": {}}
    for name, label in BASELINE_NAMES.items():
        base, knob = baseline_scores(log, name)
        out["paired"][label] = {"knob": knob, **paired({"model": model, "baseline": one_seed(base)})}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.paired_test",
                                 description=__doc__.split("\n")[0])
    add_log_arguments(ap)
    ap.add_argument("--run", action="append", metavar="SEED:DIR",
                    help="a train_ranking output folder and the seed it was trained with (repeat per seed)")
    ap.add_argument("--bundle", type=Path, help="events logs: a built bundle as it ships against every baseline "
                    "(in place of --run and --baseline)")
    ap.add_argument("--model", default="ctr_student", help="checkpoint name in each run folder")
    ap.add_argument("--baseline", default="ease_all_ratings", choices=sorted(MODELS))
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    if a.bundle:
        if a.log != "events":
            ap.error("--bundle takes the click log the bundle was built from: events --texts T --clicks C")
        result = compare_bundle(a.bundle, a.texts, a.clicks)
        write(a.out, result)
        return
    if not a.run:
        ap.error("--run SEED:DIR (or --bundle) is required")
    runs = {}
    for spec in a.run:
        seed, _, folder = spec.partition(":")
        if not seed.isdigit() or not folder:
            ap.error(f"--run takes SEED:DIR, got {spec!r}")
        runs[int(seed)] = Path(folder)
    if a.log == "bing":
        ap.error("bing has one fixed split; compare its runs with ranking_baselines' report")
    logs = {s: (read_log(a, s), read_log(a, s, movielens={})) for s in runs}
    write(a.out, compare(logs, runs, a.model, a.baseline))


def write(path: Path, result: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result["paired"], indent=1))


if __name__ == "__main__":
    main()
