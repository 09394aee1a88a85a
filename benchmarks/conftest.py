"""Shared pieces of the benchmark suites: the shipped bundle, realistic titles, the variants under test.

Teacher and fp32-student variants need the training outputs under work/zh-news (`python -m edge_rec_export.build_default`);
without them those rows are skipped with the reason, and the shipped INT8 bundle is still measured.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge_rec import ContentClassifier
from edge_rec.bench import demo_texts, machine

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "work" / "zh-news"  # where python -m edge_rec_export.build_default keeps its steps
DATA = ROOT.parent / "shared" / "data"


def cpu_info() -> dict:
    """The CPU model and the flags that decide int8 speed, as `edge-rec bench` reports them."""
    m = machine()
    return {"cpu": m["cpu"], "flags": " ".join(f for f, on in m["flags"].items() if on)}


@pytest.fixture(scope="session")
def titles() -> list[str]:
    """Held-out test titles (real lengths: median 19 tokens), or the demo titles without ../shared/data."""
    if (DATA / "toutiao_partial").is_dir():
        from edge_rec import load_bundle
        from edge_rec_export.data.news_data import bundle_splits
        test = bundle_splits(DATA, load_bundle().metrics)[2]
        return [e.title for e in test[:256]]
    return demo_texts() * 5


@pytest.fixture(scope="session")
def median_title(titles) -> str:
    clf = ContentClassifier(profile="phone")
    lengths = [len(e.ids) for e in clf.tokenizer.encode_batch(titles)]
    return titles[int(np.argsort(lengths)[len(lengths) // 2])]


def percentiles(benchmark) -> None:
    """p50/p90/p99 in ms into the benchmark's extra_info (pytest-benchmark reports median, not p90/p99)."""
    data = np.array(benchmark.stats.stats.data) * 1e3
    benchmark.extra_info.update({f"p{q}_ms": round(float(np.percentile(data, q)), 4) for q in (50, 90, 99)})
