"""Same answers on arm64 as on x86: the pieces of scripts/check_arm64.sh.

    python scripts/arm64_check.py inputs --data ../shared/data --out INPUTS.json      # host, needs edge_rec_export
    python scripts/arm64_check.py probe INPUTS.json OUT.json [--bundle B]             # any CPU, runtime only
    python scripts/arm64_check.py compare X86.json ARM.json [ARM2.json ...] --out reports/arm64.json

`probe` classifies the held-out titles and recommends for the users with the public API only (onnxruntime,
tokenizers, numpy), so the same file runs on the host and inside the emulated arm64 root. `compare` measures
top-1 agreement, the largest probability / index differences and the recommend top-10 overlap of each arm64 run
against the x86 one (raw, and with near-ties at the cut counted as ties: `tie_overlap`), and exits 1 past the
tolerances.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

N_TITLES, N_USERS, HISTORY, POOL, K = 1000, 20, 8, 300, 10
MIN_TOP1_AGREEMENT = 0.995   # of the titles' primary labels
MIN_MEAN_OVERLAP = 9.0       # of the users' top-10 recommendations, on average, near-ties counted as ties:
TIE_EPSILON = 0.005          # scores R within this of the K-th (R is in [0, 1]; the raw overlap is reported too)


def make_inputs(data: Path, out: Path) -> None:
    """1,000 held-out test titles of the default bundle, and 20 users whose histories (8 titles of one or two
    categories) and candidate pool (300 titles) come from further test titles."""
    from edge_rec import load_bundle
    from edge_rec_export.data.news_data import bundle_splits

    test = bundle_splits(data, load_bundle().metrics)[2]
    titles = [e.title for e in test[:N_TITLES]]
    rest = test[N_TITLES:]
    pool = [{"id": f"p{i}", "text": e.title} for i, e in enumerate(rest[:POOL])]
    by_label: dict[int, list[str]] = {}
    for e in rest[POOL:]:
        by_label.setdefault(e.label, []).append(e.title)
    labels = sorted(k for k, v in by_label.items() if len(v) >= HISTORY)
    users = []
    for u in range(N_USERS):
        a, b = labels[u % len(labels)], labels[(u * 7 + 3) % len(labels)]
        picked = by_label[a][u // len(labels) * 4:][:HISTORY // 2] + by_label[b][:HISTORY - HISTORY // 2]
        users.append({"id": f"u{u}", "history": [{"id": f"u{u}h{i}", "text": t} for i, t in enumerate(picked)]})
    out.write_text(json.dumps({"titles": titles, "pool": pool, "users": users}, ensure_ascii=False), encoding="utf-8")


def probe(inputs: Path, out: Path, bundle: str | None) -> None:
    import numpy as np
    import onnxruntime

    from edge_rec import ContentClassifier, EdgeRecommender, __version__, load_bundle

    spec = json.loads(inputs.read_text(encoding="utf-8"))
    b = load_bundle(bundle) if bundle else load_bundle()
    clf = ContentClassifier(b, profile="phone", cache_size=0)
    results = clf.classify(spec["titles"])
    rec = EdgeRecommender(b, profile="phone")
    recs = {u["id"]: [(r.id, round(float(r.score), 6)) for r in rec.recommend(u, spec["pool"], k=2 * K)]
            for u in spec["users"]}  # twice K: an item just below the cut on one side is seen with its score
    out.write_text(json.dumps({
        "machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__, "edge_rec": __version__, "bundle": b.manifest.get("name"),
        "qemu_cpu": os.environ.get("QEMU_CPU"),
        "model_files": {n: m.get("ort_file") or m["file"] for n, m in b.manifest["models"].items()},
        "classify": [{"primary": r.primary, "primary_prob": r.primary_prob, "index": r.index,
                      "tags": [t for t, _ in r.tags]} for r in results],
        "recommend": recs}, ensure_ascii=False), encoding="utf-8")


def compare_one(ref: dict, got: dict) -> dict:
    a, b = ref["classify"], got["classify"]
    agree = sum(x["primary"] == y["primary"] for x, y in zip(a, b)) / len(a)
    overlaps = [len({i for i, _ in ref["recommend"][u][:K]} & {i for i, _ in got["recommend"][u][:K]})
                for u in ref["recommend"]]
    tied = [tie_overlap(ref["recommend"][u], got["recommend"][u]) for u in ref["recommend"]]
    dp = sorted(abs(x["primary_prob"] - y["primary_prob"]) for x, y in zip(a, b))
    same = [abs(x["index"] - y["index"]) for x, y in zip(a, b) if x["primary"] == y["primary"]]
    return {"machine": got["machine"], "qemu_cpu": got["qemu_cpu"], "onnxruntime": got["onnxruntime"], "numpy": got["numpy"],
            "titles": len(a), "top1_agreement": round(agree, 4),
            "max_abs_primary_prob": round(dp[-1], 6), "p99_abs_primary_prob": round(dp[int(0.99 * (len(dp) - 1))], 6),
            "median_abs_primary_prob": round(dp[len(dp) // 2], 6),
            # c is a percentile within the predicted category: a changed label moves it to another scale
            "max_abs_index_same_label": round(max(same, default=0.0), 6),
            "disagreeing_top1_prob_max": round(max((max(x["primary_prob"], y["primary_prob"]) for x, y in zip(a, b)
                                                    if x["primary"] != y["primary"]), default=0.0), 6),
            "tag_sets_equal": round(sum(x["tags"] == y["tags"] for x, y in zip(a, b)) / len(a), 4),
            "users": len(overlaps), "recommend_top10_overlap_raw_mean": round(sum(overlaps) / len(overlaps), 2),
            "recommend_top10_overlap_raw_min": min(overlaps),
            "recommend_top10_overlap_mean": round(sum(tied) / len(tied), 2),
            "recommend_top10_overlap_min": min(tied), "near_tie_epsilon": TIE_EPSILON,
            "passes": agree >= MIN_TOP1_AGREEMENT and sum(tied) / len(tied) >= MIN_MEAN_OVERLAP}


def tie_overlap(ref: list, got: list) -> int:
    """Items of the reference top K that the other side also ranks in its top K, or scores within TIE_EPSILON of
    its K-th score (a near-tie at the cut: which of two items scoring within TIE_EPSILON comes first is float
    rounding, not an answer)."""
    cut = got[K - 1][1] if len(got) >= K else float("-inf")
    score = dict(got)
    return sum(1 for i, _ in ref[:K] if i in dict(got[:K]) or score.get(i, float("-inf")) >= cut - TIE_EPSILON)


def compare(ref_path: Path, runs: list[Path], out: Path, labels: list[str], emulator: str) -> bool:
    ref = json.loads(ref_path.read_text(encoding="utf-8"))
    labels = labels or [p.stem for p in runs]
    report = {"reference": {k: ref[k] for k in ("machine", "python", "numpy", "onnxruntime", "edge_rec", "bundle")},
              "emulator": emulator,
              "tolerances": {"top1_agreement": MIN_TOP1_AGREEMENT, "recommend_top10_overlap_mean": MIN_MEAN_OVERLAP},
              "runs": {}}
    for label, path in zip(labels, runs):
        got = json.loads(path.read_text(encoding="utf-8"))
        report["runs"][label] = {**compare_one(ref, got), "model_files": got["model_files"],
                                 "reference_model_files": ref["model_files"]}
    prior = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    report = {**prior, **report, "runs": {**prior.get("runs", {}), **report["runs"]}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    for label in labels:
        r = report["runs"][label]
        print(f"{label}: top-1 {r['top1_agreement']:.4f}, max |p| {r['max_abs_primary_prob']}, max |c| "
              f"{r['max_abs_index_same_label']} (same label), top-10 overlap {r['recommend_top10_overlap_mean']} (min "
              f"{r['recommend_top10_overlap_min']}): {'ok' if r['passes'] else 'FAILS'}")
    return all(report["runs"][label]["passes"] for label in labels)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    i = sub.add_parser("inputs")
    i.add_argument("--data", type=Path, default=Path("../shared/data"))
    i.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("probe")
    p.add_argument("inputs", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--bundle")
    c = sub.add_parser("compare")
    c.add_argument("reference", type=Path)
    c.add_argument("runs", type=Path, nargs="+")
    c.add_argument("--labels", nargs="*", default=[], help="one name per run in the report (default: file stems)")
    c.add_argument("--out", type=Path, default=Path("reports/arm64.json"))
    c.add_argument("--emulator", default="", help="what ran the arm64 side (e.g. qemu-aarch64 7.2, user mode)")
    a = ap.parse_args(argv)
    if a.cmd == "inputs":
        make_inputs(a.data, a.out)
    elif a.cmd == "probe":
        probe(a.inputs, a.out, a.bundle)
    else:
        return 0 if compare(a.reference, a.runs, a.out, a.labels, a.emulator) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
