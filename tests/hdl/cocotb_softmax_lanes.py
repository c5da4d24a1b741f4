"""cocotb test of multi-lane spatten_softmax units (LANES > 1) against softmax_fixed (bit-exact).

The toplevel is tests/hdl/tb_softmax_lanes.v: two units (a_*, b_*) of different lane counts,
tested one after the other with the same tests. One beat carries LANES consecutive scores
(lane 0 in the low bits); the last beat only n - taken of them, the other lanes carry random
garbage that must be ignored. Every probability beat (index, count, last, each valid lane's
value, 0 in lanes past n), p_max, max_index, S and R is compared with
models.softmax.softmax_fixed. Scores are offered with random gaps and prob_ready is toggled at
random; a stalled beat must hold. SOFTMAX_LANES_A, SOFTMAX_LANES_B and SOFTMAX_L_MAX give the
build's parameters (tests/hdl/test_softmax_lanes.py sets them).
"""

import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge
from cocotb_softmax import read_stats, realistic_job, recip_residue_job

from spatten_dv.models.softmax import score_scale, softmax_fixed

L_MAX = int(os.environ.get("SOFTMAX_L_MAX", "64"))
UNIT_LANES = {"a": int(os.environ.get("SOFTMAX_LANES_A", "8")),
              "b": int(os.environ.get("SOFTMAX_LANES_B", "4"))}
SCORE_BITS = 30
S_MIN, S_MAX = -(1 << (SCORE_BITS - 1)), (1 << (SCORE_BITS - 1)) - 1
SCORE_MASK = (1 << SCORE_BITS) - 1


PORTS = ("start", "n_tokens", "n_update", "score_mult", "score_shift", "busy", "done",
         "score_valid", "score_ready", "score_data", "prob_valid", "prob_ready", "prob_data",
         "prob_index", "prob_count", "prob_last", "stats_valid", "max_prob", "max_index",
         "exp_sum", "recip")
INPUTS = ("start", "n_tokens", "n_update", "score_mult", "score_shift", "score_valid",
          "score_data", "prob_ready")


class Unit:
    """The ports of one softmax unit of the wrapper under their spatten_softmax names."""

    def __init__(self, dut, name):
        self.name = name
        self.lanes = UNIT_LANES[name]
        self.clk = dut.clk
        self.log = dut._log
        for port in PORTS:
            setattr(self, port, getattr(dut, f"{name}_{port}"))

    def beats(self, n):
        return -(-n // self.lanes)

    def latency_formula(self, n):
        """Start-to-done cycles documented in hdl/spatten_softmax.v (full throughput): start
        1, load B, exp B + 4 + log2(LANES), divide 42, out B + 3 with B = ceil(n / LANES)."""
        return 3 * self.beats(n) + 50 + (self.lanes.bit_length() - 1)


async def reset(dut):
    """Clock, reset and idle inputs of both units; returns the units."""
    units = [Unit(dut, name) for name in UNIT_LANES]
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    for unit in units:
        for port in INPUTS:
            getattr(unit, port).value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)
    return units


def pack_beat(rng, lanes, scores, first):
    """The beat starting at position `first`: real scores, garbage in the lanes past n."""
    word = 0
    for lane in range(lanes):
        pos = first + lane
        value = scores[pos] if pos < len(scores) else rng.randint(S_MIN, S_MAX)
        word |= (value & SCORE_MASK) << (SCORE_BITS * lane)
    return word


def read_beat(unit):
    data = int(unit.prob_data.value)
    lanes = tuple((data >> (16 * lane)) & 0xFFFF for lane in range(unit.lanes))
    return (int(unit.prob_index.value), int(unit.prob_count.value), int(unit.prob_last.value),
            lanes)


