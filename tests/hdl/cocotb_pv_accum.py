"""cocotb test of spatten_pv_accum against models.core.weighted_sum (bit-exact).

PV_VPC (set by the pytest wrapper) is the number of (probability, value) pairs per beat the
DUT was built for (PV_MULS = PV_VPC * D): a job's pairs go in beats of PV_VPC, in_count valid
pairs packed from pair 0, only the last beat partial.
"""

import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.core import weighted_sum

D = 64
VPC = int(os.environ.get("PV_VPC", "1"))
# The job's last beat accepted in cycle c has the result on out_* (out_valid) in cycle c+3:
# product register, accumulate, output register. Documented in the RTL.
LATENCY = 3


def pack(values, bits):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & ((1 << bits) - 1)) << (bits * i)
    return word


def unpack_signed(word, bits, n):
    out = []
    for i in range(n):
        v = (word >> (bits * i)) & ((1 << bits) - 1)
        out.append(v - (1 << bits) if v >> (bits - 1) else v)
    return out


def beats_of(probs, values, rng):
    """(in_prob, in_value, in_count) per beat: VPC pairs a beat, the last holding the rest;
    the pairs of a partial beat past its count hold random bits (the DUT must ignore them)."""
    p, v = probs.tolist(), values.tolist()
    beats = []
    for b in range(0, len(p), VPC):
        count = len(p[b:b + VPC])
        prob = pack(p[b:b + VPC], 16) | rng.getrandbits(16 * (VPC - count)) << (16 * count)
        value = pack([x for row in v[b:b + VPC] for x in row], 12) \
            | rng.getrandbits(12 * D * (VPC - count)) << (12 * D * count)
        beats.append((prob, value, count))
    return beats


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.clear.value = 0
    dut.in_valid.value = 0
    dut.in_count.value = 1
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1


async def send_beats(dut, rng, beats, valid_prob, last=True):
    """Stream beats (garbage on the data lines while in_valid is low); return the cycles
    (counted from the call) in which beats were accepted."""
    accepted, cycle, i = [], 0, 0
    while i < len(beats):
        send = rng.random() < valid_prob
        prob, value, count = beats[i] if send else (
            rng.getrandbits(16 * VPC), rng.getrandbits(12 * D * VPC), rng.randint(1, VPC))
        dut.in_valid.value = int(send)
        dut.in_prob.value = prob
        dut.in_value.value = value
        dut.in_count.value = count
        dut.in_last.value = int(last and i == len(beats) - 1)
        await ReadOnly()
        taken = send and int(dut.in_ready.value)
        if taken:
            accepted.append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1
        i += int(taken)
    dut.in_valid.value = 0
    return accepted, cycle


async def take_result(dut, rng, ready_prob, cycle=0):
    """Wait for the result (out_ready random); return (out, abs_sum, first out_valid cycle)."""
    first_valid = None
    while True:
        dut.out_ready.value = int(rng.random() < ready_prob)
        await ReadOnly()
        if int(dut.out_valid.value):
            first_valid = cycle if first_valid is None else first_valid
            assert not int(dut.in_ready.value), "in_ready high while the result is held"
            if int(dut.out_ready.value):
                out = unpack_signed(int(dut.out_data.value), 16, D)
                abs_sum = int(dut.out_abs_sum.value)
                await RisingEdge(dut.clk)
                dut.out_ready.value = 0
                return out, abs_sum, first_valid
        await RisingEdge(dut.clk)
        cycle += 1


async def run_job(dut, rng, probs, values, valid_prob, ready_prob, clear_first=True):
    if clear_first:
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
    accepted, cycle = await send_beats(dut, rng, beats_of(probs, values, rng), valid_prob)
    out, abs_sum, first_valid = await take_result(dut, rng, ready_prob, cycle)
    return out, abs_sum, first_valid - accepted[-1]


