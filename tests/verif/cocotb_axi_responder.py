"""cocotb tests of the AXI read responder + DRAM target, with spatten_fetcher as the master."""

import os
import random
from collections import Counter, defaultdict

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.dram.config import SystemConfig
from spatten_dv.models.dram.ideal import IdealMemory
from spatten_dv.models.dram.memory_system import MemorySystem
from spatten_dv.models.memory import DECERR, SLVERR, DramImage
from spatten_dv.verif.axi_read_responder import ResponderKnobs, attach_read_responders
from spatten_dv.verif.dram_target import DramTarget

N_CH = int(os.environ.get("RESPONDER_N_CH", "1"))
PERIOD_PS = 10_000


def random_image(rng, base, nbytes):
    mem = DramImage()
    mem.write(base, np.frombuffer(rng.randbytes(nbytes), dtype=np.uint8))
    return mem


async def setup(dut, model, mem, knobs=None, tx_bytes=64):
    cocotb.start_soon(Clock(dut.clk, PERIOD_PS, unit="ps").start())
    dut.rst_n.value = 0
    dut.start.value = 0
    dut.dense_w6.value = 0  # whole-word strides here (dense planes: tests/hdl/cocotb_fetcher.py)
    dut.idx_valid.value = 0
    dut.beat_ready.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)
    target = DramTarget(model, PERIOD_PS)
    _, responders = attach_read_responders(dut, dut.clk, mem, target, N_CH,
                                           tx_bytes=tx_bytes, knobs=knobs)
    await target.start(dut.clk)
    return target, responders


async def fetch(dut, base, stride, tokens, beat_ready_prob=1.0, rng=None):
    """Drive one fetch through the DUT; returns (beats, error)."""
    rng = rng or random.Random(0)
    dut.base.value = base
    dut.stride_beats.value = stride
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0

    async def feed():
        i = 0
        while i < len(tokens):
            dut.idx_valid.value = 1
            dut.idx_token.value = tokens[i]
            dut.idx_last.value = int(i == len(tokens) - 1)
            await ReadOnly()
            taken = int(dut.idx_ready.value)
            await RisingEdge(dut.clk)
            i += taken
        dut.idx_valid.value = 0

    feeder = cocotb.start_soon(feed())
    beats = []
    while True:
        dut.beat_ready.value = int(rng.random() < beat_ready_prob)
        await ReadOnly()
        if int(dut.beat_valid.value) and int(dut.beat_ready.value):
            beats.append(int(dut.beat_data.value))
        finished, error = int(dut.done.value), int(dut.error.value)
        await RisingEdge(dut.clk)
        if finished:
            break
    await feeder
    return beats, error


def expected(mem, base, stride, tokens):
    return [int.from_bytes(mem.read(base + (t * stride + j) * 32, 32), "little")
            for t in tokens for j in range(stride)]


@cocotb.test(timeout_time=2, timeout_unit="ms")
async def ideal_memory_latency_is_exact(dut):
    latency = 23
    mem = random_image(random.Random(1), 0x4000, 4096)
    target, responders = await setup(dut, IdealMemory(read_latency=latency), mem)
    beats, error = await with_timeout(fetch(dut, 0x4000, 1, [3]), 100, "us")
    assert error == 0 and beats == expected(mem, 0x4000, 1, [3])
    (burst,) = [b for r in responders for b in r.bursts]
    assert burst.beat_cycles == [burst.ar_cycle + 1 + latency], (burst.ar_cycle, burst.beat_cycles)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def ddr4_beats_leave_when_dram_allows(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    base = 0x100000
    mem = random_image(rng, base, 96 * 1024)
    model = MemorySystem(SystemConfig.from_presets("DDR4", "DDR4_2400R"))
    target, responders = await setup(dut, model, mem)
    tokens = sorted(rng.sample(range(1024), 200))
    beats, error = await with_timeout(fetch(dut, base, 3, tokens), 5, "ms")
    assert error == 0 and beats == expected(mem, base, 3, tokens)
    assert len(target.completed) == target.reads
    # Two bursts can read the same 64-byte transaction (a token's last beat and the next
    # token's first): each submits its own DRAM read. Reads of one address arrive in
    # submission order, so the k-th read of an address (by arrival) is the k-th burst's.
    departs = defaultdict(list)
    for addr, _, d in sorted(target.completed, key=lambda c: c[1]):
        departs[addr].append(d)
    taken = Counter()
    # The fetcher takes R beats in burst issue order (one AR per cycle, so AR cycles order
    # the bursts across channels), with its bus otherwise always ready: each beat leaves
    # exactly when its data is back and the beat before it, in that order, has gone.
    prev = -1
    for burst in sorted((b for r in responders for b in r.bursts), key=lambda b: b.ar_cycle):
        depart = {}
        for i, cycle in enumerate(burst.beat_cycles):
            tx = (burst.addr + 32 * i) // 64 * 64
            if tx not in depart:
                depart[tx] = departs[tx][taken[tx]]
                taken[tx] += 1
            assert cycle == max(depart[tx], prev + 1), (hex(burst.addr), i, cycle)
            prev = cycle
    assert sum(taken.values()) == target.reads  # every read belongs to exactly one burst
    dut._log.info("DDR4-2400R: %d reads, last data at cycle %d", target.reads,
                  max(d for _, _, d in target.completed))


@cocotb.test(timeout_time=40, timeout_unit="ms")
async def backpressure_and_extra_latency_keep_data_and_order(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    base = 0x200000
    mem = random_image(rng, base, 64 * 1024)
    knobs = ResponderKnobs(ar_ready_prob=0.5, r_valid_prob=0.6, extra_latency=(0, 25),
                           max_outstanding=3, seed=rng.randrange(1 << 30))
    model = MemorySystem(SystemConfig.from_presets("HBM2", "HBM2_2000Mbps"))
    target, responders = await setup(dut, model, mem, knobs, tx_bytes=32)
    for stride in (1, 2, 3):
        for r in responders:
            r.bursts.clear()
        target.completed.clear()
        tokens = sorted(rng.sample(range(600), 90))
        beats, error = await with_timeout(fetch(dut, base, stride, tokens, 0.7, rng), 10, "ms")
        assert error == 0 and beats == expected(mem, base, stride, tokens)
        depart = {addr: d for addr, _, d in target.completed}
        for r in responders:
            for burst in r.bursts:
                for i, cycle in enumerate(burst.beat_cycles):
                    assert cycle >= depart[burst.addr + 32 * i], "beat returned before its data"


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def injected_errors_reach_the_master(dut):
    mem = random_image(random.Random(5), 0x300000, 32 * 1024)
    mem.add_error_range(0x300000 + 40 * 32, 0x300000 + 41 * 32, SLVERR)
    mem.add_error_range(0x300000 + 700 * 32, 0x300000 + 701 * 32, DECERR)
    target, responders = await setup(dut, IdealMemory(read_latency=5), mem)
    _, error = await with_timeout(fetch(dut, 0x300000, 1, list(range(100))), 1, "ms")
    assert error == SLVERR
    _, error = await with_timeout(fetch(dut, 0x300000, 2, list(range(300, 400))), 1, "ms")
    assert error == DECERR
    beats, error = await with_timeout(fetch(dut, 0x300000, 1, list(range(50, 60))), 1, "ms")
    assert error == 0 and beats == expected(mem, 0x300000, 1, list(range(50, 60)))
