"""cocotb tests of spatten_dot_product against models.core.dot_products (bit-exact).

DOT_QK_MULS (set by the pytest wrapper) is the QK_MULS the DUT was built with: QK_MULS <= D
takes one key per D/QK_MULS cycles, QK_MULS = KPC*D a beat of up to KPC keys per cycle
(in_count valid keys, packed from lane 0; only a job's last beat partial). The expected rate
is QK_MULS/D keys per cycle. DOT_CASES scales the number of random keys (default 1).
"""

import os
import random

import cocotb
import torch
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.core import dot_products
from spatten_dv.models.formats import QKV_MAX, QKV_MIN
from spatten_dv.models.params import DEFAULT_PARAMS

D = DEFAULT_PARAMS.head_dim
SW = 24 + (D - 1).bit_length()  # 30-bit score at D = 64
QK_MULS = int(os.environ.get("DOT_QK_MULS", str(D)))
KPC = max(1, QK_MULS // D)  # keys per beat
SCALE = int(os.environ.get("DOT_CASES", "1"))
SEED = cocotb.RANDOM_SEED % (1 << 62)
# A beat presented and accepted in cycle c (handshake at the edge ending it) has its scores
# valid in cycle c+4: four registers (products, tree level 2, tree level 4, out_score) at the
# defaults, also for QK_MULS = 32 (counted from the key's last chunk) and for every KPC > 1.
# Documented in the RTL.
LATENCY = 4


def pack12(values):
    word = 0
    for i, v in enumerate(values):
        word |= (int(v) & 0xFFF) << (12 * i)
    return word


def signed(v, bits):
    return v - (1 << bits) if v >> (bits - 1) else v


def beats_of(keys, rng=None):
    """(in_k word, in_count) per beat: KPC keys a beat, the last beat holding the rest. With
    rng, the lanes of a partial beat past its keys hold random bits (the DUT must ignore them:
    zeros there would hide a count off by one)."""
    rows = keys.tolist()
    beats = []
    for b in range(0, len(rows), KPC):
        word, count = pack12([x for row in rows[b:b + KPC] for x in row]), len(rows[b:b + KPC])
        if rng is not None and count < KPC:
            word |= rng.getrandbits(12 * D * (KPC - count)) << (12 * D * count)
        beats.append((word, count))
    return beats


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst_n.value = 0
    dut.clear.value = 0
    dut.in_valid.value = 0
    dut.in_k.value = 0
    dut.in_count.value = 1
    dut.in_last.value = 0
    dut.out_ready.value = 0
    dut.query.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1


def idle_count(rng):
    """in_count while in_valid is low: anything at KPC > 1, the required 1 at KPC = 1."""
    return rng.randint(0, (1 << KPC.bit_length()) - 1) if KPC > 1 else 1


async def run_job(dut, rng, query, keys, valid_p, ready_p, abort_after=None):
    """Stream `keys` against `query`.

    Returns (beats, accept cycles, out cycles), a beat being (scores of all KPC lanes,
    out_count, out_last). With abort_after, returns after that many cycles (a job cut off).
    """
    dut.query.value = pack12(query.tolist())
    beats = beats_of(keys, rng)
    n = len(beats)
    i, cycle = 0, 0
    got, acc_cyc, out_cyc = [], [], []
    while len(got) < n and cycle != abort_after:
        send = i < n and rng.random() < valid_p
        dut.in_valid.value = int(send)
        dut.in_k.value = beats[i][0] if send else rng.getrandbits(12 * D * KPC)
        dut.in_count.value = beats[i][1] if send else idle_count(rng)
        dut.in_last.value = int(i == n - 1) if send else rng.getrandbits(1)
        dut.out_ready.value = int(rng.random() < ready_p)
        await ReadOnly()
        if send and int(dut.in_ready.value):
            acc_cyc.append(cycle)
            i += 1
        if int(dut.out_valid.value) and int(dut.out_ready.value):
            word = int(dut.out_score.value)
            got.append(([signed((word >> (SW * j)) & ((1 << SW) - 1), SW) for j in range(KPC)],
                        int(dut.out_count.value), int(dut.out_last.value)))
            out_cyc.append(cycle)
        await RisingEdge(dut.clk)
        cycle += 1
    dut.in_valid.value = 0
    dut.out_ready.value = 0
    return got, acc_cyc, out_cyc


def check(query, keys, got, what):
    """Scores against the model, lanes past out_count zero, counts and last as sent."""
    want = dot_products(query, keys).tolist()
    sent = [count for _, count in beats_of(keys)]
    counts = [count for _, count, _ in got]
    assert counts == sent, f"{what} (seed {SEED}): out_count {counts}, sent {sent}"
    scores = [s for lanes, count, _ in got for s in lanes[:count]]
    bad = [(t, g, w) for t, (g, w) in enumerate(zip(scores, want, strict=True)) if g != w]
    assert not bad, f"{what} (seed {SEED}): {len(bad)} scores differ, first (key, got, want): " \
        f"{bad[:4]}"
    idle = [(b, lanes[count:]) for b, (lanes, count, _) in enumerate(got) if any(lanes[count:])]
    assert not idle, f"{what} (seed {SEED}): lanes past out_count not zero: {idle[:2]}"
    lasts = [last for _, _, last in got]
    assert lasts == [0] * (len(got) - 1) + [1], f"{what}: out_last {lasts}"


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def dot_matches_model(dut):
    """Random and extreme vectors, one key, valid gaps and ready back-pressure."""
    rng = random.Random(SEED)
    g = torch.Generator().manual_seed(SEED)
    await reset(dut)

    def rand(*shape):
        return torch.randint(QKV_MIN, QKV_MAX + 1, shape, generator=g)

    def full(n, v):
        return torch.full((n, D), v, dtype=torch.int64)

    def extremes(*shape):  # every element -2048 or 2047
        return torch.where(torch.rand(shape, generator=g) < 0.5, QKV_MIN, QKV_MAX)

    qmin, qmax = torch.full((D,), QKV_MIN), torch.full((D,), QKV_MAX)
    cases = [
        ("random", rand(D), rand(100 * SCALE, D), 0.7, 0.5),
        ("all -2048 (score 2^28)", qmin, full(4, QKV_MIN), 0.8, 0.8),
        ("all 2047", qmax, full(4, QKV_MAX), 1.0, 0.5),
        ("q -2048 k 2047 (most negative)", qmin, full(3, QKV_MAX), 1.0, 1.0),
        ("q 2047 k -2048", qmax, full(3, QKV_MIN), 0.5, 1.0),
        ("mixed extremes", extremes(D), extremes(60 * SCALE, D), 0.9, 0.7),
        ("alternating q, corner keys", torch.tensor([QKV_MIN, QKV_MAX] * (D // 2)),
         torch.stack([torch.tensor([QKV_MIN, QKV_MAX] * (D // 2)),
                      torch.tensor([QKV_MAX, QKV_MIN] * (D // 2)),
                      torch.zeros(D, dtype=torch.int64), torch.full((D,), -1)]), 1.0, 1.0),
        ("one key", rand(D), rand(1, D), 1.0, 1.0),
        ("one key, back-pressure", rand(D), rand(1, D), 0.3, 0.2),
        ("random, ready 0.3", rand(D), rand(150 * SCALE, D), 1.0, 0.3),
        ("random, valid 0.4", rand(D), rand(150 * SCALE, D), 0.4, 1.0),
        ("small values", torch.randint(-3, 4, (D,), generator=g),
         torch.randint(-3, 4, (40, D), generator=g), 0.8, 0.8),
    ]
    if KPC > 1:  # every size of the last beat, 1..KPC keys; full-scale extremes in each lane
        cases += [(f"last beat of {r} key(s)", extremes(D), extremes(2 * KPC + r, D), 0.8, 0.6)
                  for r in range(1, KPC + 1)]
        cases += [(f"one partial beat of {r}", qmin, full(r, QKV_MIN), 1.0, 0.5)
                  for r in range(1, KPC)]
    for what, query, keys, valid_p, ready_p in cases:
        got, _, _ = await with_timeout(
            run_job(dut, rng, query, keys, valid_p, ready_p), 2, "ms")
        check(query, keys, got, what)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def dot_full_rate_1024_keys(dut):
    """1024 keys with valid and ready always high: rate QK_MULS/D keys/cycle, fixed latency."""
    g = torch.Generator().manual_seed(SEED + 1)
    rng = random.Random(SEED + 1)
    await reset(dut)
    query = torch.randint(QKV_MIN, QKV_MAX + 1, (D,), generator=g)
    keys = torch.randint(QKV_MIN, QKV_MAX + 1, (1024, D), generator=g)
    got, acc_cyc, out_cyc = await run_job(dut, rng, query, keys, 1.0, 1.0)
    check(query, keys, got, "1024 keys")
    n = len(acc_cyc)
    rate = (n - 1) / (acc_cyc[-1] - acc_cyc[0]) * KPC
    out_rate = (n - 1) / (out_cyc[-1] - out_cyc[0]) * KPC
    latencies = {o - a for a, o in zip(acc_cyc, out_cyc, strict=True)}
    dut._log.info("QK_MULS=%d: %d beats of %d key(s) accepted in %d cycles: %.4f keys/cycle "
                  "in, %.4f scores/cycle out; latency (accept cycle -> out_valid cycle) %s",
                  QK_MULS, n, KPC, acc_cyc[-1] - acc_cyc[0] + 1, rate, out_rate,
                  sorted(latencies))
    assert rate == QK_MULS / D, f"input rate {rate}, want {QK_MULS / D}"
    assert out_rate == QK_MULS / D, f"output rate {out_rate}, want {QK_MULS / D}"
    assert latencies == {LATENCY}, f"latency {latencies}, want {LATENCY}"


async def expect_no_output(dut, cycles):
    dut.out_ready.value = 1
    for _ in range(cycles):
        await ReadOnly()
        assert int(dut.out_valid.value) == 0, "extra score after the job"
        await RisingEdge(dut.clk)
    dut.out_ready.value = 0


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def dot_clear_drops_keys_in_flight(dut):
    """Keys in the pipeline (output stalled) are dropped by clear; the next job is exact."""
    g = torch.Generator().manual_seed(SEED + 2)
    rng = random.Random(SEED + 2)
    await reset(dut)
    dut.query.value = pack12(torch.randint(QKV_MIN, QKV_MAX + 1, (D,), generator=g).tolist())
    dut.out_ready.value = 0
    for _ in range(10):  # fill the pipeline (and a partial key when QK_MULS < D)
        dut.in_valid.value = 1
        dut.in_k.value = rng.getrandbits(12 * D * KPC)
        dut.in_count.value = rng.randint(1, KPC)
        dut.in_last.value = 1
        await RisingEdge(dut.clk)
    dut.in_valid.value = 0
    await ReadOnly()
    assert int(dut.out_valid.value) == 1, "the stalled pipeline should hold a score"
    await RisingEdge(dut.clk)
    dut.clear.value = 1
    await RisingEdge(dut.clk)
    dut.clear.value = 0
    query = torch.randint(QKV_MIN, QKV_MAX + 1, (D,), generator=g)
    keys = torch.randint(QKV_MIN, QKV_MAX + 1, (20, D), generator=g)
    got, _, _ = await run_job(dut, rng, query, keys, 0.8, 0.8)
    check(query, keys, got, "after clear")
    await expect_no_output(dut, 8)


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def dot_clear_mid_job(dut):
    """A job cut off by clear while it streams (beats in flight, some scores taken): nothing of
    it comes out after the clear, and the next job is exact."""
    g = torch.Generator().manual_seed(SEED + 3)
    rng = random.Random(SEED + 3)
    await reset(dut)
    for cut in (3, 7, 12):
        query = torch.randint(QKV_MIN, QKV_MAX + 1, (D,), generator=g)
        keys = torch.randint(QKV_MIN, QKV_MAX + 1, (40 * KPC, D), generator=g)
        # valid always high: beats are in flight at the cut (none out yet, or the last
        # LATENCY cycles' beats), whatever the ready pattern.
        got, acc_cyc, _ = await run_job(dut, rng, query, keys, 1.0, 0.6, abort_after=cut)
        assert len(got) < len(acc_cyc), "the cut job should have beats in flight"
        dut.clear.value = 1
        await RisingEdge(dut.clk)
        dut.clear.value = 0
        await expect_no_output(dut, 6)
        query = torch.randint(QKV_MIN, QKV_MAX + 1, (D,), generator=g)
        keys = torch.randint(QKV_MIN, QKV_MAX + 1, (3 * KPC + 1, D), generator=g)
        got, _, _ = await run_job(dut, rng, query, keys, 0.8, 0.7)
        check(query, keys, got, f"after a clear at cycle {cut}")
