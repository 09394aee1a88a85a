"""Data preparation on the real corpora (skipped when ../shared/data is absent)."""
import numpy as np
import pytest

from conftest import SHARED_DATA
from edge_rec_export.training.metrics import macro_f1, micro_f1, spearman
from edge_rec_export.data.corpus import Example, Targets, assign_splits, normalise
from edge_rec_export.data.news_data import (CODES, read_corpora, read_labelled,
                                      read_transfer, split)

pytestmark = pytest.mark.skipif(not (SHARED_DATA / "toutiao_partial").is_dir(),
                                reason="../shared/data (Toutiao/TNEWS corpora) not present")


@pytest.fixture(scope="module")
def corpora():
    return read_corpora(SHARED_DATA)


def test_dedup_and_disjoint_split(corpora):
    titles = [e.title for e in corpora]
    assert len(titles) == len(set(titles)) > 50_000
    train, val, test = split(corpora, seed=13)
    sets = [{e.title for e in s} for s in (train, val, test)]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
    assert len(train) + len(val) + len(test) == len(corpora)
    assert [e.title for e in split(corpora, seed=13)[2]] == [e.title for e in test]  # seeded


def test_targets(corpora):
    train, _, test = split(corpora, seed=13)
    t = Targets.fit(train, len(CODES), n_tags=300)
    assert len(t.tags) == 300
    idx = np.array([t.index(e) for e in test])
    known = idx[~np.isnan(idx)]
    assert len(known) > 500 and np.all((known > 0) & (known < 1))
    assert np.isnan(t.index(Example("x", 0, [])))


def test_index_target_definition():
    train = [Example("a", 0, ["k"]), Example("b", 0, ["k"]), Example("c", 1, ["k", "j"])]
    t = Targets.fit(train, len(CODES), n_tags=2)
    # P(cat 0 | k) = (2 + 1) / (3 + 15)
    assert t.index(Example("x", 0, ["k"])) == pytest.approx(3 / 18)
    assert t.index(Example("x", 1, ["k", "new"])) == pytest.approx((2 / 18 + 1 / len(CODES)) / 2)
    np.testing.assert_array_equal(t.tag_vector(Example("x", 0, ["j", "k"])), [1, 1])


def test_metrics():
    assert macro_f1(np.array([0, 1, 1]), np.array([0, 1, 0]), 2) == pytest.approx((2 / 3 + 2 / 3) / 2)
    assert micro_f1(np.array([[1, 0], [1, 1]]), np.array([[1, 1], [0, 1]])) == pytest.approx(2 * 2 / (4 + 1 + 1))
    assert spearman(np.array([1.0, 2, 3, 4]), np.array([10.0, 20, 30, 40])) == pytest.approx(1.0)
    assert spearman(np.array([1.0, 2, 3]), np.array([3.0, 2, 1])) == pytest.approx(-1.0)


@pytest.fixture(scope="module")
def labelled():
    return read_labelled(SHARED_DATA)


def test_every_file_deduplicated_by_normalised_title(labelled):
    keys = [normalise(e.title) for e in labelled]
    assert len(keys) == len(set(keys)) > 85_000
    assert {e.source for e in labelled} == {"toutiao", "tnews"}
    assert normalise("Ｉ Phone  新品") == normalise("i phone新品")


def test_hash_splits_are_disjoint_stable_and_keep_the_public_test_apart(labelled):
    train, val, test, public = assign_splits(labelled)
    keys = [{normalise(e.title) for e in part} for part in (train, val, test, public)]
    assert sum(len(k) for k in keys) == len(set().union(*keys)) == len(labelled)
    assert 1800 < len(public) <= 1878 and all(e.public for e in public)
    assert 0.08 < len(test) / len(labelled) < 0.12
    # A title's split depends on its text alone: dropping half the corpus moves no title between splits.
    half = assign_splits(labelled[::2])
    assert {e.title for e in half[2]} == {e.title for e in labelled[::2] if normalise(e.title) in keys[2]}


def test_transfer_titles_are_never_labelled_ones(labelled):
    transfer = read_transfer(SHARED_DATA, labelled)
    labelled_keys = {normalise(e.title) for e in labelled}
    assert len(transfer) > 30_000 and not any(normalise(t) in labelled_keys for t in transfer)

