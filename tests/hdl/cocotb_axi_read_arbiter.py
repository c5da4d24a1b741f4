"""cocotb tests of spatten_axi_read_arbiter: two read masters sharing N_CH AXI4 read channels.

Two Python master models issue random bursts on random channels (random arvalid timing, each
request held until accepted, random rready) and one Python slave per channel answers with
random arready, random latency, in-order R bursts and random rvalid gaps; a beat's data and
resp are a function of its address, and each master reads from its own address range, so a
beat delivered to the wrong master or out of order does not match what that master expects.

Every cycle ArbiterChecker compares all outputs with a reference model written from the
module header (s0 priority, grant lock, per-channel order FIFO, zero latency) and checks the
AXI rule on the m_axi side (payload stable while ARVALID waits). It is plain Python, so
test_axi_read_arbiter.py also feeds it wrong traces to show each check can fail.
"""

import os
import random
from collections import Counter, deque

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ReadOnly, RisingEdge

N_CH = int(os.environ.get("ARB_N_CH", "1"))
MAX_OUTSTANDING = int(os.environ.get("ARB_MAX_OUTSTANDING", "16"))
AW, DW = 32, 256
WORD_BYTES = DW // 8
PAYLOAD = (("araddr", AW), ("arlen", 8), ("arsize", 3), ("arburst", 2))
MASTER_INPUTS = ("arvalid", "araddr", "arlen", "arsize", "arburst", "rready")
MASTER_OUTPUTS = ("arready", "rvalid", "rdata", "rresp", "rlast")
SLAVE_INPUTS = ("m_axi_arready", "m_axi_rvalid", "m_axi_rdata", "m_axi_rresp", "m_axi_rlast")
SLAVE_OUTPUTS = ("m_axi_arvalid", "m_axi_araddr", "m_axi_arlen", "m_axi_arsize",
                 "m_axi_arburst", "m_axi_rready")
WIDTH = {"arvalid": 1, "arready": 1, "araddr": AW, "arlen": 8, "arsize": 3, "arburst": 2,
         "rvalid": 1, "rready": 1, "rdata": DW, "rresp": 2, "rlast": 1}
INPUTS = tuple(f"s{k}_{n}" for k in (0, 1) for n in MASTER_INPUTS) + SLAVE_INPUTS
OUTPUTS = tuple(f"s{k}_{n}" for k in (0, 1) for n in MASTER_OUTPUTS) + SLAVE_OUTPUTS
_DATA_KEY = random.Random(2718).getrandbits(DW) | 1  # odd: word() is injective in the address


def field(vector, ch, width):
    """Channel ch's field of a flattened per-channel vector."""
    return (vector >> (ch * width)) & ((1 << width) - 1)


def width_of(name):
    return WIDTH[name.rsplit("_", 1)[-1]]


def word(addr):
    """The slave's data at byte address addr (one bus word)."""
    return ((addr + 1) * _DATA_KEY) & ((1 << DW) - 1)


def resp(addr):
    """The slave's RRESP for the word at addr (all four codes occur; the arbiter passes it)."""
    return ((addr >> 5) * 2654435761 >> 11) & 3


