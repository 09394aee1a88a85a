"""Store: a catalogue classified once and a behaviour log, on the device in one SQLite file; recommendations over
the whole catalogue that reflect every event recorded before the call.

    store = Store("feed.db")                       # the default bundle
    store.add([{"id": "a1", "text": "..."}])       # classified once, persisted with its vector
    store.record("u1", "a1", "click")
    store.recommend("u1", k=10)

In memory the catalogue is a columnar Pool (edge_rec/pool.py), loaded at open and kept up to date by add/remove;
SQLite (WAL) holds the truth, each chunk of added items and each event committed as it comes. Memory follows what
was committed: threads of one Store share one connection under one lock, and other processes' writes to the file
are seen at the next call (docs/store.md has the concurrency contract).
"""
from __future__ import annotations

import functools
import json
import math
import os
import sqlite3
import threading
import time as clock
import urllib.parse
from collections import Counter
from typing import Hashable, Iterable, Sequence

import numpy as np

from edge_rec.bundle import Bundle
from edge_rec.catalogue import classified_items
from edge_rec.checks import is_count, is_number
from edge_rec.classifier import Classification
from edge_rec.items import HISTORY_EVENTS, Item, as_item
from edge_rec.pool import Pool
from edge_rec.recommender import EdgeRecommender, Recommendation
from edge_rec.semantic import int8_codes

SCHEMA_VERSION = 3
POSITIVE = HISTORY_EVENTS  # events that make an item part of the user's history
NEGATIVE = ("hide", "dislike")  # the item is never shown again; labels hidden often enough are demoted
EVENTS = ("impression", *POSITIVE, *NEGATIVE)
HIDE_LABEL_AFTER = 2  # hides of items sharing a label (category or tag) after which that label is demoted
BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's write to finish before failing
INT64 = 2 ** 63  # SQLite integers are signed 64-bit
SQL_BATCH = 500  # parameters per IN (...) list

# Vectors are stored in chunks of up to CHUNK_ROWS (their item rows as int64 bytes, the vectors as float32 bytes,
# and their int8 codes and scales for the semantic screen), each item row naming its chunk: opening scans the small
# item rows and reads 100,000 vectors as ~100 blobs, not 100,000 (measured: 0.45 s of a 1.1 s open with one blob per
# item), and does not quantize them again (0.25-0.55 s of a 1.3 s open before schema 3).
CHUNK_ROWS = 1024
SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (row INTEGER PRIMARY KEY, id UNIQUE NOT NULL, text TEXT NOT NULL, primary_label TEXT NOT NULL,
                    primary_prob REAL NOT NULL, tags TEXT NOT NULL, tag_probs BLOB NOT NULL, idx REAL NOT NULL,
                    in_scope INTEGER NOT NULL, scope_score REAL NOT NULL, added REAL NOT NULL, chunk INTEGER NOT NULL);
CREATE INDEX items_by_chunk ON items (chunk);
CREATE TABLE vectors (chunk INTEGER PRIMARY KEY, rows BLOB NOT NULL, data BLOB NOT NULL, codes BLOB NOT NULL,
                      scales BLOB NOT NULL);
