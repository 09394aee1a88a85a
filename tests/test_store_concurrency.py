"""The store inside a real app (issue 35): threads racing on one Store, processes sharing one file, and every failure
one StoreError naming the file (CLI: one line, exit 2)."""
import json
import os
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import TITLES
from edge_rec import Store
from edge_rec.cli import main as cli_main
from edge_rec.store import StoreError

ITEMS = [{"id": f"c{i}", "text": t + f" {i}"} for i, t in enumerate(TITLES * 2)]


def memory_follows_file(store: Store, item_id) -> None:
    """The in-memory catalogue holds `item_id` iff the file does, with the vector of the file's text."""
    row = store._db.execute("SELECT text FROM items WHERE id = ?", (item_id,)).fetchone()
    assert (item_id in store._rows) == (row is not None)
    if row is not None:
        want = store.recommender.classifier.classify([row[0]])[0].vector
        np.testing.assert_array_equal(store.pool.vector[store._rows[item_id]], want)


def race(first, second) -> None:
    start = threading.Barrier(2)

    def run(f):
        start.wait()
        f()
    threads = [threading.Thread(target=run, args=(f,)) for f in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_two_threads_adding_one_id_leave_memory_as_the_file(rec_bundle, tmp_path):
    with Store(tmp_path / "race.db", rec_bundle) as store:
        for n in range(300):
            race(lambda: store.add([{"id": "x", "text": f"{TITLES[0]} a{n}"}]),
                 lambda: store.add([{"id": "x", "text": f"{TITLES[1]} b{n}"}]))
            memory_follows_file(store, "x")


def test_an_add_racing_a_remove_leaves_memory_as_the_file(rec_bundle, tmp_path):
    with Store(tmp_path / "race.db", rec_bundle) as store:
        store.add(ITEMS[:4])
        for n in range(300):
            race(lambda: store.add([{"id": "x", "text": f"{TITLES[2]} {n}"}]),
                 lambda: [store.remove(["x"]) for _ in range(5)])  # one of them lands between commit and memory
            memory_follows_file(store, "x")
            store.record("u", "c1", "click")
            store.recommend("u", k=3)  # never a KeyError from an item memory has and the file lacks


PROCESS = r"""
import json, sys, time
from edge_rec import Store
role, db, bundle, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
done, errors, seen_others, n = [], [], 0, 0
end = time.time() + seconds
while time.time() < end:
    try:
        if role.startswith("adder"):
            with Store(db, bundle) as store:
                while time.time() < end:
                    ids = [f"{role}-{n}-{j}" for j in range(3)]
                    store.add([{"id": i, "text": f"新闻 {i}"} for i in ids])
                    done += ids
                    n += 1
                    seen_others = max(seen_others, sum(1 for i in store.pool.ids if not str(i).startswith(role)))
        else:  # a recorder that re-opens the store again and again
            with Store(db, bundle) as store:
                items = [i for i in store.pool.ids]
                if items:
                    item = items[n % len(items)]
                    store.record("u", item, "click")
                    done.append(item)
                    store.recommend("u", k=5)
                seen_others = max(seen_others, len(items))
                n += 1
    except Exception as e:
        errors.append(f"{type(e).__name__}: {e}")
print(json.dumps({"done": done, "errors": errors, "seen_others": seen_others}))
"""


def run_processes(db, bundle, seconds: float) -> dict:
    Store(db, bundle).close()
    procs = {role: subprocess.Popen([sys.executable, "-c", PROCESS, role, str(db), str(bundle), str(seconds)],
                                    stdout=subprocess.PIPE, text=True) for role in ("adder-a", "adder-b", "recorder")}
    return {role: json.loads(p.communicate(timeout=seconds + 120)[0]) for role, p in procs.items()}


def check_processes(db, bundle, out: dict) -> None:
    assert all(not r["errors"] for r in out.values()), {k: r["errors"][:3] for k, r in out.items()}
    with Store(db, bundle, read_only=True) as store:
        for role in ("adder-a", "adder-b"):
            assert out[role]["done"] and all(i in store for i in out[role]["done"])  # every acknowledged write
            assert out[role]["seen_others"] > 0  # each adder saw the other's items without re-opening
        recorded = [i for i, e, _ in store.events("u")]
        assert recorded == out["recorder"]["done"] and out["recorder"]["seen_others"] > 0


def test_three_processes_share_one_file(rec_bundle, tmp_path):
    db = tmp_path / "shared.db"
    check_processes(db, rec_bundle, run_processes(db, rec_bundle, 6.0))


@pytest.mark.slow  # the 60-second run; CI runs it with the other slow-marked tests
def test_three_processes_share_one_file_for_a_minute(rec_bundle, tmp_path):
    db = tmp_path / "shared.db"
    check_processes(db, rec_bundle, run_processes(db, rec_bundle, 60.0))


def test_a_read_only_store_reads_and_refuses_writes(rec_bundle, tmp_path):
    db = tmp_path / "ro.db"
    with Store(db, rec_bundle) as store:
        store.add(ITEMS[:6])
        store.record("u", "c1", "click")
        want = [r.id for r in store.recommend("u", k=3)]
    with Store(db, rec_bundle, read_only=True) as store:
        assert [r.id for r in store.recommend("u", k=3)] == want and len(store) == 6
        for write in (lambda: store.add(ITEMS[6:7]), lambda: store.record("u", "c2", "click"),
                      lambda: store.remove(["c1"]), lambda: store.prune(max_events_per_user=1),
                      lambda: store.forget_user("u")):
            with pytest.raises(StoreError, match="opened read-only"):
                write()
    with pytest.raises(StoreError, match="no store file there"):
        Store(tmp_path / "missing.db", rec_bundle, read_only=True)


def test_a_locked_file_waits_then_fails_with_what_to_do(rec_bundle, tmp_path, monkeypatch):
    import edge_rec.store as store_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    db = tmp_path / "locked.db"
    store = Store(db, rec_bundle)
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process mid-write, for longer than the store waits
    with pytest.raises(StoreError, match=r"locked.* try again"):
        store.add(ITEMS[:2])
    other.execute("ROLLBACK")
    assert store.add(ITEMS[:2]) == 2 and len(store) == 2  # nothing was lost or half-written
    store.close()


def test_a_damaged_or_full_file_is_one_store_error(rec_bundle, tmp_path):
    db = tmp_path / "full.db"
    store = Store(db, rec_bundle)
    store.add(ITEMS[:2])
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages + 1}")  # the disk is full from here
    with pytest.raises(StoreError, match="disk is full"):
        store.add([{"id": f"big{i}", "text": TITLES[i % len(TITLES)] * 20 + str(i)} for i in range(300)])
    assert len(store) == 2 and all(i in store for i in ("c0", "c1"))
    store.close()
    damaged = tmp_path / "damaged.db"
    Store(damaged, rec_bundle).close()
    data = bytearray(damaged.read_bytes())
    data[100:4000] = os.urandom(3900)
    damaged.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="damaged or not a store"):
        Store(damaged, rec_bundle)


