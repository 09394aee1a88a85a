"""Candidates as columns: everything recall and ranking read about N classified items, as numpy arrays built once
(per call for a list of candidates, once per catalogue for a Store), so ranking N items needs no per-item Python."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from edge_rec.classifier import Classification
from edge_rec.items import LabelPairs, LabelVocab


class LabelNames:
    """A bundle's label names (primary labels, then tags) and their ids; a name that is both shares one id."""

    def __init__(self, primary_labels: Sequence[str], tags: Sequence[str]):
        self.primary = tuple(primary_labels)
        self.names = tuple(dict.fromkeys([*primary_labels, *tags]))
        self.index = {n: i for i, n in enumerate(self.names)}

    def ids(self, names: Sequence[str]) -> np.ndarray:
        """The ids of the known names among `names` (unknown ones are left out)."""
        return np.array([self.index[n] for n in names if n in self.index], dtype=np.int32)


@dataclass
class Pool:
    """N classified items as columns. `labels` holds each item's label ids (primary first, then its tags, most likely
    first; -1 pads; names outside the bundle's have no id); `features` is what the recall and ranking models read
    (LabelVocab.features); `primary` and `tags` keep the names as given, for the results."""
    ids: list[Hashable]
    labels: np.ndarray  # (N, L) int32
    features: dict[str, np.ndarray]  # LabelVocab.features: labels (N, K), index (N,), vector (N, V), item, pop
    in_scope: np.ndarray  # (N,) bool
    names: LabelNames
    primary: list[str]
    tags: list[tuple[str, ...]]

    @classmethod
    def of(cls, ids: Sequence[Hashable], items: Sequence[Classification], vocab: LabelVocab, names: LabelNames,
           what: str = "candidate") -> "Pool":
        return cls.columns(ids, [c.primary for c in items], [[t for t, _ in c.tags] for c in items],
                           [c.index for c in items], [c.vector for c in items], [c.in_scope for c in items], vocab,
                           names, what)

    @classmethod
    def columns(cls, ids: Sequence[Hashable], primary: Sequence[str], tags: Sequence[Sequence[str]],
                index: Sequence[float], vectors: Sequence[np.ndarray] | np.ndarray, in_scope: Sequence[bool],
                vocab: LabelVocab, names: LabelNames, what: str = "candidate") -> "Pool":
        """A pool from its columns (as a Store keeps them): no Classification per item needed."""
        known = names.index
        pairs = LabelPairs(primary, tags)
        labels = pairs.matrix(lambda p, ts: [known[n] for n in (p, *ts) if n in known], -1, np.int32)
        return cls(list(ids), labels, vocab.columns(primary, tags, index, vectors, what, pairs, ids),
                   np.asarray(in_scope, dtype=bool).reshape(len(labels)), names, list(primary),
                   [tuple(t) for t in tags])

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def index(self) -> np.ndarray:
        return self.features["index"]

    @property
    def vector(self) -> np.ndarray:
        return self.features["vector"]

    def hits(self, tags: Sequence[str], rows: np.ndarray | slice = slice(None)) -> np.ndarray:
        """(n,) how many of `tags` each item's labels (primary and tags) contain."""
        wanted = self.names.ids(list(dict.fromkeys(tags)))
        return np.isin(self.labels[rows], wanted).sum(axis=1)

    def tag_item(self, tag: str) -> Classification:
        """An account interest tag as a profile item the models can read: the label itself (a primary label, or a
        secondary tag under the primary most common among the items carrying it), with the mean index and the
        normalised mean vector of those items (zeros when none carries it)."""
        carriers = np.flatnonzero(self.hits([tag]))
        vector = self.vector[carriers].sum(axis=0) if len(carriers) else np.zeros(self.vector.shape[1], np.float32)
        norm = float(np.linalg.norm(vector))
        vector = (vector / norm if norm > 0 else vector).astype(np.float32)
        index = float(self.index[carriers].mean()) if len(carriers) else 0.5
        if tag in self.names.primary:
            return Classification(tag, 1.0, (), index, vector)
        primary = (Counter(self.primary[i] for i in carriers).most_common(1)[0][0] if len(carriers)
                   else self.names.primary[0])
        return Classification(primary, 1.0, ((tag, 1.0),), index, vector)

    def select(self, rows: np.ndarray) -> "Pool":
        """The items at `rows` (positions or a boolean mask), in that order."""
        ids = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        return Pool([self.ids[i] for i in ids], self.labels[ids], {k: v[ids] for k, v in self.features.items()},
                    self.in_scope[ids], self.names, [self.primary[i] for i in ids], [self.tags[i] for i in ids])

    @staticmethod
    def concat(pools: Sequence["Pool"]) -> "Pool":
        """The pools' items one after another (label columns padded to the widest)."""
        width = max(p.labels.shape[1] for p in pools)
        labels = [np.pad(p.labels, ((0, 0), (0, width - p.labels.shape[1])), constant_values=-1) for p in pools]
        return Pool([i for p in pools for i in p.ids], np.concatenate(labels),
                    {k: np.concatenate([p.features[k] for p in pools]) for k in pools[0].features},
                    np.concatenate([p.in_scope for p in pools]), pools[0].names,
                    [n for p in pools for n in p.primary], [t for p in pools for t in p.tags])
