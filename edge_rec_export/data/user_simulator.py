"""A seeded user simulator over real Toutiao/TNEWS titles: the click log the default bundle's ranking models train on.

No Chinese click log is reachable (DESIGN.md), so clicks are simulated; the content is real. The simulator decides
clicks from each title's *true* category and keywords; the models only see what the shipped classifier says about
the title (primary label, tags, category index c, semantic vector), as they would on a device.

Each user has interests over the 15 categories (sparse Dirichlet) and a few favourite keywords from those
categories. A visit shows 10 titles, half drawn from the user's current interests and half at random; each is
clicked with probability sigmoid(bias + a * log(interest in its category) + b * [has a favourite keyword]
+ q * (true category index - 0.5)). Interests drift: after each visit they move toward what was clicked, and
now and then the user takes up a new category.
"""
from __future__ import annotations

import argparse
import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rec_export.data.interactions import ClickLog, Impression, ItemTable
from edge_rec_export.data.corpus import Example, Targets, assign_splits
from edge_rec_export.data.news_data import NAMES, bundle_splits


@dataclass
class SimConfig:
    users: int = 2000
    visits: int = 30  # per user; the last 2 are the test visits, the one before them validation
    shown: int = 10
    interest_share: float = 0.5  # share of each visit drawn from the user's current interests
    concentration: float = 0.2  # Dirichlet concentration of the interests: small = few categories per user
    favourite_tags: int = 3
    bias: float = -2.0
    affinity: float = 1.0
    tag_bonus: float = 1.5
    quality: float = 1.0
    follow: float = 0.1  # how far interests move toward a visit's clicks
    new_interest: float = 0.05  # chance per visit of taking up a new category
    seed: int = 0


def item_labels(primary: str, tags: list[str], label_of: dict[str, int], max_labels: int) -> list[int]:
    """Label ids of one classified item: its primary label, then its tags, most likely first."""
    ids = [label_of[f"primary:{primary}"]] + [label_of[f"tag:{t}"] for t in tags]
    return ids[:max_labels]


def ranking_labels(primary_labels: list[str], tags: list[str]) -> list[str]:
    """The ranking models' label vocabulary for a classifier bundle (label id = position + 1)."""
    return [f"primary:{p}" for p in primary_labels] + [f"tag:{t}" for t in tags]


def classified_items(ids: list[str], texts: list[str], clf, max_labels: int = 4) -> ItemTable:
    """Items as the ranking models read them: each text classified by `clf` (the runtime's ContentClassifier, as
    on a device) into label ids (ranking_labels), category index c and semantic vector."""
    classes = clf.classify(texts)
    names = ranking_labels(clf.bundle.primary_labels, clf.bundle.tags)
    label_of = {n: i for i, n in enumerate(names, start=1)}
    return ItemTable.build(ids, [item_labels(c.primary, [t for t, _ in c.tags], label_of, max_labels) for c in classes],
                           np.array([c.index for c in classes]), np.stack([c.vector for c in classes]), names,
                           max_labels)


def simulate(data_dir: Path, bundle=None, cfg: SimConfig = SimConfig(), max_labels: int = 4) -> ClickLog:
    from edge_rec import ContentClassifier  # the shipped runtime classifies the content, as on a device

    clf = ContentClassifier(bundle, cache_size=1)
    train, val, test = bundle_splits(Path(data_dir), clf.bundle.metrics)
    targets = Targets.fit(train, len(NAMES))
    pool = val + test  # titles the classifier never trained on
    titles = [e.title for e in pool]
    items = classified_items(titles, titles, clf, max_labels)
    return ClickLog("zh-news-sim", items, *_visits(pool, targets, cfg),
                    notes=f"simulated users over real titles: {cfg}")


