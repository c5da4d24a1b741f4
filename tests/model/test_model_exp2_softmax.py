import math
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spatten_dv.models.exp2 import EXP2_LUT, exp2_neg, verilog_rom
from spatten_dv.models.softmax import score_scale, softmax_fixed

REPO = Path(__file__).resolve().parents[2]


def test_lut_endpoints_and_monotonic():
    assert EXP2_LUT[0] == 32768
    assert EXP2_LUT[128] == round(32768 / math.sqrt(2))
    assert all(a > b for a, b in zip(EXP2_LUT, EXP2_LUT[1:], strict=False))
    assert EXP2_LUT[-1] > 16384


def test_exp2_against_float():
    e = torch.arange(0, 16 * 256, dtype=torch.int64)
    exact = 32768 * torch.pow(2.0, -e.to(torch.float64) / 256)
    err = (exp2_neg(e).to(torch.float64) - exact).abs()
    # LUT rounding (<= 0.5) plus the truncating shift (< 1).
    assert float(err.max()) < 1.5
    assert int(exp2_neg(torch.tensor([16 * 256, 10**9])).abs().sum()) == 0


def test_committed_rom_matches_generator():
    assert (REPO / "hdl" / "spatten_exp2_lut.v").read_text() == verilog_rom()


def test_score_scale_encodes_factor():
    for real in (1e-6, 3.7e-4, 0.01, 0.125, 2.0):
        mult, shift = score_scale(real)
        assert 2**15 <= mult < 2**16 or shift == 63
        assert mult / 2**shift == pytest.approx(real * math.log2(math.e) * 256, rel=2e-5)
    with pytest.raises(ValueError, match="too large"):
        score_scale(1e9)
    with pytest.raises(ValueError, match="positive"):
        score_scale(0.0)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 1024), st.integers(0, 2**31 - 1), st.floats(0.02, 4.0))
def test_softmax_sums_to_one_and_tracks_float(n, seed, spread):
    g = torch.Generator().manual_seed(seed)
    real = torch.randn(n, generator=g, dtype=torch.float64) * spread * 3
    scale = 1e-3
    scores = torch.round(real / scale).to(torch.int64)
    mult, shift = score_scale(scale)
    sm = softmax_fixed(scores, mult, shift)
    total = int(sm.probs.sum())
    # Each p is rounded (<= 0.5 LSB) from u*R/2^25, and R = floor(2^40/S) loses < 1 part in S:
    # |sum - 32768| <= n/2 + 1. Documented in docs/architecture.md 4.4.
    assert abs(total - 32768) <= n / 2 + 1
    exact = torch.softmax(scores.to(torch.float64) * scale, dim=0) * 32768
    err = (sm.probs.to(torch.float64) - exact).abs()
    # Per-probability bound: 0.6% relative + 2 LSB absolute (architecture.md 4.4).
    assert bool((err <= exact * 0.006 + 2).all()), float((err - exact * 0.006).max())
    assert int(sm.probs[sm.max_index]) == int(sm.max_prob)


def test_softmax_one_token_and_all_equal():
    assert softmax_fixed(torch.tensor([123]), 40000, 20).probs.tolist() == [32768]
    p = softmax_fixed(torch.full((4,), -7), 40000, 20).probs
    assert p.tolist() == [8192] * 4


def test_softmax_batch_equals_rows():
    g = torch.Generator().manual_seed(3)
    scores = torch.randint(-(2**29), 2**29, (5, 77), generator=g)
    batch = softmax_fixed(scores, 51234, 40)
    for h in range(5):
        row = softmax_fixed(scores[h], 51234, 40)
        assert torch.equal(batch.probs[h], row.probs)
        assert int(batch.max_prob[h]) == int(row.max_prob)


def test_softmax_rejects_floats_and_empty():
    with pytest.raises(TypeError, match="integers"):
        softmax_fixed(torch.zeros(3), 1, 0)
    with pytest.raises(ValueError, match="at least one token"):
        softmax_fixed(torch.zeros(0, dtype=torch.int64), 1, 0)
