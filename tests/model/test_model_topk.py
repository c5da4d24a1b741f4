import torch
from hypothesis import given
from hypothesis import strategies as st

from spatten_dv.models.topk import topk_indices, topk_threshold


def reference_topk(values, k):
    """Independent statement of the tie rule: sort by (-value, index)."""
    ranked = sorted(range(len(values)), key=lambda i: (-values[i], i))
    return sorted(ranked[:k])


@given(st.lists(st.integers(0, 7), min_size=1, max_size=64), st.data())
def test_topk_matches_tie_rule_with_many_ties(values, data):
    k = data.draw(st.integers(0, len(values)))
    assert topk_indices(torch.tensor(values), k).tolist() == reference_topk(values, k)


@given(st.lists(st.integers(-(2**31), 2**31), min_size=1, max_size=300, unique=True), st.data())
def test_topk_equals_torch_topk_on_distinct_values(values, data):
    k = data.draw(st.integers(1, len(values)))
    t = torch.tensor(values)
    expected = torch.sort(torch.topk(t, k).indices).values
    assert torch.equal(topk_indices(t, k), expected)


def test_all_equal_lower_index_wins():
    assert topk_indices(torch.full((10,), 5), 3).tolist() == [0, 1, 2]


def test_k_edge_cases():
    t = torch.tensor([3, 9, 1])
    assert topk_indices(t, 0).tolist() == []
    assert topk_indices(t, 1).tolist() == [1]
    assert topk_indices(t, 3).tolist() == [0, 1, 2]
    assert topk_indices(t, 99).tolist() == [0, 1, 2]


@given(st.lists(st.integers(0, 5), min_size=1, max_size=50), st.data())
def test_threshold_description_reproduces_the_set(values, data):
    k = data.draw(st.integers(1, len(values)))
    thr, ties = topk_threshold(torch.tensor(values), k)
    chosen = [i for i, v in enumerate(values) if v > thr]
    chosen += [i for i, v in enumerate(values) if v == thr][:ties]
    assert sorted(chosen) == reference_topk(values, k)


def test_bad_input_names_the_problem():
    import pytest

    with pytest.raises(ValueError, match="1-D"):
        topk_indices(torch.zeros(2, 2), 1)
    with pytest.raises(ValueError, match="k must be"):
        topk_indices(torch.zeros(3), -1)
