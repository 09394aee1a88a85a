"""edge_rec.Store: catalogue and behaviour in SQLite, recommendations that follow the last event."""
import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import SHARED_DATA, TITLES
from edge_rec import EdgeRecommender, Item, Store
from edge_rec.store import HIDE_LABEL_AFTER, StoreError

ITEMS = [{"id": f"c{i}", "text": t + f" {i}"} for i, t in enumerate(TITLES * 4)]


@pytest.fixture()
def store(rec_bundle, tmp_path):
    s = Store(tmp_path / "feed.db", rec_bundle)
    s.add(ITEMS)
    yield s
    s.close()


def test_catalogue_is_classified_once_and_survives_reopening(store, rec_bundle, tmp_path):
    assert len(store) == len(ITEMS) and store.add(ITEMS) == 0  # same texts: nothing classified again
    store.record("u", "c1", "click")
    before = [r.to_dict() for r in store.recommend("u", k=8)]
    store.close()
    again = Store(tmp_path / "feed.db", rec_bundle)
    assert len(again) == len(ITEMS) and [r.to_dict() for r in again.recommend("u", k=8)] == before
    # The same pipeline as EdgeRecommender over the same candidates and history (minus the clicked item).
    direct = EdgeRecommender(rec_bundle).recommend({"history": [ITEMS[1]]}, [x for x in ITEMS if x["id"] != "c1"], k=8)
    assert [(r.id, round(r.score, 5)) for r in direct] == [(r["id"], round(r["score"], 5)) for r in before]
    assert again.add([{"id": "c1", "text": "故宫如何修文物 新"}]) == 1  # a new text under a known id: afresh
    assert len(again) == len(ITEMS)
    again.close()


def test_recommendations_follow_every_event(store):
    first = store.recommend("u", k=5)
    top = first[0].id
    store.record("u", top, "click")
    after = store.recommend("u", k=len(ITEMS))
    assert top not in [r.id for r in after]  # clicked: not recommended again
    store.record("u", after[0].id, "impression")
    assert after[0].id in [r.id for r in store.recommend("u", k=len(ITEMS))]
    assert after[0].id not in [r.id for r in store.recommend("u", k=len(ITEMS), exclude_seen=True)]
    assert [e for _, e, _ in store.events("u")] == ["click", "impression"]
    assert store.forget_user("u") == 2 and store.events("u") == []
    assert store.recommend("u", k=5)[0].id == top  # back to a user with no history


def test_removed_items_are_gone_from_memory_and_file(store, rec_bundle):
    store.record("u", "c3", "click")
    assert store.remove(["c0", "c3", "unknown"]) == 2 and len(store) == len(ITEMS) - 2 and "c0" not in store
    assert {"c0", "c3"}.isdisjoint(r.id for r in store.recommend("u", k=len(ITEMS)))
    assert [i for i, _, _ in store.events("u")] == ["c3"]  # the log keeps what happened
    reopened = Store(store.path, rec_bundle)
    assert len(reopened) == len(ITEMS) - 2 and "c1" in reopened
    reopened.close()


def test_hide_removes_the_item_and_then_demotes_its_label(store):
    ranked = store.recommend("u", k=len(ITEMS))
    victim = ranked[0]
    store.record("u", victim.id, "hide")
    assert victim.id not in [r.id for r in store.recommend("u", k=len(ITEMS))]
    same = [r for r in ranked[1:] if r.primary == victim.primary][:HIDE_LABEL_AFTER - 1]
    for r in same:
        store.record("u", r.id, "dislike")
    after = store.recommend("u", k=len(ITEMS))
    others = [r for r in after if r.primary != victim.primary and victim.primary not in r.tags]
    assert [r.primary for r in after[:len(others)]] == [r.primary for r in others]  # the hidden category sinks


def test_bad_events_and_items_are_refused(store):
    with pytest.raises(ValueError, match="unknown event 'clik'"):
        store.record("u", "c1", "clik")
    with pytest.raises(ValueError, match="not in the store"):
        store.record("u", "nope", "click")
    with pytest.raises(ValueError, match="neither 'text'"):
        store.add([{"id": "x"}])
    with pytest.raises(ValueError, match="has no 'text'"):  # the store classifies texts itself
        store.add([Item("x", classification=store.recommender.classifier.classify("新闻")[0])])
    with pytest.raises(ValueError, match="item 1"):
        store.add([{"id": "y", "text": "新闻"}, {"text": "no id"}])
    with pytest.raises(ValueError, match="text 1 is empty"):
        store.add([{"id": "z", "text": "新闻 z"}, {"id": "w", "text": "  "}])
    assert store.info()["items"] == len(ITEMS) + 2  # the good items before each bad one were kept


