"""Users and items as the recommender takes them, checked, and turned into the ranking models' label features."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np

from edge_rec.classifier import Classification


@dataclass(frozen=True)
class Item:
    """A content item: raw `text` (classified on the fly and cached by id) or an existing `classification`."""
    id: Hashable
    text: str | None = None
    classification: Classification | None = None


@dataclass(frozen=True)
class User:
    id: Hashable = None
    interest_tags: tuple[str, ...] = ()  # from the account; derived from the history when empty
    history: tuple[Item, ...] = ()  # interactions, oldest first


def as_item(x, where: str) -> Item:
    """An Item from an Item, a mapping {"id", "text" | "classification"}, or raise naming `where`."""
    if isinstance(x, Item):
        item = x
    elif isinstance(x, Mapping):
        if "id" not in x:
            raise ValueError(f"{where} has no 'id'; each item needs an 'id' and a 'text' (or a 'classification')")
        c = x.get("classification")
        item = Item(x["id"], x.get("text"), Classification.from_dict(c) if isinstance(c, dict) else c)
    else:
        raise TypeError(f"{where} must be an Item or a dict with 'id' and 'text', got {type(x).__name__}")
    if not isinstance(item.id, Hashable) or item.id is None:
        raise TypeError(f"{where}: id must be a hashable value (str or int), got {item.id!r:.60}")
    if item.classification is None:
        if item.text is None:
            raise ValueError(f"{where} (id {item.id!r:.60}) has neither 'text' nor 'classification'")
    elif not isinstance(item.classification, Classification):
        raise TypeError(f"{where}: classification must be a Classification, got {type(item.classification).__name__}")
    return item


def as_user(x) -> User:
    """A User from a User or a mapping {"id", "interest_tags": [...], "history": [{"id", "text"}, ...]}."""
    if isinstance(x, User):
        tags, history, uid = x.interest_tags, x.history, x.id
    elif isinstance(x, Mapping):
        unknown = set(x) - {"id", "interest_tags", "history"}
        if unknown:
            raise ValueError(f"user has unknown fields {sorted(unknown)}; expected 'id', 'interest_tags', 'history'")
        tags, history, uid = x.get("interest_tags") or (), x.get("history") or (), x.get("id")
    else:
        raise TypeError(f"user must be a User or a dict with 'interest_tags' and 'history', got {type(x).__name__}")
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not all(isinstance(t, str) for t in tags):
        raise TypeError(f"user interest_tags must be a list of strings, got {tags!r:.80}")
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise TypeError(f"user history must be a list of items, got {type(history).__name__}")
    return User(uid, tuple(tags), tuple(as_item(h, f"history item {i}") for i, h in enumerate(history)))


def derive_interest_tags(history: Sequence[Classification], limit: int) -> tuple[str, ...]:
    """Seed 000 S1 without account tags: the labels (primary + tags) most frequent in the history."""
    counts = Counter(label for c in history for label in c.labels)
    return tuple(label for label, _ in counts.most_common(limit))


@dataclass
class LabelVocab:
    """Maps a Classification to the ranking models' label ids: its primary label, then its tags, most likely first."""
    names: list[str]
    max_labels: int
    vector_dim: int
    _ids: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self._ids = {n: i for i, n in enumerate(self.names, start=1)}

    def ids(self, c: Classification) -> list[int]:
        found = (self._ids.get(f"primary:{c.primary}"), *(self._ids.get(f"tag:{t}") for t, _ in c.tags))
        return [i for i in found if i is not None][: self.max_labels]

    def features(self, items: Sequence[Classification], what: str = "item") -> dict[str, np.ndarray]:
        """labels (N, K) int64, index (N,) float32, vector (N, V) float32; ValueError naming the first bad item."""
        labels = np.zeros((len(items), self.max_labels), dtype=np.int64)
        for r, c in enumerate(items):
            ids = self.ids(c)
            labels[r, :len(ids)] = ids
            if np.shape(c.vector) != (self.vector_dim,) or isinstance(c.index, bool):
                raise ValueError(f"{what} {r}: expected a {self.vector_dim}-d vector and a numeric index, got shape "
                                 f"{np.shape(c.vector)} and index {c.index!r:.40}")
        try:
            index = np.array([c.index for c in items], dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{what}s: every category index must be a number") from None
        vector = (np.stack([c.vector for c in items]).astype(np.float32) if items
                  else np.zeros((0, self.vector_dim), dtype=np.float32))
        # One vectorised check instead of one per item: NaN/inf or an index outside [0, 1] is refused.
        bad = ~(np.isfinite(index) & (index >= 0.0) & (index <= 1.0)) | ~np.isfinite(vector).all(axis=1)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"{what} {r}: category index must be a finite number in [0, 1] and the vector finite; "
                             f"got index {items[r].index!r}")
        return {"labels": labels, "index": index, "vector": vector}
