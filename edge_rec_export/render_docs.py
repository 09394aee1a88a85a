"""Figures that cannot go stale: the tables of README.md and docs/ between `<!-- render:NAME -->` and
`<!-- /render -->` are written here from reports/*.json and the shipped bundle's manifest, never by hand; a test
(tests/test_docs.py) fails when a committed page differs from what this renders.

    python -m edge_rec_export.render_docs           # rewrite the rendered blocks
    python -m edge_rec_export.render_docs --check   # exit 1 naming each page that differs
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
BLOCK = re.compile(r"(<!-- render:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /render -->)", re.S)


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def report(name: str) -> dict:
    return json.loads((REPORTS / name).read_text(encoding="utf-8"))


def shipped() -> dict:
    return json.loads((ROOT / "assets" / "zh-news" / "manifest.json").read_text(encoding="utf-8"))


def table(header: list[str], rows: list[list]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]) + "\n"


def f4(x) -> str:
    return "-" if x is None else f"{x:.4f}"


# ---------------------------------------------------------------- the blocks
def default_bundle() -> str:
    m = shipped()
    metrics, scope = m["metrics"], m["scope"]
    test = metrics["held_out"]["test"]
    rows = [[label, f4(test[key]["accuracy"]), f4(test[key]["macro_f1"]), test[key]["n"]]
            for key, label in (("tfidf_reference", "TF-IDF + linear SVM (yardstick, never shipped)"),
                               ("teacher_fp32_torch", "teacher fp32 (torch)"),
                               ("student_fp32_torch", "student fp32 (torch)"),
                               ("student_int8_onnx", "**student INT8 (ONNX), shipped**"))]
    lat = metrics["latency"]
    measured = scope.get("measured", {})
    flagged = {k[:-len("_flagged")]: v for k, v in measured.items() if k.endswith("_flagged")}
    return (f"`assets/zh-news` ({m['name']}, {len(m['primary_labels'])} categories, {len(m['tags'])} tags), test "
            "split (held out, never trained or tuned on):\n\n"
            + table(["model", "accuracy", "macro-F1", "titles"], rows)
            + f"\nLatency, one {lat['tokens']}-token title, batch 1, 1 thread, measured at export: student INT8 "
              f"{lat['student_int8_onnx_p50_ms']} ms, teacher in torch {lat['teacher_fp32_torch_eager_p50_ms']} ms. "
              f"Scope: script share >= {scope['min_script_share']} and primary probability >= "
              f"{scope['min_primary_prob']} ({scope.get('calibrated_on', '')}); flagged: "
            + ", ".join(f"{k.replace('_', ' ')} {v:.2%}" for k, v in flagged.items()) + ".\n")


def knobs() -> str:
    from edge_rec.recommender import DEFAULTS

    pipeline = shipped()["pipeline"]
    meaning = {"recall_top": "D of the model-recall path", "tag_top": "D of the tag-match path",
               "semantic_top": "D of the semantic path (0 turns it off)", "semantic_mode": "max or mean cosine over "
               "the history's vectors", "match_g": "g > 0: weight of tag hits against c in m",
               "lam": "weight of the CTR p against the prior in R", "prior": "index (c) or popularity",
               "k": "how many to return", "max_interest_tags": "labels derived from the history when the user has "
               "no tags", "screen_share": "each recall path keeps at most this share of the pool (but at least k)",
               "out_of_scope": "last, drop or keep out-of-scope candidates"}
    rows = [[f"`{k}`", f"`{json.dumps(pipeline.get(k, v))}`", f"`{json.dumps(v)}`", meaning.get(k, "")]
            for k, v in DEFAULTS.items()]
    return table(["knob", "zh-news", "where a bundle sets none", "meaning"], rows)


VALIDATION_SETS = {  # report -> what the set is
    "build-ag-news.json": "AG News titles, English, 4 classes",
    "build-mind.json": "MIND slice, English news, with its click log",
    "build-kuairec.json": "KuaiRec captions, Chinese short video, 38 categories",
    "build-thucnews-unlabelled.json": "THUCNews titles, Chinese, 10 classes, FewCLUE unlabelled titles",
    "build-movielens.json": "MovieLens-100k film titles, genres, with its ratings as the click log",
}


def validation_sets() -> str:
    rows = []
    for name, what in VALIDATION_SETS.items():
        r = report(name)
        m, recipe = r["metrics"], r["recipe"]
        split = m["split"]
        shipped_key = f"student_{m['classifier_precision']}_onnx"
        val = m["held_out"]["val"]
        rows.append([what, f"{split['train']:,} / {split['val']:,} / {split['test']:,}",
                     f4(m["tfidf_reference"]["accuracy"]), f4(m["teacher_fp32_torch"]["accuracy"]),
                     f4(m["student_fp32_torch"]["accuracy"]),
                     f"**{f4(m[shipped_key]['accuracy'])}** ({m['classifier_precision']})",
                     f"{f4(val[shipped_key]['accuracy'])} vs {f4(val['tfidf_reference']['accuracy'])}",
                     refit_cell(m), f"{r['size_bytes'] / 1e6:.1f} MB",
                     f"{recipe.get('build_seconds', 0) / 60:.0f} min"
                     + (f" + `rank` {recipe['ranking_seconds'] / 60:.0f} min" if "ranking_seconds" in recipe else ""),
                     f"`{name}`"])
    return table(["set", "train / val / test", "test: TF-IDF yardstick", "teacher fp32", "student fp32",
                  "student at the chosen precision", "validation: student vs TF-IDF",
                  "test, refitted on train + val: shipped vs TF-IDF", "bundle", "build", "report"], rows)


def refit_cell(m: dict) -> str:
    """The shipped classifier, refitted on training + validation titles, beside the yardstick refitted so (builds
    before the refit: -, the student shipped as trained)."""
    refit = m.get("refit")
    if not refit:
        return "-"
    return f"**{f4(refit['test']['accuracy'])}** vs {f4(refit['tfidf_reference']['test']['accuracy'])}"


BUILD_TIMES = {"build-zh-news.json": "the default zh-news build: 87,947 titles + 35,026 unlabelled, 600,000 "
               "simulated click events",
               "build-zh29k.json": "29,000 Chinese news titles (sampled from the default's corpus), full",
               "build-zh29k-bf16.json": "the same, bf16 training (the default on this CPU)",
               "build-thucnews-unlabelled.json": "THUCNews, 19,974 titles + 19,222 unlabelled, full",
               "build-kuairec.json": "KuaiRec captions, 9,045 titles, full",
               "build-ag-news.json": "AG News, 7,559 titles, full",
               "build-ag-news-bf16.json": "AG News, 7,559 titles, full, bf16 training (the default on this CPU)",
               "build-movielens-quick.json": "MovieLens, --quick (1,682 titles, 300 users' clicks)"}


def build_times() -> str:
    """Each build's plan (estimated at its start) beside what each step took, 2 CPU cores."""
    rows = []
    for name, what in BUILD_TIMES.items():
        recipe = report(name)["recipe"]
        plan = recipe["plan"]
        steps = ", ".join(f"{k} {v['actual_s'] / 60:.1f} ({v['estimated_s'] / 60:.1f})" for k, v in plan.items())
        m = report(name)["metrics"]
        shipped = m.get("refit", {}).get("test") or m[f"student_{m['classifier_precision']}_onnx"]
        rows.append([what, f"{sum(v['estimated_s'] for v in plan.values()) / 60:.1f} min",
                     f"**{recipe['build_seconds'] / 60:.1f} min**", steps,
                     f"{f4(shipped['accuracy'])} ({'bf16' if recipe.get('bf16') else 'fp32'})", f"`{name}`"])
    return table(["build", "plan at the start", "took", "per step: took (planned), minutes",
                  "test accuracy shipped (training)", "report"], rows)