class ArbiterChecker:
    """Reference model of the arbiter, stepped once per cycle with every port's value."""

    def __init__(self, n_ch, max_outstanding):
        self.n_ch, self.max_outstanding = n_ch, max_outstanding
        self.lock = [None] * n_ch      # master a waiting forwarded request belongs to
        self.fifo = [deque() for _ in range(n_ch)]
        self.waiting = [None] * n_ch   # (master, payload) of m_axi AR waiting for arready
        self.cover = Counter()

    def reset(self):
        self.__init__(self.n_ch, self.max_outstanding)

    def step(self, o, cycle=0):
        for c in range(self.n_ch):
            self._channel(o, c, f"cycle {cycle} ch {c}")

    def _channel(self, o, c, at):
        def g(name):
            return field(o[name], c, width_of(name))

        valid = [g("s0_arvalid"), g("s1_arvalid")]
        pay = [tuple(g(f"s{k}_{n}") for n, _ in PAYLOAD) for k in (0, 1)]
        m_valid, m_ready = g("m_axi_arvalid"), g("m_axi_arready")
        m_pay = tuple(g(f"m_axi_{n}") for n, _ in PAYLOAD)
        arready = [g("s0_arready"), g("s1_arready")]

        # AXI rule on the external side: a waiting request stays, unchanged, until accepted
        # (unless its master withdrew it: then m_axi_arvalid falls, see the model below).
        if self.waiting[c] is not None:
            who, before = self.waiting[c]
            if valid[who]:
                assert m_valid and m_pay == before, (
                    f"{at}: m_axi AR changed while ARVALID waited for ARREADY "
                    f"(was {before}, now valid={m_valid} {m_pay})")
            else:
                self.cover["withdrawn"] += 1

        # AR: grant, lock, room.
        fifo = self.fifo[c]
        room = len(fifo) < self.max_outstanding
        locked = self.lock[c]
        grant = locked if locked is not None else (0 if valid[0] else 1)
        want_valid = int(bool(valid[grant]) and room)
        want_ready = [0, 0]
        want_ready[grant] = int(bool(m_ready) and room)
        if locked is None and valid[0] and valid[1] and room:
            self.cover["contested"] += 1
            assert m_valid and m_pay == pay[0] and arready == [m_ready, 0], (
                f"{at}: both masters request a free channel: s0 must be granted "
                f"(m_axi_arvalid={m_valid}, arready s0/s1={arready}, m_axi_arready={m_ready})")
        if locked == 1 and valid[0]:
            self.cover["lock_held"] += 1
            assert arready[0] == 0 and (not valid[1] or m_pay == pay[1]), (
                f"{at}: s1's waiting request must keep the grant when s0 arrives")
        if not room and (valid[0] or valid[1]):
            self.cover["fifo_full"] += 1
        assert m_valid == want_valid, (
            f"{at}: m_axi_arvalid={m_valid}, expected {want_valid} (grant s{grant}, "
            f"arvalid s0/s1={valid}, room={room})")
        if want_valid:
            assert m_pay == pay[grant], f"{at}: m_axi AR payload {m_pay} is not s{grant}'s"
        assert arready == want_ready, (
            f"{at}: arready s0/s1={arready}, expected {want_ready} (grant s{grant})")

        # R: the head of the channel's order FIFO owns the beat.
        owner = fifo[0] if fifo else None
        m_rvalid, m_rlast = g("m_axi_rvalid"), g("m_axi_rlast")
        rready = [g("s0_rready"), g("s1_rready")]
        rvalid = [g("s0_rvalid"), g("s1_rvalid")]
        want_rvalid = [int(bool(m_rvalid) and owner == k) for k in (0, 1)]
        assert rvalid == want_rvalid, (
            f"{at}: R beat routed to rvalid s0/s1={rvalid}, expected {want_rvalid} "
            f"(burst owner s{owner})")
        want_rready = int(owner is not None and bool(rready[owner]))
        assert g("m_axi_rready") == want_rready, (
            f"{at}: m_axi_rready={g('m_axi_rready')}, expected {want_rready} (owner s{owner})")
        for k in (0, 1):
            if rvalid[k]:
                got = (g(f"s{k}_rdata"), g(f"s{k}_rresp"), g(f"s{k}_rlast"))
                want = (g("m_axi_rdata"), g("m_axi_rresp"), m_rlast)
                assert got == want, f"{at}: s{k} R data/resp/last differ from m_axi's"

        # State for the next cycle.
        if want_valid and m_ready:
            fifo.append(grant)
            if len(set(fifo)) == 2:
                self.cover["interleaved"] += 1
        self.lock[c] = grant if (want_valid and not m_ready) else None
        self.waiting[c] = (grant, m_pay) if (m_valid and not m_ready) else None
        if m_rvalid and want_rready and m_rlast:
            fifo.popleft()