def test_another_bundle_is_refused_until_reclassified(store, tiny_export, tiny_ranking, tmp_path):
    from conftest import make_bundle
    from edge_rec_export.bundle.package_ranking import add_to_bundle
    from conftest import RANK_LABELS

    other = make_bundle(tmp_path / "other", tiny_export[2], primary_labels=["a", "b", "c", "d", "e"], name="other")
    add_to_bundle(other, {r: tiny_ranking[r] for r in ("recall", "ranker")}, {"ranking": {"labels": RANK_LABELS}})
    store.close()
    with pytest.raises(StoreError, match="classified with bundle 'tiny'.*reclassify"):
        Store(store.path, other)
    moved = Store(store.path, other, reclassify=True)
    assert len(moved) == len(ITEMS) and moved.recommend("u", k=3)[0].primary in "abcde"
    moved.close()


def test_not_a_store_and_newer_schema(rec_bundle, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(StoreError, match="not a store"):
        Store(junk, rec_bundle)
    import sqlite3
    newer = tmp_path / "newer.db"
    sqlite3.connect(newer).execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer"):
        Store(newer, rec_bundle)


def test_a_schema_1_store_is_migrated(store, rec_bundle, monkeypatch):
    """A store as schema 1 laid it out (each vector inside its item row) opens, migrated, with every item, vector and
    event kept; removing, replacing and adding items across chunks keeps every id with its own vector."""
    import sqlite3

    import numpy as np

    import edge_rec.store
    from edge_rec.semantic import int8_codes

    monkeypatch.setattr(edge_rec.store, "CHUNK_ROWS", 7)  # many chunks from a few dozen items
    store.record("u", "c2", "click")
    before = [r.to_dict() for r in store.recommend("u", k=8)]
    vectors = dict(zip(store.pool.ids, store.pool.vector))
    store.close()
    db = sqlite3.connect(store.path)
    db.execute("ALTER TABLE items ADD COLUMN vector BLOB")
    db.executemany("UPDATE items SET vector = ? WHERE id = ?", [(v.tobytes(), i) for i, v in vectors.items()])
    db.executescript("DROP INDEX items_by_chunk; ALTER TABLE items DROP COLUMN chunk; DROP TABLE vectors; "
                     "PRAGMA user_version = 1;")
    db.close()
    migrated = Store(store.path, rec_bundle)
    assert [r.to_dict() for r in migrated.recommend("u", k=8)] == before
    assert sqlite3.connect(store.path).execute("PRAGMA user_version").fetchone()[0] == edge_rec.store.SCHEMA_VERSION
    assert migrated.remove(["c5", "c9"]) == 2
    assert migrated.add([ITEMS[5], {"id": "c6", "text": "新的标题 6"}, {"id": "n1", "text": "另一个新标题"}]) == 3
    expected = dict(zip(migrated.pool.ids, migrated.pool.vector))
    migrated.close()
    again = Store(store.path, rec_bundle)
    assert sorted(again.pool.ids) == sorted(expected) and len(again) == len(ITEMS)
    for i, v in zip(again.pool.ids, again.pool.vector):
        np.testing.assert_array_equal(v, expected[i])
    np.testing.assert_array_equal(again.pool.features["vector_codes"], int8_codes(again.pool.vector)[0])
    assert [i for i, _, _ in again.events("u")] == ["c2"]
    again.close()


def test_a_schema_2_store_gains_its_int8_codes(store, rec_bundle, monkeypatch):
    """Schema 2 kept no int8 codes: opened, each chunk gets them (what int8_codes makes of its vectors) and the store
    recommends as before; a re-open reads them from the file instead of quantizing again."""
    import sqlite3

    import numpy as np

    from edge_rec.semantic import int8_codes

    store.record("u", "c2", "click")
    before = [r.to_dict() for r in store.recommend("u", k=8)]
    store.close()
    db = sqlite3.connect(store.path)
    db.executescript("ALTER TABLE vectors DROP COLUMN codes; ALTER TABLE vectors DROP COLUMN scales; "
                     "PRAGMA user_version = 2;")
    db.close()
    migrated = Store(store.path, rec_bundle)
    assert [r.to_dict() for r in migrated.recommend("u", k=8)] == before
    migrated.close()

    def quantized(vectors):
        raise AssertionError("opening a schema-3 store quantized its vectors again")

    monkeypatch.setattr("edge_rec.recommender.int8_codes", quantized)
    again = Store(store.path, rec_bundle)
    codes, scale = int8_codes(again.pool.vector)
    np.testing.assert_array_equal(again.pool.features["vector_codes"], codes)
    np.testing.assert_array_equal(again.pool.features["vector_scale"], scale)
    again.close()


def test_retention_bounds_the_log(store):
    for i in range(6):
        store.record("u", f"c{i}", "impression", time=time.time() - 1000 * i)
    store.record("v", "c1", "click")
    assert store.prune(max_events_per_user=4) == 2
    assert store.prune(max_age_s=1500) == 2  # the 2000 s and 3000 s old ones
    assert len(store.events("u")) == 2 and len(store.events("v")) == 1


def test_readers_and_a_writer_at_once(store):
    errors = []

    def read():
        try:
            for _ in range(20):
                assert len(store.recommend("u", k=3)) == 3
        except Exception as e:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for i in range(40):
        store.record("u", f"c{i % len(ITEMS)}", "impression")
    for t in threads:
        t.join()
    assert not errors and len(store.events("u")) == 40


WRITER = """
import sys, time
from edge_rec import Store
s = Store(sys.argv[1], sys.argv[2])
for n in range(1000):
    s.add([{"id": f"k{n}-{j}", "text": f"故宫如何修文物 {n} {j}"} for j in range(8)], chunk=8)
    print(n, flush=True)
"""


def test_a_killed_writer_loses_nothing_committed(rec_bundle, tmp_path):
    db = tmp_path / "kill.db"
    Store(db, rec_bundle).close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(rec_bundle)], stdout=subprocess.PIPE,
                            text=True)
    done = [int(proc.stdout.readline()) for _ in range(5)]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    reopened = Store(db, rec_bundle)
    assert len(reopened) >= 8 * (done[-1] + 1) and len(reopened) % 8 == 0  # whole chunks only
    reopened.close()


