"""Ranking checkpoints -> ONNX fp32 (verified) -> INT8, scored on held-out visits in onnxruntime, added to a bundle.

    # held-out figures of the ONNX models on a log (e.g. MovieLens), no bundle written:
    python -m edge_rec_export.bundle.package_ranking movielens --run work/ranking/ml
    # the default bundle's recall and ranker models, trained on the simulated log:
    python -m edge_rec_export.bundle.package_ranking file --log-file work/sim/log.pkl.gz --run work/ranking/sim --bundle assets/zh-news

The recall model (DSSM) ships in fp32: it is a few embedding rows and two small MLPs, and INT8 gains nothing there.
Beside it ship its two sides (recall_user, recall_items: score = sigmoid(items @ user.T), checked against it), so a
runtime holding a catalogue computes the item side once and scores a user against 100,000 items with one product.
The ranker (CTR student) ships in INT8 only when it keeps the fp32 AUC within `INT8_AUC_BUDGET` *and* runs faster:
at these widths (16-32) quantizing and dequantizing around each small MatMul can cost more than it saves.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from edge_rec.bundle import load_bundle
from edge_rec.items import HISTORY_EVENTS
from edge_rec.scorer import side_scores
from edge_rec.sessions import make_session
from edge_rec_export.bundle.bundle_writer import io_signature, write_manifest
from edge_rec_export.data.interactions import (ClickLog, Impression, add_log_arguments, history_event_types, read_log,
                                              samples)
from edge_rec_export.bundle.onnx_export import ParityError, check_parity, export_onnx, run_onnx
from edge_rec_export.bundle.package_classifier import p50_ms
from edge_rec_export.bundle.quantize import quantize_int8
from edge_rec_export.models.dssm import DSSMItems, DSSMUser
from edge_rec_export.training.ranking_baselines import baselines
from edge_rec_export.training.train_ranking import ItemTensors, load, report, score

PARITY_ATOL = 1e-4
INT8_AUC_BUDGET = 0.005
CANDIDATE_INPUTS = ("cand_labels", "cand_index", "cand_vector", "cand_item", "cand_pop")


def impression_feeds(tensors: ItemTensors, imp: Impression, history_length: int, names) -> dict[str, torch.Tensor]:
    """One visit: the user's history as a batch of one (1, H, ...) against all its shown items (N, ...)."""
    s = samples([imp], history_length)
    return tensors.feeds(s.hist[:1], imp.shown, names, imp.pop, s.hist_event[:1])


def calibration_feeds(model, tensors: ItemTensors, visits: list[Impression]) -> list[dict[str, np.ndarray]]:
    """The model's inputs for these visits as numpy, what fixes its INT8 activation scales."""
    return [{k: v.numpy() for k, v in impression_feeds(tensors, imp, model.cfg.history_length,
                                                       model.feed_names).items()} for imp in visits]


def export_ranking_model(model, tensors: ItemTensors, examples: list[Impression], path: Path,
                         output: str = "score") -> tuple[Path, float]:
    """Export fp32 to `path` and check parity on a few real visits. Returns (file, max abs diff)."""
    names = model.feed_names
    h = model.cfg.history_length
    feeds = [impression_feeds(tensors, imp, h, names) for imp in examples]
    scorer = model.eval()
    dynamic = {k: {0: "candidates"} for k in names if k in CANDIDATE_INPUTS}
    export_onnx(scorer, feeds[0], [output], path, dynamic)
    return path, max(check_parity(scorer, path, f, [output], PARITY_ATOL) for f in feeds)


