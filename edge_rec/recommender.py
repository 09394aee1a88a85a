"""EdgeRecommender: classify -> multi-path recall (model, tag match, semantic) -> CTR ranking -> recommendation
degree (seed 000, S1-S5)."""
from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from edge_rec.bundle import MANIFEST, Bundle, BundleError, as_bundle
from edge_rec.checks import is_count, is_number, is_probability, positive_int, probability
from edge_rec.classifier import Classification, ContentClassifier
from edge_rec.items import HISTORY_EVENTS, Item, LabelVocab, User, as_item, as_user, derive_interest_tags, event_codes
from edge_rec.pool import LabelNames, Pool
from edge_rec.recall import interleave, tag_match, top_d
from edge_rec.scorer import ModelScorer, RecallSides, table_probe
from edge_rec.semantic import MODES, int8_codes, most_similar, similarity
from edge_rec.sessions import resolve_threads

# Defaults where the bundle's manifest gives none; `recommend(**overrides)` takes the same names.
DEFAULTS = {"recall_top": 100, "tag_top": 100, "semantic_top": 100, "semantic_mode": "max", "match_g": 1.0,
            "lam": 0.8, "prior": "index", "k": 10, "max_interest_tags": 5, "out_of_scope": "last",
            "screen_share": 0.2}
# What the recommendation degree mixes with the ranker's p: the classifier's category index c, or the item's
# popularity when the bundle was built (from its click log; 0 for an item the log never had).
PRIORS = ("index", "popularity")
# What recommend() does with candidates outside the bundle's scope: rank them after every in-scope one, drop them,
# or rank them like any other.
OUT_OF_SCOPE = ("last", "drop", "keep")


@dataclass(frozen=True)
class Recommendation:
    id: Hashable
    score: float  # recommendation degree R = lam * ctr + (1 - lam) * prior (the index, or the popularity)
    ctr: float  # second interaction rate p from the ranking model
    index: float  # category index c from the classifier
    recall_rate: float  # first interaction rate from the recall model
    tag_match: float  # m from the tag-match path
    semantic: float  # max (or mean) cosine of the item's vector against the user's history vectors
    paths: tuple[str, ...]  # recall paths that kept this item: "model", "tag", "semantic", "popular"
    primary: str
    tags: tuple[str, ...]
    in_scope: bool = True  # the candidate's text is within the bundle's scope
    interest: str = "history"  # the interest it was ranked for: "history", or "account" (the account's tags)
    popularity: float = 0.0  # from the bundle's click log, in [0, 1]; 0 for an item the log never had

    def to_dict(self) -> dict:
        return {"id": self.id, "score": round(self.score, 6), "ctr": round(self.ctr, 6), "index": round(self.index, 6),
                "popularity": round(self.popularity, 6),
                "recall_rate": round(self.recall_rate, 6), "tag_match": round(self.tag_match, 6),
                "semantic": round(self.semantic, 6),
                "paths": list(self.paths), "primary": self.primary, "tags": list(self.tags), "in_scope": self.in_scope,
                "interest": self.interest}