def click_events(examples: list[Example], salt: str = "13", cfg: SimConfig = SimConfig()):
    """The simulated log as `edge-rec-export build --clicks` rows, over the titles `examples` holds out under the
    hash split `salt` (validation + test): user, item (the title's position in `examples`), time (the visit's
    number, the same for all users) and event (click or impression)."""
    train, val, test, _ = assign_splits(examples, salt)
    pool = val + test
    position = {id(e): i for i, e in enumerate(examples)}
    for part in _visits(pool, Targets.fit(train, len(NAMES)), cfg):
        for imp in part:
            for row, click in zip(imp.shown, imp.clicks):
                yield {"user": imp.user, "item": position[id(pool[row - 1])], "time": imp.time,
                       "event": "click" if click else "impression"}


def _visits(pool, targets: Targets, cfg: SimConfig):
    rng = np.random.default_rng(cfg.seed)
    n_cat = len(NAMES)
    cat = np.array([e.label for e in pool])
    c_true = np.array([targets.index(e) for e in pool])
    c_true = np.where(np.isnan(c_true), 0.5, c_true)
    tag_set = set(targets.tags)
    keywords = [set(k for k in e.keywords if k in tag_set) for e in pool]
    by_cat = [np.flatnonzero(cat == k) for k in range(n_cat)]
    tags_by_cat = [[t for i in by_cat[k] for t in keywords[i]] for k in range(n_cat)]
    splits = {"train": [], "val": [], "test": []}
    for u in range(cfg.users):
        w = rng.dirichlet(np.full(n_cat, cfg.concentration))
        top = np.argsort(-w)[:2]
        candidates = [t for k in top for t in tags_by_cat[k]] or targets.tags
        favourites = set(rng.choice(candidates, cfg.favourite_tags))
        history: list[int] = []
        for v in range(cfg.visits):
            n_int = int(round(cfg.shown * cfg.interest_share))
            cats = rng.choice(n_cat, n_int, p=w)
            shown = np.concatenate([[rng.choice(by_cat[k]) for k in cats],
                                    rng.choice(len(pool), cfg.shown - n_int, replace=False)])
            hits = np.array([bool(keywords[i] & favourites) for i in shown])
            logit = (cfg.bias + cfg.affinity * np.log(n_cat * w[cat[shown]] + 1e-3) + cfg.tag_bonus * hits
                     + cfg.quality * (c_true[shown] - 0.5))
            clicks = (rng.random(cfg.shown) < 1 / (1 + np.exp(-logit))).astype(np.float32)
            part = "test" if v >= cfg.visits - 2 else "val" if v == cfg.visits - 3 else "train"
            splits[part].append(Impression(u, v, np.array(history, dtype=np.int64) + 1, shown + 1, clicks))
            history += [int(i) for i in shown[clicks > 0]]
            if clicks.any():  # interests follow the clicks
                w = (1 - cfg.follow) * w + cfg.follow * np.bincount(cat[shown[clicks > 0]], minlength=n_cat) / clicks.sum()
            if rng.random() < cfg.new_interest:
                w = 0.6 * w + 0.4 * np.eye(n_cat)[rng.integers(n_cat)]
    return splits["train"], splits["val"], splits["test"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.data.user_simulator", description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    ap.add_argument("--bundle", type=Path, default=None, help="classifier bundle (default: the shipped one)")
    ap.add_argument("--out", type=Path, required=True, help="gzipped pickle of the ClickLog")
    ap.add_argument("--users", type=int, default=SimConfig.users)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    log = simulate(a.data, a.bundle, SimConfig(users=a.users, seed=a.seed))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    log.items.vectors = log.items.vectors.astype(np.float16)  # halves the file; the models train in float32
    a.out.write_bytes(gzip.compress(pickle.dumps(log), compresslevel=6))
    clicks = np.mean([imp.clicks.mean() for imp in log.train])
    print(f"{len(log.items) - 1} items, {len(log.train)}/{len(log.val)}/{len(log.test)} visits, "
          f"click rate {clicks:.3f} -> {a.out}")


if __name__ == "__main__":
    main()
