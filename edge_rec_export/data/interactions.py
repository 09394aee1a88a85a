"""One interaction format for every click log the ranking models train on, and readers for the real ones.

An item is a row of an `ItemTable`: label ids (content labels, 0 = none), a category index c in [0, 1] and an
optional semantic vector. An `Impression` is one visit: a user, a time, the items the user clicked before it
(oldest first), the items shown and which were clicked. Readers turn a raw log into train/val/test impressions;
`samples` flattens impressions into (history, target, click) rows for training and scoring.
"""
from __future__ import annotations

import gzip
import pickle
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_rec.items import HISTORY_EVENTS, event_code

PAD = 0  # item row 0 and label id 0 are padding


@dataclass
class ItemTable:
    ids: list[str]  # row r -> the item's id in its source; row 0 is the padding item
    labels: np.ndarray  # (n, K) int64 label ids (1-based into label_names), 0 = none
    index: np.ndarray  # (n,) float32 category index c
    vectors: np.ndarray  # (n, V) float32 semantic vectors; V = 0 when the log has none
    label_names: list[str]
    # From the training visits (`add_item_stats`): each item's row in the id embedding (0: no training events, content
    # alone) and its popularity at the end of the training period (log-scaled time-decayed clicks, in [0, 1]).
    identity: np.ndarray | None = None  # (n,) int64
    popularity: np.ndarray | None = None  # (n,) float32

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def build(cls, ids: list[str], labels: list[list[int]], index, vectors, label_names: list[str], max_labels: int):
        """Rows for `ids` (row 0, the padding item, is added here); labels are cut to the first `max_labels`."""
        n = len(ids) + 1
        lab = np.zeros((n, max_labels), dtype=np.int64)
        for r, ls in enumerate(labels, start=1):
            ls = ls[:max_labels]
            lab[r, :len(ls)] = ls
        vec = np.zeros((n, 0 if vectors is None else vectors.shape[1]), dtype=np.float32)
        if vectors is not None:
            vec[1:] = vectors
        return cls([""] + list(ids), lab, np.concatenate([[0.0], index]).astype(np.float32), vec, label_names)


@dataclass
class Impression:
    user: int
    time: int
    history: np.ndarray  # (h,) item rows clicked before this visit, oldest first
    shown: np.ndarray  # (s,) item rows
    clicks: np.ndarray  # (s,) 1.0 clicked, 0.0 shown and not clicked
    real: int | None = None  # the first `real` shown items were really exposed, the rest are sampled; None = all
    pop: np.ndarray | None = None  # (s,) each shown item's popularity as known at this visit (`add_item_stats`)
    history_events: np.ndarray | None = None  # (h,) each history item's event code (HISTORY_EVENTS); None: clicks


@dataclass
class ClickLog:
    name: str
    items: ItemTable
    train: list[Impression]
    val: list[Impression]
    test: list[Impression]
    notes: str = ""

    def split(self, name: str) -> list[Impression]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


@dataclass
class Samples:
    hist: np.ndarray  # (S, H) item rows, most recent last, left-padded with 0
    target: np.ndarray  # (S,) item rows
    y: np.ndarray  # (S,) float32 click
    group: np.ndarray  # (S,) impression number, for per-user/per-list metrics
    user: np.ndarray  # (S,)
    pop: np.ndarray | None = None  # (S,) float32 the target's popularity at its visit; None where the log has none
    hist_event: np.ndarray | None = None  # (S, H) int64 the history items' event codes, 0 = padding

    def __len__(self) -> int:
        return len(self.y)


def samples(impressions: list[Impression], history_length: int) -> Samples:
    """One row per shown item, with the last `history_length` clicks before its visit and their event codes."""
    n = sum(len(imp.shown) for imp in impressions)
    hist = np.zeros((n, history_length), dtype=np.int64)
    hist_event = np.zeros((n, history_length), dtype=np.int64)
    target, y = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.float32)
    group, user = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    with_pop = bool(impressions) and impressions[0].pop is not None
    pop = np.zeros(n, dtype=np.float32) if with_pop else None
    row = 0
    for g, imp in enumerate(impressions):
        h = imp.history[-history_length:]
        s = len(imp.shown)
        if len(h):
            hist[row:row + s, history_length - len(h):] = h
            hist_event[row:row + s, history_length - len(h):] = (
                1 if imp.history_events is None else imp.history_events[-history_length:])
        target[row:row + s], y[row:row + s] = imp.shown, imp.clicks
        group[row:row + s], user[row:row + s] = g, imp.user
        if with_pop:
            pop[row:row + s] = imp.pop
        row += s
    return Samples(hist, target, y, group, user, pop, hist_event)


