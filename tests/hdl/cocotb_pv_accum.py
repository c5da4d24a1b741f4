"""cocotb test of spatten_pv_accum against models.core.weighted_sum (bit-exact)."""

import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.core import weighted_sum

D = 64


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


async def run_job(dut, rng, probs, values, valid_prob, ready_prob):
    dut.clear.value = 1
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    i = 0
    while i < len(probs):
        send = rng.random() < valid_prob
        dut.in_valid.value = int(send)
        dut.in_prob.value = int(probs[i])
        dut.in_value.value = pack(values[i].tolist(), 12)
        dut.in_last.value = int(i == len(probs) - 1)
        await ReadOnly()
        taken = send and int(dut.in_ready.value)
        await RisingEdge(dut.clk)
        i += int(taken)
    dut.in_valid.value = 0
    while True:
        dut.out_ready.value = int(rng.random() < ready_prob)
        await ReadOnly()
        if int(dut.out_valid.value) and int(dut.out_ready.value):
            out = unpack_signed(int(dut.out_data.value), 16, D)
            abs_sum = int(dut.out_abs_sum.value)
            await RisingEdge(dut.clk)
            return out, abs_sum
        await RisingEdge(dut.clk)


def check(probs, values, out, abs_sum, what):
    want = weighted_sum(probs, values)
    assert out == want.tolist(), f"{what}: output differs from the reference"
    assert abs_sum == int(want.abs().sum()), f"{what}: |out| sum differs"


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def pv_accum_matches_reference(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    g = torch.Generator().manual_seed(cocotb.RANDOM_SEED % (1 << 63))
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.clear.value = 0
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
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
    for what, probs, values in cases:
        out, abs_sum = await with_timeout(
            run_job(dut, rng, probs, values, rng.choice([1.0, 0.6]), rng.choice([1.0, 0.3])),
            1, "ms")
        check(probs, values, out, abs_sum, what)
