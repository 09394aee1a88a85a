"""Chinese news titles (Toutiao + TNEWS, the same 15 categories) -> de-duplicated, split, labelled examples.

Secondary tags are the most frequent keywords of the training split. The category-index target (DESIGN.md) is the
mean over an item's keywords of P(item's category | keyword), estimated on the training split with add-one
smoothing; items without keywords get no target (masked out of the index loss).
"""
from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CODES = ["100", "101", "102", "103", "104", "106", "107", "108", "109", "110", "112", "113", "114", "115", "116"]
NAMES = ["story", "culture", "entertainment", "sports", "finance", "house", "car", "edu", "tech", "military",
         "travel", "world", "stock", "agriculture", "game"]


@dataclass
class Example:
    title: str
    label: int  # index into CODES
    keywords: list[str]


def read_corpora(data_dir: Path) -> list[Example]:
    """All labelled titles, de-duplicated by title (first label wins; keywords merged)."""
    data_dir = Path(data_dir)
    rows: list[tuple[str, str, list[str]]] = []
    for line in (data_dir / "toutiao_partial" / "toutiao_cat_data.dev.txt").read_text(encoding="utf-8").splitlines():
        parts = line.split("_!_")
        if len(parts) >= 4:
            rows.append((parts[3], parts[1], _keywords(parts[4] if len(parts) > 4 else "")))
    for line in (data_dir / "toutiao_partial" / "toutiao_titles_labelidx.txt").read_text(encoding="utf-8").splitlines():
        title, _, idx = line.rpartition("_!_")
        if title and idx.isdigit():
            rows.append((title, CODES[int(idx)], []))
    for name in ("dev.json", "test.json"):
        for line in (data_dir / "tnews_partial" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                d = json.loads(line)
                if "label" in d and "sentence" in d:
                    rows.append((d["sentence"], d["label"], _keywords(d.get("keywords", ""))))
    seen: dict[str, Example] = {}
    for title, code, kws in rows:
        title = title.strip()
        if not title or code not in CODES:
            continue
        if title in seen:
            seen[title].keywords = list(dict.fromkeys(seen[title].keywords + kws))
        else:
            seen[title] = Example(title, CODES.index(code), kws)
    return list(seen.values())


def _keywords(field: str) -> list[str]:
    return list(dict.fromkeys(k.strip() for k in field.split(",") if k.strip()))


def split(examples: list[Example], seed: int = 13, val: float = 0.1, test: float = 0.1):
    """Seeded shuffle then cut; titles are unique after read_corpora, so no title is in two splits."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_test, n_val = int(len(order) * test), int(len(order) * val)
    pick = lambda idx: [examples[i] for i in idx]  # noqa: E731
    return pick(order[n_test + n_val:]), pick(order[n_test:n_test + n_val]), pick(order[:n_test])


@dataclass
class Targets:
    tags: list[str]
    kw_cat: dict[str, np.ndarray]  # keyword -> P(category | keyword), add-one smoothed

    @classmethod
    def fit(cls, train: list[Example], n_tags: int = 300) -> "Targets":
        freq = Counter(k for e in train for k in e.keywords)
        counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(len(CODES)))
        for e in train:
            for k in e.keywords:
                counts[k][e.label] += 1
        kw_cat = {k: (c + 1.0) / (c.sum() + len(CODES)) for k, c in counts.items()}
        return cls([k for k, _ in freq.most_common(n_tags)], kw_cat)

    def tag_vector(self, e: Example) -> np.ndarray:
        pos = {k: i for i, k in enumerate(self.tags)}
        v = np.zeros(len(self.tags), dtype=np.float32)
        for k in e.keywords:
            if k in pos:
                v[pos[k]] = 1.0
        return v

    def index(self, e: Example) -> float:
        """Category-index target, or NaN when the item has no keywords (masked)."""
        if not e.keywords:
            return float("nan")
        uniform = 1.0 / len(CODES)
        return float(np.mean([self.kw_cat[k][e.label] if k in self.kw_cat else uniform for k in e.keywords]))