def history_event_types(log: ClickLog) -> int:
    """How many history event types the ranking models read from `log`: all of HISTORY_EVENTS where its training
    histories carry any event but a click, else 0 (every history item a click, nothing to learn)."""
    varied = any(imp.history_events is not None and (imp.history_events > 1).any() for imp in log.train)
    return len(HISTORY_EVENTS) if varied else 0


def history_events(log: ClickLog) -> dict[str, int]:
    """How often each history event type joins a user's history in the log (each item once, as it joined)."""
    longest: dict[int, Impression] = {}  # a user's histories only grow: the longest holds every earlier one
    for imp in log.train + log.val + log.test:
        if len(imp.history) >= len(longest.get(imp.user, imp).history):
            longest[imp.user] = imp
    counts = Counter()
    for imp in longest.values():
        codes = np.ones(len(imp.history), np.int64) if imp.history_events is None else imp.history_events
        counts.update(HISTORY_EVENTS[c - 1] for c in codes.tolist())
    return dict(counts.most_common())


def add_item_stats(log: ClickLog, half_life_share: float = 0.1) -> None:
    """What a ranker can learn about items that recur in a log, set in place: `items.identity` (a row of the id
    embedding for each item with training events, 0 for the others, which are then read by their content alone),
    `items.popularity` (at the end of the training period) and every visit's `pop`.

    Popularity is the item's training clicks before the visit, each weighted 2^(-age / half-life) (the half-life a
    `half_life_share` of the training period, so old hits fade), as log1p and divided by the largest log1p at the
    end of training. A training visit reads the clicks strictly before it (never its own); held-out visits read the
    end-of-training value, the snapshot a device gets with the bundle."""
    items = log.items
    exposed = np.zeros(len(items), dtype=bool)
    times, clicked = [], []
    for imp in log.train:
        real = len(imp.shown) if imp.real is None else imp.real
        exposed[imp.shown[:real]] = True
        exposed[imp.history] = True
        hits = imp.shown[imp.clicks > 0]
        clicked.append(hits)
        times.append(np.full(len(hits), imp.time, dtype=np.float64))
    exposed[PAD] = False
    items.identity = np.where(exposed, np.cumsum(exposed), 0).astype(np.int64)
    clicked = np.concatenate(clicked or [np.zeros(0, np.int64)])
    times = np.concatenate(times or [np.zeros(0)])
    start = float(times.min()) if len(times) else 0.0
    end = float(times.max()) if len(times) else 0.0
    half_life = max(end - start, 1.0) * half_life_share
    decayed = DecayedCounts(clicked, times, start, half_life)
    at_end = decayed.at(np.arange(len(items)), np.full(len(items), np.nextafter(end, np.inf)))
    scale = float(np.log1p(at_end.max())) or 1.0
    items.popularity = (np.log1p(at_end) / scale).astype(np.float32)
    for imp in log.train:
        imp.pop = (np.log1p(decayed.at(imp.shown, np.full(len(imp.shown), float(imp.time)))) / scale
                   ).astype(np.float32)
    for imp in log.val + log.test:
        imp.pop = items.popularity[imp.shown]


class DecayedCounts:
    """sum over an item's clicks at t_k < t of 2^(-(t - t_k) / half_life), for many (item, t) queries at once."""

    def __init__(self, items: np.ndarray, times: np.ndarray, start: float, half_life: float):
        self.start, self.half_life = start, half_life
        self.width = float(times.max(initial=start) - start) + 2.0  # one item's keys: item * width + [0, span + 1]
        keys = items * self.width + (times - start)
        order = np.argsort(keys, kind="stable")
        self.keys = keys[order]
        weights = np.exp2((times[order] - start) / half_life)  # exponents stay small: times are within the log
        self.cum = np.concatenate([[0.0], np.cumsum(weights)])

    def at(self, items: np.ndarray, times: np.ndarray) -> np.ndarray:
        rel = np.clip(times - self.start, -0.5, self.width - 1.0)
        before = np.searchsorted(self.keys, items * self.width + rel, side="left")  # clicks < (item, t)
        first = np.searchsorted(self.keys, items * self.width - 0.5, side="left")  # the item's first click
        return (self.cum[before] - self.cum[first]) * np.exp2(-(times - self.start) / self.half_life)