class EdgeRecommender:
    """Recommend content to one user from a pool of candidates, on the device.

    Candidates and history items are texts with ids (classified and cached by id) or already-classified items.
    Every knob (see DEFAULTS) comes from the bundle's `pipeline` section and can be overridden per call.
    `trusted_keys`: public keys one of which must have signed the bundle (edge_rec/trust.py).
    """

    def __init__(self, bundle: str | os.PathLike | Bundle | None = None, profile: str = "phone",
                 threads: int | None = None, cache_size: int = 10_000, trusted_keys=None):
        self.bundle = as_bundle(bundle, trusted_keys)
        self.threads = threads = resolve_threads(profile, threads)
        self.classifier = ContentClassifier(self.bundle, threads=threads, cache_size=cache_size)
        ranking = self.bundle.manifest.get("ranking")
        if not isinstance(ranking, dict) or "labels" not in ranking:
            raise BundleError(f"{self.bundle.path}: the manifest has no 'ranking.labels'; this bundle can classify "
                              "but not recommend (it needs the recall and ranker models)")
        labels, item_ids, popularity = (ranking.get(key, []) for key in ("labels", "items", "popularity"))
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise BundleError(f"{self.bundle.path}: 'ranking.labels' must be a list of label names")
        if not (isinstance(item_ids, list) and all(isinstance(x, str) for x in item_ids)
                and isinstance(popularity, list) and len(popularity) == len(item_ids)
                and all(is_probability(x) for x in popularity)):
            raise BundleError(f"{self.bundle.path}: 'ranking.items' must be a list of item ids and "
                              "'ranking.popularity' a list of as many numbers in [0, 1]")
        models = self.bundle.manifest["models"]
        self.recall = (RecallSides(self.bundle, threads) if {"recall_user", "recall_items"} <= set(models)
                       else ModelScorer(self.bundle, "recall", threads))
        self.ranker = ModelScorer(self.bundle, "ranker", threads)
        if self.recall.max_labels != self.ranker.max_labels:
            raise BundleError(f"{self.bundle.path}: recall takes {self.recall.max_labels} labels per item, ranker "
                              f"{self.ranker.max_labels}; they must match")
        # A model reading history events (input hist_event) was trained on codes of the manifest's event list.
        if (self.recall.reads_events or self.ranker.reads_events) and \
                ranking.get("history_events") != list(HISTORY_EVENTS):
            raise BundleError(f"{self.bundle.path}: the models read history events, coded by 'ranking.history_events' "
                              f"({ranking.get('history_events')!r:.80}); this runtime codes {list(HISTORY_EVENTS)}")
        self.vocab = LabelVocab(labels, self.ranker.max_labels, self.ranker.vector_dim, item_ids, popularity)
        self._probe_tables(len(labels), len(item_ids))
        self.names = LabelNames(self.bundle.primary_labels, self.bundle.tags)
        self.defaults = {key: self.bundle.pipeline.get(key, value) for key, value in DEFAULTS.items()}
        try:
            self._knobs(self.defaults)  # a bad manifest value fails here, not at the first call
        except (ValueError, TypeError) as e:
            raise BundleError(f"{self.bundle.path / MANIFEST}: pipeline: {e}") from None

    def _probe_tables(self, n_labels: int, n_items: int) -> None:
        """ranking.labels and ranking.items against the models' embedding tables (scorer.table_probe)."""
        k, v = self.ranker.max_labels, self.ranker.vector_dim
        history = {"labels": np.zeros((0, k), np.int64), "index": np.zeros(0, np.float32),
                   "vector": np.zeros((0, v), np.float32), "item": np.zeros(0, np.int64), "event": np.zeros(0, np.int64)}

        def one(label: int = 0, item: int = 0) -> dict[str, np.ndarray]:
            labels = np.zeros((1, k), np.int64)
            labels[0, 0] = label
            return {"labels": labels, "index": np.zeros(1, np.float32), "vector": np.zeros((1, v), np.float32),
                    "item": np.array([item], np.int64), "pop": np.zeros(1, np.float32)}
        for model in (self.recall, self.ranker):
            table_probe(lambda i: model(history, one(label=i)), n_labels, "ranking.labels", model.path)
            if model.reads_items:
                table_probe(lambda i: model(history, one(item=i)), n_items, "ranking.items", model.path)

    def recommend(self, user: User | dict, candidates: Sequence[Item | dict], k: int | None = None,
                  **overrides) -> list[Recommendation]:
        """The top-k candidates for `user`, best first, each with the scores that put it there.

        k larger than what recall keeps returns all of it. Only the most recent history items the models read
        (their history length) are classified and used.
        """
        knobs = self.knobs(k, **overrides)
        user = as_user(user)
        if isinstance(candidates, (str, bytes)) or not isinstance(candidates, Sequence):
            raise TypeError(f"candidates must be a list of items, got {type(candidates).__name__}")
        items = [as_item(c, f"candidate {i}") for i, c in enumerate(candidates)]
        seen: set = set()
        for i, item in enumerate(items):
            if item.id in seen:
                raise ValueError(f"candidate {i}: id {item.id!r:.60} appears more than once; ids must be unique")
            seen.add(item.id)
        if not items:
            return []
        start = max(0, len(user.history) - self.history_length)
        history = self._classify(list(user.history[start:]), "history item", start)
        pool = Pool.of([it.id for it in items], self._classify(items, "candidate"), self.vocab, self.names)
        return self.rank(history, self.known_tags(user.interest_tags), pool, knobs,
                         history_ids=[it.id for it in user.history[start:]], history_events=user.events[start:])

    def prepared(self, pool: Pool) -> Pool:
        """`pool` with what recall computes once per item kept beside it (a two-sided recall model's item side, the
        vectors' int8 codes for the semantic screen), for a catalogue recommended from many times (Store)."""
        if isinstance(self.recall, RecallSides):
            pool.features["recall_items"] = self.recall.items(pool.features)
        if "vector_codes" not in pool.features:  # a Store reads them from its file
            pool.features["vector_codes"], pool.features["vector_scale"] = int8_codes(pool.vector)
        return pool

    @property
    def history_length(self) -> int:
        """How many of the most recent history items the models read."""
        return max(self.recall.history_length, self.ranker.history_length)

    def rank(self, history: Sequence[Classification], account: tuple[str, ...], pool: Pool, knobs: dict,
             exclude: np.ndarray | None = None, demote: np.ndarray | None = None,
             history_ids: Sequence[Hashable] | None = None, history_events: Sequence[str] = ()
             ) -> list[Recommendation]:
        """Recall and rank the columnar `pool` for a user with this (classified) history (`history_ids`: its items'
        ids, `history_events`: their events, none for all clicks) and these known account tags; `exclude` (N,) bool
        keeps items out, `demote` (N,) bool ranks them after every other item."""
        tags = account or derive_interest_tags(history, knobs["max_interest_tags"])
        # Account tags join the user features the models read as a second interest: a profile of one item per tag.
        # Recall keeps an item by its better interest; ranking orders the items once per interest and the top k
        # takes from each in turn, so a long history cannot drown the stated interests (nor they the history).
        profile = [pool.tag_item(t) for t in account]
        sources = [s for s in (("history", list(history), history_ids, history_events),
                               ("account", profile, None, ())) if s[1]] or [("history", [], None, ())]
        interests = [{**self.vocab.features(h, "history item", ids), "event": event_codes(events, len(h))}
                     for _, h, ids, events in sources]
        hist_f = {key: np.concatenate([f[key] for f in interests]) for key in interests[0]}  # every reference item
        # Every path scores the whole pool (no copy of its columns); excluded items are then never kept.
        n = len(pool) if exclude is None else int((~exclude).sum())
        if not n:
            return []
        f = pool.features
        rate = np.max([self.recall(i, f) for i in interests], axis=0)  # (N,) first interaction rate
        match = tag_match(pool.hits(tags), len(tags), f["index"], knobs["match_g"])  # (N,)
        # Pre-screening selects on small pools too: each path keeps at most screen_share of the pool (but >= k).
        cap = max(knobs["k"], math.ceil(knobs["screen_share"] * n))
        # Demoted items are recalled only where too few others are left (every path score is within [-1, 1]).
        sink = np.zeros(len(pool), np.float32) if demote is None else 4.0 * demote.astype(np.float32)
        if exclude is not None:
            sink[exclude] = np.inf
        # Without a history there is nothing to be similar to: the semantic path then keeps nothing.
        by_sem = most_similar(hist_f["vector"], f, min(cap, knobs["semantic_top"]) if len(hist_f["index"]) else 0,
                              sink, knobs["semantic_mode"], self.threads)
        by_model = top_d(rate - sink, min(cap, knobs["recall_top"]))
        by_tag = top_d(match - sink, min(cap, knobs["tag_top"]))
        # Where the bundle knows items' popularity, the most popular are recalled too: ranking with the popularity
        # prior at lam = 0 is then plain popularity over the whole pool, not over what the other paths kept.
        by_pop = (top_d(f["pop"] - sink, min(cap, knobs["recall_top"])) if f["pop"].any()
                  else np.zeros(0, dtype=np.int64))
        kept = np.array(list(dict.fromkeys([*by_model.tolist(), *by_tag.tolist(), *by_sem.tolist(),
                                            *by_pop.tolist()])), dtype=np.int64)  # positions in the pool
        if exclude is not None:  # where fewer than d are left, top_d returns excluded ones last
            kept = kept[~exclude[kept]]
        outside = ~pool.in_scope[kept]  # (U,)
        if knobs["out_of_scope"] == "drop":
            kept, outside = kept[~outside], outside[~outside]
            if not len(kept):
                return []
        kept_f = {key: v[kept] for key, v in f.items()}
        sim = similarity(hist_f["vector"], kept_f["vector"], knobs["semantic_mode"], self.threads)  # (U,)
        ctrs = [self.ranker(i, kept_f) for i in interests]  # per interest (U,) second interaction rate
        lam, prior = knobs["lam"], kept_f["index" if knobs["prior"] == "index" else "pop"]
        degrees = [lam * p + (1.0 - lam) * prior for p in ctrs]
        path_sets = (("model", set(by_model.tolist())), ("tag", set(by_tag.tolist())),
                     ("semantic", set(by_sem.tolist())), ("popular", set(by_pop.tolist())))
        # "last": out-of-scope items sort after every in-scope one (lexsort: last key is the primary one). The account
        # interest orders the items carrying one of its tags first: the ranker alone, with a one-item profile, does
        # not always prefer them (measured: 0 of 10 for "entertainment" on 300 held-out titles). Demoted items sort
        # after all of these.
        last = outside if knobs["out_of_scope"] == "last" else np.zeros_like(outside)
        sunk = sink[kept] > 0
        carries = pool.hits(account, kept) > 0
        orders = [np.lexsort((-d, ~carries if name == "account" else np.zeros_like(carries), last, sunk))
                  for (name, *_), d in zip(sources, degrees)]
        out = []
        for j, which in interleave(orders, knobs["k"]):
            degree, ctr = degrees[which], ctrs[which]
            i = int(kept[j])
            paths = tuple(p for p, s in path_sets if i in s)
            out.append(Recommendation(pool.ids[i], float(degree[j]), float(ctr[j]), float(pool.index[i]),
                                      float(rate[i]), float(match[i]), float(sim[j]), paths, pool.primary[i],
                                      pool.tags[i], bool(pool.in_scope[i]), sources[which][0],
                                      float(f["pop"][i])))
        return out

    def _classify(self, items: list[Item], what: str, start: int = 0) -> list[Classification]:
        """Classifications in item order; texts go through the classifier's cache, keyed by item id.

        A bad text is reported as `what` at its position (offset by `start`) with its id, not by its place in the
        batch the classifier saw."""
        todo = [i for i, it in enumerate(items) if it.classification is None]
        try:
            # Streamed a chunk at a time, so a large pool never has all its tokens in memory at once.
            done = list(self.classifier.classify_stream([items[i].text for i in todo], ids=[items[i].id for i in todo]))
        except (ValueError, TypeError) as e:
            for i in todo:
                try:
                    self.classifier.clean(items[i].text)
                except (ValueError, TypeError) as bad:
                    raise type(bad)(f"{what} {start + i} (id {items[i].id!r:.60}): {bad}") from None
            raise e
        out = [it.classification for it in items]
        for i, c in zip(todo, done):
            out[i] = c
        return out

    def known_tags(self, tags: tuple[str, ...]) -> tuple[str, ...]:
        """The account's interest tags, de-duplicated; ValueError naming an unknown one and the closest labels."""
        labels = self.bundle.primary_labels + self.bundle.tags
        known = set(labels)
        for t in tags:
            if t not in known:
                close = difflib.get_close_matches(t, labels, n=5, cutoff=0.0)
                raise ValueError(f"interest tag {t!r:.40} is not a label of bundle {self.bundle.name!r}; closest: "
                                 f"{close} (see `edge-rec info` for all {len(labels)})")
        return tuple(dict.fromkeys(tags))

    def knobs(self, k: int | None = None, **overrides) -> dict:
        """The bundle's pipeline knobs (DEFAULTS where it sets none) with these overrides, checked."""
        unknown = set(overrides) - set(DEFAULTS)
        if unknown:
            raise TypeError(f"unknown recommend() options {sorted(unknown)}; the options are {sorted(DEFAULTS)}")
        return self._knobs({**self.defaults, **overrides, **({} if k is None else {"k": k})})

    def _knobs(self, knobs: dict) -> dict:
        for key in ("recall_top", "tag_top", "k", "max_interest_tags"):
            positive_int(key, knobs[key])
        if not is_count(knobs["semantic_top"]):
            raise ValueError(f"semantic_top must be an integer >= 0 (0 turns the path off), got {knobs['semantic_top']!r}")
        if knobs["out_of_scope"] not in OUT_OF_SCOPE:
            raise ValueError(f"out_of_scope must be one of {OUT_OF_SCOPE}, got {knobs['out_of_scope']!r}")
        if knobs["prior"] not in PRIORS:
            raise ValueError(f"prior must be one of {PRIORS}, got {knobs['prior']!r}")
        if knobs["semantic_mode"] not in MODES:
            raise ValueError(f"semantic_mode must be one of {MODES}, got {knobs['semantic_mode']!r}")
        probability("lam", knobs["lam"])
        share = knobs["screen_share"]
        if not is_probability(share) or share == 0:
            raise ValueError(f"screen_share must be a number in (0, 1], got {share!r}")
        g = knobs["match_g"]
        if not (is_number(g) and 0.0 < g < float("inf")):
            raise ValueError(f"match_g must be a positive finite number, got {g!r}")
        return knobs
