"""cocotb test of spatten_softmax against models.softmax.softmax_fixed (bit-exact).

Every probability (value, index, last flag), p_max, max_index, S and R is compared with the
reference. Scores are offered with random gaps and prob_ready is toggled at random, and the
probability stream is checked to hold while it is stalled. SOFTMAX_CASES sets the number of
extra random realistic jobs (default 6). A failure message carries the case name; rerun with
the seed printed by the runner (COCOTB_RANDOM_SEED).
"""

import math
import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from spatten_dv.models.core import dot_products
from spatten_dv.models.exp2 import EXP2_LUT
from spatten_dv.models.formats import quantize_symmetric
from spatten_dv.models.softmax import score_scale, softmax_fixed

L_MAX = 1024
SCORE_BITS = 30
S_MIN, S_MAX = -(1 << (SCORE_BITS - 1)), (1 << (SCORE_BITS - 1)) - 1
EXTRA_CASES = int(os.environ.get("SOFTMAX_CASES", "6"))


def latency_formula(n):
    """Start-to-done cycles documented in hdl/spatten_softmax.v (full throughput)."""
    return 3 * n + 50


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.start.value = 0
    dut.n_tokens.value = 0
    dut.n_update.value = 0
    dut.score_mult.value = 0
    dut.score_shift.value = 0
    dut.score_valid.value = 0
    dut.score_data.value = 0
    dut.prob_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


async def run_job(dut, rng, scores, mult, shift, valid_prob=1.0, ready_prob=1.0, late_at=None):
    """Run one softmax; return (probs [(index, value, last)], stats dict, start-to-done cycles).
    late_at: start with n = L_MAX and give the real n with n_update in the first cycle in which
    `late_at` scores have been taken (0 <= late_at < n)."""
    n = len(scores)
    assert not int(dut.busy.value), "unit busy before start"
    dut.n_tokens.value = n if late_at is None else L_MAX
    updated = late_at is None
    dut.score_mult.value = mult
    dut.score_shift.value = shift
    sent, cycle = 0, 0
    probs, held = [], None
    max_cycles = 10 * n / min(valid_prob, ready_prob) + 500
    while True:
        dut.start.value = int(cycle == 0)
        update = not updated and cycle > 0 and sent == late_at
        dut.n_update.value = int(update)
        if update:
            dut.n_tokens.value = n
            updated = True
        offer = sent < n and rng.random() < valid_prob
        dut.score_valid.value = int(offer)
        # data of the next score when offered, garbage otherwise (must not be taken)
        dut.score_data.value = (scores[sent] if offer else rng.randint(S_MIN, S_MAX)) & (
            (1 << SCORE_BITS) - 1)
        dut.prob_ready.value = int(rng.random() < ready_prob)
        await ReadOnly()
        done = int(dut.done.value)
        if cycle > 0 and not done:
            assert int(dut.busy.value), f"busy low at cycle {cycle}"
        if offer and int(dut.score_ready.value):
            sent += 1
        pv = int(dut.prob_valid.value)
        if held is not None:  # a stalled beat must stay valid and unchanged
            assert pv, "prob_valid dropped while stalled"
            now = (int(dut.prob_index.value), int(dut.prob_data.value),
                   int(dut.prob_last.value))
            assert now == held, f"stalled beat changed from {held} to {now}"
        held = None
        if pv:
            beat = (int(dut.prob_index.value), int(dut.prob_data.value), int(dut.prob_last.value))
            if int(dut.prob_ready.value):
                probs.append(beat)
            else:
                held = beat
        if done:
            break
        cycle += 1
        assert cycle < max_cycles, f"no done after {cycle} cycles"
        await RisingEdge(dut.clk)
    assert sent == n, f"{sent} scores taken, expected {n}"
    assert not int(dut.busy.value), "busy still high with done"
    assert int(dut.stats_valid.value), "stats_valid low at done"
    stats = read_stats(dut)
    await RisingEdge(dut.clk)
    dut.start.value = 0
    dut.n_update.value = 0
    dut.score_valid.value = 0
    return probs, stats, cycle


def read_stats(unit) -> dict:
    """The unit's statistics outputs (valid with stats_valid)."""
    return {name: int(getattr(unit, name).value)
            for name in ("max_prob", "max_index", "exp_sum", "recip")}


