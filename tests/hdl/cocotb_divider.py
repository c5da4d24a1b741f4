"""cocotb test of spatten_divider: quotient and remainder against Python's divmod.

The width configuration comes from DIVIDER_NUM_W / DIVIDER_DEN_W (set by test_divider.py to the
parameters it built); DIVIDER_CASES sets the number of random divisions (default 200).
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

from spatten_dv.models.params import RECIP_BITS

NUM_W = int(os.environ.get("DIVIDER_NUM_W", "41"))
DEN_W = int(os.environ.get("DIVIDER_DEN_W", "26"))
CASES = int(os.environ.get("DIVIDER_CASES", "200"))


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.start.value = 0
    dut.dividend.value = 0
    dut.divisor.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


async def divide(dut, a, b):
    """Start one division; return (quotient, remainder, cycles from start to done)."""
    dut.dividend.value = a
    dut.divisor.value = b
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    dut.dividend.value = 0  # operands are latched at start
    dut.divisor.value = 0
    cycles = 1
    while True:
        await ReadOnly()
        if int(dut.done.value):
            assert not int(dut.busy.value), "busy still high with done"
            q, r = int(dut.quotient.value), int(dut.remainder.value)
            await RisingEdge(dut.clk)
            return q, r, cycles
        assert int(dut.busy.value), "busy low before done"
        assert cycles < NUM_W + 5, "divider never finished"
        await RisingEdge(dut.clk)
        cycles += 1


def check(a, b, q, r):
    if b == 0:
        assert q == (1 << NUM_W) - 1, f"{a}/0: quotient {q:#x}, want all ones"
        return
    want_q, want_r = divmod(a, b)
    assert (q, r) == (want_q, want_r), f"{a}/{b}: got ({q}, {r}), want ({want_q}, {want_r})"


def operand_pairs(rng):
    top_a, top_b = (1 << NUM_W) - 1, (1 << DEN_W) - 1
    if NUM_W <= 10 and DEN_W <= 5:  # small configuration: exhaustive
        return [(a, b) for a in range(top_a + 1) for b in range(top_b + 1)]
    pairs = [(0, 1), (1, 1), (top_a, 1), (top_a, top_b), (top_b, top_a if top_a <= top_b else 1),
             (top_a, 0), (12345, 0), (top_b - 1, top_b), (top_b, top_b)]
    if NUM_W == RECIP_BITS + 1:  # the softmax's R = 2^40 / S, S = 2^15 .. 2^25
        s_values = [1 << 15, (1 << 15) + 1, (1 << 25) - 1, 1 << 25, 3 << 20]
        s_values += [rng.randrange(1 << 15, (1 << 25) + 1) for _ in range(CASES // 4)]
        pairs += [(1 << RECIP_BITS, s) for s in s_values if s <= top_b]
    for _ in range(CASES):
        a = rng.getrandbits(rng.randrange(1, NUM_W + 1))
        b = rng.getrandbits(rng.randrange(1, DEN_W + 1)) or 1
        pairs.append((a, b))
    return pairs


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def divider_matches_divmod(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    await reset(dut)
    pairs = operand_pairs(rng)
    for a, b in pairs:
        q, r, cycles = await divide(dut, a, b)
        check(a, b, q, r)
        assert cycles == NUM_W, f"latency {cycles} cycles, documented {NUM_W}"
    dut._log.info("%d divisions checked (NUM_W=%d, DEN_W=%d)", len(pairs), NUM_W, DEN_W)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def divider_restart_while_busy(dut):
    """A start in the middle of a division abandons it and computes the new one."""
    rng = random.Random(cocotb.RANDOM_SEED + 1)
    await reset(dut)
    for _ in range(5):
        dut.dividend.value = rng.getrandbits(NUM_W)
        dut.divisor.value = rng.getrandbits(DEN_W) or 1
        dut.start.value = 1
        await RisingEdge(dut.clk)
        dut.start.value = 0
        for _ in range(rng.randrange(0, NUM_W - 1)):
            await RisingEdge(dut.clk)
        a, b = rng.getrandbits(NUM_W), rng.getrandbits(DEN_W) or 1
        q, r, _ = await divide(dut, a, b)
        check(a, b, q, r)
