"""The text yardstick: character n-gram TF-IDF + a linear SVM, trained on exactly the classifier's training split.

Never shipped. Every accuracy table reports it beside teacher / student / INT8, on the same held-out splits (the
prepared ones: `train_classifier.held_out`).

    python -m edge_rec_export.training.tfidf_baseline --prep work/prep --out reports/tfidf-zh-news.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge_rec_export.training.metrics import accuracy, macro_f1
from edge_rec_export.training.train_classifier import HELD_OUT_SPLITS, held_out, load_prep, prep_texts

C_GRID = (0.1, 0.3, 1.0)


def fit(train: list[str], train_labels: np.ndarray, val: list[str], val_labels: np.ndarray):
    """Char 1-3-gram TF-IDF (sublinear tf) + LinearSVC with C tuned on validation accuracy; returns
    (predict(texts) -> labels, the chosen C)."""
    from sklearn.svm import LinearSVC

    vec = vectorizer()
    x, x_val = vec.fit_transform(train), vec.transform(val)
    best = max(((accuracy(m.predict(x_val), val_labels), c, m) for c in C_GRID
                for m in [LinearSVC(C=c).fit(x, train_labels)]), key=lambda t: t[0])
    model = best[2]
    return (lambda texts: model.predict(vec.transform(texts))), best[1]


def vectorizer():
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)


def reference(data: dict, meta: dict, texts: dict[str, list[str]]) -> dict:
    """The yardstick trained on a prep's training split (`load_prep`, `prep_texts`), reported on every held-out
    split the models are; and under "refit", the same C refitted on training + validation titles, reported on test (the
    yardstick of a model refitted so)."""
    from sklearn.svm import LinearSVC

    t0 = time.time()
    predict, c = fit(texts["train"], data["train"].label.numpy(), texts["val"], data["val"].label.numpy())
    fit_seconds = time.time() - t0
    out = {"model": f"char 1-3-gram TF-IDF (sublinear) + LinearSVC(C={c}, tuned on val)", "train": len(texts["train"]),
           "fit_seconds": round(fit_seconds, 1), **scores(predict, data, meta, texts)}
    vec = vectorizer()
    svm = LinearSVC(C=c).fit(vec.fit_transform(texts["train"] + texts["val"]),
                             np.concatenate([data["train"].label.numpy(), data["val"].label.numpy()]))
    refit = scores(lambda t: svm.predict(vec.transform(t)), data, meta, texts)
    out["refit"] = {"train": len(texts["train"]) + len(texts["val"]), **{k: v for k, v in refit.items() if k != "val"}}
    return out


def scores(predict, data: dict, meta: dict, texts: dict[str, list[str]]) -> dict:
    """Accuracy and macro-F1 of `predict` on every held-out split."""
    pred = {s: predict(texts[s]) for s in HELD_OUT_SPLITS if s in data}
    out = {}
    for name, (base, rows) in held_out(data).items():
        gold = data[base].label.numpy()[rows]
        out[name] = {"n": int(rows.sum()), "accuracy": round(accuracy(pred[base][rows], gold), 4),
                     "macro_f1": round(macro_f1(pred[base][rows], gold, len(meta["labels"])), 4)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.training.tfidf_baseline", description=__doc__.split("\n")[0])
    ap.add_argument("--prep", type=Path, default=Path("work/prep"), help="a prepared corpus (train_classifier prepare)")
    ap.add_argument("--out", type=Path, default=Path("reports/tfidf-zh-news.json"))
    a = ap.parse_args(argv)
    result = reference(*load_prep(a.prep), prep_texts(a.prep))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