# ---------------------------------------------------------------- MovieLens-100k
def read_movielens(data_dir: Path, negatives: int = 4, eval_negatives: int = 100, seed: int = 0,
                   history: str = "clicks", shown_negatives: bool = True) -> ClickLog:
    """MovieLens-100k as clicks: rating >= 4 is a click, a lower rating a shown-but-not-clicked item.

    Per user, by time: the last click is the test visit and the one before it the validation visit, each scored
    against `eval_negatives` movies the user never rated (the usual leave-last-out protocol); every earlier rating
    is a training visit, clicks joined by `negatives` never-rated movies, and (with `shown_negatives`) each lower
    rating a visit of its own with no click. A visit's history is the user's earlier clicks, or with `history`
    "rated" every earlier rated movie (watched, liked or not: the runtime's long views). Item labels: the movie's
    genres plus its own id label; c: the movie's smoothed click rate among its training ratings. The evaluation
    visits' shown movies do not depend on `history` or `shown_negatives`.
    """
    if history not in ("clicks", "rated"):
        raise ValueError(f"history must be 'clicks' or 'rated', got {history!r}")
    root = Path(data_dir) / "movielens_100k"
    genres = [line.split("|")[0] for line in (root / "u.genre").read_text(encoding="latin-1").splitlines() if line]
    movie_genres: dict[int, list[int]] = {}
    for line in (root / "u.item").read_text(encoding="latin-1").splitlines():
        f = line.split("|")
        movie_genres[int(f[0])] = [g for g, flag in enumerate(f[5:5 + len(genres)]) if flag == "1"]
    movies = sorted(movie_genres)
    row_of = {m: r for r, m in enumerate(movies, start=1)}
    ratings = np.loadtxt(root / "u.data", dtype=np.int64)  # user, item, rating, time
    ratings = ratings[np.lexsort((ratings[:, 1], ratings[:, 3], ratings[:, 0]))]
    rng = np.random.default_rng(seed)
    n_items = len(movies) + 1
    train, val, test = [], [], []
    likes, seen = np.zeros(n_items), np.zeros(n_items)
    for u in np.unique(ratings[:, 0]):
        rows = ratings[ratings[:, 0] == u]
        items = np.array([row_of[m] for m in rows[:, 1]])
        clicked = rows[:, 2] >= 4
        click_pos = np.flatnonzero(clicked)
        rated = np.zeros(n_items, dtype=bool)
        rated[items] = True
        rated[0] = True
        unrated = np.flatnonzero(~rated)
        held = click_pos[-2:] if len(click_pos) >= 3 else []
        cut = held[0] if len(held) else len(rows)
        codes = np.where(clicked, event_code("click"), event_code("long_view"))
        kept = np.ones(len(rows), dtype=bool) if history == "rated" else clicked

        def before(i):  # (history, its event codes) of a visit at position i
            return items[:i][kept[:i]], codes[:i][kept[:i]]

        for i in range(cut):
            hist, events = before(i)
            if clicked[i]:
                shown = np.concatenate([[items[i]], rng.choice(unrated, negatives, replace=False)])
                train.append(Impression(int(u), int(rows[i, 3]), hist, shown, _first_clicked(len(shown)), real=1,
                                        history_events=events))
            elif shown_negatives:
                train.append(Impression(int(u), int(rows[i, 3]), hist, items[i:i + 1], np.zeros(1, np.float32),
                                        history_events=events))
            likes[items[i]] += clicked[i]
            seen[items[i]] += 1
        for split_, i in zip((val, test), held):
            shown = np.concatenate([[items[i]], rng.choice(unrated, eval_negatives, replace=False)])
            hist, events = before(i)
            split_.append(Impression(int(u), int(rows[i, 3]), hist, shown, _first_clicked(len(shown)),
                                     history_events=events))
    prior = likes.sum() / seen.sum()
    c = (likes[1:] + 5 * prior) / (seen[1:] + 5)  # click rate shrunk toward the global rate by 5 pseudo-ratings
    label_names = [f"genre:{g}" for g in genres] + [f"movie:{m}" for m in movies]
    labels = [[g + 1 for g in movie_genres[m]] + [len(genres) + r] for r, m in enumerate(movies, start=1)]
    items = ItemTable.build([str(m) for m in movies], [ls[-1:] + ls[:-1] for ls in labels], c, None,
                            label_names, max_labels=4)
    return ClickLog("movielens-100k", items, train, val, test,
                    notes="rating>=4 = click; leave-last-out by time; 100 never-rated movies per eval visit; history: "
                    f"{history}; lower ratings as training negatives: {shown_negatives}")