CREATE TABLE events (seq INTEGER PRIMARY KEY, user NOT NULL, item NOT NULL, event TEXT NOT NULL, time REAL NOT NULL);
CREATE INDEX events_by_user ON events (user, time, seq);
"""
COLUMNS = "primary_label, primary_prob, tags, tag_probs, idx, in_scope, scope_score"  # one result, less its vector
SLOTS = ", ".join("?" * len(COLUMNS.split(",")))
TAB = "\t"  # joins a result's tag names in one column (label names never hold a tab)


class StoreError(ValueError):
    """The store file cannot be used as asked: another bundle's, a newer schema, not a store, locked, damaged, full,
    read-only. The message names the file and what to do."""


def _explain(e: sqlite3.Error) -> str:
    """What an SQLite failure means for the app, and what to do about it."""
    name = getattr(e, "sqlite_errorname", "") or ""
    text = str(e)
    if name.startswith("SQLITE_BUSY") or "locked" in text:
        return (f"another connection kept the file locked for more than {BUSY_TIMEOUT_S:.0f} s ({text}); nothing was "
                "written: try again, or close the other writer")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in text or "not a database" in text:
        return f"the file is damaged or not a store ({text}); restore it from a backup or start a new store"
    if name.startswith("SQLITE_FULL") or "disk is full" in text:
        return "the disk is full; nothing was half-written: free some space and try again"
    if name.startswith("SQLITE_READONLY") or "readonly" in text:
        return (f"the file cannot be written ({text}); open it with read_only=True (the CLI's recommend and info "
                "do) to read it, or make it and its folder writable")
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in text:
        return f"cannot open the file ({text}); check that its folder exists and can be read"
    if name.startswith("SQLITE_IOERR") or "disk I/O" in text:
        return f"reading or writing the file failed ({text}); check the disk"
    return text


def _sqlite_errors(method):
    """An SQLite failure inside a Store method becomes one StoreError naming the file."""
    @functools.wraps(method)
    def wrapped(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {_explain(e)}") from None
    return wrapped


def _encodable(text: str, what: str) -> str:
    """A str SQLite can store: UTF-8 encodable (no lone surrogate)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"{what} {text!r:.60} is not valid Unicode (a lone surrogate at {e.start})") from None
    return text


def _store_id(x, what: str):
    """A user or item id as SQLite keeps it exactly: a str, or an int in the signed 64-bit range."""
    if isinstance(x, str):
        return _encodable(x, what)
    if isinstance(x, int) and not isinstance(x, bool):
        if not -INT64 <= x < INT64:
            raise ValueError(f"{what} {x} is out of range; an int id must fit in 64 bits (use a str id)")
        return x
    raise TypeError(f"{what} must be a str or an int, got {x!r:.60}")


