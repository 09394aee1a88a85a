"""Cold start and memory, each measured in a fresh interpreter: import time, bundle load time, first call, and the
peak RSS of a process that classifies titles and then runs 200 recommend() calls over 1,000 candidates."""
import json
import subprocess
import sys

import numpy as np
import pytest

from edge_rec import default_bundle_path, load_bundle

PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
import edge_rec
t1 = time.perf_counter()
clf = edge_rec.ContentClassifier(profile="phone")
t2 = time.perf_counter()
clf.classify(["首个糖尿病人工智能医生来了"])
t3 = time.perf_counter()
titles = [line for line in sys.stdin.read().splitlines() if line]
for i in range(0, len(titles), 32):
    clf.classify(titles[i:i + 32])
t4 = time.perf_counter()
rec = edge_rec.EdgeRecommender(profile="phone")
t5 = time.perf_counter()
pool = [edge_rec.Item(i, classification=c) for i, c in enumerate(clf.classify(titles[:1000], ids=range(1000)))]
user = {"history": pool[-50:]}
for _ in range(200):
    rec.recommend(user, pool[:1000])
try:  # VmHWM belongs to this address space; ru_maxrss on Linux keeps the forking parent's peak across exec
    peak_mb = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024
except (OSError, IndexError):
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_call_s": t3 - t2, "peak_rss_mb": peak_mb,
                  "recommender_load_s": t5 - t4, "classified": len(titles), "recommend_calls": 200}))
"""


def test_cold_start_and_rss(benchmark, titles):
    runs = []

    def once():
        out = subprocess.run([sys.executable, "-c", PROBE], input="\n".join(titles * 4), capture_output=True,
                             text=True, check=True)
        runs.append(json.loads(out.stdout))

    benchmark.group = "cold start"
    benchmark.pedantic(once, rounds=7, iterations=1)
    for key in ("import_s", "load_s", "first_call_s", "peak_rss_mb", "recommender_load_s"):
        benchmark.extra_info[f"{key}_p50"] = round(float(np.median([r[key] for r in runs])), 4)
    benchmark.extra_info["classified_titles"] = runs[0]["classified"]


def test_bundle_size(benchmark):
    b = load_bundle(default_bundle_path())
    benchmark.group = "bundle"
    benchmark.pedantic(load_bundle, args=(b.path,), rounds=20, iterations=1)  # load + sha256 of every file
    benchmark.extra_info.update({name: f["bytes"] for name, f in b.manifest["files"].items()})
    benchmark.extra_info["total_bytes"] = sum(f["bytes"] for f in b.manifest["files"].values())


if __name__ == "__main__":
    pytest.main([__file__])