def _first_clicked(n: int) -> np.ndarray:
    y = np.zeros(n, dtype=np.float32)
    y[0] = 1.0
    return y


# ---------------------------------------------------------------- Bing news (DKN sample)
def read_bing(data_dir: Path, vectors: dict[str, np.ndarray] | None = None, val_share: float = 0.1,
              min_entity_count: int = 2, seed: int = 0) -> ClickLog:
    """The DKN Bing news sample (`user\\ttitle\\tlabel\\tentities`): its own train/test files.

    A visit's history is the user's clicked training titles (the item itself left out); the log has no time, so
    file order stands in. Labels: the title's entities seen at least `min_entity_count` times in training.
    `vectors` maps a title to its semantic vector (e.g. `text_vectors.e5_vectors`); the log carries no category
    index, so c = 0.5 throughout.
    """
    root = Path(data_dir) / "dkn_bing_news_sample"
    parts = {name: [line.split("\t") for line in (root / f"raw_{name}.txt").read_text(encoding="utf-8").splitlines()
                    if line.strip()] for name in ("train", "test")}
    titles = sorted({r[1] for rows in parts.values() for r in rows})
    row_of = {t: i for i, t in enumerate(titles, start=1)}
    ents = {r[1]: [e.split(":")[0] for e in r[3].split(";") if e] for rows in parts.values() for r in rows}
    counts = Counter(e for r in parts["train"] for e in ents[r[1]])
    kept = sorted(e for e, n in counts.items() if n >= min_entity_count)
    label_of = {e: i for i, e in enumerate(kept, start=1)}
    labels = [[label_of[e] for e in ents[t] if e in label_of] for t in titles]
    vec = None if vectors is None else np.stack([vectors[t] for t in titles]).astype(np.float32)
    items = ItemTable.build(titles, labels, np.full(len(titles), 0.5), vec, [f"entity:{e}" for e in kept], 4)
    users = {u: i for i, u in enumerate(sorted({r[0] for rows in parts.values() for r in rows}))}
    clicks: dict[str, list[int]] = defaultdict(list)
    for r in parts["train"]:
        if r[2] == "1":
            clicks[r[0]].append(row_of[r[1]])
    rng = np.random.default_rng(seed)
    is_val = rng.random(len(parts["train"])) < val_share
    out = {"train": [], "val": [], "test": []}
    for i, r in enumerate(parts["train"] + parts["test"]):
        split_ = "test" if i >= len(parts["train"]) else ("val" if is_val[i] else "train")
        item = row_of[r[1]]
        hist = np.array([h for h in clicks[r[0]] if h != item], dtype=np.int64)
        out[split_].append(Impression(users[r[0]], i, hist, np.array([item]), np.array([float(r[2])], np.float32)))
    return ClickLog("bing-news", items, out["train"], out["val"], out["test"],
                    notes="DKN sample; history = the user's clicked training titles; c = 0.5")


def read_log_file(path: Path) -> ClickLog:
    """A gzipped pickled `ClickLog` (e.g. from `edge_rec_export.data.user_simulator`)."""
    return pickle.loads(gzip.decompress(Path(path).read_bytes()))