class MasterModel:
    """One read master: random bursts on random channels, each held until accepted; checks
    every beat it receives against the burst at the head of its own per-channel queue."""

    def __init__(self, mid, rng, n_ch, bursts, issue_prob, rready_prob, max_len=15):
        self.mid, self.rng, self.n_ch = mid, rng, n_ch
        self.to_issue = bursts
        self.issue_prob, self.rready_prob, self.max_len = issue_prob, rready_prob, max_len
        self.request = [None] * n_ch             # request held on arvalid, per channel
        self.in_flight = [deque() for _ in range(n_ch)]
        self.beats = 0
        self.accepted = []                       # (cycle, channel, burst) per AR handshake
        self.completed = []                      # (cycle, channel, burst) per rlast beat
        self.script = {}                         # cycle -> channel: issue exactly then

    def new_burst(self, c):
        # Own address range per master and channel: data tells where a beat came from.
        addr = (self.mid << 31) | (c << 28) | (self.rng.randrange(1 << 20) * WORD_BYTES)
        return {"addr": addr, "len": self.rng.randint(0, self.max_len),
                "size": self.rng.randrange(8), "burst": self.rng.randrange(4), "beat": 0}

    def drive(self, cycle, inputs):
        s = f"s{self.mid}_"
        if cycle in self.script:
            c = self.script.pop(cycle)
            assert self.request[c] is None
            self.request[c] = self.new_burst(c)
            self.to_issue -= 1
        for c in range(self.n_ch):
            if (self.request[c] is None and self.to_issue > 0 and not self.script
                    and self.rng.random() < self.issue_prob):
                self.request[c] = self.new_burst(c)
                self.to_issue -= 1
            r = self.request[c]
            # Idle channels carry random payload: only a valid request's may reach m_axi.
            values = (r["addr"], r["len"], r["size"], r["burst"]) if r else \
                tuple(self.rng.getrandbits(w) for _, w in PAYLOAD)
            inputs[s + "arvalid"] |= int(r is not None) << c
            for (name, w), v in zip(PAYLOAD, values, strict=True):
                inputs[s + name] |= v << (c * w)
            inputs[s + "rready"] |= int(self.rng.random() < self.rready_prob) << c

    def sample(self, cycle, o):
        s = f"s{self.mid}_"
        for c in range(self.n_ch):
            if field(o[s + "rvalid"], c, 1) and field(o[s + "rready"], c, 1):
                assert self.in_flight[c], (
                    f"cycle {cycle}: s{self.mid} got an R beat on ch {c} with no burst of its own "
                    "in flight there")
                b = self.in_flight[c][0]
                addr = b["addr"] + b["beat"] * WORD_BYTES
                got = (field(o[s + "rdata"], c, DW), field(o[s + "rresp"], c, 2),
                       field(o[s + "rlast"], c, 1))
                want = (word(addr), resp(addr), int(b["beat"] == b["len"]))
                assert got[0] == want[0], (
                    f"cycle {cycle}: s{self.mid} ch {c}: beat {b['beat']} of burst "
                    f"{b['addr']:#x} has the wrong data (another master's, or out of order)")
                assert got[1:] == want[1:], (
                    f"cycle {cycle}: s{self.mid} ch {c}: rresp/rlast {got[1:]}, want {want[1:]}")
                self.beats += 1
                b["beat"] += 1
                if got[2]:
                    self.in_flight[c].popleft()
                    self.completed.append((cycle, c, b))
            r = self.request[c]
            if r is not None and field(o[s + "arvalid"], c, 1) and field(o[s + "arready"], c, 1):
                self.in_flight[c].append(r)
                self.accepted.append((cycle, c, r))
                self.request[c] = None

    def finished(self):
        return self.to_issue == 0 and not self.script and all(
            r is None for r in self.request) and not any(self.in_flight)


class SlaveModel:
    """The AXI slaves of all channels: random arready, a random latency per burst, bursts
    answered in AR order per channel, random gaps between beats, rvalid held until rready."""

    def __init__(self, rng, n_ch, arready_prob, latency, rvalid_prob):
        self.rng, self.n_ch = rng, n_ch
        self.arready_prob, self.latency, self.rvalid_prob = arready_prob, latency, rvalid_prob
        self.queue = [deque() for _ in range(n_ch)]
        self.beat = [None] * n_ch                # beat on the bus: (data, resp, last)
        self.ars = 0

    def drive(self, cycle, inputs):
        for c in range(self.n_ch):
            inputs["m_axi_arready"] |= int(self.rng.random() < self.arready_prob) << c
            q = self.queue[c]
            if self.beat[c] is None and q and q[0]["at"] <= cycle \
                    and self.rng.random() < self.rvalid_prob:
                b = q[0]
                addr = b["addr"] + b["beat"] * WORD_BYTES
                self.beat[c] = (word(addr), resp(addr), int(b["beat"] == b["len"]))
            if self.beat[c] is not None:
                data, rr, last = self.beat[c]
                inputs["m_axi_rvalid"] |= 1 << c
                inputs["m_axi_rdata"] |= data << (c * DW)
                inputs["m_axi_rresp"] |= rr << (c * 2)
                inputs["m_axi_rlast"] |= last << c
            else:  # no beat: random data, which nobody may take
                inputs["m_axi_rdata"] |= self.rng.getrandbits(DW) << (c * DW)
                inputs["m_axi_rlast"] |= self.rng.getrandbits(1) << c

    def sample(self, cycle, o):
        for c in range(self.n_ch):
            if self.beat[c] is not None and field(o["m_axi_rready"], c, 1):
                b = self.queue[c][0]
                b["beat"] += 1
                if self.beat[c][2]:
                    self.queue[c].popleft()
                self.beat[c] = None
            if field(o["m_axi_arvalid"], c, 1) and field(o["m_axi_arready"], c, 1):
                self.ars += 1
                self.queue[c].append({
                    "addr": field(o["m_axi_araddr"], c, AW), "len": field(o["m_axi_arlen"], c, 8),
                    "beat": 0, "at": cycle + self.rng.randint(*self.latency)})

    def idle(self):
        return not any(self.queue) and all(b is None for b in self.beat)