@pytest.mark.skipif(not (SHARED_DATA / "toutiao_partial").is_dir(), reason="../shared/data not present")
def test_the_shipped_bundle_follows_clicks_and_hides(tmp_path):
    from edge_rec import load_bundle
    from edge_rec_export.data.news_data import bundle_splits

    bundle = load_bundle()
    test = bundle_splits(SHARED_DATA, bundle.metrics)[2][:1500]
    labels = bundle.primary_labels
    store = Store(tmp_path / "feed.db", bundle)
    store.add({"id": f"t{i}", "text": e.title} for i, e in enumerate(test))
    sports = [f"t{i}" for i, e in enumerate(test) if labels[e.label] == "sports"]
    for item in sports[:10]:
        store.record("fan", item, "click")
    top = store.recommend("fan", k=10)
    assert sum(r.primary == "sports" for r in top) >= 6, [r.primary for r in top]
    for item in sports[10:10 + HIDE_LABEL_AFTER]:
        store.record("fan", item, "hide")
    assert not [r for r in store.recommend("fan", k=10) if r.primary == "sports"]
    store.close()


def test_cli_store_session(rec_bundle, tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "edge_rec", "store", "--db", str(tmp_path / "cli.db"),
                               "--bundle", str(rec_bundle), *args], capture_output=True, text=True)

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in ITEMS[:10]) + '{"id": "bad", "text": ""}\n',
                     encoding="utf-8")
    out = run("add", str(items))
    assert out.returncode == 2 and f"{items}:11: id 'bad': text is empty" in out.stderr
    assert "the 10 new items before it were added" in out.stderr and "Traceback" not in out.stderr
    first = [json.loads(x) for x in run("recommend", "u", "--k", "3").stdout.splitlines()]
    assert len(first) == 3
    assert run("record", "u", first[0]["id"], "click").returncode == 0
    again = [json.loads(x)["id"] for x in run("recommend", "u", "--k", "3").stdout.splitlines()]
    assert first[0]["id"] not in again
    bad = run("record", "u", first[0]["id"], "clik")
    assert bad.returncode == 2 and bad.stderr.startswith("edge-rec: error: unknown event") and len(bad.stderr.splitlines()) == 1
    assert json.loads(run("info").stdout)["events"] == 1
    assert json.loads(run("forget", "u").stdout)["events_erased"] == 1
