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