def check(name, scores, mult, shift, probs, stats):
    ref = softmax_fixed(torch.tensor(scores, dtype=torch.int64), mult, shift)
    n = len(scores)
    assert len(probs) == n, f"{name}: {len(probs)} probabilities, expected {n}"
    want_p = ref.probs.tolist()
    for t, (index, value, last) in enumerate(probs):
        assert index == t, f"{name}: beat {t} has index {index}"
        assert last == int(t == n - 1), f"{name}: beat {t} last={last}"
        assert value == want_p[t], (
            f"{name}: p[{t}] = {value}, reference {want_p[t]} (score {scores[t]}, "
            f"u {int(ref.exp_terms[t])}, mult {mult}, shift {shift})")
    want = {
        "max_prob": int(ref.max_prob),
        "max_index": int(ref.max_index),
        "exp_sum": int(ref.exp_sum),
        "recip": int(ref.reciprocal),
    }
    assert stats == want, f"{name}: stats {stats}, reference {want}"


def realistic_job(rng, g, n):
    """Scores whose real logits have a spread of a few nats, at a random real scale per unit."""
    per_unit = 10 ** rng.uniform(-7, -1)
    mult, shift = score_scale(per_unit)
    logits = torch.randn(n, generator=g, dtype=torch.float64) * rng.uniform(0.5, 4.0)
    offset = rng.uniform(-1, 1) * min(S_MAX / 2, 20 / per_unit)
    scores = torch.round(logits / per_unit + offset).clamp(S_MIN, S_MAX).to(torch.int64)
    return scores.tolist(), mult, shift, f"realistic n={n} scale={per_unit:.3g}"


def qk_job(g, n):
    """Scores of real quantised q and k (D=64) with the host's scale s_q*s_k/sqrt(D)."""
    q, s_q = quantize_symmetric(torch.randn(64, generator=g, dtype=torch.float64) * 2)
    k, s_k = quantize_symmetric(torch.randn(n, 64, generator=g, dtype=torch.float64) * 2)
    mult, shift = score_scale(s_q * s_k / math.sqrt(64))
    return dot_products(q, k).tolist(), mult, shift, f"q.k n={n}"