def export_recall_sides(dssm, tensors: ItemTensors, examples: list[Impression], recall: Path,
                        workdir: Path) -> tuple[dict[str, Path], float]:
    """The recall model's two sides as graphs of their own (the runtime computes a catalogue's item side once);
    returns them and the max abs difference of sigmoid(items @ user.T) from the one-graph recall model's score."""
    sides = {"recall_user": export_ranking_model(DSSMUser(dssm), tensors, examples, workdir / "recall_user.onnx",
                                                 "user")[0],
             "recall_items": export_ranking_model(DSSMItems(dssm), tensors, examples, workdir / "recall_items.onnx",
                                                  "items")[0]}
    worst = 0.0
    for imp in examples:
        feeds = {k: v.numpy() for k, v in impression_feeds(tensors, imp, dssm.cfg.history_length,
                                                            dssm.feed_names).items()}
        (user,), (items,), (score,) = (run_onnx(path, feeds) for path in (*sides.values(), recall))
        worst = max(worst, float(np.abs(side_scores(items, user) - score).max()))
    if not worst <= PARITY_ATOL:
        raise ParityError(f"recall sides: sigmoid(items @ user) differs from recall.onnx by {worst:.3g}")
    return sides, worst


def onnx_scores(path: Path, tensors: ItemTensors, visits: list[Impression], threads: int = 2) -> np.ndarray:
    sess = make_session(path, threads)
    names = [i.name for i in sess.get_inputs()]
    h = sess.get_inputs()[0].shape[1]
    out = []
    for imp in visits:
        feeds = impression_feeds(tensors, imp, h, names)
        out.append(sess.run(["score"], {k: v.numpy() for k, v in feeds.items()})[0])
    return np.concatenate(out)


def package(run: Path, log: ClickLog, workdir: Path, say=lambda _: None) -> tuple[dict[str, Path], dict]:
    """Export recall (fp32) and ranker (INT8 if within budget) from `run`; returns their files and test figures.
    `say` hears each part as it starts (the baselines can take minutes on a large catalogue)."""
    say("   export, parity check, INT8, test figures")
    tensors = ItemTensors(log.items)
    dssm, teacher, student = (load(run / f"{n}.pt")[0] for n in ("dssm", "ctr_teacher", "ctr_student"))
    examples = [imp for imp in log.test if len(imp.shown) > 1][:3]
    recall, recall_diff = export_ranking_model(dssm, tensors, examples, workdir / "recall.onnx")
    sides, sides_diff = export_recall_sides(dssm, tensors, examples, recall, workdir)
    ranker_fp32, ranker_diff = export_ranking_model(student, tensors, examples, workdir / "ranker.fp32.onnx")
    ranker_int8 = quantize_int8(ranker_fp32, workdir / "ranker.int8.onnx",
                                calibration_feeds(student, tensors, log.val[:256]))
    figures = {"data": log.name, "data_notes": log.notes, "test_visits": len(log.test),
               "parity_fp32_onnx_vs_torch_max_abs": {"recall": recall_diff, "ranker": ranker_diff},
               "parity_recall_sides_vs_recall_max_abs": sides_diff}
    for name, model in (("ctr_teacher_fp32_torch", teacher), ("ctr_student_fp32_torch", student)):
        test = samples(log.test, model.cfg.history_length)
        figures[name] = report(score(model, tensors, test), test)
    rows = samples(log.test, 1)  # onnx_scores returns one score per shown item, in this order
    for name, path in (("recall_dssm_fp32_onnx", recall), ("ctr_student_fp32_onnx", ranker_fp32),
                       ("ctr_student_int8_onnx", ranker_int8)):
        figures[name] = report(onnx_scores(path, tensors, log.test), rows)
    loss = figures["ctr_student_fp32_onnx"]["auc"] - figures["ctr_student_int8_onnx"]["auc"]
    example = {k: v.numpy() for k, v in impression_feeds(tensors, examples[0], student.cfg.history_length,
                                                         student.feed_names).items()}
    speed = {"candidates": len(examples[0].shown)}
    for precision, path in (("fp32", ranker_fp32), ("int8", ranker_int8)):
        sess = make_session(path, 1)
        speed[precision] = round(p50_ms(lambda: sess.run(None, example)), 3)
    use_int8 = loss <= INT8_AUC_BUDGET and speed["int8"] < speed["fp32"]
    ranker = ranker_int8 if use_int8 else ranker_fp32
    say("   the ranker mixed with its prior (lam tuned on validation), then the baselines")
    figures.update({"ranker_precision": "int8" if use_int8 else "fp32", "int8_auc_loss_vs_fp32": round(loss, 4),
                    "ranker_latency_1_thread_p50_ms": speed,
                    "recommendation_degree": tune_lam(ranker, tensors, log), "baselines": baselines(log, say)})
    figures["guarantee"] = guarantee(figures["recommendation_degree"], figures["baselines"])
    return {"recall": recall, **sides, "ranker": ranker}, figures