class Store:
    """Catalogue + behaviour log in SQLite at `path`, recommending with `bundle` (default: the shipped one).

    A store remembers the bundle it was classified with (labels and vector size); opened with another it is refused
    unless `reclassify=True`, which classifies every stored text again with the new bundle.
    Threads may share one Store (one lock around the connection and the in-memory catalogue), and processes one
    file (WAL; a write waits up to BUSY_TIMEOUT_S for another's; each call first takes in what other connections
    committed). `read_only=True` opens a file this process may not write (and never writes it). `trusted_keys`:
    public keys one of which must have signed the bundle (edge_rec/trust.py).
    """

    def __init__(self, path: str | os.PathLike, bundle: str | os.PathLike | Bundle | None = None,
                 profile: str = "phone", threads: int | None = None, reclassify: bool = False,
                 read_only: bool = False, trusted_keys=None):
        self.path = os.fspath(path)
        self.read_only = read_only
        if os.path.exists(self.path) and not os.path.isfile(self.path):
            raise StoreError(f"{self.path}: not a store (not a regular file); give a store file's path")
        if read_only and not os.path.isfile(self.path):
            raise StoreError(f"{self.path}: no store file there; a read-only store must already exist")
        self.recommender = EdgeRecommender(bundle, profile=profile, threads=threads, trusted_keys=trusted_keys)
        self._lock = threading.RLock()
        self._db = None
        try:
            self._open(reclassify)
        except BaseException:
            self.close()
            raise

    @_sqlite_errors
    def _open(self, reclassify: bool) -> None:
        if self.read_only:
            self._db = sqlite3.connect(f"file:{urllib.parse.quote(os.path.abspath(self.path))}?mode=ro", uri=True,
                                       timeout=BUSY_TIMEOUT_S, check_same_thread=False, isolation_level=None)
        else:
            self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a crash of the app loses nothing committed
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0 and not self.read_only:
            self._create()  # or, where another process made it meanwhile, nothing
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise StoreError(f"{self.path}: not a store (an empty or foreign SQLite file)")
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema {version} is newer than this edge-rec's "
                             f"({SCHEMA_VERSION}); upgrade edge-rec")
        if version < SCHEMA_VERSION:
            self._writable("upgrade its schema")
            self._migrate(version)
        if self._meta("bundle") != self.recommender.bundle.classification_key:
            if not reclassify:
                raise StoreError(f"{self.path}: classified with bundle {self._classified_with()!r}, whose labels or "
                                 "vector size differ "
                                 f"from bundle {self.recommender.bundle.name!r}; open it with reclassify=True "
                                 f"(`edge-rec store --db {self.path} reclassify`) to classify its texts again")
            self._writable("classify its texts again")
            self._reclassify()
        self._data_version = self._db.execute("PRAGMA data_version").fetchone()[0]
        self._reload()

    def _classified_with(self) -> str:
        """The name of the bundle the file's catalogue was classified with."""
        made_with = self._meta("bundle")
        return json.loads(made_with)["name"] if made_with else "?"

    def _writable(self, what: str) -> None:
        if self.read_only:
            raise StoreError(f"{self.path}: opened read-only; cannot {what} (open it without read_only)")

    def _sync(self) -> None:
        """Under the lock: take in the catalogue another connection changed since the last call (PRAGMA
        data_version moves when another connection commits; the items' own counter says whether items changed)."""
        version = self._db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._data_version:
            return
        self._data_version = version
        if self._meta("items_version") != self._items_version:
            self._reload()

    def _reload(self) -> None:
        with self._read():
            if self._meta("bundle") != self.recommender.bundle.classification_key:  # another process switched it
                raise StoreError(f"{self.path}: now classified with bundle {self._classified_with()!r} (switched by "
                                 "another connection); open it again with that bundle")
            self._set_pool(self._load())
            self._items_version = self._meta("items_version")

    @_sqlite_errors
    def use_bundle(self, bundle: str | os.PathLike | Bundle, reclassify: bool = False, trusted_keys=None) -> None:
        """Switch to another bundle (an update, or back to the previous one), all or nothing: the new bundle is
        loaded and checked (with `trusted_keys`, its signature) before anything changes; where its labels or vector
        size differ, the catalogue is classified again in one transaction (`reclassify=True`; otherwise a
        StoreError and nothing changes). On any failure the store goes on with the bundle it had."""
        new = EdgeRecommender(bundle, threads=self.recommender.threads, trusted_keys=trusted_keys)
        with self._lock:
            old = self.recommender
            if new.bundle.classification_key != old.bundle.classification_key:
                if not reclassify:
                    raise StoreError(f"{self.path}: bundle {new.bundle.name!r} has other labels or another vector "
                                     f"size than {old.bundle.name!r}; use_bundle(..., reclassify=True) classifies "
                                     "the catalogue again with it")
                self._writable("classify its texts again")
            self.recommender = new
            try:
                if new.bundle.classification_key != old.bundle.classification_key:
                    self._reclassify()
                self._reload()  # the catalogue's label features as the new ranking models read them
            except BaseException:
                self.recommender = old
                raise

    def _read(self):
        """One read transaction: the items and the vectors read from one snapshot of the file."""
        return _Transaction(self._db, "BEGIN")

    def _write(self):
        """One write transaction, the file's write lock taken first (BEGIN IMMEDIATE: waits for another
        process's write instead of failing on the upgrade from read to write)."""
        self._writable("write to it")
        return _Transaction(self._db, "BEGIN IMMEDIATE")

    def _bump_items(self) -> None:
        """Inside a write transaction that changed items: other connections reload the catalogue."""
        self._db.execute("INSERT INTO meta VALUES ('items_version', '1') ON CONFLICT (key) DO UPDATE SET "
                         "value = CAST(value AS INTEGER) + 1")
        self._items_version = self._meta("items_version")

    # -- catalogue ---------------------------------------------------------------------------------------------
    @_sqlite_errors
    def add(self, items: Iterable[Item | dict], chunk: int = 256) -> int:
        """Add or update items ({"id", "text"} or Items with text). New texts are classified a chunk at a time and
        each chunk committed as it is done; an id already stored with the same text is skipped; an item that also
        carries its `classification` (made with this bundle) is stored as given. Returns how many were stored."""
        done, batch, pieces = 0, [], []
        source = enumerate(items)
        try:
            while True:
                try:
                    i, x = next(source)
                    item = self._checked(x, i)
                except StopIteration:
                    break
                except BaseException:  # a bad item, the input failing, Ctrl-C: the items before it are kept
                    pieces.append(self._add(batch))
                    raise
                batch.append(item)
                if len(batch) >= chunk:
                    pieces.append(self._add(batch))
                    done += len(pieces[-1][0])
                    batch = []
            pieces.append(self._add(batch))
            return done + len(pieces[-1][0])
        finally:  # one copy of the in-memory catalogue per call, not per chunk
            self._extend(pieces)

    def add_classified(self, path: str | os.PathLike) -> int:
        """Add the rows of a classified catalogue (`edge-rec classify --output`, JSON lines or Parquet, with a
        vector) as they are, without classifying again; rows written with another bundle are refused (StoreError
        naming the row), the rows before it kept. Returns how many were stored (new or changed)."""
        self._writable("add items")
        key = self.recommender.bundle.classification_key

        def items():
            for n, (item_id, text, c, made_with) in enumerate(classified_items(path), start=1):
                if made_with != key:
                    raise StoreError(f"{path}: row {n} (id {item_id!r:.60}) was classified with another bundle "
                                     f"({made_with or 'none recorded'}); classify the catalogue again with "
                                     f"{self.recommender.bundle.name!r}, or `add` its texts")
                yield Item(item_id, text, c)

        return self.add(items())

    def _checked(self, x, i: int) -> Item:
        item = as_item(x, f"item {i}")
        _store_id(item.id, f"item {i}: id")
        if item.text is None:
            raise ValueError(f"item {i} (id {item.id!r:.60}) has no 'text'; the store classifies texts itself")
        self.recommender.classifier.clean(item.text, i)
        _encodable(item.text, f"item {i} (id {item.id!r:.60}): text")
        return item

    def _add(self, items: list[Item]) -> tuple[Pool, dict]:
        """Classify and commit the items whose text is new; returns them as a Pool piece and the (row, text) each
        was committed as, for _extend."""
        with self._lock:
            self._writable("add items")
            self._sync()
            stored = dict(self._by_ids("id, text", [it.id for it in items]))
            fresh = list({it.id: it for it in items if stored.get(it.id) != it.text}.values())  # the last text wins
            todo = [it.text for it in fresh if it.classification is None]
            done = iter(self.recommender.classifier.classify(todo) if todo else [])
            results = [it.classification or next(done) for it in fresh]
            now = clock.time()
            if not fresh:
                return self._pool([], []), {}
            with self._write():
                self._delete([it.id for it in fresh])
                self._append([(it.id, it.text, *_row(c), now) for it, c in zip(fresh, results)],
                             [c.vector for c in results])
                self._bump_items()
                committed = self._committed([it.id for it in fresh])
            return self._pool([it.id for it in fresh], results), committed

    def _committed(self, ids: list) -> dict:
        """id -> (row, text) as the file holds them now."""
        return {i: (r, t) for i, r, t in self._by_ids("id, row, text", ids)}

    def _by_ids(self, columns: str, ids: list) -> list[tuple]:
        """`columns` of the stored items with these ids, asked SQL_BATCH at a time (SQLite builds may allow as few
        as 999 parameters a statement)."""
        out = []
        for start in range(0, len(ids), SQL_BATCH):
            part = ids[start:start + SQL_BATCH]
            out += self._db.execute(f"SELECT {columns} FROM items WHERE id IN ({','.join('?' * len(part))})",
                                    part).fetchall()
        return out

    def _extend(self, pieces: list[tuple[Pool, dict]]) -> None:
        """Append committed pieces to the in-memory catalogue, each item only if the file still holds it as this
        call committed it: a thread that replaced or removed it since has the last word, in memory as in the file."""
        pieces = [(p, c) for p, c in pieces if len(p)]
        if not pieces:
            return
        with self._lock:
            new = Pool.concat([p for p, _ in pieces])
            ours = {}
            for _, c in pieces:
                ours.update(c)
            now = self._committed(list(ours))
            keep = {}
            for at, item_id in enumerate(new.ids):
                if now.get(item_id) == ours[item_id]:
                    keep[item_id] = at  # the last piece holding an id is the one committed last
            new = new.select(np.array(sorted(keep.values()), dtype=np.int64))
            self._drop([i for i in new.ids if i in self._rows])
            self._set_pool(Pool.concat([self.pool, new]))

    @_sqlite_errors
    def remove(self, ids: Sequence[Hashable]) -> int:
        """Remove items (unknown ids are ignored); their events stay in the log. Returns how many were removed."""
        if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
            raise TypeError(f"remove takes a list of ids, got {ids!r:.60}; to remove one item: remove([id])")
        ids = list(ids)
        with self._lock:
            self._sync()
            with self._write():
                gone = self._delete(ids)
                if gone:
                    self._bump_items()
            self._drop([i for i in ids if i in self._rows])
        return gone

    def _append(self, items: list[tuple], vectors: list[np.ndarray]) -> None:
        """Inside the caller's transaction: insert the item rows (id, text, COLUMNS..., added), their vectors
        joining one chunk: the last one while it has room, else a new one."""
        if not items:
            return
        last = self._db.execute("SELECT chunk, length(rows) FROM vectors ORDER BY chunk DESC LIMIT 1").fetchone()
        if last is None or last[1] // 8 + len(items) > CHUNK_ROWS:
            chunk = self._db.execute("INSERT INTO vectors VALUES (NULL, x'', x'', x'', x'')").lastrowid
        else:
            chunk = last[0]
        self._db.executemany(f"INSERT INTO items (id, text, {COLUMNS}, added, chunk) VALUES (?, ?, {SLOTS}, ?, ?)",
                             [(*item, chunk) for item in items])
        rows = [r for (r,) in self._db.execute("SELECT row FROM items WHERE chunk = ? ORDER BY row", (chunk,))]
        self._write_chunk(chunk, np.array(rows, dtype=np.int64),
                          np.concatenate([self._chunk(chunk)[1], np.array(vectors, dtype=np.float32)]))

    def _write_chunk(self, chunk: int, rows: np.ndarray, data: np.ndarray) -> None:
        """A chunk's rows and vectors, with the vectors' int8 codes (semantic.int8_codes) kept beside them."""
        codes, scales = int8_codes(data)
        self._db.execute("UPDATE vectors SET rows = ?, data = ?, codes = ?, scales = ? WHERE chunk = ?",
                         (rows.tobytes(), data.tobytes(), codes.tobytes(), scales.tobytes(), chunk))

    def _chunk(self, chunk: int) -> tuple[np.ndarray, np.ndarray]:
        rows, data = self._db.execute("SELECT rows, data FROM vectors WHERE chunk = ?", (chunk,)).fetchone()
        rows = np.frombuffer(rows, dtype=np.int64)
        return rows, np.frombuffer(data, dtype=np.float32).reshape(len(rows), self.recommender.vocab.vector_dim)

    def _delete(self, ids: Sequence[Hashable]) -> int:
        """Delete stored items and their vectors (inside the caller's transaction); returns how many."""
        found = [r for i in ids for r in self._db.execute("SELECT row, chunk FROM items WHERE id = ?", (i,))]
        for chunk in {c for _, c in found}:
            rows, data = self._chunk(chunk)
            keep = ~np.isin(rows, [r for r, c in found if c == chunk])
            if keep.any():
                self._write_chunk(chunk, rows[keep], data[keep])
            else:
                self._db.execute("DELETE FROM vectors WHERE chunk = ?", (chunk,))
        self._db.executemany("DELETE FROM items WHERE row = ?", [(r,) for r, _ in found])
        return len(found)

    def _drop(self, ids: list[Hashable]) -> None:
        if ids:
            keep = np.ones(len(self.pool), dtype=bool)
            keep[[self._rows[i] for i in ids]] = False
            self._set_pool(self.pool.select(keep))

    def _set_pool(self, pool: Pool) -> None:
        """The in-memory catalogue and its id -> row map, always replaced together."""
        self.pool = pool
        self._rows = {item_id: i for i, item_id in enumerate(pool.ids)}

    @_sqlite_errors
    def __len__(self) -> int:
        with self._lock:
            self._sync()
            return len(self.pool)

    @_sqlite_errors
    def __contains__(self, item_id: Hashable) -> bool:
        with self._lock:
            self._sync()
            return item_id in self._rows

    # -- behaviour ---------------------------------------------------------------------------------------------
    @_sqlite_errors
    def record(self, user: Hashable, item: Hashable, event: str, time: float | None = None) -> None:
        """Append one event (see EVENTS) of `user` on a stored `item`; it counts from the next recommend().
        `time`: seconds since the epoch (default now), a finite number >= 0."""
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r:.40}; the events are {list(EVENTS)}")
        _store_id(user, "user")
        _store_id(item, "item")
        if time is not None and not (is_number(time) and math.isfinite(time) and time >= 0):
            raise ValueError(f"time must be a finite number of seconds since the epoch (>= 0), got {time!r:.40}")
        with self._lock:
            self._writable("record events")
            self._sync()
            if item not in self._rows:
                raise ValueError(f"item {item!r:.60} is not in the store; add it first")
            self._db.execute("INSERT INTO events (user, item, event, time) VALUES (?, ?, ?, ?)",
                             (user, item, event, clock.time() if time is None else float(time)))

    @_sqlite_errors
    def forget_user(self, user: Hashable) -> int:
        """Erase every event of `user`; returns how many."""
        _store_id(user, "user")
        with self._lock:
            self._writable("forget a user")
            return self._db.execute("DELETE FROM events WHERE user = ?", (user,)).rowcount

    @_sqlite_errors
    def prune(self, max_age_s: float | None = None, max_events_per_user: int | None = None) -> int:
        """Retention: drop events older than `max_age_s` (> 0 seconds), and all but each user's
        `max_events_per_user` latest (>= 0). Returns how many events were dropped."""
        if max_age_s is not None and not (is_number(max_age_s) and max_age_s > 0):
            raise ValueError(f"max_age_s must be a number of seconds > 0, got {max_age_s!r:.40}")
        if max_events_per_user is not None and not is_count(max_events_per_user):
            raise ValueError(f"max_events_per_user must be an int >= 0, got {max_events_per_user!r:.40}")
        with self._lock, self._write():
            dropped = 0
            if max_age_s is not None:
                dropped += self._db.execute("DELETE FROM events WHERE time < ?", (clock.time() - max_age_s,)).rowcount
            if max_events_per_user is not None:
                dropped += self._db.execute(
                    "DELETE FROM events WHERE seq IN (SELECT seq FROM (SELECT seq, ROW_NUMBER() OVER "
                    "(PARTITION BY user ORDER BY time DESC, seq DESC) AS n FROM events) WHERE n > ?)",
                    (max_events_per_user,)).rowcount
        return dropped

    @_sqlite_errors
    def events(self, user: Hashable) -> list[tuple[Hashable, str, float]]:
        """The user's (item, event, time), oldest first (by time, then by when recorded)."""
        _store_id(user, "user")
        with self._lock:
            return self._db.execute("SELECT item, event, time FROM events WHERE user = ? ORDER BY time, seq",
                                    (user,)).fetchall()

    # -- recommending ------------------------------------------------------------------------------------------
    @_sqlite_errors
    def recommend(self, user: Hashable, k: int | None = None, interest_tags: Sequence[str] = (),
                  exclude_seen: bool = False, **knobs) -> list[Recommendation]:
        """The top-k stored items for `user`, from the events recorded so far: the history is the items the user
        clicked, liked, shared or viewed long (most recent last), and those are not recommended again; nor, with
        `exclude_seen`, the ones shown (impression). A hidden or disliked item is never recommended, and items
        carrying a label (category or tag) the user hid HIDE_LABEL_AFTER times rank after all others."""
        rec = self.recommender
        knobs = rec.knobs(k, **knobs)
        account = rec.known_tags(tuple(interest_tags))
        with self._lock:
            self._sync()
            events = self.events(user)
            latest = {}  # each history item's latest positive event, in the order of those events
            for i, e, _ in events:
                if e in POSITIVE and i in self._rows:
                    latest.pop(i, None)
                    latest[i] = e
            history_ids = list(latest)[-rec.history_length:]
            history = self._classifications(history_ids)
            shut = {i for i, e, _ in events if e in NEGATIVE or (exclude_seen and e == "impression")} | set(latest)
            exclude = np.zeros(len(self.pool), dtype=bool)
            exclude[[self._rows[i] for i in shut if i in self._rows]] = True
            hidden = Counter(label for i, e, _ in events if e in NEGATIVE and i in self._rows
                             for label in (self.pool.primary[self._rows[i]], *self.pool.tags[self._rows[i]]))
            demote = self.pool.hits([label for label, n in hidden.items() if n >= HIDE_LABEL_AFTER]) > 0
            return rec.rank(history, account, self.pool, knobs, exclude=exclude, demote=demote,
                            history_ids=history_ids, history_events=[latest[i] for i in history_ids])

    @_sqlite_errors
    def info(self) -> dict:
        with self._lock:
            self._sync()
            users, events = self._db.execute("SELECT COUNT(DISTINCT user), COUNT(*) FROM events").fetchone()
        return {"path": self.path, "schema": SCHEMA_VERSION, "bundle": self.recommender.bundle.name,
                "items": len(self.pool), "users": users, "events": events,
                "bytes": sum(os.path.getsize(p) for p in (self.path, self.path + "-wal") if os.path.exists(p))}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------------------------
    def _create(self) -> None:
        with self._write():
            if self._db.execute("PRAGMA user_version").fetchone()[0]:
                return  # another process created it between our look and our lock
            if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise StoreError(f"{self.path}: not a store (an SQLite file with other tables); use a new path")
            self._script(SCHEMA)
            self._db.execute("INSERT INTO meta VALUES ('bundle', ?)", (self.recommender.bundle.classification_key,))
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _migrate(self, version: int) -> None:
        """Bring a store of an older schema up to SCHEMA_VERSION, all steps or none (none again where another
        process did it first)."""
        with self._lock, self._write():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](self)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _script(self, sql: str) -> None:
        # executescript() would commit first: statements one by one keep them inside the caller's transaction.
        for statement in sql.split(";"):
            if statement.strip():
                self._db.execute(statement)

    def _chunk_vectors_v1(self) -> None:
        """Schema 1 -> 2: each item's vector moves from its row into the chunked vectors table."""
        self._script("""ALTER TABLE items ADD COLUMN chunk INTEGER NOT NULL DEFAULT 0;
            CREATE INDEX items_by_chunk ON items (chunk);
            CREATE TABLE vectors (chunk INTEGER PRIMARY KEY, rows BLOB NOT NULL, data BLOB NOT NULL)""")
        rows = self._db.execute("SELECT row, vector FROM items ORDER BY row").fetchall()
        for start in range(0, len(rows), CHUNK_ROWS):
            part = rows[start:start + CHUNK_ROWS]
            chunk = self._db.execute("INSERT INTO vectors (rows, data) VALUES (?, ?)", (
                np.array([r for r, _ in part], dtype=np.int64).tobytes(), b"".join(v for _, v in part))).lastrowid
            self._db.executemany("UPDATE items SET chunk = ? WHERE row = ?", [(chunk, r) for r, _ in part])
        self._db.execute("ALTER TABLE items DROP COLUMN vector")

    def _int8_codes_v2(self) -> None:
        """Schema 2 -> 3: each chunk keeps its vectors' int8 codes and scales (computed here once)."""
        self._script("""ALTER TABLE vectors ADD COLUMN codes BLOB NOT NULL DEFAULT x'';
            ALTER TABLE vectors ADD COLUMN scales BLOB NOT NULL DEFAULT x''""")
        for chunk, in self._db.execute("SELECT chunk FROM vectors").fetchall():
            self._write_chunk(chunk, *self._chunk(chunk))

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _reclassify(self) -> None:
        texts = self._db.execute("SELECT row, text FROM items ORDER BY row").fetchall()
        results = list(self.recommender.classifier.classify_stream([t for _, t in texts]))
        with self._write():
            self._bump_items()
            self._db.executemany(f"UPDATE items SET ({COLUMNS}) = ({SLOTS}) WHERE row = ?",
                                 [(*_row(c), row) for (row, _), c in zip(texts, results)])
            vector = {row: c.vector for (row, _), c in zip(texts, results)}
            for chunk, rows in self._db.execute("SELECT chunk, rows FROM vectors").fetchall():
                rows = np.frombuffer(rows, dtype=np.int64)
                self._write_chunk(chunk, rows, np.array([vector[r] for r in rows.tolist()], dtype=np.float32))
            self._db.execute("INSERT OR REPLACE INTO meta VALUES ('bundle', ?)", (self.recommender.bundle.classification_key,))

    def _load(self) -> Pool:
        """The catalogue as columns straight from SQLite: no Classification per item (opening stays fast)."""
        rows = self._db.execute("SELECT row, id, primary_label, tags, idx, in_scope FROM items ORDER BY row").fetchall()
        at, ids, primary, tags, index, in_scope = zip(*rows) if rows else ((),) * 6
        dim = self.recommender.vocab.vector_dim
        at = np.array(at, dtype=np.int64)  # ascending: ORDER BY row
        vectors = np.empty((len(at), dim), dtype=np.float32)
        codes, scales = np.empty((len(at), dim), dtype=np.uint8), np.empty(len(at), dtype=np.float32)
        filled, intact = 0, True
        for chunk_rows, data, chunk_codes, chunk_scales in self._db.execute(
                "SELECT rows, data, codes, scales FROM vectors"):  # each copied once, into place
            chunk_rows = np.frombuffer(chunk_rows, dtype=np.int64)
            n = len(chunk_rows)
            at_rows = np.minimum(np.searchsorted(at, chunk_rows), max(len(at) - 1, 0))
            intact = (len(data) == n * dim * 4 and len(chunk_codes) == n * dim and len(chunk_scales) == n * 4
                      and (np.array_equal(at[at_rows], chunk_rows) if len(at) else not n))
            if not intact:
                break
            vectors[at_rows] = np.frombuffer(data, dtype=np.float32).reshape(n, dim)
            codes[at_rows] = np.frombuffer(chunk_codes, dtype=np.uint8).reshape(n, dim)
            scales[at_rows] = np.frombuffer(chunk_scales, dtype=np.float32)
            filled += n
        if not intact or filled != len(at):  # (rows are unique in each chunk and chunks are disjoint)
            raise StoreError(f"{self.path}: the stored vectors do not match the {len(at)} items (expected one "
                             f"{dim}-d vector each); the file was changed outside edge-rec")
        split: dict[str, tuple[str, ...]] = {}  # one tuple per distinct tag string
        tags = [split.setdefault(t, tuple(t.split(TAB)) if t else ()) for t in tags]
        pool = Pool.columns(ids, primary, tags, index, vectors, in_scope, self.recommender.vocab,
                            self.recommender.names, "stored item")
        pool.features["vector_codes"], pool.features["vector_scale"] = codes, scales
        return self.recommender.prepared(pool)

    def _pool(self, ids: list, results: list[Classification]) -> Pool:
        return self.recommender.prepared(Pool.of(ids, results, self.recommender.vocab, self.recommender.names,
                                                 "stored item"))

    def _classifications(self, ids: list) -> list[Classification]:
        if not ids:
            return []
        found = {row[0]: row[1:] for row in self._by_ids(f"id, {COLUMNS}", ids)}
        return [_classification(*found[i], self.pool.vector[self._rows[i]]) for i in ids]  # memory mirrors the file