async def run_job(unit, rng, scores, mult, shift, valid_prob=1.0, ready_prob=1.0,
                  late_at=None):
    """Run one softmax; return (beats [(index, count, last, lanes)], stats, start-to-done
    cycles). late_at: start with n = L_MAX and give the real n with n_update in the first cycle
    in which `late_at` beats have been taken (0 <= late_at < ceil(n / LANES))."""
    n = len(scores)
    where = f"unit {unit.name} (LANES={unit.lanes}) n={n}"
    assert not int(unit.busy.value), f"{where}: unit busy before start"
    unit.n_tokens.value = n if late_at is None else L_MAX
    updated = late_at is None
    unit.score_mult.value = mult
    unit.score_shift.value = shift
    sent, cycle = 0, 0  # sent: beats taken
    out, held = [], None
    beats = unit.beats
    max_cycles = 10 * beats(n) / min(valid_prob, ready_prob) + 500
    while True:
        unit.start.value = int(cycle == 0)
        update = not updated and cycle > 0 and sent == late_at
        unit.n_update.value = int(update)
        if update:
            unit.n_tokens.value = n
            updated = True
        offer = sent < beats(n) and rng.random() < valid_prob
        unit.score_valid.value = int(offer)
        # the next beat when offered, garbage otherwise (must not be taken)
        unit.score_data.value = (pack_beat(rng, unit.lanes, scores, sent * unit.lanes)
                                 if offer else rng.getrandbits(SCORE_BITS * unit.lanes))
        unit.prob_ready.value = int(rng.random() < ready_prob)
        await ReadOnly()
        done = int(unit.done.value)
        if cycle > 0 and not done:
            assert int(unit.busy.value), f"{where}: busy low at cycle {cycle}"
        if offer and int(unit.score_ready.value):
            sent += 1
        pv = int(unit.prob_valid.value)
        if held is not None:  # a stalled beat must stay valid and unchanged
            assert pv, f"{where}: prob_valid dropped while stalled"
            now = read_beat(unit)
            assert now == held, f"{where}: stalled beat changed from {held} to {now}"
        held = None
        if pv:
            beat = read_beat(unit)
            if int(unit.prob_ready.value):
                out.append(beat)
            else:
                held = beat
        if done:
            break
        cycle += 1
        assert cycle < max_cycles, f"{where}: no done after {cycle} cycles"
        await RisingEdge(unit.clk)
    assert sent == beats(n), f"{where}: {sent} beats taken, expected {beats(n)}"
    assert not int(unit.busy.value), f"{where}: busy still high with done"
    assert int(unit.stats_valid.value), f"{where}: stats_valid low at done"
    stats = read_stats(unit)
    await RisingEdge(unit.clk)
    unit.start.value = 0
    unit.n_update.value = 0
    unit.score_valid.value = 0
    return out, stats, cycle


def check(unit, name, scores, mult, shift, out, stats):
    name = f"unit {unit.name} (LANES={unit.lanes}) {name}"
    lanes_n, beats = unit.lanes, unit.beats
    ref = softmax_fixed(torch.tensor(scores, dtype=torch.int64), mult, shift)
    n = len(scores)
    want_p = ref.probs.tolist()
    assert len(out) == beats(n), f"{name}: {len(out)} beats, expected {beats(n)}"
    for b, (index, count, last, lanes) in enumerate(out):
        first = b * lanes_n
        want_count = min(lanes_n, n - first)
        assert index == first, f"{name}: beat {b} has index {index}, expected {first}"
        assert count == want_count, f"{name}: beat {b} count {count}, expected {want_count}"
        assert last == int(b == beats(n) - 1), f"{name}: beat {b} last={last}"
        for lane, value in enumerate(lanes):
            t = first + lane
            want = want_p[t] if t < n else 0
            assert value == want, (
                f"{name}: p[{t}] (beat {b} lane {lane}) = {value}, reference {want}"
                + (f" (score {scores[t]}, u {int(ref.exp_terms[t])}, mult {mult}, "
                   f"shift {shift})" if t < n else " (lane past n)"))
    want = {
        "max_prob": int(ref.max_prob),
        "max_index": int(ref.max_index),
        "exp_sum": int(ref.exp_sum),
        "recip": int(ref.reciprocal),
    }
    assert stats == want, f"{name}: stats {stats}, reference {want}"


