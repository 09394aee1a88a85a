"""How often the int8 semantic screen (semantic.most_similar over int8 codes) recalls exactly the float32 top D, on
real titles: the default bundle's held-out test titles, classified once, and users whose 50-title histories are
either drawn at random or drawn from one title's 200 nearest neighbours (a coherent taste); as in recommend(), the
history's own titles are excluded.

    python benchmarks/semantic_screen.py --out reports/semantic-screen.json
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge_rec import ContentClassifier, load_bundle
from edge_rec.recall import top_d
from edge_rec.semantic import SCREEN, int8_codes, most_similar, similarity

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def agreement(vectors: np.ndarray, users: int, d: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    codes, scale = int8_codes(vectors)
    features = {"vector": vectors, "vector_codes": codes, "vector_scale": scale}
    out = {}
    for kind in ("random", "coherent"):
        same_set = same_list = 0
        overlap = []
        for _ in range(users):
            if kind == "random":
                history = rng.choice(len(vectors), 50, replace=False)
            else:
                near = np.argsort(-(vectors @ vectors[rng.integers(len(vectors))]))[:200]
                history = rng.choice(near, 50, replace=False)
            refs, excluded = vectors[history], np.zeros(len(vectors), dtype=np.float32)
            excluded[history] = np.inf
            exact = top_d(similarity(refs, vectors) - excluded, d)
            screened = most_similar(refs, features, d, excluded)
            same_list += np.array_equal(exact, screened)
            same_set += set(exact.tolist()) == set(screened.tolist())
            overlap.append(len(set(exact.tolist()) & set(screened.tolist())))
        out[kind] = {"users": users, "same_items": same_set, "same_order": same_list,
                     "mean_overlap": float(np.mean(overlap)), "min_overlap": int(min(overlap))}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--d", type=int, default=100)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    from edge_rec_export.data.news_data import bundle_splits

    bundle = load_bundle()
    titles = list(dict.fromkeys(e.title for e in bundle_splits(a.data, bundle.metrics)[2]))
    vectors = np.array([c.vector for c in ContentClassifier(bundle).classify_stream(titles)], dtype=np.float32)
    result = {"titles": len(titles), "d": a.d, "screen": SCREEN * a.d, **agreement(vectors, a.users, a.d)}
    print(json.dumps(result, indent=1))
    if a.out:
        a.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
