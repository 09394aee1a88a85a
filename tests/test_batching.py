"""Length-grouped model calls: exact least-cost split, every text once, in input order."""
import itertools

import numpy as np
import pytest

from edge_rec.batching import length_groups


def cost(groups, lengths, call):
    return sum(call + (stop - start) * lengths[stop - 1] for start, stop in groups)


def all_splits(n, max_rows):
    for cuts in itertools.product([False, True], repeat=n - 1):
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [n]
        groups = list(zip(bounds, bounds[1:]))
        if all(b - a <= max_rows for a, b in groups):
            yield groups


@pytest.mark.parametrize("seed", range(20))
def test_least_cost_split_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, max_rows, call = int(rng.integers(1, 10)), int(rng.integers(1, 6)), float(rng.choice([0, 3, 12, 50]))
    lengths = np.sort(rng.integers(3, 60, n))
    groups = length_groups(lengths, max_rows, call)
    assert [a for a, _ in groups] == [0] + [b for _, b in groups[:-1]] and groups[-1][1] == n  # contiguous, all
    assert all(b - a <= max_rows for a, b in groups)
    assert cost(groups, lengths, call) == pytest.approx(min(cost(g, lengths, call) for g in all_splits(n, max_rows)))


def test_extremes():
    lengths = np.array([5, 5, 6, 30, 31])
    assert length_groups(lengths, 32, call_cost=0) == [(0, 2), (2, 3), (3, 4), (4, 5)]  # free calls: no padding
    assert length_groups(lengths, 32, call_cost=1e9) == [(0, 5)]  # dear calls: one
    assert length_groups(lengths, 2, call_cost=1e9) == [(0, 2), (2, 3), (3, 5)]  # three calls, the least padded
    assert length_groups(np.array([], dtype=int), 32) == []


def test_unsorted_lengths_are_refused():
    with pytest.raises(ValueError, match="sorted ascending"):
        length_groups(np.array([3, 2]), 4)