def recip_residue_job(rng, residue):
    """Scores (mult 1, shift 0: e = m - s) whose R = 2^40 / S is `residue` mod 1024: with 512
    p_max = (R + 2^9) >> 10 is an exact rounding tie, with 511 it just misses one."""
    while True:
        d = [0] + [rng.randrange(0, 4096) for _ in range(rng.randrange(1, 40))]
        total = sum(EXP2_LUT[x & 255] >> (x >> 8) for x in d)
        if ((1 << 40) // total) % 1024 == residue:
            break
    rng.shuffle(d)
    top = rng.randint(S_MIN + 4096, S_MAX)
    return [top - x for x in d], 1, 0, f"R = {residue} mod 1024"


def corner_jobs(rng, g):
    top = 1 << 28
    jobs = []
    jobs.append(([rng.randint(S_MIN, S_MAX)], rng.randrange(1 << 16), rng.randrange(64), "n=1"))
    jobs.append(([S_MIN], 65535, 0, "n=1 min score"))
    eq = rng.randint(S_MIN, S_MAX)
    jobs.append(([eq] * 100, *score_scale(1e-3), "all equal n=100"))
    jobs.append(([S_MAX] * 37, 65535, 0, "all equal max score, mult 65535 shift 0"))
    ext = [rng.choice((top, -top)) for _ in range(50)]
    jobs.append((ext, *score_scale(1e-2), "extreme +/-2^28"))
    ext = [rng.choice((top, -top, top - rng.randrange(300))) for _ in range(60)]
    jobs.append((ext, 65535, 0, "extreme +/-2^28 near max, mult 65535 shift 0"))
    full = [rng.choice((S_MIN, S_MAX, rng.randint(S_MIN, S_MAX))) for _ in range(40)]
    jobs.append((full, 65535, 0, "full 30-bit range, mult 65535 shift 0"))
    jobs.append((full, 65535, 63, "full 30-bit range, mult 65535 shift 63"))
    jobs.append((full, 65535, 17, "full 30-bit range, mult 65535 shift 17 (e near 2^28)"))
    small = [rng.randint(-3000, 3000) for _ in range(80)]
    jobs.append((small, 1, 0, "shift 0 mult 1"))
    jobs.append((small, rng.randrange(1, 1 << 16), 0, "shift 0 random mult"))
    jobs.append((small, rng.randrange(1 << 16), 63, "shift 63"))
    jobs.append((small, 0, rng.randrange(64), "mult 0"))
    jobs.append(([rng.randint(-60, 60) for _ in range(70)], 65535, 14, "mult 65535"))
    scores = torch.randint(S_MIN, S_MAX + 1, (L_MAX,), generator=g).tolist()
    jobs.append((scores, 0, 5, "mult 0 n=L_MAX (S = 2^25)"))
    jobs.append(recip_residue_job(rng, 512))
    jobs.append(recip_residue_job(rng, 511))
    return jobs


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def softmax_latency_full_throughput(dut):
    """Scores every cycle, prob_ready always high: results and start-to-done cycles."""
    rng = random.Random(cocotb.RANDOM_SEED)
    g = torch.Generator().manual_seed(cocotb.RANDOM_SEED % (1 << 63))
    await reset(dut)
    for n in (64, 256, L_MAX):
        scores, mult, shift, name = realistic_job(rng, g, n)
        probs, stats, cycles = await run_job(dut, rng, scores, mult, shift)
        check(name, scores, mult, shift, probs, stats)
        dut._log.info("n=%d: %d cycles from start to done (%.3f per token)", n, cycles,
                      cycles / n)
        assert cycles == latency_formula(n), f"n={n}: {cycles} cycles, documented " \
                                             f"{latency_formula(n)}"


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def softmax_corners_with_backpressure(dut):
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    g = torch.Generator().manual_seed((cocotb.RANDOM_SEED + 1) % (1 << 63))
    await reset(dut)
    jobs = corner_jobs(rng, g)
    jobs.append(qk_job(g, 256))
    for scores, mult, shift, name in jobs:
        valid_prob = rng.choice((1.0, 0.9, 0.5))
        ready_prob = rng.choice((1.0, 0.7, 0.3))
        probs, stats, _ = await run_job(dut, rng, scores, mult, shift, valid_prob, ready_prob)
        check(f"{name} (valid {valid_prob}, ready {ready_prob})", scores, mult, shift, probs,
              stats)


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def softmax_random_realistic(dut):
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    g = torch.Generator().manual_seed((cocotb.RANDOM_SEED + 2) % (1 << 63))
    await reset(dut)
    for i in range(EXTRA_CASES):
        n = rng.choice((2, 3, 16, 64, 100, 200)) if i < EXTRA_CASES - 1 else L_MAX
        scores, mult, shift, name = realistic_job(rng, g, n)
        valid_prob, ready_prob = rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0)
        probs, stats, _ = await run_job(dut, rng, scores, mult, shift, valid_prob, ready_prob)
        check(f"{name} (valid {valid_prob:.2f}, ready {ready_prob:.2f})", scores, mult, shift,
              probs, stats)


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def softmax_ignores_bad_start(dut):
    """A start with n = 0 or n > L_MAX is ignored: busy stays low, no score is taken."""
    await reset(dut)
    for n in (0, L_MAX + 1):
        dut.n_tokens.value = n
        dut.start.value = 1
        dut.score_valid.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        for _ in range(3):
            await ReadOnly()
            assert not int(dut.busy.value), f"n={n}: start was taken"
            assert not int(dut.score_ready.value), f"n={n}: score_ready high"
            await RisingEdge(dut.clk)
    dut.score_valid.value = 0


@cocotb.test(timeout_time=200, timeout_unit="ms")
async def softmax_late_length(dut):
    """Started with n = L_MAX, the real n given by n_update after 0 .. n-1 scores (n-1: in the
    cycle that may take the n-th score): the same probabilities and statistics as with n at
    start, under back-pressure."""
    rng = random.Random(cocotb.RANDOM_SEED + 3)
    g = torch.Generator().manual_seed((cocotb.RANDOM_SEED + 3) % (1 << 63))
    await reset(dut)
    for n in (1, 2, 37, 300):
        for late_at in sorted({0, n - 1, rng.randrange(n)}):
            scores, mult, shift, name = realistic_job(rng, g, n)
            valid_prob, ready_prob = rng.choice((1.0, 0.6)), rng.choice((1.0, 0.5))
            probs, stats, _ = await run_job(dut, rng, scores, mult, shift, valid_prob,
                                            ready_prob, late_at=late_at)
            check(f"{name} (n given after {late_at} scores)", scores, mult, shift, probs, stats)
