"""cocotb tests of spatten_topk (quick-select top-k engine) against models/topk.py.

Every case loads n values, starts the engine and collects the index stream (with optional
random out_ready back-pressure). Checked against the reference model: the emitted indices and
their order (topk_indices), out_last on exactly the final beat, thr/ties (topk_threshold), and
the partition passes (candidate counts) against an independent Python quick-select with the
documented pivot rule (first candidate, then a sample from the later half of the chosen
order-preserving partition). Pass lengths are timed by
the testbench's own cycle count and compared with ceil(m/16)+3 (must be within 1.1x).

A build with LOAD_LANES > 1 (a multi-lane softmax's or a wide prune scan's loads) loads
several values per cycle: groups of random sizes at any index (after a partial group they are
unaligned and cross rows of the value RAM), single values and idle cycles in between;
everything else is checked the same way.

TOPK_RANDOM_CASES (default 6) sets the number of random cases; the seed is cocotb's
(COCOTB_RANDOM_SEED, printed by the runner on failure).
"""

import math
import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from spatten_dv.models.topk import topk_indices, topk_threshold

L_MAX = 1024
VALUE_BITS = 32
CMPS = 16
VMAX = (1 << VALUE_BITS) - 1
N_RANDOM = int(os.environ.get("TOPK_RANDOM_CASES", "6"))


def partition_sample(batches):
    """The engine's pivot sample of one partition (spatten_topk_stage): the first value of the
    first non-empty batch, then the first value of each batch that takes the count past twice
    the previous sample's position + 1."""
    total, s_pos, sample = 0, 0, None
    for batch in batches:
        if batch and total + len(batch) > 2 * s_pos:
            sample, s_pos = batch[0], total + 1
        total += len(batch)
    return sample


def model_passes(values, k):
    """Candidate counts of the passes the engine must make (pivot: the first candidate, then
    the sample of the chosen partition; partitions keep order; one row of CMPS per cycle)."""
    if k == 0 or k >= len(values):
        return []
    cands, k_rem, ms, p = list(values), k, [], values[0]
    while True:
        ms.append(len(cands))
        rows = [cands[i:i + CMPS] for i in range(0, len(cands), CMPS)]
        gt = [v for v in cands if v > p]
        eq = sum(1 for v in cands if v == p)
        if k_rem <= len(gt):
            cands, p = gt, partition_sample([[v for v in r if v > p] for r in rows])
        elif k_rem <= len(gt) + eq:
            return ms
        else:
            k_rem -= len(gt) + eq
            cands, p = [v for v in cands if v < p], \
                partition_sample([[v for v in r if v < p] for r in rows])


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.load_valid.value = 0
    dut.load_index.value = 0
    dut.load_value.value = 0
    dut.load_count.value = 1
    dut.start.value = 0
    dut.n.value = 0
    dut.k.value = 0
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


async def load(dut, values, rng):
    """Load values[i] at index i: one per cycle, or with LOAD_LANES > 1 groups of 1..LANES
    values starting anywhere (so groups cross rows of the value RAM), with idle cycles."""
    lanes = len(dut.load_value) // VALUE_BITS
    i = 0
    while i < len(values):
        if lanes > 1 and rng.random() < 0.2:
            dut.load_valid.value = 0
            await RisingEdge(dut.clk)
            continue
        if lanes == 1 or rng.random() < 0.15:
            count = 1
        else:
            count = min(len(values) - i, rng.choice([lanes, lanes, rng.randint(1, lanes)]))
        word = sum(v << (VALUE_BITS * j) for j, v in enumerate(values[i:i + count]))
        # lanes beyond the count carry garbage: they must not be written
        word |= sum(rng.randrange(1 << VALUE_BITS) << (VALUE_BITS * j)
                    for j in range(count, lanes))
        dut.load_valid.value = 1
        dut.load_index.value = i
        dut.load_value.value = word
        dut.load_count.value = count
        await RisingEdge(dut.clk)
        i += count
    dut.load_valid.value = 0


async def run_case(dut, values, k, rng, ready_prob=1.0, n=None):
    """Load `values`, run top-k with k, check everything; return [(m, cycles)] per pass."""
    n = len(values) if n is None else n
    await load(dut, values, rng)
    dut.start.value = 1
    dut.n.value = n
    dut.k.value = k
    await RisingEdge(dut.clk)  # start sampled here (cycle 0)
    dut.start.value = 0
    got, lasts, passes = [], [], []
    cycle, last_pass_cycle = 0, 0
    limit = 200_000
    while True:
        cycle += 1
        dut.out_ready.value = 1 if rng.random() < ready_prob else 0
        await ReadOnly()
        if int(dut.out_valid.value) and int(dut.out_ready.value):
            got.append(int(dut.out_index.value))
            lasts.append(int(dut.out_last.value))
        if int(dut.pass_valid.value):
            passes.append(
                (int(dut.pass_m.value), cycle - last_pass_cycle, int(dut.pass_cycles.value))
            )
            last_pass_cycle = cycle
        if int(dut.done.value):
            break
        assert cycle < limit, "engine never finished"
        await RisingEdge(dut.clk)
    thr, ties = int(dut.thr.value), int(dut.ties.value)
    n_passes, sel_cycles = int(dut.passes.value), int(dut.cycles.value)
    await RisingEdge(dut.clk)
    dut.out_ready.value = 0
    await ReadOnly()
    assert not int(dut.busy.value), "busy after done"
    await RisingEdge(dut.clk)

    tag = f"n={n} k={k}"
    vals = torch.tensor(values[:n], dtype=torch.int64)
    want = topk_indices(vals, k).tolist()
    first_diff = next((i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b), None)
    assert got == want, (
        f"{tag}: indices differ; got {len(got)}, want {len(want)}; first diff at {first_diff}"
    )
    want_lasts = [0] * len(want)
    if want:
        want_lasts[-1] = 1
    assert lasts == want_lasts, f"{tag}: out_last wrong"
    if 1 <= k < n:
        assert (thr, ties) == topk_threshold(vals, k), f"{tag}: thr/ties {(thr, ties)}"
    else:
        assert (thr, ties) == (0, 0), f"{tag}: thr/ties {(thr, ties)} with no pass"
    assert [m for m, _, _ in passes] == model_passes(values[:n], k), (
        f"{tag}: pass candidate counts {[m for m, _, _ in passes]}"
    )
    assert n_passes == len(passes), f"{tag}: passes counter {n_passes} != {len(passes)}"
    assert sel_cycles == sum(c for _, c, _ in passes), f"{tag}: cycles counter {sel_cycles}"
    for m, c, c_dut in passes:
        assert c == c_dut, f"{tag}: pass_cycles {c_dut}, measured {c}"
        budget = math.ceil(m / CMPS) + 3
        assert c <= 1.1 * budget, f"{tag}: pass over m={m} took {c} > 1.1*{budget}"
    return [(m, c) for m, c, _ in passes]


