"""cocotb tests of spatten_fetcher: bursts, ordering across channels, back-pressure, errors.

The AXI side is a small test responder (random AR acceptance, random R latency and gaps,
error injection); the expected beat stream comes from the same bytes read in software.
"""

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.layout import plane_fetch_beats, plane_fetch_words

DW_BYTES = 32
N_CH = int(os.environ.get("FETCHER_N_CH", "1"))
CASES = int(os.environ.get("FETCHER_CASES", "12"))


class Memory:
    """Deterministic pseudo-random contents: byte at address a."""

    def __init__(self, seed):
        self.seed = seed
        self.error_ranges = []  # (lo, hi, resp)

    def word(self, addr):
        r = random.Random(self.seed * 1_000_003 + addr)
        return r.getrandbits(256)

    def resp(self, addr):
        for lo, hi, resp in self.error_ranges:
            if lo <= addr < hi:
                return resp
        return 0


class AxiReadResponder:
    """One AXI4 read slave per channel; bursts answered in order per channel."""

    def __init__(self, dut, mem, rng, ready_prob=0.8, latency=(0, 12)):
        self.dut, self.mem, self.rng = dut, mem, rng
        self.ready_prob, self.latency = ready_prob, latency
        self.bursts = []  # every AR seen: (channel, addr, len)
        self.queues = [[] for _ in range(N_CH)]
        self.max_outstanding = 0
        self.outstanding = 0

    def _field(self, sig, ch, width):
        return (int(sig.value) >> (ch * width)) & ((1 << width) - 1)

    async def run(self):
        dut = self.dut
        rvalid = [0] * N_CH
        beat = [None] * N_CH
        while True:
            # Drive this cycle's outputs.
            arready = 0
            for ch in range(N_CH):
                if self.rng.random() < self.ready_prob:
                    arready |= 1 << ch
            dut.m_axi_arready.value = arready
            rdata, rresp, rlast = 0, 0, 0
            for ch in range(N_CH):
                if not rvalid[ch] and self.queues[ch]:
                    q = self.queues[ch][0]
                    if q["delay"] > 0:
                        q["delay"] -= 1
                    elif self.rng.random() < self.ready_prob:
                        addr = q["addr"] + q["done"] * DW_BYTES
                        beat[ch] = (self.mem.word(addr), self.mem.resp(addr),
                                    q["done"] == q["len"])
                        rvalid[ch] = 1
                if rvalid[ch]:
                    rdata |= beat[ch][0] << (256 * ch)
                    rresp |= beat[ch][1] << (2 * ch)
                    rlast |= int(beat[ch][2]) << ch
            dut.m_axi_rvalid.value = sum(v << ch for ch, v in enumerate(rvalid))
            dut.m_axi_rdata.value = rdata
            dut.m_axi_rresp.value = rresp
            dut.m_axi_rlast.value = rlast
            # Handshakes are judged on the values the DUT sees at the coming edge.
            await ReadOnly()
            arvalid = int(dut.m_axi_arvalid.value)
            rready = int(dut.m_axi_rready.value)
            for ch in range(N_CH):
                if (arvalid >> ch) & 1 and (arready >> ch) & 1:
                    addr = self._field(dut.m_axi_araddr, ch, 32)
                    length = self._field(dut.m_axi_arlen, ch, 8)
                    assert self._field(dut.m_axi_arsize, ch, 3) == 5, "ARSIZE must be 32 bytes"
                    assert self._field(dut.m_axi_arburst, ch, 2) == 1, "ARBURST must be INCR"
                    self.bursts.append((ch, addr, length))
                    self.queues[ch].append({"addr": addr, "len": length, "done": 0,
                                            "delay": self.rng.randint(*self.latency)})
                    self.outstanding += 1
                    self.max_outstanding = max(self.max_outstanding, self.outstanding)
                if rvalid[ch] and (rready >> ch) & 1:
                    q = self.queues[ch][0]
                    rvalid[ch] = 0
                    if q["done"] == q["len"]:
                        self.queues[ch].pop(0)
                        self.outstanding -= 1
                    else:
                        q["done"] += 1
            await RisingEdge(dut.clk)


