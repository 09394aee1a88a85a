"""Concurrent use and fuzzing of the classifier and the bundle loader."""
import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TITLES
from edge_rec import BundleError, ContentClassifier, load_bundle


def test_eight_threads_match_serial(tiny_bundle):
    texts = [f"{t} {i}" for i in range(25) for t in TITLES]  # 200 distinct texts
    serial = [ContentClassifier(tiny_bundle, cache_size=0).classify(t)[0] for t in texts]
    shared = ContentClassifier(tiny_bundle, cache_size=64)
    with ThreadPoolExecutor(8) as pool:
        parallel = list(pool.map(lambda t: shared.classify(t)[0], texts))
    assert [r.primary for r in parallel] == [r.primary for r in serial]
    np.testing.assert_allclose([r.primary_prob for r in parallel], [r.primary_prob for r in serial], atol=1e-6)
    assert len(shared.cache) == 64  # bounded under concurrent writes


@pytest.fixture(scope="module")
def module_bundle(tiny_export, tmp_path_factory):
    from conftest import make_bundle
    return make_bundle(tmp_path_factory.mktemp("fuzz") / "b", tiny_export[2])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(st.text(max_size=300), st.binary(max_size=20), st.none(), st.integers(), st.floats()),
                max_size=6))
def test_classify_fuzz(module_bundle, texts):
    """Any input: results for every text, or a ValueError/TypeError; never another exception."""
    clf = ContentClassifier(module_bundle)
    try:
        out = clf.classify(texts)
    except (ValueError, TypeError):
        return
    assert len(out) == len(texts)
    assert all(np.isfinite(r.primary_prob) and 0 <= r.index <= 1 for r in out)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_manifest_fuzz(module_bundle, tmp_path_factory, data):
    """A manifest with any key replaced by any JSON value loads or raises BundleError, never anything else."""
    work = tmp_path_factory.mktemp("m")
    bundle = shutil.copytree(module_bundle, work / "b")
    m = json.loads((bundle / "manifest.json").read_text())
    key = data.draw(st.sampled_from(sorted(m)))
    m[key] = data.draw(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                                        max_size=3), max_leaves=6))
    (bundle / "manifest.json").write_text(json.dumps(m))
    try:
        ContentClassifier(load_bundle(bundle))
    except BundleError:
        pass


# ---------------------------------------------------------------- EdgeRecommender
@pytest.fixture(scope="module")
def module_rec_bundle(tiny_export, tiny_ranking, tmp_path_factory):
    from conftest import make_rec_bundle
    return make_rec_bundle(tmp_path_factory.mktemp("recfuzz") / "b", tiny_export, tiny_ranking)


def _users():
    return [{"id": u, "interest_tags": ["ai", "tech"][: u % 3],
             "history": [{"id": f"h{u}-{i}", "text": TITLES[(u + i) % len(TITLES)]} for i in range(u % 5)]}
            for u in range(24)]


def test_recommender_eight_threads_match_serial(module_rec_bundle):
    from edge_rec import EdgeRecommender

    pool = [{"id": f"c{i}", "text": f"{t} {i}"} for i, t in enumerate(TITLES * 4)]
    serial = [EdgeRecommender(module_rec_bundle, cache_size=0).recommend(u, pool, k=5) for u in _users()]
    shared = EdgeRecommender(module_rec_bundle, cache_size=16)
    with ThreadPoolExecutor(8) as ex:
        parallel = list(ex.map(lambda u: shared.recommend(u, pool, k=5), _users()))
    assert [[r.id for r in rs] for rs in parallel] == [[r.id for r in rs] for rs in serial]
    np.testing.assert_allclose([r.score for rs in parallel for r in rs], [r.score for rs in serial for r in rs],
                               atol=1e-6)
    assert len(shared.classifier.cache) == 16


def test_recommend_long_run_rss_stays_bounded(module_rec_bundle):
    """3,000 calls with fresh ids (the cache churns): RSS after them within 25 MB of RSS after the first 300."""
    from edge_rec import EdgeRecommender

    def rss_mb() -> float:
        return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024

    rec = EdgeRecommender(module_rec_bundle, cache_size=256)
    user = {"interest_tags": ["ai"], "history": [{"id": "h", "text": TITLES[0]}]}
    for n in range(3000):
        rec.recommend(user, [{"id": f"{n}-{i}", "text": TITLES[(n + i) % len(TITLES)]} for i in range(4)], k=3)
        if n == 299:
            warm = rss_mb()
    assert rss_mb() - warm < 25, f"RSS grew from {warm:.0f} MB to {rss_mb():.0f} MB over 2,700 calls"
    assert len(rec.classifier.cache) == 256


_item = st.fixed_dictionaries({"id": st.one_of(st.integers(), st.text(max_size=4), st.none(), st.lists(st.integers())),
                               "text": st.one_of(st.text(max_size=40), st.none(), st.integers(), st.binary(max_size=4))})
_user = st.one_of(st.none(), st.text(max_size=3), st.fixed_dictionaries(
    {}, optional={"id": st.integers(), "interest_tags": st.one_of(st.lists(st.text(max_size=6), max_size=4),
                                                                  st.text(max_size=3), st.none()),
                  "history": st.one_of(st.lists(_item, max_size=4), st.text(max_size=3), st.none())}))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=_user, items=st.one_of(st.lists(_item, max_size=6), st.text(max_size=3), st.none()),
       k=st.one_of(st.none(), st.integers(-2, 12)), lam=st.one_of(st.floats(allow_nan=True), st.just(0.5)))
def test_recommend_fuzz(module_rec_bundle, user, items, k, lam):
    """Any user, candidates, k and lam: ranked results or a ValueError/TypeError, never another exception."""
    from edge_rec import EdgeRecommender

    rec = _fuzz_recs.setdefault("rec", EdgeRecommender(module_rec_bundle))
    try:
        out = rec.recommend(user, items, k=k, lam=lam)
    except (ValueError, TypeError):
        return
    assert len(out) <= (k or 10)
    assert all(np.isfinite(r.score) for r in out)
    assert [r.score for r in out] == sorted((r.score for r in out), reverse=True)


_fuzz_recs: dict = {}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_recommender_manifest_fuzz(module_rec_bundle, tmp_path_factory, data):
    """The ranking/pipeline/models sections replaced by any JSON value: loads or raises BundleError/ValueError."""
    from edge_rec import EdgeRecommender

    bundle = shutil.copytree(module_rec_bundle, tmp_path_factory.mktemp("rm") / "b")
    m = json.loads((bundle / "manifest.json").read_text())
    section = data.draw(st.sampled_from(["ranking", "pipeline", "models"]))
    value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                         lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                         max_leaves=6)
    if isinstance(m[section], dict) and data.draw(st.booleans()):
        m[section][data.draw(st.sampled_from(sorted(m[section]) + ["labels", "lam", "k"]))] = data.draw(value)
    else:
        m[section] = data.draw(value)
    (bundle / "manifest.json").write_text(json.dumps(m))
    try:
        rec = EdgeRecommender(load_bundle(bundle))
    except (BundleError, ValueError):
        return
    assert rec.recommend({"history": []}, [{"id": 1, "text": TITLES[0]}])
