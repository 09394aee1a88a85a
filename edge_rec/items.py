"""Users and items as the recommender takes them, checked, and turned into the ranking models' label features."""
from __future__ import annotations

from collections import Counter
from itertools import chain
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np

from edge_rec.classifier import Classification

# The events that make an item part of a user's history; a ranking model that reads them (input `hist_event`) gets
# each history item's event as its code here plus one (0: padding). A history given without events is all clicks.
HISTORY_EVENTS = ("click", "long_view", "like", "share")


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
    events: tuple[str, ...] = ()  # the event of each history item (HISTORY_EVENTS); empty: every one a click


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
    if item.id is None or not _hashable(item.id):
        raise TypeError(f"{where}: id must be a hashable value (str or int), got {item.id!r:.60}")
    if item.classification is None:
        if item.text is None:
            raise ValueError(f"{where} (id {item.id!r:.60}) has neither 'text' nor 'classification'")
    elif not isinstance(item.classification, Classification):
        raise TypeError(f"{where}: classification must be a Classification, got {type(item.classification).__name__}")
    return item


def _hashable(x) -> bool:
    """hash() rather than isinstance(x, Hashable): the ABC check costs several times more per item."""
    try:
        hash(x)
    except TypeError:
        return False
    return True


def as_user(x) -> User:
    """A User from a User or a mapping {"id", "interest_tags": [...], "history": [{"id", "text"}, ...],
    "events": [...]}."""
    if isinstance(x, User):
        tags, history, uid, events = x.interest_tags, x.history, x.id, x.events
    elif isinstance(x, Mapping):
        unknown = set(x) - {"id", "interest_tags", "history", "events"}
        if unknown:
            raise ValueError(f"user has unknown fields {sorted(unknown)}; expected 'id', 'interest_tags', 'history', "
                             "'events'")
        tags, history, uid = x.get("interest_tags") or (), x.get("history") or (), x.get("id")
        events = x.get("events") or ()
    else:
        raise TypeError(f"user must be a User or a dict with 'interest_tags' and 'history', got {type(x).__name__}")
    if isinstance(tags, str) or not isinstance(tags, Sequence) or not all(isinstance(t, str) for t in tags):
        raise TypeError(f"user interest_tags must be a list of strings, got {tags!r:.80}")
    if isinstance(history, (str, bytes)) or not isinstance(history, Sequence):
        raise TypeError(f"user history must be a list of items, got {type(history).__name__}")
    if isinstance(events, str) or not isinstance(events, Sequence):
        raise TypeError(f"user events must be a list of event names, got {type(events).__name__}")
    if events and len(events) != len(history):
        raise ValueError(f"user events name {len(events)} events for {len(history)} history items; give one per "
                         "history item, or none (every one a click)")
    wrong = next((e for e in events if e not in HISTORY_EVENTS), None)
    if wrong is not None:
        raise ValueError(f"user events: unknown history event {wrong!r:.40}; the events are {list(HISTORY_EVENTS)}")
    return User(uid, tuple(tags), tuple(as_item(h, f"history item {i}") for i, h in enumerate(history)),
                tuple(events))


def event_code(event: str) -> int:
    """A history event's code as the ranking models read it: its HISTORY_EVENTS index + 1 (0 is padding)."""
    return HISTORY_EVENTS.index(event) + 1


def event_codes(events: Sequence[str], n: int) -> np.ndarray:
    """(n,) int64 codes of n history items' events (`event_code`); no events: every item a click."""
    if not events:
        return np.full(n, event_code("click"), dtype=np.int64)
    return np.array([event_code(e) for e in events], dtype=np.int64)


def derive_interest_tags(history: Sequence[Classification], limit: int) -> tuple[str, ...]:
    """Seed 000 S1 without account tags: the labels (primary + tags) most frequent in the history."""
    counts = Counter(label for c in history for label in c.labels)
    return tuple(label for label, _ in counts.most_common(limit))