async def reset(dut):
    dut.rst_n.value = 0
    dut.start.value = 0
    dut.idx_valid.value = 0
    dut.dense_w6.value = 0
    dut.beat_ready.value = 0
    dut.m_axi_arready.value = 0
    dut.m_axi_rvalid.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


def plane_words(stride, tokens):
    """Word indices (relative to the base) a fetch of `tokens` reads: stride 1..3 words per
    token, or "w6" for a dense 6-bit plane (models/layout.py, the model's own count)."""
    if stride == "w6":
        return plane_fetch_words(tokens, 6).tolist()
    return [t * stride + j for t in tokens for j in range(stride)]


async def fetch(dut, rng, base, stride, tokens, beat_ready_prob, phases=None):
    """Run one fetch; returns (beats received, done-cycle error, beats counter). The phase of
    each received beat is appended to `phases` if given."""
    dut.base.value = base
    dut.stride_beats.value = 2 if stride == "w6" else stride
    dut.dense_w6.value = int(stride == "w6")
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    received = []

    async def feed():
        i = 0
        while i < len(tokens):
            if rng.random() < 0.8:
                dut.idx_valid.value = 1
                dut.idx_token.value = tokens[i]
                dut.idx_last.value = int(i == len(tokens) - 1)
            else:
                dut.idx_valid.value = 0
            await ReadOnly()
            taken = int(dut.idx_valid.value) and int(dut.idx_ready.value)
            await RisingEdge(dut.clk)
            i += int(taken)
        dut.idx_valid.value = 0

    feeder = cocotb.start_soon(feed())
    while True:
        dut.beat_ready.value = int(rng.random() < beat_ready_prob)
        await ReadOnly()
        if int(dut.beat_valid.value) and int(dut.beat_ready.value):
            received.append(int(dut.beat_data.value))
            if phases is not None:
                phases.append(int(dut.beat_phase.value))
        finished = int(dut.done.value)
        result = (received, int(dut.error.value), int(dut.beats.value))
        await RisingEdge(dut.clk)
        if finished:
            break
    await feeder
    return result


def expected_beats(mem, base, stride, tokens):
    return [mem.word(base + w * DW_BYTES) for w in plane_words(stride, tokens)]


