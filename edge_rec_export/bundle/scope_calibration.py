"""Set a bundle's scope thresholds on held-out in-scope titles and measure them on out-of-scope text.

    python -m edge_rec_export.bundle.scope_calibration --bundle assets/zh-news --data ../shared/data

Thresholds (edge_rec/scope.py): `min_script_share` is the largest grid value that flags at most `max_flagged / 2`
of the validation titles, `min_primary_prob` the `max_flagged / 2` quantile of their primary probability, so at most
`max_flagged` of in-scope validation text is flagged. Then measured: the share flagged of the in-scope test titles
and of out-of-scope text (for the news bundle, AG News's English titles). The manifest's `scope` section is rewritten with all of it.
"""
from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

from edge_rec import ContentClassifier, load_bundle
from edge_rec.bundle import MANIFEST
from edge_rec.scope import Scope, script_share
from edge_rec_export.bundle.bundle_writer import write_manifest
from edge_rec_export.data.news_data import bundle_splits

SHARE_GRID = [round(x, 2) for x in np.arange(0.0, 1.0, 0.05)]


def calibrate(clf: ContentClassifier, titles: list[str], scripts: tuple[str, ...], max_flagged: float = 0.02) -> dict:
    shares = np.array([script_share(t, scripts) for t in titles])
    probs = np.array([r.primary_prob for r in clf.classify(titles)])
    share = max(s for s in SHARE_GRID if np.mean(shares < s) <= max_flagged / 2)
    prob = float(np.floor(np.quantile(probs, max_flagged / 2) * 1000) / 1000)
    return {"min_script_share": share, "min_primary_prob": prob}


def flagged(clf: ContentClassifier, titles: list[str]) -> float:
    return round(float(np.mean([not r.in_scope for r in clf.classify(titles)])), 4)


def english_titles(data_dir: Path) -> list[str]:
    with open(data_dir / "ag_news_test" / "test.csv", encoding="utf-8", newline="") as f:
        return [row["title"] for row in csv.DictReader(f) if row["title"].strip()]


def calibrate_bundle(bundle_dir: Path, val: list[str], test: list[str], scripts: tuple[str, ...],
                     languages: list[str], domain: str, out_of_scope: dict[str, list[str]],
                     max_flagged: float = 0.02) -> dict:
    """Thresholds from the in-scope validation texts `val`; measured on the in-scope `test` texts and on each named
    set of out-of-scope texts; the manifest's `scope` section rewritten with all of it."""
    clf = ContentClassifier(load_bundle(bundle_dir), profile="pc", cache_size=0)
    clf.scope = None  # calibrating: nothing flagged yet
    thresholds = calibrate(clf, val, scripts, max_flagged)
    clf.scope = Scope(scripts, **thresholds)
    measured = {"in_scope_test_flagged": flagged(clf, test), "in_scope_test_n": len(test)}
    for name, texts in out_of_scope.items():
        measured.update({f"{name}_flagged": flagged(clf, texts), f"{name}_n": len(texts)})
    scope = {"languages": languages, "domain": domain, "scripts": list(scripts), **thresholds,
             "calibrated_on": f"{len(val)} validation texts, at most {max_flagged:.0%} flagged", "measured": measured}
    manifest = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    write_manifest(bundle_dir, {**manifest, "scope": scope}, list(manifest["files"]))
    return scope


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.bundle.scope_calibration", description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, default=Path("assets/zh-news"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--scripts", default="Han", help="comma-separated script names the bundle reads")
    ap.add_argument("--languages", default="zh")
    ap.add_argument("--domain", default="Chinese news titles (Toutiao / TNEWS, 15 categories)")
    ap.add_argument("--max-flagged", type=float, default=0.02, help="share of in-scope validation text flagged")
    a = ap.parse_args(argv)
    _, val, test = ([e.title for e in part] for part in bundle_splits(a.data, load_bundle(a.bundle).metrics))
    print(json.dumps(calibrate_bundle(a.bundle, val, test, tuple(a.scripts.split(",")), a.languages.split(","),
                                      a.domain, {"ag_news_english": english_titles(a.data)}, a.max_flagged),
                     ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
