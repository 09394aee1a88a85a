"""recommend() latency on the shipped bundle: 100 / 1,000 / 10,000 already-classified candidates with a 50-item
history, and 100 fresh titles that must be classified first, per profile (1 thread = phone, 2 = PC).

Candidate pools above the number of distinct real titles classified (1,000) repeat them under new ids.
"""
import platform

import onnxruntime as ort
import pytest

from conftest import cpu_info, percentiles
from edge_rec import EdgeRecommender, Item

_recs = {}


def recommender(threads: int) -> EdgeRecommender:
    if threads not in _recs:
        _recs[threads] = EdgeRecommender(threads=threads)
    return _recs[threads]


@pytest.fixture(scope="session")
def classified(titles_1k):
    rec = recommender(1)
    return rec.classifier.classify(titles_1k, ids=list(range(len(titles_1k))))


@pytest.fixture(scope="session")
def titles_1k():
    from conftest import DATA
    if (DATA / "toutiao_partial").is_dir():
        from edge_rec import load_bundle
        from edge_rec_export.data.news_data import bundle_splits
        _, val, test = bundle_splits(DATA, load_bundle().metrics)
        return [e.title for e in (test + val)[:1100]]
    pytest.skip("../shared/data not present")


def user(classified) -> dict:
    return {"id": "u", "interest_tags": [], "history": [Item(f"h{i}", classification=c)
                                                       for i, c in enumerate(classified[1000:1050])]}


@pytest.mark.parametrize("n", [100, 1000, 10_000])
@pytest.mark.parametrize("threads", [1, 2], ids=["phone-1t", "pc-2t"])
def test_recommend_classified(benchmark, classified, threads, n):
    rec = recommender(threads)
    pool = [Item(i, classification=classified[i % 1000]) for i in range(n)]
    u = user(classified)
    benchmark.group = "recommend classified"
    benchmark.extra_info.update({"candidates": n, "history": 50, "threads": threads, "k": 10,
                                 "onnxruntime": ort.__version__, "python": platform.python_version(), **cpu_info()})
    benchmark.pedantic(rec.recommend, args=(u, pool), rounds=30 if n == 10_000 else 100, iterations=1,
                       warmup_rounds=5)
    percentiles(benchmark)


@pytest.mark.parametrize("threads", [1, 2], ids=["phone-1t", "pc-2t"])
def test_recommend_fresh_titles(benchmark, classified, titles_1k, threads):
    """100 titles never seen before (new ids every round, so the classifier runs on all of them)."""
    rec = recommender(threads)
    u = user(classified)
    texts = titles_1k[:100]
    rounds = iter(range(10_000))

    def setup():
        r = next(rounds)
        return (u, [{"id": f"r{r}-{i}", "text": t} for i, t in enumerate(texts)]), {}

    benchmark.group = "recommend fresh"
    benchmark.extra_info.update({"candidates": 100, "history": 50, "threads": threads, "k": 10, **cpu_info()})
    benchmark.pedantic(rec.recommend, setup=setup, rounds=20, iterations=1, warmup_rounds=2)
    percentiles(benchmark)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_semantic_top_d_100k(benchmark, precision):
    """Top 100 of 100,000 cached 384-d candidate vectors against a 50-item history (numpy, one BLAS thread)."""
    import numpy as np

    from edge_rec import VectorStore

    rng = np.random.default_rng(0)
    v = rng.normal(size=(100_000, 384)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    store = VectorStore(range(100_000), v, precision)
    refs = v[:50]
    benchmark.group = "semantic top-d"
    benchmark.extra_info.update({"candidates": 100_000, "dim": 384, "references": 50, "d": 100,
                                 "precision": precision, "store_mb": round(store.nbytes / 1e6, 1), **cpu_info()})
    benchmark.pedantic(store.top, args=(refs, 100), rounds=20, iterations=1, warmup_rounds=2)
    percentiles(benchmark)