RANKING_BUILDS = {"build-movielens.json": "full log", "build-movielens-quick.json": "--quick",
                  "build-mind.json": "MIND", "build-zh-news.json": "default zh-news (simulated clicks)"}


def ranking_builds() -> str:
    rows = []
    for name, what in RANKING_BUILDS.items():
        rk = report(name)["metrics"]["ranking"]
        test = rk["recommendation_degree"]["test_tuned_lam"]
        cells = [f"{what}: shipped ({rk['guarantee']['shipped']})", f"**{f4(test['gauc'])}**",
                 f"**{f4(test['ndcg@10'])}**"]
        rows.append(cells)
        for key, label in (("popularity", "popularity"), ("item_knn", "item-kNN"), ("ease", "EASE^R"),
                           ("implicit_als", "ALS")):
            b = rk["baselines"].get(key, {}).get("test")
            if b:
                rows.append([f"{what}: {label}", f4(b["gauc"]), f4(b["ndcg@10"])])
    return table(["build, test split by time", "gAUC", "nDCG@10"], rows)


CLASSIFIER_MODELS = (("tfidf_reference", "TF-IDF yardstick"), ("teacher_fp32_torch", "teacher"),
                     ("student_fp32_torch", "student fp32"), ("student_int8_onnx", "student INT8"))


