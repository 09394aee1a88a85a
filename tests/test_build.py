"""`edge-rec-export build` end to end on a tiny labelled set and click log made here, with the tiny teacher; and
every input format's bad rows, each a one-line error naming file and line."""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TITLES, tiny_teacher
from edge_rec import ContentClassifier, EdgeRecommender, load_bundle
from edge_rec_export.cli import main as export_main
from edge_rec_export.training.train_classifier import native_bf16
from edge_rec_export.data.teacher_file import write_teacher
from edge_rec_export.data.texts_input import InputError, read_events, read_labelled, read_unlabelled

POOLS = {"people": TITLES[0] + TITLES[1], "money": TITLES[2] + TITLES[4], "world": TITLES[3] + TITLES[5]}


def _texts(n_per_label: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for label, pool in POOLS.items():
        chars = [c for c in pool if not c.isspace()]
        for i in range(n_per_label):
            rows.append({"id": f"{label}-{i}", "text": "".join(rng.choices(chars, k=rng.randint(6, 10))),
                         "label": label, "labels": [f"{label}/{i % 2}"], "source": "ab"[i % 2],
                         **({"public": True} if i % 10 == 9 else {})})
    return rows


def _clicks(rows: list[dict], users: int = 24, visits: int = 6, seed: int = 0) -> list[dict]:
    """Each user clicks the items of one label among the three shown per visit."""
    rng = random.Random(seed)
    events = []
    for u in range(users):
        liked = list(POOLS)[u % 3]
        for t in range(visits):
            for item in rng.sample(rows, 3) + [rng.choice([r for r in rows if r["label"] == liked])]:
                event = "click" if item["label"] == liked else "impression"
                events.append({"user": f"u{u}", "item": item["id"], "time": 1000 * t, "event": event})
    return events


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    tf, _ = tiny_teacher()
    teacher = write_teacher(tf, tmp / "teacher.e5s1")
    rows = _texts()
    texts = _write_jsonl(tmp / "texts.jsonl", rows)
    unlabelled = tmp / "more.txt"
    unlabelled.write_text("\n".join(r["text"][::-1] for r in rows[::3]), encoding="utf-8")
    clicks = _write_jsonl(tmp / "clicks.jsonl", _clicks(rows))
    english = tmp / "english.txt"
    english.write_text("The quick brown fox jumps over the lazy dog\nStocks rally as markets open\n", encoding="utf-8")
    out = tmp / "bundle"
    argv = ["build", "--texts", str(texts), "--unlabelled", str(unlabelled), "--clicks", str(clicks), "--out",
            str(out), "--work", str(tmp / "work"), "--quick", "--device", "cpu", "--teacher", str(teacher),
            "--labels", "world,money,people", "--out-of-scope", str(english), "--teacher-layers", "2"]
    log = io.StringIO()
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(log):
        assert export_main(argv) == 0
    # the bundle step times latency on 1 thread; the ranking step after it, in the same process, must get them all
    assert torch.get_num_threads() == threads
    return out, argv, rows, log.getvalue()


def test_build_writes_a_verified_bundle_with_figures_and_recipe(built):
    out, _, rows, _ = built
    bundle = load_bundle(out)  # verifies every file's bytes
    assert bundle.name == "bundle" and bundle.primary_labels == ["world", "money", "people"]  # --labels' order
    m = bundle.metrics
    # Public rows are held out whole and reported apart; test figures also per source.
    assert m["split"]["public"] == 18 and m["held_out"]["public"]["student_int8_onnx"]["n"] == 18
    assert m["held_out"]["test_a"]["tfidf_reference"]["n"] + m["held_out"]["test_b"]["tfidf_reference"]["n"] == \
        m["held_out"]["test"]["tfidf_reference"]["n"]
    measured = bundle.manifest["scope"]["measured"]
    assert measured["english_n"] == 2 and measured["english_flagged"] == 1.0  # Latin script: out of scope
    assert "--labels world,money,people" in bundle.manifest["recipe"]["command"]
    for key in ("tfidf_reference", "teacher_fp32_torch", "student_fp32_torch", "student_int8_onnx"):
        assert 0.0 <= m[key]["accuracy"] <= 1.0 and m[key]["n"] == m["tfidf_reference"]["n"] > 0
    # Three labels written in disjoint characters: the built classifier must separate them.
    assert m["student_int8_onnx"]["accuracy"] >= 0.8
    assert m["model"]["char_part"]["weight"] > 0
    assert bundle.manifest["recipe"]["quick"] is True and bundle.manifest["recipe"]["lang"] == "zh"
    assert bundle.manifest["recipe"]["top"] == 2  # --teacher-layers: every layer of the tiny teacher (quick's is 1)
    assert bundle.manifest["recipe"]["bf16"] == native_bf16()  # bf16 autocast where the CPU multiplies bf16
    assert bundle.manifest["scope"]["scripts"] == ["Han"]
    assert set(bundle.manifest["models"]) == {"classifier", "recall", "recall_user", "recall_items", "ranker"}
    # build_seconds is what every run of the build spent (kept in the work folder for a resumed build).
    work = Path(built[1][built[1].index("--work") + 1])
    assert bundle.manifest["recipe"]["build_seconds"] == int((work / "build_seconds.txt").read_text()) > 0
    # A finished step's resume state is removed; its output stays.
    assert (work / "teacher.pt").exists() and not (work / "teacher.resume.pt").exists()
    # The plan: every step estimated before it ran, and what it took.
    plan = bundle.manifest["recipe"]["plan"]
    assert list(plan) == ["cache", "teacher", "distill", "chars", "bundle", "ranking"]
    assert all(p["estimated_s"] >= 0 and p["actual_s"] is not None for p in plan.values())
    assert not (work / "student" / "resume.pt").exists()
    # The frozen-layer cache goes once every step reading it is done; its marker stays (a re-run skips the step).
    assert (work / "prep" / "cache" / "done.json").exists() and not list((work / "prep" / "cache").glob("*.npy"))
    # The character part refitted on training + validation titles ships, beside the yardstick refitted so.
    refit = m["refit"]
    assert refit["on"] == "train + val" and refit["train"] == m["split"]["train"] + m["split"]["val"]
    assert "val" not in refit and 0.0 <= refit["test"]["accuracy"] <= 1.0
    assert refit["tfidf_reference"]["train"] == refit["train"] and "val" not in refit["tfidf_reference"]
    # The ranking step's guarantee: what shipped and why, judged on validation against the baselines.
    ranking = m["ranking"]
    assert ranking["guarantee"]["shipped"] and ranking["guarantee"]["verdict"]
    shipped, popularity = ranking["guarantee"]["val"], ranking["baselines"]["popularity"]["val"]
    if (popularity["ndcg@10"], popularity["gauc"]) >= (shipped["ndcg@10"], shipped["gauc"]):
        assert "below popularity" in ranking["guarantee"]["verdict"] or "lost to popularity" in \
            ranking["guarantee"]["verdict"]
    assert bundle.pipeline["prior"] in ("index", "popularity")
    assert len(bundle.manifest["ranking"]["items"]) == len(bundle.manifest["ranking"]["popularity"]) > 0
    clf = ContentClassifier(bundle)
    assert clf.classify([rows[0]["text"]])[0].primary in POOLS


def test_built_bundle_recommends(built):
    out, _, rows, _ = built
    rec = EdgeRecommender(out)
    history = [{"id": r["id"], "text": r["text"]} for r in rows if r["label"] == "money"][:5]
    items = [{"id": r["id"], "text": r["text"]} for r in rows[1::4]]
    top = rec.recommend({"interest_tags": [], "history": history}, items, k=5)
    assert len(top) == 5 and len({r.id for r in top}) == 5


@pytest.mark.slow  # a second whole build and a `rank` after it (~35 s): CI runs it with the other slow-marked tests
def test_classify_only_bundle_says_so(tmp_path, capsys):
    from edge_rec.bundle import BundleError
    from edge_rec.cli import main as cli_main

    tf, _ = tiny_teacher()
    rows = [{k: v for k, v in r.items() if k != "labels"} for r in _texts(40)]  # no secondary labels: no tags
    texts = _write_jsonl(tmp_path / "texts.jsonl", rows)
    out = tmp_path / "bundle"
    assert export_main(["build", "--texts", str(texts), "--out", str(out), "--work", str(tmp_path / "work"),
                        "--quick", "--device", "cpu", "--teacher", str(write_teacher(tf, tmp_path / "t.e5s1")),
                        "--fp32"]) == 0
    capsys.readouterr()
    assert load_bundle(out).manifest["recipe"]["bf16"] is False  # --fp32: no bf16 autocast whatever the CPU
    assert cli_main(["info", str(out)]) == 0
    assert "can: classify only" in capsys.readouterr().out
    with pytest.raises(BundleError, match="can classify but not recommend"):
        EdgeRecommender(out)
    r = ContentClassifier(out).classify([rows[0]["text"]])[0]
    assert load_bundle(out).tags == [] and r.tags == () and r.primary in POOLS
    m = load_bundle(out).metrics["student_int8_onnx"]
    assert m["tag_micro_f1"] is None and m["index_mae"] is None  # no targets: no figure, and no NaN in the manifest
    # A click log later: `rank` adds the recall and ranking models, the classifier untouched.
    classifier = {k: v for k, v in load_bundle(out).manifest["files"].items() if k.startswith("classifier")}
    clicks = _write_jsonl(tmp_path / "clicks.jsonl", _clicks(rows))
    assert export_main(["rank", "--bundle", str(out), "--texts", str(texts), "--clicks", str(clicks),
                        "--work", str(tmp_path / "ranking"), "--epochs", "1"]) == 0
    bundle = load_bundle(out)
    assert {k: v for k, v in bundle.manifest["files"].items() if k.startswith("classifier")} == classifier
    assert bundle.manifest["recipe"]["inputs"]["clicks"] == str(clicks)
    assert bundle.manifest["recipe"]["ranking_command"].startswith("edge-rec-export rank --bundle")
    assert bundle.manifest["recipe"]["ranking_seconds"] >= 0  # the build's time and then what `rank` took
    assert len(EdgeRecommender(out).recommend({"interest_tags": [], "history": []},
                                              [{"id": r["id"], "text": r["text"]} for r in rows[:8]], k=3)) == 3
    assert export_main(["rank", "--bundle", str(tmp_path / "nothing"), "--texts", str(texts), "--clicks",
                        str(clicks)]) == 2


def test_the_build_prints_its_plan_then_the_time_left_after_each_step(built):
    said = built[3]
    plan = said[said.index("plan ("):].splitlines()
    assert "threads" in plan[0] and [line.split()[0] for line in plan[1:8]] == [
        "cache", "teacher", "distill", "chars", "bundle", "ranking", "total"]
    assert said.count("the build has about") >= 5  # after every step but the last
    assert " items: ~" in said and "for the ranking models" in said  # the ranking estimate revised from the log


def test_the_time_left_scales_the_steps_to_come_by_how_the_finished_ones_went():
    from edge_rec_export.build_plan import Plan, Probe

    plan = Plan(Probe(1e-3, 3e-3, 5e-4, 0.1, 0.05, 2), {"a": 10.0, "b": 20.0, "c": 30.0})
    assert plan.left() == 60.0
    plan.finished("a", 20.0)  # twice as slow as estimated
    assert plan.left() == 100.0
    plan.skip("b")  # done by an earlier run
    assert plan.left() == 60.0 and "b" not in plan.to_dict()
    plan.revise("ranking", 100.0)  # another probe's estimate: not scaled by the classifier steps
    assert plan.left() == 160.0


def test_the_ranking_estimate_counts_an_epoch_as_its_sampled_rows_at_most():
    from edge_rec_export.build_plan import Probe, ranking_seconds

    probe = Probe(1e-3, 3e-3, 5e-4, 0.1, 0.05, 2)
    whole = ranking_seconds(probe, 100_000, 10)
    assert ranking_seconds(probe, 100_000, 10, 200_000) == whole  # the log fits in an epoch
    assert ranking_seconds(probe, 400_000, 10, 200_000) == ranking_seconds(probe, 200_000, 10) == 2 * whole


def test_the_ranking_estimate_counts_the_ease_baselines_cubic_in_the_catalogue():
    from edge_rec_export.build_plan import INVERSE_PROBE_ITEMS, Probe, ranking_seconds
    from edge_rec_export.training.ranking_baselines import EASE_MAX_ITEMS

    probe = Probe(1e-3, 3e-3, 5e-4, 0.1, 0.05, 2)
    models = ranking_seconds(probe, 100_000, 10)
    ease = ranking_seconds(probe, 100_000, 10, items=INVERSE_PROBE_ITEMS) - models
    assert ease > 0
    assert ranking_seconds(probe, 100_000, 10, items=2 * INVERSE_PROBE_ITEMS) - models == pytest.approx(8 * ease)
    assert ranking_seconds(probe, 100_000, 10, items=EASE_MAX_ITEMS + 1) == models  # the builder skips EASE^R there


def test_rerun_skips_finished_steps(built, capsys):
    _, argv, *_ = built
    assert export_main(argv) == 0
    said = capsys.readouterr().out
    assert said.count(": done") == 6  # prepare, cache, teacher, student, character part, the bundle


def test_a_rerun_with_another_recipe_stops_before_reusing_the_work(built, capsys):
    out, argv, *_ = built
    before = (out / "manifest.json").stat().st_mtime
    other = argv[:argv.index("--teacher-layers") + 1] + ["1"] + argv[argv.index("--teacher-layers") + 2:]
    assert export_main(other) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "holds a build made with top 2 (now 1)" in err and "--work" in err
    assert (out / "manifest.json").stat().st_mtime == before


@pytest.mark.slow  # re-runs the later steps of a build (~50 s): CI runs it with the other slow-marked tests
def test_a_step_redone_redoes_the_steps_after_it(built, capsys):
    out, argv, *_ = built
    work = Path(argv[argv.index("--work") + 1])
    before = (out / "manifest.json").stat().st_mtime
    shutil.rmtree(work / "student_chars")  # e.g. to fit the character part again
    assert export_main(argv) == 0
    said = capsys.readouterr().out
    assert said.count(": done") == 4 and "== add the character part\n" in said  # the bundle is not kept stale
    assert (out / "manifest.json").stat().st_mtime > before
    os.utime(work / "student" / "model.json")  # a newer student: the character part and the bundle follow it
    assert export_main(argv) == 0
    assert capsys.readouterr().out.count(": done") == 4
    shutil.rmtree(work / "student")  # distillation again: it reads the frozen-layer cache, removed after the build
    assert export_main(argv) == 0
    said = capsys.readouterr().out
    assert "== the frozen-layer cache, again" in said and "fine-tune the teacher (top 2 layers): done" in said
    assert "== distill a" in said and not list((work / "prep" / "cache").glob("*.npy"))


@pytest.mark.parametrize("content, message", [
    ('{"text": "a", "label": "x"}\n{"text": "", "label": "y"}\n', ":2: 'text' must be a non-empty string"),
    ('{"text": "a"}\n', ":1: 'label' must be a non-empty string or integer"),
    ('{"text": "a", "label": "x", "index": 2}\n', ":1: 'index' must be a number in [0, 1]"),
    ('{"text": "a", "label": "x", "labels": 5}\n', ":1: 'labels' must be a list of strings"),
    ('{"text": "a", "label": "x", "id": 1}\n{"text": "b", "label": "y", "id": "1"}\n', ":2: id '1' is already used"),
    ('not json\n', ":1: not valid JSON"),
    ('[1, 2]\n', ":1: expected a JSON object"),
    ('{"text": "a", "label": "x", "public": "maybe"}\n', ":1: 'public' must be true or false"),
    ('{"text": "a", "label": "x", "source": ["s"]}\n', ":1: 'source' must be a non-empty string"),
])
def test_bad_labelled_rows_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "t.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        read_labelled(path)


def test_csv_inputs_and_their_errors(tmp_path):
    good = tmp_path / "t.csv"
    good.write_text("text,label,labels,keywords\n你好世界,a,x|y,k1,\n再见,b,,\n", encoding="utf-8")
    rows = read_labelled(good)
    assert [(r.text, r.label, r.labels, r.line) for r in rows] == [("你好世界", "a", ["x", "y"], 2), ("再见", "b", [], 3)]
    bad = tmp_path / "b.csv"
    bad.write_text("text,label\n你好,a\n,b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"b.csv:3: 'text'"):
        read_labelled(bad)
    with pytest.raises(InputError, match="unknown file type '.xml'"):
        read_labelled(tmp_path / "x.xml") if (tmp_path / "x.xml").write_text("<a/>") else None
    latin1 = tmp_path / "l.csv"
    latin1.write_bytes("text,label\ncaf\xe9,a\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_labelled(latin1)
    with pytest.raises(InputError, match="no such file"):
        read_unlabelled(tmp_path / "missing.txt")


def test_click_log_errors(tmp_path):
    path = tmp_path / "c.jsonl"
    cases = [('{"user": "u", "item": "i1", "time": 1}', ":1: missing 'event'"),
             ('{"user": "u", "item": "zz", "time": 1, "event": "click"}', ":1: item 'zz' is not the id"),
             ('{"user": "u", "item": "i1", "time": "noon", "event": "click"}', ":1: 'time' must be a number"),
             ('{"user": "u", "item": "i1", "time": 1, "event": "poke"}', ":1: unknown event 'poke'")]
    for content, message in cases:
        path.write_text(content + "\n", encoding="utf-8")
        with pytest.raises(InputError, match=message):
            read_events(path, {"i1"})


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    path = _write_jsonl(tmp_path / "t.jsonl", [{"text": "只有一个", "label": "a"}, {"text": "标签", "label": "a"}])
    assert export_main(["build", "--texts", str(path), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "only one label ('a')" in err and not (tmp_path / "b").exists()


def test_teacher_layers_below_one_is_one_line(tmp_path, capsys):
    texts = _write_jsonl(tmp_path / "t.jsonl", _texts(5))
    assert export_main(["build", "--texts", str(texts), "--out", str(tmp_path / "b"), "--work", str(tmp_path / "w"),
                        "--teacher-layers", "0", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--teacher-layers must be 1 or more" in err and not (tmp_path / "w").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has CUDA")
def test_device_cuda_without_cuda_stops_before_any_work(tmp_path, capsys):
    texts = _write_jsonl(tmp_path / "t.jsonl", _texts(5))
    assert export_main(["build", "--texts", str(texts), "--out", str(tmp_path / "b"), "--work", str(tmp_path / "w"),
                        "--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "sees no CUDA device" in err and not (tmp_path / "w").exists()


def test_a_missing_teacher_file_is_one_line(tmp_path, capsys):
    texts = _write_jsonl(tmp_path / "t.jsonl", _texts(5))
    assert export_main(["build", "--texts", str(texts), "--out", str(tmp_path / "b"), "--work", str(tmp_path / "w"),
                        "--device", "cpu", "--teacher", str(tmp_path / "none.e5s1")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("edge-rec-export: error:") and "none.e5s1" in err[-1] and "Traceback" not in "".join(err)


@pytest.mark.parametrize("labels, message", [
    ("money,people", ":1: label 'world' is not in --labels"),
    ("world,money,people,sport", "--labels: ['sport'] has no text"),
    ("world,money,people,money", "--labels: ['money'] listed twice"),
])
def test_labels_order_must_list_each_label_once(tmp_path, capsys, labels, message):
    texts = _write_jsonl(tmp_path / "t.jsonl", [{"text": "天下大事", "label": "world"}] + _texts(5))
    assert export_main(["build", "--texts", str(texts), "--out", str(tmp_path / "b"), "--labels", labels]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "b").exists()


def test_quick_keeps_every_event_of_a_sample_of_users():
    from edge_rec_export.build import users_sample
    from edge_rec_export.data.texts_input import Event

    events = [Event(f"u{u}", f"i{k}", k, k % 2 == 0) for u in range(40) for k in range(3)]
    kept = users_sample(events, 10, say=lambda *_: None)
    users = {e.user for e in kept}
    assert len(users) == 10 and len(kept) == 30 and kept == [e for e in events if e.user in users]
    assert users_sample(events, 10, say=lambda *_: None) == kept and users_sample(events, 40) is events


def test_out_must_be_new_empty_or_a_bundle(tmp_path, capsys):
    texts = _write_jsonl(tmp_path / "t.jsonl", _texts(5))
    mine = tmp_path / "my-folder"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert export_main(["build", "--texts", str(texts), "--out", str(mine)]) == 2
    assert "is not a bundle" in capsys.readouterr().err and (mine / "notes.txt").read_text() == "keep me"


def test_click_log_from_events_holds_out_the_last_clicked_visits():
    from edge_rec_export.data.interactions import ItemTable, from_events
    from edge_rec_export.data.texts_input import Event

    items = ItemTable.build([f"i{k}" for k in range(30)], [[1]] * 30, np.zeros(30), None, ["a"], 2)
    events = [Event("u", f"i{t}", float(t), True) for t in range(5)] + [Event("u", "i9", 2.0, False)]
    log = from_events(events, items, "t", eval_negatives=10)
    assert len(log.train) == 3 and len(log.val) == len(log.test) == 1
    test = log.test[0]
    assert test.shown[0] == items.ids.index("i4") and len(test.shown) == 11 and test.clicks.sum() == 1
    assert list(test.history) == [items.ids.index(f"i{k}") for k in range(4)]
    assert not set(test.shown[1:]) & {items.ids.index(f"i{k}") for k in (0, 1, 2, 3, 4, 9)}
    visit_2 = log.train[2]  # i2 clicked and i9 shown, at time 2
    assert list(visit_2.clicks) == [1.0, 0.0] and visit_2.real is None


def test_a_long_view_joins_the_history_and_is_never_a_negative():
    """long_view (consumed without a click, as a film rated low): no training row of its own, never a skip nor a
    sampled negative, and in every later visit's history."""
    from edge_rec_export.data.interactions import ItemTable, from_events
    from edge_rec_export.data.texts_input import Event

    items = ItemTable.build([f"i{k}" for k in range(30)], [[1]] * 30, np.zeros(30), None, ["a"], 2)
    row = {f"i{k}": items.ids.index(f"i{k}") for k in range(30)}
    events = [Event("u", "i0", 0.0, True), Event("u", "i1", 1.0, False, viewed=True),
              Event("u", "i2", 2.0, True), Event("u", "i8", 2.0, False), Event("u", "i8", 2.0, False, viewed=True),
              Event("u", "i3", 3.0, True), Event("u", "i4", 4.0, True)]
    log = from_events(events, items, "t", negatives=20, eval_negatives=20)
    assert [v.time for v in log.train] == [0, 2] and [v.time for v in log.val] == [3] and len(log.test) == 1
    visit_2 = log.train[1]
    assert visit_2.shown[0] == row["i2"] and visit_2.clicks.sum() == 1 and visit_2.real == 1
    assert list(visit_2.history) == [row["i0"], row["i1"]]
    for v in (*log.train, *log.val, *log.test):
        assert not {row["i1"], row["i8"]} & set(v.shown[v.clicks == 0].tolist())
    assert list(log.test[0].history) == [row[i] for i in ("i0", "i1", "i2", "i8", "i3")]


def test_movielens_inputs_from_either_release_layout(tmp_path):
    """The same texts and click log from ml-latest-small's CSVs and from ml-100k's files: a second MovieLens release
    goes through the documented inputs without code changes; they read back through the builder's own readers."""
    from edge_rec_export.data.texts_input import read_events, read_labelled
    from edge_rec_export.data.validation_inputs import write

    latest, old = tmp_path / "ml-latest-small", tmp_path / "ml-100k"
    latest.mkdir(), old.mkdir()
    (latest / "movies.csv").write_text('movieId,title,genres\n1,Toy Story (1995),Animation|Comedy\n'
                                       '2,"Heat, The (1995)",(no genres listed)\n', encoding="utf-8")
    (latest / "ratings.csv").write_text("userId,movieId,rating,timestamp\n7,1,4.5,100\n7,2,2.0,90\n",
                                        encoding="utf-8")
    (old / "u.genre").write_text("unknown|0\nAnimation|1\nComedy|2\n\n", encoding="latin-1")
    (old / "u.item").write_text("1|Toy Story (1995)|01-Jan-1995||url|0|1|1\n2|Heat, The (1995)|x||url|1|0|0\n",
                                encoding="latin-1")
    (old / "u.data").write_text("7\t1\t5\t100\n7\t2\t2\t90\n", encoding="latin-1")
    read = {}
    for root in (latest, old):
        write(root, tmp_path / "out" / root.name, ["movielens"])
        texts = read_labelled(tmp_path / "out" / root.name / "movielens" / "texts.jsonl")
        events = read_events(tmp_path / "out" / root.name / "movielens" / "clicks.jsonl", {t.id for t in texts})
        read[root.name] = ([(t.id, t.text, t.label, t.labels) for t in texts], events)
    assert read["ml-latest-small"] == read["ml-100k"]
    texts, events = read["ml-100k"]
    assert texts[0] == ("1", "Toy Story (1995)", "Animation", ["Comedy"]) and texts[1][2] == "unknown"
    assert [(e.item, e.clicked, e.viewed) for e in events] == [("1", True, False), ("2", False, True)]


def test_a_click_log_in_the_documented_inputs_reads_with_item_ids_and_click_rates(tmp_path):
    """`train_ranking events --texts T --clicks C`: item labels are the texts' labels plus the item's own id label;
    c is each item's smoothed click rate over the events before the first held-out visit only."""
    import json

    from edge_rec_export.data.interactions import read_events_log

    texts, clicks = tmp_path / "texts.jsonl", tmp_path / "clicks.jsonl"
    texts.write_text("".join(json.dumps({"id": f"m{k}", "text": f"film {k}", "label": "drama" if k % 2 else "comedy",
                                         "labels": ["war"] if k == 3 else []}) + "\n" for k in range(12)))
    events = [{"user": "u", "item": f"m{k}", "time": k, "event": "click"} for k in range(10)]
    events += [{"user": "v", "item": "m3", "time": 0.5, "event": "impression"},
               {"user": "v", "item": "m11", "time": 9.5, "event": "impression"}]
    clicks.write_text("".join(json.dumps(e) + "\n" for e in events))
    log = read_events_log(texts, clicks)
    items = log.items
    r3 = items.ids.index("m3")
    assert [items.label_names[k - 1] for k in items.labels[r3] if k] == ["item:m3", "drama", "war"]
    assert len(log.test) == len(log.val) == 1 and log.val[0].time == 8  # held out from time 8 on
    prior = 8 / 9  # before time 8: 8 clicks (m0..m7) in 9 events (m3 also skipped once, by v)
    assert np.isclose(items.index[r3], (1 + 5 * prior) / (2 + 5))
    assert np.isclose(items.index[items.ids.index("m0")], (1 + 5 * prior) / (1 + 5))
    assert np.isclose(items.index[items.ids.index("m9")], prior)  # its events are all held out
    # The ranking commands read the same log through their shared flags, and the baselines' command runs on it.
    from edge_rec_export.training import ranking_baselines

    report = tmp_path / "baselines.json"
    ranking_baselines.main(["events", "--texts", str(texts), "--clicks", str(clicks), "--out", str(report)])
    result = json.loads(report.read_text())
    assert result["log"] == log.name and result["baselines"]["popularity"]["test"]["n"] == len(log.test[0].shown)