def check_bursts(bursts, base, stride, tokens):
    covered = []
    for _, addr, length in bursts:
        assert length + 1 <= 16, f"burst of {length + 1} beats > MAX_BURST"
        assert addr % DW_BYTES == 0
        assert addr // 4096 == (addr + length * DW_BYTES) // 4096, f"burst {addr:#x} crosses 4 KiB"
        covered += [addr + i * DW_BYTES for i in range(length + 1)]
    want = [base + w * DW_BYTES for w in plane_words(stride, tokens)]
    assert covered == want, "bursts do not cover exactly the kept tokens' beats in order"


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def random_fetches_match_memory(dut):
    seed = cocotb.RANDOM_SEED
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    for case in range(CASES):
        mem = Memory(seed + case)
        responder = AxiReadResponder(dut, mem, rng, ready_prob=rng.choice([1.0, 0.7, 0.4]))
        task = cocotb.start_soon(responder.run())
        n = rng.choice([1, 7, 64, 300, 1024])
        keep = rng.choice([1.0, 0.5, 0.2])
        tokens = sorted(rng.sample(range(n), max(1, int(n * keep))))
        stride = rng.choice([1, 2, 3, "w6", "w6"])
        base = rng.randrange(0, 1 << 26) * DW_BYTES
        if case % 3 == 0:
            base = (rng.randrange(1, 1 << 14) * 4096 - rng.randint(1, 6) * DW_BYTES)
        phases = []
        got, err, count = await with_timeout(
            fetch(dut, rng, base, stride, tokens, rng.choice([1.0, 0.6]), phases), 5, "ms")
        task.cancel()
        assert err == 0
        want = expected_beats(mem, base, stride, tokens)
        assert got == want, f"case {case}: beat stream differs (n={len(tokens)}, stride={stride})"
        assert count == len(want)
        if stride == "w6":
            assert count == plane_fetch_beats(tokens, 6)
            assert phases == [w % 3 for w in plane_words(stride, tokens)], "beat phases"
        check_bursts(responder.bursts, base, stride, tokens)
        assert responder.max_outstanding <= 8
        if N_CH > 1 and len(responder.bursts) > 1:
            assert len({ch for ch, _, _ in responder.bursts}) == N_CH


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def contiguous_tokens_make_long_bursts(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    mem = Memory(1)
    responder = AxiReadResponder(dut, mem, rng, ready_prob=1.0, latency=(0, 0))
    task = cocotb.start_soon(responder.run())
    tokens = list(range(128))
    got, err, _ = await with_timeout(fetch(dut, rng, 0x10000, 2, tokens, 1.0), 5, "ms")
    task.cancel()
    assert err == 0 and got == expected_beats(mem, 0x10000, 2, tokens)
    # 256 contiguous beats in 4 KiB pages of 128 beats: exactly 16 bursts of 16.
    assert [b[2] + 1 for b in responder.bursts] == [16] * 16
    # A dense 6-bit plane: 128 tokens are 192 words (3 per 2 tokens), 12 bursts of 16.
    responder = AxiReadResponder(dut, mem, rng, ready_prob=1.0, latency=(0, 0))
    task = cocotb.start_soon(responder.run())
    got, err, count = await with_timeout(fetch(dut, rng, 0x10000, "w6", tokens, 1.0), 5, "ms")
    task.cancel()
    assert err == 0 and got == expected_beats(mem, 0x10000, "w6", tokens) and count == 192
    assert [b[2] + 1 for b in responder.bursts] == [16] * 12


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def dense_w6_odd_even_runs(dut):
    """6-bit plane: runs starting on odd and even tokens, isolated tokens, runs crossing a
    4 KiB page and the burst limit; every word read once, in order, with its phase."""
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    mem = Memory(4)
    cases = [[0], [1], [1, 2], [0, 1], [1, 2, 3, 6, 7, 9, 12, 13, 14, 30],
             list(range(5, 40)) + [42, 45, 46, 47], list(range(1, 200, 2)),
             list(range(80, 100))]
    for i, tokens in enumerate(cases):
        base = 0x3000 - 3 * DW_BYTES if i % 2 else 0x7000  # runs crossing the 4 KiB page
        responder = AxiReadResponder(dut, mem, rng, ready_prob=rng.choice([1.0, 0.5]))
        task = cocotb.start_soon(responder.run())
        phases = []
        got, err, count = await with_timeout(
            fetch(dut, rng, base, "w6", tokens, rng.choice([1.0, 0.5]), phases), 5, "ms")
        task.cancel()
        words = plane_words("w6", tokens)
        assert err == 0 and got == expected_beats(mem, base, "w6", tokens), f"tokens {tokens}"
        assert count == len(words) == plane_fetch_beats(tokens, 6)
        assert phases == [w % 3 for w in words]
        check_bursts(responder.bursts, base, "w6", tokens)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def error_response_ends_fetch_without_hang(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    for resp in (2, 3):
        mem = Memory(resp)
        base = 0x200000
        tokens = list(range(0, 400, 2))
        bad = base + (tokens[57] * 3 + 1) * DW_BYTES
        mem.error_ranges.append((bad, bad + DW_BYTES, resp))
        responder = AxiReadResponder(dut, mem, rng, ready_prob=0.7)
        task = cocotb.start_soon(responder.run())
        got, err, _ = await with_timeout(fetch(dut, rng, base, 3, tokens, 0.8), 5, "ms")
        task.cancel()
        assert err == resp, f"expected error {resp}, got {err}"
        want = expected_beats(mem, base, 3, tokens)
        assert got == want[:len(got)] and len(got) < len(want)
        assert responder.outstanding == 0, "fetch ended with bursts in flight"
    # The fetcher works normally after an error.
    mem = Memory(9)
    responder = AxiReadResponder(dut, mem, rng)
    task = cocotb.start_soon(responder.run())
    got, err, _ = await with_timeout(fetch(dut, rng, 0x1000, 1, [0, 1, 5], 1.0), 5, "ms")
    task.cancel()
    assert err == 0 and got == expected_beats(mem, 0x1000, 1, [0, 1, 5])
