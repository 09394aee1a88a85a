"""The text yardstick: character n-gram TF-IDF + a linear SVM, trained on exactly the classifier's training split.

Never shipped. Every accuracy table reports it beside teacher / student / INT8, on the same held-out splits.

    python -m edge_rec_export.tfidf_baseline --data ../shared/data --out reports/tfidf-zh-news.json
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edge_rec_export.metrics import accuracy, macro_f1
from edge_rec_export.news_data import Example, assign_splits, read_labelled

C_GRID = (0.1, 0.3, 1.0)


def fit(train: list[Example], val: list[Example], n_classes: int):
    """Char 1-3-gram TF-IDF (sublinear tf) + LinearSVC with C tuned on validation accuracy; returns
    (predict(titles) -> labels, the chosen C)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    vec = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True, min_df=2)
    x = vec.fit_transform([e.title for e in train])
    y = np.array([e.label for e in train])
    x_val, y_val = vec.transform([e.title for e in val]), np.array([e.label for e in val])
    best = max(((accuracy(m.predict(x_val), y_val), c, m) for c in C_GRID for m in [LinearSVC(C=c).fit(x, y)]),
               key=lambda t: t[0])
    model = best[2]
    return (lambda titles: model.predict(vec.transform(titles))), best[1]


def held_out(examples: list[Example], salt: str = "13") -> dict[str, list[Example]]:
    """The report's splits: val, test, its Toutiao and TNEWS parts, and FewCLUE's test_public."""
    _, val, test, public = assign_splits(examples, salt)
    return {"val": val, "test": test, "test_toutiao": [e for e in test if e.source == "toutiao"],
            "test_tnews": [e for e in test if e.source == "tnews"], "tnews_test_public": public}


def report(predict, splits: dict[str, list[Example]], n_classes: int) -> dict:
    out = {}
    for name, exs in splits.items():
        gold = np.array([e.label for e in exs])
        pred = predict([e.title for e in exs])
        out[name] = {"n": len(exs), "accuracy": round(accuracy(pred, gold), 4),
                     "macro_f1": round(macro_f1(pred, gold, n_classes), 4)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.tfidf_baseline", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--out", type=Path, default=Path("reports/tfidf-zh-news.json"))
    a = ap.parse_args(argv)
    from edge_rec_export.news_data import NAMES

    examples = read_labelled(a.data)
    train, val, _, _ = assign_splits(examples)
    t0 = time.time()
    predict, c = fit(train, val, len(NAMES))
    result = {"model": f"char 1-3-gram TF-IDF (sublinear) + LinearSVC(C={c}, tuned on val)", "train": len(train),
              "fit_seconds": round(time.time() - t0, 1), **report(predict, held_out(examples), len(NAMES))}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