class _Transaction:
    """BEGIN ... COMMIT, or ROLLBACK where the block raised (and SQLite has not rolled back already)."""

    def __init__(self, db: sqlite3.Connection, begin: str):
        self.db, self.begin = db, begin

    def __enter__(self) -> None:
        self.db.execute(self.begin)

    def __exit__(self, kind, *_) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            self.db.execute("ROLLBACK")


# MIGRATIONS[v] takes a store of schema v to v + 1 (run in one transaction with the version bump).
MIGRATIONS = {1: Store._chunk_vectors_v1, 2: Store._int8_codes_v2}


def _row(c: Classification) -> tuple:
    """A result as the item columns COLUMNS (numbers unrounded, so a re-opened store ranks exactly as before)."""
    return (c.primary, c.primary_prob, TAB.join(t for t, _ in c.tags),
            np.array([p for _, p in c.tags], dtype=np.float32).tobytes(), c.index, int(c.in_scope), c.scope_score)


def _classification(primary: str, prob: float, tags: str, tag_probs: bytes, index: float, in_scope: int,
                    scope_score: float, vector: np.ndarray) -> Classification:
    vector = np.array(vector, dtype=np.float32)
    vector.flags.writeable = False
    return Classification(primary, prob, tuple(zip(tags.split(TAB) if tags else [],
                                                    np.frombuffer(tag_probs, dtype=np.float32).tolist())),
                          index, vector, bool(in_scope), scope_score)