def rand_values(rng, n, hi=VMAX):
    return [rng.randint(0, hi) for _ in range(n)]


@cocotb.test()
async def random_values(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    await reset(dut)
    for case in range(N_RANDOM):
        n = rng.choice([rng.randint(1, L_MAX), rng.randint(2, 64), L_MAX])
        hi = rng.choice([VMAX, 0xFFFF, 255])
        k = rng.randint(0, n + 2)
        dut._log.info("random case %d: n=%d k=%d hi=%d", case, n, k, hi)
        await run_case(dut, rand_values(rng, n, hi), k, rng, ready_prob=rng.choice([1.0, 0.5]))


@cocotb.test()
async def corners(dut):
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    await reset(dut)
    cases = [
        ("all equal", [77] * 300, 100),
        ("all equal k=1", [5] * 40, 1),
        ("ties 0..3", rand_values(rng, 500, 3), 200),
        ("ties 0..3 small k", rand_values(rng, 129, 3), 3),
        ("n=1 k=1", [123], 1),
        ("n=1 k=0", [123], 0),
        ("k=0", rand_values(rng, 50), 0),
        ("k=1", rand_values(rng, 700), 1),
        ("k=n", rand_values(rng, 90), 90),
        ("k>n", rand_values(rng, 33), 500),
        ("k=n-1", rand_values(rng, 200), 199),
        ("min/max values", [rng.choice([0, VMAX]) for _ in range(257)], 100),
        ("max and min mix", [VMAX, 0, VMAX, 0, 1, VMAX - 1] * 20, 7),
        ("L_MAX k=500", rand_values(rng, L_MAX), 500),
        ("L_MAX ties", rand_values(rng, L_MAX, 3), 700),
        ("descending", list(range(300, 0, -1)), 20),
        ("ascending", list(range(200)), 150),
        ("ascending L_MAX k=1", list(range(L_MAX)), 1),
        ("descending L_MAX k=900", list(range(L_MAX, 0, -1)), 900),
    ]
    for name, values, k in cases:
        dut._log.info("corner %s: n=%d k=%d", name, len(values), k)
        await run_case(dut, values, k, rng)
    # n = 0 (values in the RAM are ignored) and back-pressure on a tie-heavy case
    await run_case(dut, [], 5, rng, n=0)
    await run_case(dut, rand_values(rng, 400, 3), 150, rng, ready_prob=0.3)
    await run_case(dut, rand_values(rng, 300), 300, rng, ready_prob=0.4)


@cocotb.test()
async def pass_cycles_vs_formula(dut):
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    await reset(dut)
    rows = []
    for n, k in [(64, 8), (64, 40), (256, 32), (256, 200), (1024, 100), (1024, 700)]:
        for m, c in await run_case(dut, rand_values(rng, n), k, rng):
            rows.append((n, k, m, c, math.ceil(m / CMPS) + 3))
    dut._log.info("  n     k     m  cycles  formula  ratio")
    for n, k, m, c, f in rows:
        dut._log.info("%5d %5d %5d %7d %8d  %.3f", n, k, m, c, f, c / f)
    worst = max(c / f for *_, c, f in rows)
    dut._log.info("passes: %d, worst ratio %.3f", len(rows), worst)
    assert worst <= 1.1


@cocotb.test()
async def sorted_inputs_take_few_passes(dut):
    """Sorted and nearly sorted inputs (token importance often is): the sampled pivot keeps
    the pass count logarithmic (a first-candidate pivot would drop one value per pass)."""
    rng = random.Random(cocotb.RANDOM_SEED + 3)
    await reset(dut)
    worst = 0
    for name, values in [("ascending", list(range(L_MAX))),
                         ("descending", list(range(L_MAX, 0, -1))),
                         ("nearly descending", [v + rng.randrange(8) for v in
                                                range(4 * L_MAX, 0, -4)])]:
        for k in (1, 100, 512, 1000):
            passes = await run_case(dut, values, k, rng)
            dut._log.info("%s n=%d k=%d: %d passes, %d cycles", name, L_MAX, k, len(passes),
                          sum(c for _, c in passes))
            worst = max(worst, len(passes))
    assert worst <= 2 * math.ceil(math.log2(L_MAX)) + 2, worst