def check(probs, values, out, abs_sum, what):
    want = weighted_sum(probs, values)
    assert out == want.tolist(), f"{what}: output differs from the reference"
    assert abs_sum == int(want.abs().sum()), f"{what}: |out| sum differs"


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def pv_accum_matches_reference(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    g = torch.Generator().manual_seed(cocotb.RANDOM_SEED % (1 << 63))
    await reset(dut)
    cases = []
    for n in (1, 5, 64, 300):  # random probabilities normalised to ~1
        raw = torch.rand(n, generator=g) ** 4
        probs = torch.round(raw / raw.sum() * 32768).to(torch.int64)
        values = torch.randint(-2048, 2048, (n, D), generator=g)
        cases.append((f"random n={n}", probs, values))
    cases.append(("one token p=1 v=max", torch.tensor([32768]), torch.full((1, D), 2047)))
    cases.append(("one token p=1 v=min", torch.tensor([32768]), torch.full((1, D), -2048)))
    cases.append(("saturate +", torch.full((4,), 32768), torch.full((4, D), 2047)))
    cases.append(("saturate -", torch.full((4,), 32768), torch.full((4, D), -2048)))
    # acc = +-1024·odd: exactly half an output LSB, where round-half-up must show.
    ties = torch.tensor([1, -1, 3, -3] * 16).reshape(1, D)
    cases.append(("rounding ties", torch.tensor([1024]), ties))
    cases.append(("zero probs", torch.zeros(3, dtype=torch.int64),
                  torch.randint(-2048, 2048, (3, D), generator=g)))
    if VPC > 1:
        # Every size of the last beat: 1..VPC pairs (a dropped pair would show: full-scale
        # probabilities and values of both signs).
        for r in range(1, VPC + 1):
            n = VPC + r
            probs = torch.randint(0, 32769, (n,), generator=g) // VPC
            values = torch.where(torch.rand((n, D), generator=g) < 0.5, -2048, 2047)
            cases.append((f"last beat of {r} pair(s)", probs, values))
        # One beat of VPC full-scale pairs: the tree's widest sums, 8 · 65535 · -2048 at
        # VPC = 8, and a partial first-and-last beat.
        cases.append(("full beat, p = 65535, v = -2048", torch.full((VPC,), 65535),
                      torch.full((VPC, D), -2048)))
        cases.append(("full beat, p = 65535, v = 2047", torch.full((VPC,), 65535),
                      torch.full((VPC, D), 2047)))
        cases.append(("one partial beat", torch.randint(0, 65536, (VPC - 1,), generator=g),
                      torch.randint(-2048, 2048, (VPC - 1, D), generator=g)))
    for what, probs, values in cases:
        out, abs_sum, _ = await with_timeout(
            run_job(dut, rng, probs, values, rng.choice([1.0, 0.6]), rng.choice([1.0, 0.3])),
            1, "ms")
        check(probs, values, out, abs_sum, what)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def pv_accum_rate_and_latency(dut):
    """One beat per cycle with valid high; the result 3 cycles after the last beat."""
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    g = torch.Generator().manual_seed((cocotb.RANDOM_SEED + 1) % (1 << 63))
    await reset(dut)
    for n in (1, VPC, 37 * VPC + 1, 200):
        probs = torch.randint(0, 32768 // max(1, n // 8), (n,), generator=g)
        values = torch.randint(-2048, 2048, (n, D), generator=g)
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
        accepted, cycle = await send_beats(dut, rng, beats_of(probs, values, rng), 1.0)
        out, abs_sum, first_valid = await take_result(dut, rng, 1.0, cycle)
        check(probs, values, out, abs_sum, f"full rate n={n}")
        assert accepted == list(range(len(accepted))), \
            f"n={n}: beats accepted in cycles {accepted[:8]}..., want one per cycle"
        latency = first_valid - accepted[-1]
        dut._log.info("VPC=%d n=%d: %d beats in %d cycles, result %d cycles after the last",
                      VPC, n, len(accepted), accepted[-1] + 1, latency)
        assert latency == LATENCY, f"n={n}: latency {latency}, want {LATENCY}"


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def pv_accum_clear_mid_job(dut):
    """clear in the middle of a job (a product still in flight): the next job is exact."""
    rng = random.Random(cocotb.RANDOM_SEED + 2)
    g = torch.Generator().manual_seed((cocotb.RANDOM_SEED + 2) % (1 << 63))
    await reset(dut)
    for gap in (0, 1, 3):  # cycles between the cut job's last beat and clear
        n = 5 * VPC + 2
        cut = beats_of(torch.randint(0, 32769, (n,), generator=g),
                       torch.randint(-2048, 2048, (n, D), generator=g), rng)
        await send_beats(dut, rng, cut, 0.8, last=False)
        for _ in range(gap):
            await RisingEdge(dut.clk)
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
        n = 3 * VPC + 1
        probs = torch.randint(0, 32768 // n, (n,), generator=g)
        values = torch.randint(-2048, 2048, (n, D), generator=g)
        out, abs_sum, _ = await run_job(dut, rng, probs, values, 0.7, 0.5, clear_first=False)
        check(probs, values, out, abs_sum, f"after a clear {gap} cycle(s) after the cut job")
