"""Run every benchmark suite and write benchmarks/RESULTS.md and benchmarks/latency.png.

    pip install -e ".[export,dev,bench]" && python benchmarks/run.py
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    raw = HERE / "results.json"
    # numpy's BLAS is left at the host's settings: the runtime's own products run in onnxruntime with the profile's
    # threads (issue 35), so what is measured is what an app gets.
    code = subprocess.call([sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider",
                            "--benchmark-only", f"--benchmark-json={raw}", "-o", "addopts="], cwd=HERE.parent)
    if code not in (0,):
        print(f"benchmarks failed (exit {code}); RESULTS.md not written", file=sys.stderr)
        return code
    results = json.loads(raw.read_text())
    (HERE / "RESULTS.md").write_text(render(results), encoding="utf-8")
    chart(results, HERE / "latency.png")
    print(f"wrote {HERE / 'RESULTS.md'} and {HERE / 'latency.png'}")
    return 0


def _rows(results, group_prefix):
    return [b for b in results["benchmarks"] if b["group"].startswith(group_prefix)]


def render(results: dict) -> str:
    import onnxruntime
    import tokenizers
    first = results["benchmarks"][0]["extra_info"] if results["benchmarks"] else {}
    info = next((b["extra_info"] for b in results["benchmarks"] if "cpu" in b["extra_info"]), first)
    lines = ["# Benchmark results", "",
             f"Measured {results['datetime'][:16].replace('T', ' ')} UTC with `python benchmarks/run.py` "
             "(pytest-benchmark; warm-up rounds first, then timed rounds; percentiles over the rounds).", "",
             f"- CPU: {info.get('cpu', platform.machine())}; flags: {info.get('flags', '?')}; "
             f"{results['machine_info'].get('cpu', {}).get('count', '?')} logical cores (shared, noisy machine)",
             f"- Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
             f"tokenizers {tokenizers.__version__}" + _torch_version(),
             "- numpy's BLAS at the host's default (every core): the runtime's products run in onnxruntime, and "
             "`threads` below are onnxruntime's", ""]
    for batch in (1, 32):
        rows = [b for b in _rows(results, "classify") if b["extra_info"]["batch"] == batch]
        if not rows:
            continue
        lines += [f"## Classifier, batch {batch} ({'one median-length title' if batch == 1 else '32 real titles'})",
                  "", "Whole path: tokenize, pad, run, post-process; cache off.", "",
                  "| variant | threads | p50 ms | p90 ms | p99 ms | titles/s | p50 vs teacher |",
                  "|---|---|---|---|---|---|---|"]
        teacher = {b["extra_info"]["threads"]: b["extra_info"]["p50_ms"] for b in rows
                   if b["extra_info"]["variant"] == "teacher-fp32-torch"}
        for b in sorted(rows, key=lambda b: (b["extra_info"]["threads"], b["extra_info"]["variant"])):
            e = b["extra_info"]
            ratio = teacher.get(e["threads"])
            ratio = f"{ratio / e['p50_ms']:.1f}x faster" if ratio and e["variant"] != "teacher-fp32-torch" else "-"
            lines.append(f"| {e['variant']} | {e['threads']} | {_percentiles(e, 3)} | "
                         f"{batch * 1000 / e['p50_ms']:.0f} | {ratio} |")
        lines.append("")
    rec = _rows(results, "recommend classified") + _rows(results, "recommend fresh")  # not the store suites
    if rec:
        lines += ["## recommend() on the shipped bundle", "",
                  "Model recall, tag match and semantic recall (top 100 each), CTR ranking of their union, top 10; "
                  "50-item history. "
                  "*Classified*: candidates come already classified (the app cached them); *fresh*: 100 new "
                  "titles classified in the call.", "",
                  "| candidates | threads | p50 ms | p90 ms | p99 ms | calls/s |", "|---|---|---|---|---|---|"]
        for b in sorted(rec, key=lambda b: (b["group"], b["extra_info"]["threads"], b["extra_info"]["candidates"])):
            e = b["extra_info"]
            what = f"{e['candidates']:,} {'fresh titles' if b['group'].endswith('fresh') else 'classified'}"
            lines.append(f"| {what} | {e['threads']} | {_percentiles(e, 2)} | {1000 / e['p50_ms']:.0f} |")
        lines.append("")
    store = [b for b in results["benchmarks"] if b["name"].startswith("test_store_")]
    if store:
        lines += ["## Store (phone profile, 1 thread)", "",
                  "`Store.recommend` for a user with 50 clicks (recall + rank over the whole stored catalogue); "
                  "*floor*: the same pipeline over the in-memory columns without the store's events and exclusions; "
                  "*a second core busy*: another process spinning a core during the run.", "",
                  "| call | items | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|"]
        for b in sorted(store, key=lambda b: (b["name"].split("[")[-1], b["name"])):
            what = b["name"].split("[")[0].removeprefix("test_store_").replace("_", " ")
            lines.append(f"| {what} | {b['param'] or ''} | {_percentiles(b['extra_info'], 2)} |")
        idle = {b["param"]: b["extra_info"]["p50_ms"] for b in store if b["name"].startswith("test_store_recommend[")}
        for b in store:
            if b["name"].startswith("test_store_recommend_beside_a_busy_core"):
                lines.append(f"\nWith a second core busy, recommend over {int(b['param']):,} items took "
                             f"{b['extra_info']['p50_ms'] / idle[b['param']]:.2f}x its idle p50 (same run).")
        lines.append("")
    sem = _rows(results, "semantic")
    if sem:
        lines += ["## Semantic recall: top 100 of 100,000 cached 384-d vectors, 50 reference vectors, 1 thread", "",
                  "| store | memory MB | p50 ms | p90 ms | p99 ms |", "|---|---|---|---|---|"]
        for b in sem:
            e = b["extra_info"]
            lines.append(f"| {e['precision']} | {e['store_mb']} | {_percentiles(e, 1)} |")
        lines.append("")
    cold = _rows(results, "cold start")
    if cold:
        e = cold[0]["extra_info"]
        lines += ["## Cold start and memory (fresh interpreter, median of 7)", "",
                  "| import edge_rec | classifier load (incl. sha256) + session | first classify | import + load | "
                  "EdgeRecommender load | peak RSS |", "|---|---|---|---|---|---|",
                  f"| {e['import_s_p50'] * 1e3:.0f} ms | {e['load_s_p50'] * 1e3:.0f} ms | "
                  f"{e['first_call_s_p50'] * 1e3:.0f} ms | {(e['import_s_p50'] + e['load_s_p50']) * 1e3:.0f} ms | "
                  f"{e['recommender_load_s_p50'] * 1e3:.0f} ms | {e['peak_rss_mb_p50']:.0f} MB (after classifying "
                  f"{e['classified_titles']} titles and 200 recommend() calls over 1,000 candidates) |", ""]
    eff = {b["name"].split("[")[0]: b["extra_info"] for b in _rows(results, "classifier efficiency")}
    if eff:
        share, batch = eff.get("test_share_of_int8_peak"), eff.get("test_batch_32_vs_batch_1")
        lines += ["## Classifier efficiency (1 thread, paired rounds)", ""]
        if share:
            lines.append(f"- Median title ({share['tokens']} tokens, {share['macs'] / 1e6:.1f} MMAC), raw session: "
                         f"{share['share_of_peak']:.0%} of this CPU's INT8 GEMM peak ({share['int8_peak_gmacs']} "
                         "GMAC/s: onnxruntime's QLinearMatMul at the FFN shapes, 1,024 rows)")
        if batch:
            lines.append(f"- 32 real titles in one call: {batch['throughput_ratio_vs_batch_1']}x the throughput of "
                         "32 calls of one (whole path)")
        lines.append("")
    size = _rows(results, "bundle")
    if size:
        e = size[0]["extra_info"]
        files = ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in e.items() if k != "total_bytes")
        lines += ["## Bundle", "", f"Total {e['total_bytes'] / 1e6:.2f} MB: {files}. "
                  f"load_bundle (manifest + sha256 of every file) p50 {size[0]['stats']['median'] * 1e3:.1f} ms.", ""]
    lines += ["![latency per variant and profile](latency.png)", ""]
    return "\n".join(lines)


def _percentiles(e: dict, digits: int) -> str:
    """The p50 | p90 | p99 table cells of one benchmark's extra_info."""
    return " | ".join(f"{e[f'p{q}_ms']:.{digits}f}" for q in (50, 90, 99))


def _torch_version() -> str:
    try:
        import torch
        return f", torch {torch.__version__} (teacher only)"
    except ImportError:
        return ""


def chart(results: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [b["extra_info"] for b in _rows(results, "classify") if b["extra_info"]["batch"] == 1]
    variants = sorted({r["variant"] for r in rows}, key=lambda v: ("teacher" not in v, v))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.38
    for k, threads in enumerate((1, 2)):
        vals = [next((r["p50_ms"] for r in rows if r["variant"] == v and r["threads"] == threads), 0) for v in variants]
        bars = ax.bar([i + (k - 0.5) * width for i in range(len(variants))], vals, width,
                      label=f"{threads} thread{'s' if threads > 1 else ''} ({'phone' if threads == 1 else 'PC'})")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(variants)), variants, fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("p50 latency per title, ms (log)")
    ax.set_title("Classifier, one median-length title, batch 1")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    sys.exit(main())