class Bench:
    def __init__(self, dut):
        self.dut = dut
        self.checker = ArbiterChecker(N_CH, MAX_OUTSTANDING)
        self.cycle = 0

    async def start(self):
        dut = self.dut
        cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
        dut.rst_n.value = 0
        for name in INPUTS:
            getattr(dut, name).value = 0
        for _ in range(3):
            await RisingEdge(dut.clk)
        dut.rst_n.value = 1
        await RisingEdge(dut.clk)

    async def step(self, inputs):
        """Drive one cycle's inputs, check every output, return all values; ends after the
        rising edge that takes this cycle's handshakes."""
        dut = self.dut
        for name in INPUTS:
            getattr(dut, name).value = inputs.get(name, 0)
        await ReadOnly()
        o = {name: int(getattr(dut, name).value) for name in INPUTS + OUTPUTS}
        self.checker.step(o, self.cycle)
        await RisingEdge(dut.clk)
        self.cycle += 1
        return o

    async def run(self, masters, slave, max_cycles):
        """Run the models until every burst has come back; a bounded wait."""
        for _ in range(max_cycles):
            inputs = dict.fromkeys(INPUTS, 0)
            cycle = self.cycle
            for m in masters:
                m.drive(cycle, inputs)
            slave.drive(cycle, inputs)
            o = await self.step(inputs)
            for m in masters:
                m.sample(cycle, o)
            slave.sample(cycle, o)
            if all(m.finished() for m in masters) and slave.idle():
                return
        raise AssertionError(f"timeout: bursts still in flight after {max_cycles} cycles "
                             f"(to issue {[m.to_issue for m in masters]}, in flight "
                             f"{[sum(map(len, m.in_flight)) for m in masters]})")


# (issue prob per master, rready prob per master, arready prob, latency, rvalid prob)
EPISODES = [
    ((0.3, 0.3), (0.9, 0.9), 0.5, (1, 6), 0.8),     # contention, slave busy
    ((0.5, 0.1), (1.0, 0.5), 0.7, (1, 3), 1.0),     # s0 heavy
    ((0.1, 0.5), (0.5, 1.0), 0.3, (1, 10), 0.6),    # s1 heavy, slow slave
    ((1.0, 1.0), (0.7, 0.7), 1.0, (20, 40), 0.9),   # deep: FIFOs fill up
    ((0.2, 0.2), (0.3, 0.3), 0.8, (1, 4), 0.5),     # masters slow to take R
]