def accuracy_rows(manifests: list[dict]) -> list[list[str]]:
    """Validation and test accuracy of each model a build makes, one column per manifest ("-" where it has none)."""
    def accuracy(m, split, key):
        figures = m["metrics"]["held_out"][split].get(key)
        return f4(figures and figures["accuracy"])
    return [[f"{split}: {label}", *(accuracy(m, split, key) for m in manifests)]
            for split in ("val", "test") for key, label in CLASSIFIER_MODELS]


def default_rebuild() -> str:
    """The shipped default bundle beside its build command (build_default) run with the builder as it stands."""
    from edge_rec_export.bundle_report import size_bytes

    old, new = shipped(), report("build-zh-news.json")
    size = size_bytes(ROOT / "assets" / "zh-news")

    def ranking(m, key):
        test = m["metrics"]["ranking"]["recommendation_degree"]["test_tuned_lam"]
        return f"{f4(test['gauc'])} / {f4(test['ndcg@10'])}" if key == "shipped" else "{} / {}".format(
            *(f4(m["metrics"]["ranking"]["baselines"][key]["test"][k]) for k in ("gauc", "ndcg@10")))

    def refit(m):
        r = m["metrics"].get("refit")
        return "-" if not r else f"{f4(r['test']['accuracy'])} vs {f4(r['tfidf_reference']['test']['accuracy'])}"
    rows = [["build time, 2 CPU cores", f"{old['recipe']['build_seconds'] / 60:.0f} min",
             f"**{new['recipe']['build_seconds'] / 60:.1f} min**"],
            ["training precision", "fp32", "bf16" if new["recipe"].get("bf16") else "fp32"],
            *accuracy_rows([old, new]),
            ["test: shipped refitted on train + val vs TF-IDF so", refit(old), refit(new)],
            ["ranking, test gAUC / nDCG@10: shipped", ranking(old, "shipped"), ranking(new, "shipped")],
            ["ranking: implicit ALS baseline", ranking(old, "implicit_als"), ranking(new, "implicit_als")],
            ["bundle", f"{size / 1e6:.1f} MB", f"{new['size_bytes'] / 1e6:.1f} MB"]]
    return table(["", "shipped `assets/zh-news`", "rebuilt now (`build-zh-news.json`)"], rows)


def quick_verdict() -> str:
    """What the MovieLens --quick build's summary says of its ranking step."""
    g = report("build-movielens-quick.json")["metrics"]["ranking"]["guarantee"]
    return f"> ranking: ships {g['shipped']}; {g['verdict']}\n"


def teacher_layers() -> str:
    """The default build with more of the teacher trained on a CPU: the figures of each model it makes."""
    builds = {"top 4 layers, 1 epoch (the CPU default)": report("build-zh-news.json"),
              "top 8 layers, 1 epoch": report("build-zh-news-top8.json"),
              "top 4 layers, 2 epochs": report("build-zh-news-teacher2.json")}
    return table(["default zh-news build, accuracy", *builds], accuracy_rows(list(builds.values())))