def tie_job(rng, n):
    """Few distinct values, so the maximum repeats within a beat and across beats."""
    values = [rng.randint(S_MIN // 2, S_MAX // 2) for _ in range(3)]
    scores = [rng.choice(values) for _ in range(n)]
    return scores, *score_scale(10 ** rng.uniform(-4, -1)), f"ties n={n}"


def lengths(rng, lanes):
    """n = 1, below LANES, LANES, not a multiple of LANES, L_MAX and a random one."""
    return [1, rng.randrange(2, lanes) if lanes > 2 else 2, lanes, lanes + 1,
            2 * lanes + rng.randrange(1, lanes), L_MAX - 1, L_MAX, rng.randrange(1, L_MAX + 1)]


def corner_jobs(rng, g, lanes):
    top = 1 << 28
    jobs = [
        ([rng.randint(S_MIN, S_MAX)], rng.randrange(1 << 16), rng.randrange(64), "n=1"),
        ([S_MIN], 65535, 0, "n=1 min score"),
        ([S_MAX] * L_MAX, 65535, 0, "all equal max score n=L_MAX"),
        ([rng.randint(S_MIN, S_MAX)] * (lanes + 3), *score_scale(1e-3), "all equal"),
    ]
    # the maximum only in the last lane of the last, partial beat
    n = 3 * lanes - 1
    scores = [rng.randint(-5000, 5000) for _ in range(n)]
    scores[-1] = 9000
    jobs.append((scores, 1, 0, "maximum at position n-1"))
    # ties of the maximum: first in the top lane of beat 0, again in lane 0 of beats 1 and 2
    scores = [rng.randint(-5000, 5000) for _ in range(2 * lanes + 1)]
    scores[lanes - 1] = scores[lanes] = scores[2 * lanes] = 7777
    jobs.append((scores, 1, 0, "tied maximum across lanes and beats"))
    # ties inside one beat: the lowest lane of the tie wins
    scores = [rng.randint(-5000, 5000) for _ in range(lanes)]
    scores[1] = scores[lanes - 1] = 6666
    jobs.append((scores, 1, 0, "tied maximum inside one beat"))
    ext = [rng.choice((top, -top, top - rng.randrange(300))) for _ in range(L_MAX)]
    jobs.append((ext, 65535, 0, "extreme +/-2^28 near max, mult 65535 shift 0"))
    full = [rng.choice((S_MIN, S_MAX, rng.randint(S_MIN, S_MAX))) for _ in range(lanes + 5)]
    jobs.append((full, 65535, 0, "full 30-bit range, mult 65535 shift 0"))
    jobs.append((full, 65535, 17, "full 30-bit range, mult 65535 shift 17"))
    small = [rng.randint(-3000, 3000) for _ in range(2 * lanes + 3)]
    jobs.append((small, 1, 0, "shift 0 mult 1"))
    jobs.append((small, rng.randrange(1 << 16), 63, "shift 63"))
    jobs.append((small, 0, rng.randrange(64), "mult 0"))
    scores = torch.randint(S_MIN, S_MAX + 1, (L_MAX,), generator=g).tolist()
    jobs.append((scores, 0, 5, "mult 0 n=L_MAX"))
    jobs.append(recip_residue_job(rng, 512))
    jobs.append(recip_residue_job(rng, 511))
    return [job for job in jobs if len(job[0]) <= L_MAX]


def generators(seed):
    return random.Random(seed), torch.Generator().manual_seed(seed % (1 << 63))


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def lanes_latency_full_throughput(dut):
    """A beat every cycle, prob_ready always high: results and start-to-done cycles."""
    rng, g = generators(cocotb.RANDOM_SEED)
    for unit in await reset(dut):
        for n in lengths(rng, unit.lanes):
            scores, mult, shift, name = realistic_job(rng, g, n)
            out, stats, cycles = await run_job(unit, rng, scores, mult, shift)
            check(unit, name, scores, mult, shift, out, stats)
            unit.log.info("LANES=%d n=%d: %d cycles from start to done", unit.lanes, n, cycles)
            assert cycles == unit.latency_formula(n), \
                f"LANES={unit.lanes} n={n}: {cycles} cycles, documented " \
                f"{unit.latency_formula(n)}"


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def lanes_corners_with_backpressure(dut):
    rng, g = generators(cocotb.RANDOM_SEED + 1)
    for unit in await reset(dut):
        jobs = corner_jobs(rng, g, unit.lanes) + \
            [tie_job(rng, n) for n in lengths(rng, unit.lanes)]
        for scores, mult, shift, name in jobs:
            valid_prob = rng.choice((1.0, 0.8, 0.4))
            ready_prob = rng.choice((1.0, 0.6, 0.3))
            out, stats, _ = await run_job(unit, rng, scores, mult, shift, valid_prob,
                                          ready_prob)
            check(unit, f"{name} (valid {valid_prob}, ready {ready_prob})", scores, mult,
                  shift, out, stats)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def lanes_random(dut):
    rng, g = generators(cocotb.RANDOM_SEED + 2)
    for unit in await reset(dut):
        for _ in range(12):
            n = rng.randrange(1, L_MAX + 1)
            if rng.random() < 0.5:
                scores, mult, shift, name = realistic_job(rng, g, n)
            else:
                scores, mult, shift, name = tie_job(rng, n)
            valid_prob, ready_prob = rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0)
            out, stats, _ = await run_job(unit, rng, scores, mult, shift, valid_prob,
                                          ready_prob)
            check(unit, f"{name} (valid {valid_prob:.2f}, ready {ready_prob:.2f})", scores,
                  mult, shift, out, stats)


@cocotb.test(timeout_time=100, timeout_unit="ms")
async def lanes_late_length(dut):
    """Started with n = L_MAX, the real n given by n_update after 0 beats, mid-way and in the
    cycle that takes the final beat: the same results as with n at start."""
    rng, g = generators(cocotb.RANDOM_SEED + 3)
    for unit in await reset(dut):
        lanes = unit.lanes
        for n in (1, lanes - 1, lanes, 3 * lanes + 2, L_MAX - 1, L_MAX):
            last = unit.beats(n) - 1
            for late_at in sorted({0, last // 2, last}):
                scores, mult, shift, name = realistic_job(rng, g, n)
                valid_prob, ready_prob = rng.choice((1.0, 0.6)), rng.choice((1.0, 0.5))
                out, stats, _ = await run_job(unit, rng, scores, mult, shift, valid_prob,
                                              ready_prob, late_at=late_at)
                check(unit, f"{name} (n given after {late_at} beats)", scores, mult, shift,
                      out, stats)


@cocotb.test(timeout_time=1, timeout_unit="ms")
async def lanes_ignore_bad_start(dut):
    """A start with n = 0 or n > L_MAX is ignored: busy stays low, no beat is taken."""
    for unit in await reset(dut):
        for n in (0, L_MAX + 1):
            unit.n_tokens.value = n
            unit.start.value = 1
            unit.score_valid.value = 1
            await RisingEdge(dut.clk)
            unit.start.value = 0
            for _ in range(3):
                await ReadOnly()
                assert not int(unit.busy.value), f"LANES={unit.lanes} n={n}: start was taken"
                assert not int(unit.score_ready.value), \
                    f"LANES={unit.lanes} n={n}: score_ready high"
                await RisingEdge(dut.clk)
        unit.score_valid.value = 0