def add_log_arguments(ap) -> None:
    """The command-line choice of click log shared by the trainers: `log`, `--log-file`, `--texts`/`--clicks`,
    `--data`."""
    ap.add_argument("log", choices=["movielens", "bing", "file", "events"])
    ap.add_argument("--log-file", type=Path, help="for 'file': a gzipped pickled ClickLog (e.g. from "
                    "edge_rec_export.data.user_simulator)")
    ap.add_argument("--texts", type=Path, help="for 'events': the items, `edge-rec-export build --texts` format "
                    "(with ids and labels)")
    ap.add_argument("--clicks", type=Path, help="for 'events': the click log, `edge-rec-export build --clicks` format")
    ap.add_argument("--data", type=Path, default=Path("../shared/data"))
    add_movielens_arguments(ap)


def add_movielens_arguments(ap) -> None:
    """How MovieLens ratings become visits (`movielens_options`)."""
    ap.add_argument("--ml-history", choices=["clicks", "rated"], default="clicks",
                    help="movielens: a visit's history is the earlier clicks (rating >= 4) or every earlier rating")
    ap.add_argument("--ml-no-shown-negatives", action="store_true",
                    help="movielens: leave the lower ratings out of the training visits (negatives are then only "
                    "the never-rated movies, as in the evaluation visits)")


def movielens_options(a) -> dict:
    """read_movielens keywords from add_log_arguments' parsed flags."""
    return {"history": a.ml_history, "shown_negatives": not a.ml_no_shown_negatives}


def read_log(a, seed: int | None = None, movielens: dict | None = None, bing_vectors: bool = False) -> ClickLog:
    """The click log add_log_arguments' parsed flags `a` name. `seed` (default `a.seed`) draws MovieLens' and an
    events log's sampled negatives; `movielens`: read_movielens keywords in place of the flags' (`{}`: its
    defaults); `bing_vectors`: Bing items with their e5 title vectors (needs the e5 wheel)."""
    seed = a.seed if seed is None else seed
    if a.log == "movielens":
        return read_movielens(a.data, seed=seed, **(movielens_options(a) if movielens is None else movielens))
    if a.log == "bing":
        if not bing_vectors:
            return read_bing(a.data)
        from edge_rec_export.data.text_vectors import bing_titles, e5_vectors

        return read_bing(a.data, e5_vectors(bing_titles(a.data)))
    if a.log == "file":
        return read_log_file(a.log_file)
    return read_events_log(a.texts, a.clicks, seed=seed)


# ---------------------------------------------------------------- an app's own click log (edge-rec-export build)
def read_events_log(texts: Path, clicks: Path, seed: int = 0) -> ClickLog:
    """A click log in the builder's documented inputs (`texts_input`: labelled texts with ids, events), read as
    read_movielens reads MovieLens: item labels are the text's own labels (primary, then secondary) plus its id
    label; c is the item's click rate among its events before the first held-out visit, shrunk toward the overall
    rate by 5 pseudo-events. Visits and the split as `from_events` makes them (the builder's protocol)."""
    from edge_rec_export.data.texts_input import labelled_by_id, read_events

    by_id = labelled_by_id(texts)
    events = read_events(clicks, set(by_id))
    ids = sorted({e.item for e in events})
    names = list(dict.fromkeys(n for i in ids for n in (by_id[i].label, *by_id[i].labels)))
    label_of = {n: k for k, n in enumerate(names, start=1)}
    labels = [[len(names) + r] + [label_of[n] for n in (by_id[i].label, *by_id[i].labels)]
              for r, i in enumerate(ids, start=1)]
    items = ItemTable.build(ids, labels, np.zeros(len(ids)), None, names + [f"item:{i}" for i in ids], max_labels=4)
    log = from_events(events, items, f"{Path(clicks).parent.name}/{Path(clicks).stem}", seed=seed)
    start = min(v.time for v in log.val + log.test)
    row = {i: r for r, i in enumerate(items.ids)}
    likes, seen = np.zeros(len(items)), np.zeros(len(items))
    for e in events:
        if e.time < start:
            likes[row[e.item]] += e.clicked
            seen[row[e.item]] += 1
    prior = likes.sum() / max(seen.sum(), 1.0)
    items.index[1:] = (likes[1:] + 5 * prior) / (seen[1:] + 5)
    log.notes += "; item labels: the texts' labels + the item's id; c: smoothed click rate before the held-out visits"
    return log