@pytest.mark.parametrize("call, error, message", [
    (lambda s: s.record("u", "c1", "click", time=float("nan")), ValueError, "finite number"),
    (lambda s: s.record("u", "c1", "click", time=-5.0), ValueError, ">= 0"),
    (lambda s: s.add([{"id": float("nan"), "text": "x"}]), TypeError, "str or an int"),
    (lambda s: s.add([{"id": 2 ** 64, "text": "x"}]), ValueError, "64 bits"),
    (lambda s: s.remove("c1"), TypeError, r"remove\(\[id\]\)"),
    (lambda s: s.prune(max_events_per_user=-3), ValueError, ">= 0"),
    (lambda s: s.prune(max_age_s=0), ValueError, "> 0"),
])
def test_bad_arguments_are_refused_before_any_write(rec_bundle, tmp_path, call, error, message):
    with Store(tmp_path / "args.db", rec_bundle) as store:
        store.add(ITEMS[:3])
        store.record("u", "c1", "click")
        with pytest.raises(error, match=message):
            call(store)
        assert len(store) == 3 and len(store.events("u")) == 1


def test_a_lone_surrogate_is_refused_and_the_items_before_it_kept(rec_bundle, tmp_path):
    with Store(tmp_path / "s.db", rec_bundle) as store:
        with pytest.raises(ValueError, match=r"item 2 .*lone surrogate"):
            store.add([*ITEMS[:2], {"id": "bad", "text": "abc\ud800"}, ITEMS[2]])
        assert len(store) == 2 and "c1" in store


