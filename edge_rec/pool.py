"""Candidates as columns: everything recall and ranking read about N classified items, as numpy arrays built once
(per call for a list of candidates, once per catalogue for a Store), so ranking N items needs no per-item Python."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from edge_rec.classifier import Classification
from edge_rec.items import LabelVocab


class LabelNames:
    """A bundle's label names (primary labels, then tags) and their ids; a name that is both shares one id."""

    def __init__(self, primary_labels: Sequence[str], tags: Sequence[str]):
        self.primary = tuple(primary_labels)
        self.names = tuple(dict.fromkeys([*primary_labels, *tags]))
        self._index = {n: i for i, n in enumerate(self.names)}

    def ids(self, names: Sequence[str]) -> np.ndarray:
        """The ids of the known names among `names` (unknown ones are left out)."""
        return np.array([self._index[n] for n in names if n in self._index], dtype=np.int32)


@dataclass
class Pool:
    """N classified items as columns. `labels` holds each item's label ids (primary first, then its tags, most likely
    first; -1 pads); `features` is what the recall and ranking models read (LabelVocab.features)."""
    ids: list[Hashable]
    labels: np.ndarray  # (N, L) int32
    features: dict[str, np.ndarray]  # labels (N, K) int64, index (N,) float32, vector (N, V) float32
    in_scope: np.ndarray  # (N,) bool
    names: LabelNames

    @classmethod
    def of(cls, ids: Sequence[Hashable], items: Sequence[Classification], vocab: LabelVocab, names: LabelNames,
           what: str = "candidate") -> "Pool":
        rows = [names.ids(c.labels) for c in items]
        labels = np.full((len(items), max([len(r) for r in rows], default=1) or 1), -1, dtype=np.int32)
        for i, r in enumerate(rows):
            labels[i, :len(r)] = r
        return cls(list(ids), labels, vocab.features(items, what),
                   np.array([c.in_scope for c in items], dtype=bool), names)

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

    def primary(self, i: int) -> str:
        return self.names.names[self.labels[i, 0]]

    def tags(self, i: int) -> tuple[str, ...]:
        return tuple(self.names.names[j] for j in self.labels[i, 1:] if j >= 0)

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
        primary = (self.names.names[Counter(self.labels[carriers, 0].tolist()).most_common(1)[0][0]]
                   if len(carriers) else self.names.primary[0])
        return Classification(primary, 1.0, ((tag, 1.0),), index, vector)

    def select(self, rows: np.ndarray) -> "Pool":
        """The items at `rows` (positions or a boolean mask), in that order."""
        ids = np.flatnonzero(rows) if np.asarray(rows).dtype == bool else np.asarray(rows, dtype=np.int64)
        return Pool([self.ids[i] for i in ids], self.labels[ids], {k: v[ids] for k, v in self.features.items()},
                    self.in_scope[ids], self.names)

    def extend(self, other: "Pool") -> "Pool":
        """This pool's items, then `other`'s (label columns padded to the wider of the two)."""
        width = max(self.labels.shape[1], other.labels.shape[1])
        pad = [np.pad(p.labels, ((0, 0), (0, width - p.labels.shape[1])), constant_values=-1) for p in (self, other)]
        return Pool(self.ids + other.ids, np.concatenate(pad),
                    {k: np.concatenate([v, other.features[k]]) for k, v in self.features.items()},
                    np.concatenate([self.in_scope, other.in_scope]), self.names)