def paired_builder() -> str:
    p = report("paired-movielens-builder.json")
    rows = [[label, v["gauc"]["users"], f"{v['gauc']['difference']:+.4f}", f"{v['gauc']['t_test_p']:.1e}",
             f"{v['ndcg@10']['difference']:+.4f}", f"{v['ndcg@10']['t_test_p']:.1e}"]
            for label, v in p["paired"].items()]
    return table(["bundle against", "users", "gAUC difference", "t-test p", "nDCG@10 difference", "t-test p"], rows)


def full_catalogue() -> str:
    r = report("full-catalogue-movielens.json")
    names = {"bundle": "**the bundle's Store (recall + rank, whole catalogue)**", "popularity": "popularity",
             "item_knn": "item-kNN", "ease": "EASE^R", "implicit_als": "iALS", "sasrec": "SASRec (small)"}
    rows = []
    for key, label in names.items():
        t = r["test"][key]
        p = r["paired"].get(key)
        versus = "-" if p is None else (f"{-p['hr@10']['difference']:+.4f} (p {p['hr@10']['t_test_p']:.1e}) / "
                                        f"{-p['ndcg@10']['difference']:+.4f} (p {p['ndcg@10']['t_test_p']:.1e})")
        rows.append([label, f4(t["hr@10"]), f4(t["ndcg@10"]), versus])
    return (f"{r['users']} users, {r['items']:,} items; {r['protocol']}.\n\n"
            + table(["model", "HR@10", "nDCG@10", "this model minus the bundle, HR@10 / nDCG@10 (paired t-test)"],
                    rows))


def arm64() -> str:
    r = report("arm64.json")
    rows = [[label, v["top1_agreement"], f"{v['median_abs_primary_prob']} / {v['p99_abs_primary_prob']} / "
             f"{v['max_abs_primary_prob']}", v["tag_sets_equal"],
             f"{v.get('recommend_top10_overlap_raw_mean', v['recommend_top10_overlap_mean'])} "
             f"({v.get('recommend_top10_overlap_raw_min', v['recommend_top10_overlap_min'])})",
             f"{v['recommend_top10_overlap_mean']} ({v['recommend_top10_overlap_min']})",
             "passes" if v["passes"] else "**fails**"] for label, v in r["runs"].items()]
    tol = r["tolerances"]
    return (f"Bundle `{r['reference']['bundle']}` against this x86 machine ({r['emulator']}); tolerances: top-1 "
            f">= {tol['top1_agreement']:.1%}, mean top-10 overlap >= {tol['recommend_top10_overlap_mean']} "
            "(near-ties at the cut counted as ties where the run recorded them).\n\n"
            + table(["emulated core", "top-1 agreement", "primary prob abs. difference median / p99 / max", "tag sets equal",
                     "top-10 overlap raw, mean (min)", "with near-ties, mean (min)", ""], rows))


def store_bench() -> str:
    r = report("bench-store.json")
    cpu = r["machine_info"].get("cpu", {})
    rows, idle = [], {}
    for b in r["benchmarks"]:
        e = b["extra_info"]
        if "p50_ms" not in e:
            continue
        what = b["name"].split("[")[0].removeprefix("test_").replace("_", " ")
        rows.append([what, f"{int(b['param']):,}" if b.get("param") else "-", e["p50_ms"], e["p90_ms"], e["p99_ms"]])
        if b["name"].startswith("test_store_recommend["):
            idle[b["param"]] = e["p50_ms"]
    busy = [f"with a second core busy, recommend over {int(b['param']):,} items took "
            f"{b['extra_info']['p50_ms'] / idle[b['param']]:.2f}x its idle p50 in the same run"
            for b in r["benchmarks"] if b["name"].startswith("test_store_recommend_beside_a_busy_core")
            and b["param"] in idle]
    return (f"{cpu.get('brand_raw', '?')}, {cpu.get('count', '?')} logical cores, {r['datetime'][:10]}, 1 thread "
            "(the phone profile), numpy's BLAS at the host's default"
            + (f"; {'; '.join(busy)}" if busy else "") + ":\n\n"
            + table(["call", "stored items", "p50 ms", "p90 ms", "p99 ms"], rows))