@cocotb.test(timeout_time=50, timeout_unit="ms")
async def random_bursts_return_to_their_master(dut):
    rng = random.Random(cocotb.RANDOM_SEED)
    bench = Bench(dut)
    await bench.start()
    n_bursts = 24 * N_CH if N_CH < 4 else 16 * N_CH
    for i, (issue, rready, arready, latency, rvalid) in enumerate(EPISODES):
        max_len = 15 if i != 3 else 3  # deep episode: many short bursts
        masters = [MasterModel(k, rng, N_CH, n_bursts, issue[k], rready[k], max_len)
                   for k in (0, 1)]
        slave = SlaveModel(rng, N_CH, arready, latency, rvalid)
        await bench.run(masters, slave, max_cycles=20000)
        assert slave.ars == 2 * n_bursts, f"episode {i}: the slaves saw {slave.ars} bursts"
        for m in masters:
            want = sum(b["len"] + 1 for _, _, b in m.accepted)
            assert len(m.completed) == n_bursts and m.beats == want, (
                f"episode {i}: s{m.mid} completed {len(m.completed)} bursts, {m.beats} beats")
        assert not any(bench.checker.fifo), "order FIFO model not empty after an episode"
    cover = bench.checker.cover
    dut._log.info("coverage over %d cycles: %s", bench.cycle, dict(cover))
    # The checks above must have been exercised, not just passed.
    for what in ("contested", "lock_held", "fifo_full", "interleaved"):
        assert cover[what] > 0, f"random traffic never produced a '{what}' cycle"


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def single_master_passes_through_with_zero_latency(dut):
    """One master alone, slave always ready with a fixed latency: the AR is accepted in the
    cycle it is raised and the last beat arrives latency + len cycles after that, exactly as
    if the master were wired to the channel."""
    rng = random.Random(cocotb.RANDOM_SEED)
    bench = Bench(dut)
    await bench.start()
    latency = 3
    for k in (0, 1):
        for c in range(N_CH):
            master = MasterModel(k, rng, N_CH, 1, 0.0, 1.0)
            idle = MasterModel(1 - k, rng, N_CH, 0, 0.0, 1.0)
            issue_at = bench.cycle + 2
            master.script[issue_at] = c
            slave = SlaveModel(rng, N_CH, 1.0, (latency, latency), 1.0)
            await bench.run([master, idle] if k == 0 else [idle, master], slave, max_cycles=200)
            (acc, ch, burst), = master.accepted
            (done, _, _), = master.completed
            assert ch == c and acc == issue_at, (
                f"s{k} ch {c}: AR raised in cycle {issue_at}, accepted in cycle {acc}")
            assert done - acc == latency + burst["len"], (
                f"s{k} ch {c}: last beat {done - acc} cycles after the AR, want "
                f"{latency + burst['len']} (latency {latency} + {burst['len']} more beats)")


@cocotb.test(timeout_time=5, timeout_unit="ms")
async def lock_holds_then_releases_on_withdrawal(dut):
    """s1 waits for arready, s0 arrives: s1 keeps the grant (payload unchanged). s1 then
    withdraws (spatten_fetcher does after an error): m_axi_arvalid falls for one cycle, s0 is
    granted after, and its burst comes back to s0."""
    bench = Bench(dut)
    await bench.start()
    c = N_CH - 1
    a0, a1 = (0 << 31) | 0x1000, (1 << 31) | 0x2000

    def req(k, addr, length):
        return {f"s{k}_arvalid": 1 << c, f"s{k}_araddr": addr << (c * AW),
                f"s{k}_arlen": length << (c * 8), f"s{k}_arsize": 5 << (c * 3),
                f"s{k}_arburst": 1 << (c * 2)}

    def bit(o, name):
        return field(o[name], c, width_of(name))

    o = await bench.step(req(1, a1, 2))                       # s1 alone, not accepted
    assert bit(o, "m_axi_arvalid") and bit(o, "m_axi_araddr") == a1
    o = await bench.step({**req(1, a1, 2), **req(0, a0, 1)})  # s0 arrives: s1 stays granted
    assert bit(o, "m_axi_araddr") == a1 and not bit(o, "s0_arready")
    assert bench.checker.cover["lock_held"] == 1
    o = await bench.step(req(0, a0, 1))                       # s1 withdraws
    assert not bit(o, "m_axi_arvalid"), "lock must still hold in the withdrawal cycle"
    o = await bench.step({**req(0, a0, 1), "m_axi_arready": 1 << c})
    assert bit(o, "m_axi_arvalid") and bit(o, "m_axi_araddr") == a0 and bit(o, "s0_arready")
    for beat in range(2):                                     # s0's 2 beats come back to s0
        o = await bench.step({"m_axi_rvalid": 1 << c, "m_axi_rdata": word(a0) << (c * DW),
                              "m_axi_rlast": int(beat == 1) << c, "s0_rready": 1 << c,
                              "s1_rready": 1 << c})
        assert bit(o, "s0_rvalid") and not bit(o, "s1_rvalid")
    assert not bench.checker.fifo[c] and bench.checker.cover["withdrawn"] == 1