def from_events(events, items: ItemTable, name: str, held_out: float = 0.1, negatives: int = 4,
                eval_negatives: int = 100, seed: int = 0) -> ClickLog:
    """A click log of `texts_input.Event`s over `items` (ids = the labelled texts' ids).

    A visit is one user's events at one time: the items shown then, clicked where any positive event (click, like,
    share) was recorded. Split by time over all users: of the visits with a click, the last `held_out` share is the
    test set and the share before it validation (at least one each); every other visit trains. A held-out visit
    that showed nothing unclicked is scored against `eval_negatives` items its user never met, a training visit
    against `negatives` of them. A visit's history is its user's clicks and viewed items (long_view: consumed
    without a click, neither a click nor a negative) in earlier visits."""
    row_of = {item_id: r for r, item_id in enumerate(items.ids) if r}
    visits: dict[tuple[str, float], dict[int, bool]] = defaultdict(dict)
    viewed: dict[tuple[str, float], set[int]] = defaultdict(set)
    code: dict[tuple[str, float, int], int] = {}  # a history item's event code: its last positive event in the visit
    for e in events:
        if e.viewed:
            viewed[e.user, e.time].add(row_of[e.item])
        else:
            shown = visits[e.user, e.time]
            shown[row_of[e.item]] = shown.get(row_of[e.item], False) or e.clicked
        if e.clicked or e.viewed:
            code[e.user, e.time, row_of[e.item]] = e.history_code
    for key, rows in viewed.items():  # consumed, so not a skip; a click at the same time stays a click
        shown = visits.get(key, {})
        for r in rows:
            if not shown.get(r, True):
                del shown[r]
        rows.difference_update(r for r in shown if shown[r])
        if key in visits and not shown:
            del visits[key]
    clicked = sorted((t, user) for (user, t), shown in visits.items() if any(shown.values()))
    n = max(1, round(held_out * len(clicked)))
    if len(clicked) < 3:
        raise ValueError(f"click log {name!r}: {len(clicked)} visits with a click; a ranker needs at least 3 (one to "
                         "train on, one to validate, one to test)")
    split_of = {(user, t): "test" for t, user in clicked[-n:]}
    split_of.update({(user, t): "val" for t, user in clicked[-2 * n:-n] or clicked[-2:-1]})
    met: dict[str, set[int]] = defaultdict(set)
    for (user, _), shown in [*visits.items(), *viewed.items()]:
        met[user].update(shown)
    rng = np.random.default_rng(seed)
    users = {user: u for u, user in enumerate(sorted(met))}
    unmet: dict[str, np.ndarray] = {}  # per user, the items never met: computed once, where a visit needs some
    out = {"train": [], "val": [], "test": []}
    history: dict[str, list[int]] = defaultdict(list)
    history_events: dict[str, list[int]] = defaultdict(list)
    for (user, t) in sorted(visits.keys() | viewed.keys(), key=lambda k: (k[1], k[0])):
        shown = visits.get((user, t), {})
        if shown:
            rows = list(shown)
            clicks = np.array([shown[r] for r in rows], dtype=np.float32)
            split_ = split_of.get((user, t), "train")
            sampled = np.zeros(0, dtype=np.int64)
            if clicks.all():  # nothing shown and not clicked: never-met items stand in
                if user not in unmet:
                    unmet[user] = np.setdiff1d(np.arange(1, len(items)), list(met[user]))
                wanted = eval_negatives if split_ != "train" else negatives
                sampled = rng.choice(unmet[user], min(wanted, len(unmet[user])), replace=False)
            out[split_].append(Impression(users[user], int(t), np.array(history[user], dtype=np.int64),
                                          np.concatenate([rows, sampled]).astype(np.int64),
                                          np.concatenate([clicks, np.zeros(len(sampled), np.float32)]),
                                          real=len(rows) if len(sampled) else None,
                                          history_events=np.array(history_events[user], dtype=np.int64)))
        added = [r for r in shown if shown[r]] + sorted(viewed.get((user, t), ()))
        history[user] += added
        history_events[user] += [code[user, t, r] for r in added]
    return ClickLog(name, items, out["train"], out["val"], out["test"],
                    notes=f"{len(events)} events of {len(users)} users; the last {held_out:.0%} of visits with a click "
                          f"by time held out for test and the {held_out:.0%} before for validation")