BASELINE_NAMES = {"popularity": "popularity", "item_knn": "item-kNN", "ease": "EASE^R",
                  "ease_all_ratings": "EASE^R (all exposures)", "implicit_als": "implicit ALS"}


def guarantee(degree: dict, baselines: dict) -> dict:
    """What ships and why, in words, judged on validation (nDCG@10, then gAUC): the tuned mix of the learned
    ranker and its prior beside every baseline. The mix includes the popularity the runtime serves (lam = 0 with
    the popularity prior: the bundle's time-decayed snapshot, not the baseline's plain click counts), and
    item-kNN, EASE^R and ALS are measured but the runtime cannot serve them: whichever is above what ships on
    validation is named in the verdict, never hidden."""
    prior, lam, val = degree["prior"], degree["lam_tuned_on_val"], degree["val_tuned"]
    if lam == 0.0:
        shipped = f"{prior} alone (lam = 0): the learned ranker adds nothing to it on validation"
    elif lam == 1.0:
        shipped = "the learned ranker alone (lam = 1)"
    else:
        shipped = f"the learned ranker mixed with {prior} (lam = {lam})"
    key = ("ndcg@10", "gauc")
    beaten = [(BASELINE_NAMES[n], b["val"]) for n, b in baselines.items() if "val" in b and n in BASELINE_NAMES
              and tuple(b["val"][k] for k in key) >= tuple(val[k] for k in key)]
    if lam == 0.0 and prior == "popularity":
        verdict = "the learned ranker lost to popularity on validation; popularity ships"
    elif beaten:
        verdict = ("shipped, but below " + ", ".join(f"{n} (nDCG@10 {b['ndcg@10']} vs {val['ndcg@10']})"
                                                    for n, b in beaten) + " on validation")
        if any(n != "popularity" for n, _ in beaten):
            verdict += " (item-kNN, EASE^R and ALS: the runtime cannot serve them)"
    else:
        verdict = "above every baseline on validation"
    return {"shipped": shipped, "verdict": verdict, "val": val,
            "baselines_val": {BASELINE_NAMES[n]: b["val"] for n, b in baselines.items() if "val" in b}}


LAM_GRID = [round(x, 1) for x in np.arange(0.0, 1.01, 0.1)]


def item_priors(items) -> dict[str, np.ndarray]:
    """pipeline.prior -> each item row's value of it: the category index, and the popularity where the log gave it."""
    return {"index": items.index} | ({} if items.popularity is None else {"popularity": items.popularity})


def tune_lam(ranker: Path, tensors: ItemTensors, log: ClickLog) -> dict:
    """R = lam * p + (1 - lam) * prior on held-out visits, the prior being the item's category index c or (where
    the log gives it) its popularity: the (prior, lam) with the best nDCG@10 on validation (ties: the larger lam,
    then c), and the test figures of that choice beside lam = 1 (the ranker alone), so the prior's worth is
    measured. lam = 0 with the popularity prior is plain popularity: the ranker ships only where it adds to it."""
    priors = item_priors(log.items)

    def scored(visits):  # the ranker runs once per visit set; only the mix with the prior changes with lam
        rows = samples(visits, 1)
        return rows, onnx_scores(ranker, tensors, visits), {k: v[rows.target] for k, v in priors.items()}

    def figures(scores, prior, lam):
        rows, p, prior_of = scores
        return report(lam * p + (1.0 - lam) * prior_of[prior], rows)

    val_scores, test_scores = scored(log.val), scored(log.test)
    val = {(prior, lam): figures(val_scores, prior, lam) for prior in priors for lam in LAM_GRID}
    prior, lam = max(val, key=lambda key: (val[key]["ndcg@10"], key[1], key[0] == "index"))
    return {"prior": prior, "lam_tuned_on_val": lam, "val_tuned": val[prior, lam],
            "val_ndcg@10": {f"{pr} {la}": v["ndcg@10"] for (pr, la), v in val.items()},
            "test_tuned_lam": figures(test_scores, prior, lam), "test_lam_1": figures(test_scores, "index", 1.0)}


