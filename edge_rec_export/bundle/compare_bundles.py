"""Two classifier bundles on the titles that both held out: accuracy through the runtime, per source.

Bundles trained on different splits can only be compared fairly on titles in *both* test splits.

    python -m edge_rec_export.bundle.compare_bundles OLD_BUNDLE NEW_BUNDLE --data ../shared/data
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_rec import ContentClassifier, load_bundle
from edge_rec_export.data.corpus import normalise
from edge_rec_export.data.news_data import NAMES, bundle_splits


def compare(paths: list[Path], data_dir: Path) -> dict:
    bundles = [load_bundle(p) for p in paths]
    tests = [bundle_splits(data_dir, b.metrics)[2] for b in bundles]
    shared = set.intersection(*({normalise(e.title) for e in t} for t in tests))
    titles = [e for e in tests[-1] if normalise(e.title) in shared]
    out = {"titles": len(titles), "toutiao": sum(e.source == "toutiao" for e in titles), "bundles": {}}
    for path, bundle in zip(paths, bundles):
        pred = [r.primary for r in ContentClassifier(bundle, profile="pc", cache_size=0).classify(
            [e.title for e in titles])]
        right = np.array([p == NAMES[e.label] for p, e in zip(pred, titles)])
        toutiao = np.array([e.source == "toutiao" for e in titles])
        out["bundles"][str(path)] = {"accuracy": round(float(right.mean()), 4),
                                     "accuracy_toutiao": round(float(right[toutiao].mean()), 4)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle.compare_bundles", description=__doc__.split("\n")[0])
    ap.add_argument("bundles", type=Path, nargs=2)
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    a = ap.parse_args(argv)
    print(json.dumps(compare(a.bundles, a.data), indent=1))


if __name__ == "__main__":
    main()
