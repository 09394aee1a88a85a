"""`edge-rec bench`: the latency benchmark a user runs on their own device (no pytest, no torch).

Each figure warms up, then times calls with perf_counter_ns until its time budget is spent (at least MIN_RUNS
calls), and reports p50 / p90 / p99 and throughput. Texts come from the shipped demo data, so nothing else needs to
be on the device. With a second bundle the two run interleaved, call for call, in one process: on a noisy device
the ratio is the honest figure.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from edge_rec import __version__
from edge_rec.bundle import Bundle, load_bundle
from edge_rec.classifier import ContentClassifier
from edge_rec.items import Item
from edge_rec.recommender import EdgeRecommender
from edge_rec.resources import shipped

MIN_RUNS = 5
WARMUP = 3
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm", "sve", "sme")


@dataclass
class Timing:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    per_s: float  # calls (or items, see `items`) per second at p50
    samples_ms: list = field(default_factory=list, repr=False)  # every timed call, for --plot

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in self.__dict__.items() if k != "samples_ms"}


def time_calls(fns: list, seconds: float, items: int = 1) -> list[Timing]:
    """Time each of `fns` (interleaved: one call of each in turn) for about `seconds` in all."""
    for fn in fns:
        for _ in range(WARMUP):
            fn()
    samples: list[list[int]] = [[] for _ in fns]
    deadline = time.perf_counter() + seconds
    while len(samples[0]) < MIN_RUNS or time.perf_counter() < deadline:
        for fn, out in zip(fns, samples):
            t0 = time.perf_counter_ns()
            fn()
            out.append(time.perf_counter_ns() - t0)
    timings = []
    for out in samples:
        ms = np.array(out) / 1e6
        p50 = float(np.percentile(ms, 50))
        timings.append(Timing(len(ms), p50, float(np.percentile(ms, 90)), float(np.percentile(ms, 99)),
                              items * 1000.0 / p50, ms.tolist()))
    return timings


def machine() -> dict:
    """What decides int8 speed: CPU model and flags, cores, and the versions that ran."""
    import onnxruntime
    import tokenizers

    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Hardware", "CPU part") and model in ("", platform.machine()):
                model = value.strip()
            if key in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    return {"cpu": model, "arch": platform.machine(), "cores": os.cpu_count(),
            "flags": {f: f in flags for f in CPU_FLAGS}, "os": platform.platform(),
            "python": platform.python_version(), "edge_rec": __version__, "onnxruntime": onnxruntime.__version__,
            "numpy": np.__version__, "tokenizers": tokenizers.__version__}


def demo_texts() -> list[str]:
    path = shipped("examples") / "items.jsonl"
    return [json.loads(line)["text"] for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def peak_rss_mb() -> float | None:
    try:
        return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
    except (OSError, IndexError, ValueError):
        return None


COLD = r"""
import json, sys, time
t0 = time.perf_counter()
import edge_rec
t1 = time.perf_counter()
clf = edge_rec.ContentClassifier(sys.argv[1], threads=1)
t2 = time.perf_counter()
clf.classify(sys.argv[2])
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2}))
"""


def cold_start(bundle: Bundle, text: str, runs: int = 3) -> dict:
    """Fresh interpreters: import, bundle load with verification, first call (medians of `runs`)."""
    out = [json.loads(subprocess.run([sys.executable, "-c", COLD, str(bundle.path), text], capture_output=True,
                                     text=True, check=True).stdout) for _ in range(runs)]
    return {key: round(float(np.median([o[key] for o in out])), 4) for key in out[0]}


def run(bundles: list[Bundle], threads: list[int], seconds: float, pools: tuple[int, ...] = (100, 1000, 10000),
        cold: bool = True) -> dict:
    """Every figure for each bundle (interleaved when there are two), per thread count."""
    texts = demo_texts()
    batch = (texts * (32 // len(texts) + 1))[:32]
    result = {"machine": machine(), "seconds_per_figure": seconds,
              "bundles": [{"name": b.name, "path": str(b.path),
                           "sha256": {n: f["sha256"][:16] for n, f in b.manifest["files"].items()}} for b in bundles],
              "figures": []}
    for t in threads:
        # One classifier per bundle: the recommender's own where the bundle can recommend (no second session).
        recs = [EdgeRecommender(b, threads=t, cache_size=0) if "ranking" in b.manifest else None for b in bundles]
        clfs = [r.classifier if r else ContentClassifier(b, threads=t, cache_size=0) for r, b in zip(recs, bundles)]
        rows = {"classify batch 1": (time_calls([lambda c=c: c.classify(texts[0]) for c in clfs], seconds), 1),
                "classify batch 32": (time_calls([lambda c=c: c.classify(batch) for c in clfs], seconds, 32), 32)}
        if all(recs):
            classified = [c.classify(texts) for c in clfs]
            for n in pools:
                candidates = [[Item(f"i{i}", classification=cs[i % len(cs)]) for i in range(n)] for cs in classified]
                users = [{"history": p[:50]} for p in candidates]  # built outside the timed calls
                rows[f"recommend over {n:,}"] = (time_calls(
                    [lambda r=r, u=u, p=p: r.recommend(u, p) for r, u, p in zip(recs, users, candidates)], seconds), 1)
        for name, (timings, items) in rows.items():
            entry = {"figure": name, "threads": t, "items_per_call": items,
                     "results": [x.as_dict() for x in timings], "samples_ms": [x.samples_ms for x in timings]}
            if len(timings) == 2:
                entry["ratio_p50_second_over_first"] = round(timings[1].p50_ms / timings[0].p50_ms, 3)
            result["figures"].append(entry)
    if cold:
        result["cold_start"] = [cold_start(b, texts[0]) for b in bundles]
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def table(result: dict) -> str:
    names = [b["name"] for b in result["bundles"]]
    m = result["machine"]
    flags = ", ".join(f for f, on in m["flags"].items() if on) or "none of " + "/".join(CPU_FLAGS)
    lines = [f"{m['cpu']} ({m['arch']}, {m['cores']} cores; {flags}); onnxruntime {m['onnxruntime']}, "
             f"edge-rec {m['edge_rec']}", ""]
    head = f"{'figure':24} {'threads':>7}  " + "  ".join(f"{n + ' p50/p90/p99 ms':>34} {'per s':>8} {'runs':>5}"
                                                        for n in names)
    lines.append(head + ("  ratio" if len(names) == 2 else ""))
    for e in result["figures"]:
        cells = "  ".join(f"{r['p50_ms']:>10.3f} {r['p90_ms']:>10.3f} {r['p99_ms']:>12.3f} {r['per_s']:>8.0f} "
                          f"{r['runs']:>5}" for r in e["results"])
        ratio = f"  {e['ratio_p50_second_over_first']:.3f}" if "ratio_p50_second_over_first" in e else ""
        lines.append(f"{e['figure']:24} {e['threads']:>7}  {cells}{ratio}")
    for name, c in zip(names, result.get("cold_start", [])):
        lines.append(f"cold start {name}: import {c['import_s']:.3f} s, load + verify {c['load_s']:.3f} s, "
                     f"first call {c['first_call_s']:.3f} s")
    if result["peak_rss_mb"] is not None:
        lines.append(f"peak RSS of this run: {result['peak_rss_mb']:.0f} MB")
    return "\n".join(lines)


def plot(result: dict, path: str) -> None:
    """One panel per figure: the latency distribution of every timed call (log scale), one line per bundle."""
    _require_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figures = result["figures"]
    fig, axes = plt.subplots(len(figures), 1, figsize=(8, 1.8 * len(figures)), squeeze=False)
    for ax, entry in zip(axes[:, 0], figures):
        for bundle, samples in zip(result["bundles"], entry["samples_ms"]):
            ax.hist(samples, bins=40, histtype="step", label=bundle["name"])
        ax.set_xscale("log")
        ax.set_title(f"{entry['figure']}, {entry['threads']} thread(s)", fontsize=9)
        ax.set_xlabel("ms per call", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(a) -> int:
    """The CLI's `bench` command (arguments checked by edge_rec.cli)."""
    if a.plot:  # fail before measuring, not after
        _require_matplotlib()
    keys = a.trusted_key
    bundles = [load_bundle(a.bundle, trusted_keys=keys)] + ([load_bundle(a.compare, trusted_keys=keys)]
                                                            if a.compare else [])
    threads = a.threads or sorted({1, 2, os.cpu_count() or 1})
    result = run(bundles, threads, a.seconds, cold=not a.no_cold_start)
    print(table(result))
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({**result, "figures": [{k: v for k, v in e.items() if k != "samples_ms"}
                                             for e in result["figures"]]}, f, indent=1)
    if a.plot:
        plot(result, a.plot)
    return 0


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install 'edge-rec[bench]'") from None