@dataclass
class LabelVocab:
    """Maps a Classification to the ranking models' label ids: its primary label, then its tags, most likely first;
    and an item id to its row of the models' id embedding (0: an id the build's click log never had, read by its
    content alone) and its popularity when the bundle was built (0 for those)."""
    names: list[str]
    max_labels: int
    vector_dim: int
    item_ids: Sequence[str] = ()  # ranking.items: the ids with an id embedding, row 1 first
    popularity: Sequence[float] = ()  # ranking.popularity, one per item_ids
    _ids: dict[str, int] = field(init=False, repr=False)
    _item_row: dict[str, int] = field(init=False, repr=False)
    _pop: np.ndarray = field(init=False, repr=False)
    _primary: dict[str, int] = field(init=False, repr=False)
    _tag: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self._ids = {n: i for i, n in enumerate(self.names, start=1)}
        self._primary = {n[len("primary:"):]: i for n, i in self._ids.items() if n.startswith("primary:")}
        self._tag = {n[len("tag:"):]: i for n, i in self._ids.items() if n.startswith("tag:")}
        self._item_row = {item_id: r for r, item_id in enumerate(self.item_ids, start=1)}
        self._pop = np.concatenate([[0.0], np.asarray(self.popularity, dtype=np.float32)]).astype(np.float32)

    def features(self, items: Sequence[Classification], what: str = "item",
                 ids: Sequence[Hashable | None] | None = None) -> dict[str, np.ndarray]:
        """labels (N, K) int64, index (N,) float32, vector (N, V) float32, item (N,) int64 and pop (N,) float32
        (`ids`: the items' ids, None for one without); ValueError naming the first bad item."""
        return self.columns([c.primary for c in items], [[t for t, _ in c.tags] for c in items],
                            [c.index for c in items], [c.vector for c in items], what, ids=ids)

    def identity(self, ids: Sequence[Hashable | None] | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(item rows (n,) int64, popularity (n,) float32) of these ids (an int id is looked up as its str)."""
        if ids is None or not self._item_row:
            return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float32)
        get = self._item_row.get
        rows = np.fromiter((get(i if isinstance(i, str) else str(i), 0) for i in ids), np.int64, n)
        return rows, self._pop[rows]

    def columns(self, primary: Sequence[str], tags: Sequence[Sequence[str]], index: Sequence[float],
                vectors: Sequence[np.ndarray] | np.ndarray, what: str = "item",
                pairs: "LabelPairs | None" = None, ids: Sequence[Hashable | None] | None = None
                ) -> dict[str, np.ndarray]:
        """features() from columns: primary labels, tag names (most likely first), indexes, vectors and ids
        (`pairs`: the items' LabelPairs where the caller has them already)."""
        by_primary, by_tag = self._primary, self._tag
        labels = (pairs or LabelPairs(primary, tags)).matrix(
            lambda p, ts: [i for i in (by_primary.get(p), *map(by_tag.get, ts)) if i is not None], 0, np.int64,
            self.max_labels)
        flag = next((r for r, x in enumerate(index) if isinstance(x, bool)), None)
        if isinstance(vectors, np.ndarray):
            wrong = None if vectors.shape[1:] == (self.vector_dim,) else 0
        else:
            wrong = next((r for r, v in enumerate(vectors) if np.shape(v) != (self.vector_dim,)), None)
        if flag is not None or wrong is not None:
            r = flag if flag is not None else wrong
            raise ValueError(f"{what} {r}: expected a {self.vector_dim}-d vector and a numeric index, got shape "
                             f"{np.shape(vectors[r])} and index {index[r]!r:.40}")
        try:
            index = np.array(index, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"{what}s: every category index must be a number") from None
        # A matrix is taken as it is; a list is joined with concatenate, not stack: several times faster.
        vector = (np.asarray(vectors, dtype=np.float32) if isinstance(vectors, np.ndarray) else
                  np.concatenate(vectors).astype(np.float32, copy=False).reshape(len(index), self.vector_dim)
                  if len(index) else np.zeros((0, self.vector_dim), dtype=np.float32))
        # One vectorised check instead of one per item: NaN/inf or an index outside [0, 1] is refused.
        bad = ~(np.isfinite(index) & (index >= 0.0) & (index <= 1.0)) | ~np.isfinite(vector).all(axis=1)
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(f"{what} {r}: category index must be a finite number in [0, 1] and the vector finite; "
                             f"got index {index[r]!r}")
        item, pop = self.identity(ids, len(index))
        return {"labels": labels, "index": index, "vector": vector, "item": item, "pop": pop}


class LabelPairs:
    """The distinct (primary, tags) pairs of N items and which one each item has: a catalogue has far fewer pairs
    than items, so label ids are mapped once per pair."""

    def __init__(self, primary: Sequence[str], tags: Sequence[Sequence[str]]):
        pairs: dict = {}
        self.which = np.fromiter((pairs.setdefault((p, tuple(ts)), len(pairs)) for p, ts in zip(primary, tags)),
                                 np.int64, len(primary))
        self.pairs = list(pairs)

    def matrix(self, ids, fill: int, dtype, width: int | None = None) -> np.ndarray:
        """ragged() of ids(primary, tags) per item."""
        return ragged([ids(p, ts) for p, ts in self.pairs], fill, dtype, width)[self.which]


def ragged(rows: Sequence[Sequence[int]], fill: int, dtype, width: int | None = None) -> np.ndarray:
    """Rows of different lengths as one (N, width) matrix padded with `fill` (rows cut at `width`; default: the
    longest row, at least 1)."""
    lens = np.fromiter(map(len, rows), np.int64, len(rows))
    width = max(1, int(lens.max(initial=0))) if width is None else width
    lens = np.minimum(lens, width)
    out = np.full((len(rows), width), fill, dtype=dtype)
    out[np.arange(width) < lens[:, None]] = np.fromiter(chain.from_iterable(r[:width] for r in rows), dtype,
                                                        int(lens.sum()))
    return out