def reports_index() -> str:
    rows = [[f"`{name}`", what, page] for name, (what, page) in sorted(INDEX.items())]
    return table(["report", "what it measured (bundle, command: on the page)", "page"], rows)


INDEX = {  # every file of reports/: what it measured, and the page that uses it
    "arm64.json": ("the shipped bundle's answers on emulated arm64 cores against x86", "mobile.md"),
    "arm64-sme.json": ("the same check with qemu's SME core (v6 bundle)", "mobile.md"),
    "arm64-vs-fp32.json": ("which side drifts: x86 and arm64 INT8 against the fp32 graph (v6)", "mobile.md"),
    "baselines-movielens.json": ("popularity, item-kNN, EASE^R, ALS on MovieLens (the recipe's split)", "ranking.md"),
    "baselines-movielens-events.json": ("the same baselines on MovieLens read as an events log", "ranking.md"),
    "bench-catalogue.json": ("the catalogue job's memory and throughput (20,000 / 60,000 titles)", "catalogue.md"),
    "bench-classifier-efficiency.json": ("the classifier's share of this CPU's INT8 peak (AVX2 machine)", "speed.md"),
    "bench-classifier-efficiency-amx.json": ("the same on an AMX machine", "speed.md"),
    "bench-store.json": ("Store recommend / record / open at 10,000 and 100,000 items", "speed.md"),
    "bench-zh-news.json": ("`edge-rec bench` of the shipped bundle", "speed.md"),
    "bench-zh-news-v2-vs-v3.json": ("bundles v2 and v3 interleaved (`bench --compare`)", "speed.md"),
    "bench-zh-news-v3-vs-v4.json": ("bundles v3 and v4 interleaved", "speed.md"),
    "build-ag-news.json": ("a builder run on AG News: classifier beside its TF-IDF yardstick", "building.md"),
    "build-ag-news-bf16.json": ("the same build trained under bf16 autocast (AMX CPU)", "building.md"),
    "build-kuairec.json": ("a builder run on KuaiRec captions", "building.md"),
    "build-mind.json": ("a builder run on MIND with its click log: classifier and ranking", "building.md"),
    "build-movielens.json": ("MovieLens through the builder: ranking on every user's clicks", "ranking.md"),
    "build-movielens-quick.json": ("MovieLens through the builder, --quick", "ranking.md"),
    "build-thucnews-unlabelled.json": ("a builder run on THUCNews with unlabelled titles", "building.md"),
    "build-zh29k.json": ("a full build on 29,000 Chinese news titles: its plan and step times", "building.md"),
    "build-zh29k-bf16.json": ("the same build trained under bf16 autocast (AMX CPU)", "building.md"),
    "build-zh-news.json": ("the default bundle's build command run with the builder as it stands", "building.md"),
    "build-zh-news-top8.json": ("the same build's classifier with the teacher's top 8 layers trained (not 4)",
                                "building.md"),
    "build-zh-news-teacher2.json": ("the same build's classifier with its teacher trained 2 epochs (not 1)",
                                    "building.md"),
    "full-catalogue-movielens.json": ("leave-last-out, full-catalogue HR@10 / nDCG@10 of the bundle's Store beside "
                                      "popularity, item-kNN, EASE^R, iALS and SASRec, paired", "ranking.md"),
    "paired-movielens-als.json": ("the MovieLens recipe against implicit ALS, per user over 3 seeds", "ranking.md"),
    "paired-movielens-builder.json": ("the MovieLens bundle's R against every baseline, per user", "ranking.md"),
    "paired-movielens-ease.json": ("the MovieLens recipe against EASE^R, per user over 3 seeds", "ranking.md"),
    "paired-movielens-events-ease_all_ratings.json": ("events-log recipe against EASE^R, per user", "ranking.md"),
    "paired-movielens-events-implicit_als.json": ("events-log recipe against implicit ALS, per user", "ranking.md"),
    "ranking-bing.json": ("the ranking models on the Bing/MIND click log", "ranking.md"),
    "ranking-movielens.json": ("the first MovieLens ranking run", "ranking.md"),
    "ranking-movielens-events-seed0.json": ("MovieLens read as an events log, seed 0", "ranking.md"),
    "ranking-movielens-rated-history-seed0.json": ("the MovieLens recipe, seed 0", "ranking.md"),
    "ranking-movielens-rated-history-seed0-onnx.json": ("its ONNX and INT8 export", "ranking.md"),
    "ranking-movielens-rated-history-seed1.json": ("the MovieLens recipe, seed 1", "ranking.md"),
    "ranking-movielens-rated-history-seed2.json": ("the MovieLens recipe, seed 2", "ranking.md"),
    "ranking-movielens-seed0-tiefixed.json": ("MovieLens with ties in the metrics fixed", "ranking.md"),
    "ranking-zh-news-builder.json": ("the default bundle's ranking models (simulated clicks), builder", "ranking.md"),
    "ranking-zh-news-sim.json": ("the default bundle's ranking models on simulated clicks", "ranking.md"),
    "semantic-bing.json": ("semantic recall on Bing/MIND", "ranking.md"),
    "semantic-bing-e2e.json": ("semantic recall on Bing/MIND, end to end", "ranking.md"),
    "semantic-bing-head.json": ("semantic recall on Bing/MIND, head only", "ranking.md"),
    "semantic-bing-pool-dot.json": ("semantic recall on Bing/MIND, pool dot product", "ranking.md"),
    "semantic-movielens.json": ("semantic recall on MovieLens", "ranking.md"),
    "semantic-movielens-e2e.json": ("semantic recall on MovieLens, end to end", "ranking.md"),
    "semantic-movielens-e2e-pooldot.json": ("the same, pool dot product", "ranking.md"),
    "semantic-movielens-head.json": ("semantic recall on MovieLens, head only", "ranking.md"),
    "semantic-screen.json": ("the int8 screen's top 100 against float32 on real titles", "speed.md"),
    "semantic-zh-news-branch-onnx.json": ("the behaviour-encoder branch exported to ONNX", "ranking.md"),
    "semantic-zh-news-sim-e2e.json": ("semantic recall on simulated zh-news clicks, end to end", "ranking.md"),
    "semantic-zh-news-sim-e2e-pooldot.json": ("the same, pool dot product", "ranking.md"),
    "semantic-zh-news-sim-head.json": ("the same, head only", "ranking.md"),
    "sparse-domains-movielens.json": ("GAN augmentation for sparse domains on MovieLens", "ranking.md"),
    "stream-1m.json": ("1,000,000 lines through `edge-rec classify -`: memory and first line", "catalogue.md"),
    "tfidf-zh-news.json": ("the default bundle's TF-IDF yardstick", "models.md"),
}