def add_to_bundle(bundle_dir: Path, models: dict[str, Path], manifest_update: dict) -> None:
    """Copy `models` (role -> onnx) into an existing bundle and rewrite its manifest with their signatures."""
    bundle = load_bundle(bundle_dir)
    manifest = {k: v for k, v in bundle.manifest.items() if k not in ("format_version", "created_by", "files")}
    for role, src in models.items():
        shutil.copyfile(src, bundle_dir / f"{role}.onnx")
        manifest["models"][role] = {"file": f"{role}.onnx", **io_signature(bundle_dir / f"{role}.onnx")}
    for key, value in manifest_update.items():
        manifest[key] = {**manifest.get(key, {}), **value} if key == "metrics" else value
    names = sorted({*bundle.manifest["files"], *(f"{role}.onnx" for role in models)})
    write_manifest(bundle_dir, manifest, names)


# Recall and ranking knobs the default bundle ships with (seed 000 S3-S5); every one can be overridden per call.
PIPELINE = {"recall_top": 100, "tag_top": 100, "semantic_top": 100, "semantic_mode": "max", "match_g": 1.0,
            "lam": 0.8, "prior": "index", "k": 10, "max_interest_tags": 5, "screen_share": 0.2, "out_of_scope": "last"}


def ranking_section(log: ClickLog) -> dict:
    """The manifest's `ranking`: the models' label names and, where the log gave them, the ids with an id
    embedding (in embedding-row order), every item's popularity at the end of training (0 for the others) and the
    history events the models read (their codes: list index + 1)."""
    section = {"labels": log.items.label_names}
    if history_event_types(log):
        section["history_events"] = list(HISTORY_EVENTS)
    if log.items.identity is not None:
        rows = np.flatnonzero(log.items.identity)
        rows = rows[np.argsort(log.items.identity[rows])]
        section["items"] = [log.items.ids[r] for r in rows]
        section["popularity"] = [round(float(x), 5) for x in log.items.popularity[rows]]
    return section


def package_into(run: Path, log: ClickLog, bundle_dir: Path | None, say=lambda _: None) -> dict:
    """Export and measure the models of `run`; with `bundle_dir`, add them (and the tuned lam) to that bundle."""
    with tempfile.TemporaryDirectory() as tmp:
        files, figures = package(run, log, Path(tmp), say)
        (run / "onnx_report.json").write_text(json.dumps(figures, indent=1) + "\n")
        if bundle_dir:
            degree = figures["recommendation_degree"]
            add_to_bundle(bundle_dir, files, {
                "ranking": ranking_section(log),
                "pipeline": {**PIPELINE, "lam": degree["lam_tuned_on_val"], "prior": degree["prior"]},
                "metrics": {"ranking": figures}})
    return figures


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle.package_ranking", description=__doc__.split("\n")[0])
    add_log_arguments(ap)
    ap.add_argument("--run", type=Path, required=True, help="folder with dssm.pt, ctr_teacher.pt, ctr_student.pt")
    ap.add_argument("--bundle", type=Path, help="add the models to this bundle (else only report)")
    ap.add_argument("--seed", type=int, default=0, help="the seed the run was trained with (it draws the sampled "
                    "evaluation negatives of movielens and events logs)")
    a = ap.parse_args(argv)
    print(json.dumps(package_into(a.run, read_log(a, bing_vectors=True), a.bundle), indent=1))


if __name__ == "__main__":
    main()