def cli(args: list[str]) -> int:
    try:
        return cli_main(args)
    except SystemExit as e:  # argparse's own errors
        return e.code


@pytest.mark.parametrize("args, message", [
    (["--db", "{tmp}/missing.db", "info"], "no store file there"),
    (["--db", "/dev/null", "add", "{items}"], "not a store"),
    (["--db", "{tmp}/s.db", "record", "u", "c0", "click", "--time", "nan"], "finite number"),
    (["--db", "{tmp}/s.db", "prune", "--max-events", "-3"], "error"),
])
def test_cli_store_errors_are_one_line(rec_bundle, tmp_path, capsys, args, message):
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in ITEMS[:2]), encoding="utf-8")
    assert cli(["store", "--db", str(tmp_path / "s.db"), "--bundle", str(rec_bundle), "add", str(items)]) == 0
    capsys.readouterr()
    args = [a.format(tmp=tmp_path, items=items) for a in args]
    assert cli(["store", *args[:2], "--bundle", str(rec_bundle), *args[2:]]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_use_bundle_switches_all_or_nothing_and_rolls_back(rec_bundle, tiny_export, tiny_ranking, tmp_path,
                                                             monkeypatch):
    from conftest import RANK_LABELS, make_bundle
    from edge_rec_export.bundle.package_ranking import add_to_bundle

    other = make_bundle(tmp_path / "other", tiny_export[2], primary_labels=["a", "b", "c", "d", "e"], name="other")
    add_to_bundle(other, {r: tiny_ranking[r] for r in ("recall", "ranker")}, {"ranking": {"labels": RANK_LABELS}})
    with Store(tmp_path / "u.db", rec_bundle) as store:
        store.add(ITEMS[:8])
        store.record("u", "c1", "click")
        before = [r.id for r in store.recommend("u", k=3)]
        with pytest.raises(StoreError, match="reclassify=True"):
            store.use_bundle(other)  # other labels: refused, nothing changed
        assert [r.id for r in store.recommend("u", k=3)] == before
        from edge_rec.classifier import ContentClassifier

        def broken(self, texts):
            raise RuntimeError("the disk went away mid-way")
        monkeypatch.setattr(ContentClassifier, "classify_stream", broken)
        with pytest.raises(RuntimeError):
            store.use_bundle(other, reclassify=True)  # fails half-way: never half-switched
        monkeypatch.undo()
        assert store.recommender.bundle.name == "tiny" and [r.id for r in store.recommend("u", k=3)] == before
        store.use_bundle(other, reclassify=True)
        assert store.recommender.bundle.name == "other" and store.recommend("u", k=1)[0].primary in "abcde"
        store.use_bundle(rec_bundle, reclassify=True)  # rollback to the previous bundle
        assert [r.id for r in store.recommend("u", k=3)] == before
    with Store(tmp_path / "u.db", rec_bundle) as again:  # the file says which bundle it was classified with
        assert len(again) == 8


def test_a_large_add_works_where_sqlite_allows_only_999_parameters(rec_bundle, tmp_path):
    with Store(tmp_path / "many.db", rec_bundle) as store:
        store._db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # as on older or smaller SQLite builds
        assert store.add({"id": f"m{i}", "text": f"{TITLES[i % len(TITLES)]} {i}"} for i in range(1200)) == 1200
        assert len(store) == 1200