RENDERERS = {"default-bundle": default_bundle, "knobs": knobs, "validation-sets": validation_sets,
             "default-rebuild": default_rebuild,
             "teacher-layers": teacher_layers,
             "quick-verdict": quick_verdict,
             "ranking-builds": ranking_builds, "build-times": build_times, "paired-builder": paired_builder, "full-catalogue": full_catalogue,
             "arm64": arm64, "store-bench": store_bench, "reports-index": reports_index}


def render(text: str, where: str = "page") -> str:
    def block(m: re.Match) -> str:
        name = m.group("name")
        if name not in RENDERERS:
            raise KeyError(f"{where}: no renderer for block {name!r}; known: {sorted(RENDERERS)}")
        return m.group(1) + RENDERERS[name]() + m.group(4)
    return BLOCK.sub(block, text)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edge_rec_export.render_docs", description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 where a page differs")
    a = ap.parse_args(argv)
    stale = []
    for page in pages():
        text = page.read_text(encoding="utf-8")
        new = render(text, str(page))
        if new != text:
            stale.append(page)
            if not a.check:
                page.write_text(new, encoding="utf-8")
    for page in stale:
        print(f"{page.relative_to(ROOT)}: {'differs from its rendering' if a.check else 'rendered'}")
    return 1 if a.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
