"""cocotb tests of spatten_fetcher_wide: groups of token indices in, bursts on every channel,
R beats of all channels in the same cycle, beats out in token order several per cycle.

The AXI side is one test memory per channel (random or fixed latency, random ARREADY and R
gaps, error injection) that also checks the AXI rules it sees. The expected beat stream is the
bus words models/layout.py says a fetch reads (plane_fetch_words: the model's own geometry,
dense 6-bit planes included), read from the same memory in software.
"""

import dataclasses
import os
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge, with_timeout

from spatten_dv.models.layout import plane_fetch_words
from spatten_dv.models.params import DEFAULT_PARAMS
from spatten_dv.models.perf.bursts import count_fetch

N_CH = int(os.environ.get("FW_N_CH", "8"))
DW = int(os.environ.get("FW_DW", "256"))
LANES = int(os.environ.get("FW_LANES", "8"))
OUT = int(os.environ.get("FW_OUT", "8"))
MAX_BURST = int(os.environ.get("FW_MAX_BURST", "16"))
MAX_OUTSTANDING = int(os.environ.get("FW_MAX_OUTSTANDING", "64"))
CASES = int(os.environ.get("FW_CASES", "10"))
TOK_BITS = 10
WB = DW // 8
# the model's plane geometry at this bus width: 4/8/12-bit planes are 1/2/3 words a token,
# a 6-bit plane 1.5 words (head_dim = DW/4)
PARAMS = dataclasses.replace(DEFAULT_PARAMS, head_dim=DW // 4, axi_data_bits=DW)
STRIDE_WIDTH = {1: 4, 2: 8, 3: 12, "w6": 6}


class Memory:
    """Deterministic pseudo-random bus words; error responses on chosen word addresses."""

    def __init__(self, seed):
        self.seed = seed
        self.bad = {}  # byte address -> rresp
        self.cache = {}

    def word(self, addr):
        if addr not in self.cache:
            self.cache[addr] = random.Random(self.seed * 1_000_003 + addr).getrandbits(DW)
        return self.cache[addr]


class AxiMemory:
    """One AXI4 read slave per channel, bursts answered in order per channel, at most one R
    beat per channel per cycle. Checks ARSIZE/ARBURST/ARLEN, 4 KiB pages, ARVALID held with
    its address until ARREADY, total bursts in flight <= MAX_OUTSTANDING, RREADY only with a
    burst in flight."""

    def __init__(self, dut, mem, rng, ar_prob=1.0, r_prob=1.0, latency=(0, 0)):
        self.dut, self.mem, self.rng = dut, mem, rng
        self.ar_prob, self.r_prob, self.latency = ar_prob, r_prob, latency
        self.bursts = []  # every AR accepted: (channel, addr, len, cycle)
        self.queues = [[] for _ in range(N_CH)]
        self.outstanding = 0
        self.max_outstanding = 0
        self.r_beats = 0
        self.cycle = 0


    async def run(self):
        dut = self.dut
        rvalid = [0] * N_CH
        beat = [None] * N_CH
        held = {}  # channel -> (addr, len) presented and not accepted
        while True:
            arready = 0
            for ch in range(N_CH):
                if self.ar_prob >= 1.0 or self.rng.random() < self.ar_prob:
                    arready |= 1 << ch
            dut.m_axi_arready.value = arready
            rdata = rresp = rlast = 0
            for ch in range(N_CH):
                q = self.queues[ch]
                if not rvalid[ch] and q and q[0]["ready_at"] <= self.cycle and \
                        (self.r_prob >= 1.0 or self.rng.random() < self.r_prob):
                    addr = q[0]["addr"] + q[0]["done"] * WB
                    beat[ch] = (self.mem.word(addr), self.mem.bad.get(addr, 0),
                                q[0]["done"] == q[0]["len"])
                    rvalid[ch] = 1
                if rvalid[ch]:
                    rdata |= beat[ch][0] << (DW * ch)
                    rresp |= beat[ch][1] << (2 * ch)
                    rlast |= int(beat[ch][2]) << ch
            dut.m_axi_rvalid.value = sum(v << ch for ch, v in enumerate(rvalid))
            dut.m_axi_rdata.value = rdata
            dut.m_axi_rresp.value = rresp
            dut.m_axi_rlast.value = rlast
            await ReadOnly()
            arvalid = int(dut.m_axi_arvalid.value)
            rready = int(dut.m_axi_rready.value)
            if arvalid:  # fields of idle channels may be X: read the presented ones only
                araddr = str(dut.m_axi_araddr.value)
                arlen = str(dut.m_axi_arlen.value)
                arsize = str(dut.m_axi_arsize.value)
                arburst = str(dut.m_axi_arburst.value)
            for ch in range(N_CH):
                if (arvalid >> ch) & 1:
                    addr = field(araddr, ch, 32)
                    length = field(arlen, ch, 8)
                    if ch in held:
                        assert held[ch] == (addr, length), f"ch {ch}: AR changed while waiting"
                    if (arready >> ch) & 1:
                        held.pop(ch, None)
                        assert field(arsize, ch, 3) == WB.bit_length() - 1, "ARSIZE"
                        assert field(arburst, ch, 2) == 1, "ARBURST must be INCR"
                        assert length + 1 <= MAX_BURST, f"burst of {length + 1} > MAX_BURST"
                        assert addr % WB == 0, f"unaligned burst {addr:#x}"
                        assert addr // 4096 == (addr + length * WB) // 4096, \
                            f"burst {addr:#x}+{length + 1} crosses 4 KiB"
                        self.bursts.append((ch, addr, length, self.cycle))
                        lat = self.rng.randint(*self.latency)
                        self.queues[ch].append({"addr": addr, "len": length, "done": 0,
                                                "ready_at": self.cycle + 1 + lat})
                        self.outstanding += 1
                        self.max_outstanding = max(self.max_outstanding, self.outstanding)
                        assert self.outstanding <= MAX_OUTSTANDING, "too many bursts in flight"
                    else:
                        held[ch] = (addr, length)
                else:
                    assert ch not in held, f"ch {ch}: ARVALID dropped before ARREADY"
                if (rready >> ch) & 1 and not self.queues[ch]:
                    raise AssertionError(f"ch {ch}: RREADY with no burst in flight")
                if rvalid[ch] and (rready >> ch) & 1:
                    q = self.queues[ch][0]
                    rvalid[ch] = 0
                    self.r_beats += 1
                    if q["done"] == q["len"]:
                        self.queues[ch].pop(0)
                        self.outstanding -= 1
                    else:
                        q["done"] += 1
            await RisingEdge(dut.clk)
            self.cycle += 1


def field(bits, lane, width):
    """Lane `lane` of a flattened bus read as a bit string (MSB first), as an int; a lane
    that is not all 0/1 fails the test."""
    top = len(bits) - lane * width
    return int(bits[top - width:top], 2)


async def reset(dut):
    dut.rst_n.value = 0
    dut.start.value = 0
    dut.idx_valid.value = 0
    dut.idx_count.value = 0
    dut.idx_last.value = 0
    dut.idx_tokens.value = 0
    dut.dense_w6.value = 0
    dut.beat_ready.value = 0
    dut.m_axi_arready.value = 0
    dut.m_axi_rvalid.value = 0
    for _ in range(3):
        await RisingEdge(dut.clk)
    dut.rst_n.value = 1
    await RisingEdge(dut.clk)


def plane_words(stride, tokens):
    """Word indices (relative to the base, ascending, each once) a fetch of `tokens` reads."""
    return plane_fetch_words(tokens, STRIDE_WIDTH[stride], PARAMS).tolist()


def split_groups(rng, tokens, max_group=LANES, empty_prob=0.1):
    """Random group sizes 0..max_group (0: an empty group now and then)."""
    groups, i = [], 0
    while i < len(tokens):
        k = 0 if rng.random() < empty_prob else rng.randint(1, max_group)
        groups.append(tokens[i:i + k])
        i += k
    if rng.random() < 0.2:
        groups.append([])  # the last flag on an empty group
    return groups or [[]]


class Stats:
    """Cycle of done and the cumulative beats out after every cycle with a transfer."""

    def __init__(self):
        self.done = None
        self.out = []  # (cycle, beats out so far)

    def sustained(self):
        """Beats/cycle over the middle half of the beats (no start-up or drain ramp) and
        from the first beat out to the last."""
        total = self.out[-1][1]
        lo = next(c for c, n in self.out if n >= total // 4)
        hi = next(c for c, n in self.out if n >= 3 * total // 4)
        lo_n = next(n for c, n in self.out if c == lo)
        hi_n = next(n for c, n in self.out if c == hi)
        middle = (hi_n - lo_n) / max(1, hi - lo)
        return middle, total / (self.out[-1][0] - self.out[0][0] + 1)


async def fetch(dut, rng, base, stride, groups, beat_ready_prob=1.0, idx_prob=1.0,
                stats=None):
    """Run one fetch; returns (beats received, phases, done-cycle error, beats counter)."""
    dut.base.value = base
    dut.stride_beats.value = 2 if stride == "w6" else stride
    dut.dense_w6.value = int(stride == "w6")
    dut.start.value = 1
    await RisingEdge(dut.clk)
    dut.start.value = 0
    cycle = 0

    async def feed():
        i = 0
        while i < len(groups):
            if idx_prob >= 1.0 or rng.random() < idx_prob:
                g = groups[i]
                lanes = g + [rng.getrandbits(TOK_BITS) for _ in range(LANES - len(g))]
                dut.idx_valid.value = 1
                dut.idx_count.value = len(g)
                dut.idx_tokens.value = sum(t << (TOK_BITS * j) for j, t in enumerate(lanes))
                dut.idx_last.value = int(i == len(groups) - 1)
            else:
                dut.idx_valid.value = 0
            await ReadOnly()
            taken = int(dut.idx_valid.value) and int(dut.idx_ready.value)
            await RisingEdge(dut.clk)
            i += int(taken)
        dut.idx_valid.value = 0

    feeder = cocotb.start_soon(feed())
    received, phases = [], []
    while True:
        dut.beat_ready.value = int(beat_ready_prob >= 1.0 or rng.random() < beat_ready_prob)
        await ReadOnly()
        if int(dut.beat_valid.value) and int(dut.beat_ready.value):
            n = int(dut.beat_count.value)
            assert 1 <= n <= OUT, f"beat_count {n}"
            data = str(dut.beat_data.value)  # lanes past beat_count may be X
            ph = str(dut.beat_phase.value)
            received += [field(data, j, DW) for j in range(n)]
            phases += [field(ph, j, 2) for j in range(n)]
            if stats is not None:
                stats.out.append((cycle, len(received)))
        finished = int(dut.done.value)
        result = (received, phases, int(dut.error.value), int(dut.beats.value))
        await RisingEdge(dut.clk)
        cycle += 1
        if finished:
            break
    if stats is not None:
        stats.done = cycle
    await with_timeout(feeder, 1, "us")
    return result


def greedy_bursts(addrs):
    """spatten_fetcher's burst rule: a word extends the open burst when it is the next one,
    the burst has fewer than MAX_BURST beats and the word does not start a 4 KiB page.
    [(addr, arlen)]."""
    bursts = []
    for a in addrs:
        if bursts and a == bursts[-1][0] + bursts[-1][1] * WB and bursts[-1][1] < MAX_BURST \
                and a % 4096:
            bursts[-1][1] += 1
        else:
            bursts.append([a, 1])
    return [(a, n - 1) for a, n in bursts]


def check_bursts(bursts, base, stride, tokens):
    """The bursts are exactly spatten_fetcher's (the performance model's count too), and
    burst k (in word order) went to channel k mod N_CH."""
    ordered = sorted(bursts, key=lambda b: b[1])
    want_addrs = [base + w * WB for w in plane_words(stride, tokens)]
    want = greedy_bursts(want_addrs)
    assert [(a, n) for _, a, n, _ in ordered] == want, "bursts differ from the merge rule"
    model = count_fetch(np.array(want_addrs, dtype=np.int64), WB, MAX_BURST)
    assert model.bursts == len(want) and model.beats == len(want_addrs)
    for k, (ch, _, _, _) in enumerate(ordered):
        assert ch == k % N_CH, f"burst {k} on channel {ch}, round robin wants {k % N_CH}"


def random_case(rng, case):
    n = rng.choice([1, 9, 64, 300, 1024])
    keep = rng.choice([1.0, 0.5, 0.2, 0.05])
    tokens = sorted(rng.sample(range(n), max(1, int(n * keep))))
    stride = rng.choice([1, 2, 3, "w6", "w6"])
    base = rng.randrange(0, 1 << 24) * WB
    if case % 3 == 0:  # runs crossing a 4 KiB page
        base = rng.randrange(1, 1 << 12) * 4096 - rng.randint(1, 6) * WB
    return tokens, stride, base


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def random_fetches_match_model(dut):
    """Random kept subsets, group sizes, strides, latencies and back-pressure everywhere."""
    seed = cocotb.RANDOM_SEED
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    for case in range(CASES):
        mem = Memory(seed + case)
        tokens, stride, base = random_case(rng, case)
        axi = AxiMemory(dut, mem, rng, ar_prob=rng.choice([1.0, 0.7, 0.3]),
                        r_prob=rng.choice([1.0, 0.8, 0.4]),
                        latency=rng.choice([(0, 0), (0, 12), (5, 30)]))
        task = cocotb.start_soon(axi.run())
        groups = split_groups(rng, tokens)
        got, phases, err, count = await with_timeout(
            fetch(dut, rng, base, stride, groups, rng.choice([1.0, 0.7, 0.3]),
                  rng.choice([1.0, 0.6])), 5, "ms")
        task.cancel()
        words = plane_words(stride, tokens)
        what = f"case {case}: {len(tokens)} tokens, stride {stride}, base {base:#x}"
        assert err == 0, what
        assert got == [mem.word(base + w * WB) for w in words], f"{what}: beat stream differs"
        want_ph = [w % 3 for w in words] if stride == "w6" else [0] * len(words)
        assert phases == want_ph, f"{what}: beat phases"
        assert count == len(words) == axi.r_beats, f"{what}: beats {count}"
        assert axi.outstanding == 0, f"{what}: done with bursts in flight"
        check_bursts(axi.bursts, base, stride, tokens)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def edge_cases(dut):
    """Empty fetch, single tokens, dense odd/even runs, full groups of one long run."""
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    mem = Memory(4)
    cases = [([], 1), ([0], "w6"), ([1], "w6"), ([1, 2], "w6"), ([0, 1], "w6"),
             ([1, 2, 3, 6, 7, 9, 12, 13, 14, 30], "w6"),
             (list(range(5, 40)) + [42, 45, 46, 47], "w6"), (list(range(1, 200, 2)), "w6"),
             (list(range(0, 300)), 3), ([1023], 3), (list(range(0, 64, 2)), 1)]
    for i, (tokens, stride) in enumerate(cases):
        base = 0x3000 - 3 * WB if i % 2 else 0x7000
        axi = AxiMemory(dut, mem, rng, ar_prob=rng.choice([1.0, 0.5]), latency=(0, 6))
        task = cocotb.start_soon(axi.run())
        got, phases, err, count = await with_timeout(
            fetch(dut, rng, base, stride, split_groups(rng, tokens, empty_prob=0.0)), 5, "ms")
        task.cancel()
        words = plane_words(stride, tokens) if tokens else []
        assert err == 0, f"tokens {tokens}: error {err}"
        assert got == [mem.word(base + w * WB) for w in words], \
            f"tokens {tokens}: beat stream differs"
        assert count == len(words)
        if stride == "w6":
            assert phases == [w % 3 for w in words]
        if tokens:
            check_bursts(axi.bursts, base, stride, tokens)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def error_response_ends_fetch_without_hang(dut):
    """SLVERR/DECERR on a random beat: the code is reported, the beats delivered are a prefix
    of the stream that stops before the bad one, every issued burst is drained, done comes,
    and the next fetch works."""
    seed = cocotb.RANDOM_SEED
    rng = random.Random(seed)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    for case in range(6):
        resp = rng.choice([2, 3])
        mem = Memory(seed + 100 + case)
        tokens, stride, base = random_case(rng, case)
        words = plane_words(stride, tokens)
        bad = rng.randrange(len(words))
        mem.bad[base + words[bad] * WB] = resp
        axi = AxiMemory(dut, mem, rng, ar_prob=0.7, r_prob=0.8, latency=(0, 10))
        task = cocotb.start_soon(axi.run())
        got, _, err, count = await with_timeout(
            fetch(dut, rng, base, stride, split_groups(rng, tokens), 0.7, 0.8), 5, "ms")
        task.cancel()
        want = [mem.word(base + w * WB) for w in words]
        assert err == resp, f"case {case}: expected error {resp}, got {err}"
        assert len(got) <= bad and got == want[:len(got)], f"case {case}: not a clean prefix"
        assert axi.outstanding == 0, f"case {case}: fetch ended with bursts in flight"
        assert count == axi.r_beats, f"case {case}: beats {count} != R beats {axi.r_beats}"
    mem = Memory(9)
    axi = AxiMemory(dut, mem, rng, latency=(0, 3))
    task = cocotb.start_soon(axi.run())
    got, _, err, _ = await with_timeout(fetch(dut, rng, 0x1000, 1, [[0, 1], [5]]), 5, "ms")
    task.cancel()
    assert err == 0 and got == [mem.word(0x1000 + w * WB) for w in (0, 1, 5)]


async def throughput(dut, rng, tokens, stride, latency):
    """((beats/cycle over the middle half of the beats, from the first beat out to the last),
    bursts accepted per cycle while the ARs flow, total cycles, bursts) for a fetch on an ideal
    memory: AR always ready, one beat per channel per cycle after a fixed latency, consumer
    always ready, a group every cycle."""
    mem = Memory(7)
    axi = AxiMemory(dut, mem, rng, latency=(latency, latency))
    task = cocotb.start_soon(axi.run())
    groups = [tokens[i:i + LANES] for i in range(0, len(tokens), LANES)]
    stats = Stats()
    got, _, err, count = await with_timeout(fetch(dut, rng, 0x40000, stride, groups, 1.0, 1.0,
                                                  stats), 5, "ms")
    task.cancel()
    words = plane_words(stride, tokens)
    assert err == 0 and got == [mem.word(0x40000 + w * WB) for w in words]
    assert count == len(words)
    beats_per_cycle = stats.sustained()
    cycles = [b[3] for b in axi.bursts]
    bursts_per_cycle = len(cycles) / (max(cycles) - min(cycles) + 1)
    return beats_per_cycle, bursts_per_cycle, stats.done, len(axi.bursts)


@cocotb.test(timeout_time=20, timeout_unit="ms")
async def throughput_figures(dut):
    """Figures printed (THROUGHPUT lines in the log) and loose lower bounds."""
    rng = random.Random(cocotb.RANDOM_SEED)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    await reset(dut)
    peak = min(N_CH, OUT)
    where = f"N_CH={N_CH} IDX_LANES={LANES} OUT_BEATS={OUT}"
    for what, tokens, stride in (("contiguous 4-bit (stride 1)", list(range(1024)), 1),
                                 ("contiguous stride 3", list(range(512)), 3),
                                 ("contiguous dense 6-bit", list(range(1024)), "w6")):
        (mid, whole), _, cycles, nb = await throughput(dut, rng, tokens, stride, 8)
        dut._log.info(f"THROUGHPUT {what}, {where}, latency 8: {cycles} cycles, {nb} bursts, "
                      f"{mid:.2f} beats/cycle sustained (middle half), {whole:.2f} first to "
                      f"last beat")
        want = min(peak, LANES) if stride == 1 else peak
        assert mid >= 0.85 * want, f"{what}: {mid:.2f} beats/cycle"
    for latency in (4, 8):
        _, bursts_pc, cycles, nb = await throughput(dut, rng, list(range(0, 1024, 2)), 1,
                                                    latency)
        dut._log.info(f"THROUGHPUT every other token kept, {where}, latency {latency}: {nb} "
                      f"1-beat bursts in {cycles} cycles, {bursts_pc:.2f} bursts/cycle "
                      f"accepted (MAX_OUTSTANDING={MAX_OUTSTANDING})")
        if latency == 4:
            assert bursts_pc >= 0.6 * min(N_CH, LANES), f"every other: {bursts_pc:.2f}/cycle"
