"""A labelled text corpus, whatever its source: examples, label names, a transfer set, and its split.

Both the shipped news corpus (news_data.py) and a user's own files (texts_input.py, for `edge-rec-export build`)
become a `Corpus`; everything after it (prepare, train, package) is the same. Secondary tags are the most
frequent keywords of the training split (a text's secondary labels count as keywords). The category-index target
(DESIGN.md) is the text's own `index` where given, else the mean over its keywords of P(its label | keyword),
estimated on the training split with add-one smoothing; texts with neither get no target (masked out of the loss).
"""
from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Example:
    title: str
    label: int  # index into the corpus's labels; -1 for an unlabelled text
    keywords: list[str]
    source: str = "toutiao"  # test figures are reported per source where a corpus has several
    public: bool = False  # in a public test set (FewCLUE TNEWS test_public): reported on, never trained on
    index: float | None = None  # a given category-index target


@dataclass
class Corpus:
    name: str
    labels: list[str]  # label names, in the order of the model's outputs
    codes: list[str]  # each label's code in the source data (the manifest keeps them)
    examples: list[Example]  # de-duplicated
    transfer: list[str] = field(default_factory=list)  # unlabelled texts for distillation, none of the examples'

    def splits(self, salt: str) -> dict[str, list[Example]]:
        parts = dict(zip(("train", "val", "test", "public"), assign_splits(self.examples, salt)))
        parts["transfer"] = [Example(t, -1, [], "transfer") for t in self.transfer]
        return {name: exs for name, exs in parts.items() if exs or name in ("train", "val", "test")}


def normalise(title: str) -> str:
    """The de-duplication key: NFKC, lower case, no whitespace (files differ in full-width forms and spaces)."""
    return "".join(unicodedata.normalize("NFKC", title).lower().split())


def fresh_texts(texts, exclude: list[Example]) -> list[str]:
    """`texts` de-duplicated by normalised text, without any text of `exclude`: a transfer set that never shows a
    held-out text to training."""
    seen = {normalise(e.title) for e in exclude}
    out = []
    for t in texts:
        key = normalise(t)
        if key and key not in seen:
            seen.add(key)
            out.append(t.strip())
    return out


def assign_splits(examples: list[Example], salt: str = "13", val: float = 0.1, test: float = 0.1):
    """train, val, test, public. A text's split is a hash of its normalised text, so adding files never moves a
    text between splits; texts are unique after de-duplication, so none is in two splits. Public texts form the
    public split whole."""
    parts = ([], [], [], [])
    for e in examples:
        u = int.from_bytes(hashlib.blake2b(f"{salt}:{normalise(e.title)}".encode(), digest_size=8).digest()) / 2 ** 64
        parts[3 if e.public else 2 if u < test else 1 if u < test + val else 0].append(e)
    return parts


@dataclass
class Targets:
    tags: list[str]
    kw_cat: dict[str, np.ndarray]  # keyword -> P(label | keyword), add-one smoothed
    n_labels: int

    @classmethod
    def fit(cls, train: list[Example], n_labels: int, n_tags: int = 300) -> "Targets":
        freq = Counter(k for e in train for k in e.keywords)
        counts: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(n_labels))
        for e in train:
            for k in e.keywords:
                counts[k][e.label] += 1
        kw_cat = {k: (c + 1.0) / (c.sum() + n_labels) for k, c in counts.items()}
        return cls([k for k, _ in freq.most_common(n_tags)], kw_cat, n_labels)

    def tag_vector(self, e: Example) -> np.ndarray:
        pos = {k: i for i, k in enumerate(self.tags)}
        v = np.zeros(len(self.tags), dtype=np.float32)
        for k in e.keywords:
            if k in pos:
                v[pos[k]] = 1.0
        return v

    def index(self, e: Example) -> float:
        """Category-index target: the given one, else estimated from the keywords, else NaN (masked)."""
        if e.index is not None:
            return float(e.index)
        if not e.keywords or e.label < 0:
            return float("nan")
        uniform = 1.0 / self.n_labels
        return float(np.mean([self.kw_cat[k][e.label] if k in self.kw_cat else uniform for k in e.keywords]))
