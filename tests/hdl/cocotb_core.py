"""cocotb top-level test of spatten_core: sequences of whole jobs, bit-exact to SpAttenCoreModel.

Every job goes through the DUT and through ONE SpAttenCoreModel (shared pruning state across
jobs), and every result field except `cycles` (and `beats` for AXI-error jobs) is compared.
CORE_RANDOM_JOBS (env) adds random jobs (default 4). `core_jobs` runs on a fixed-latency memory;
`core_ddr4_channels` on the DDR4 timing model with CORE_N_CH read channels.
"""

import copy
import os
import random

import cocotb
import torch
from cocotb.triggers import ReadOnly, RisingEdge

from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job
from spatten_dv.models.dram.config import SystemConfig
from spatten_dv.models.dram.ideal import IdealMemory
from spatten_dv.models.dram.memory_system import MemorySystem
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import DECERR, SLVERR, DramImage
from spatten_dv.models.softmax import score_scale
from spatten_dv.traces.loader import load_trace
from spatten_dv.verif.axi_read_responder import attach_read_responders
from spatten_dv.verif.core_driver import CoreDriver
from spatten_dv.verif.core_scoreboard import compare_result
from spatten_dv.verif.dram_target import DramTarget

PERIOD_PS = 10_000
N_RANDOM = int(os.environ.get("CORE_RANDOM_JOBS", "4"))
TRACE = os.path.join(os.path.dirname(__file__), "..", "..", "traces", "smollm2_prose.safetensors")


class Bench:
    def __init__(self, dut, rng):
        self.dut = dut
        self.rng = rng
        self.mem = DramImage()
        self.model = SpAttenCoreModel()
        self.next_base = 0x10000
        self.job_id = 0
        self.log = dut._log
        self.driver = CoreDriver(dut)

    def place(self, k12, v12, msb, lsb, vb):
        pb = write_head(self.mem, self.next_base, k12, v12, msb, lsb, vb)
        self.next_base = pb.end + 4096
        return pb

    async def run(self, job, check_beats=True, res_delay=0, label=""):
        job.job_id = self.job_id & 0xFFFF
        self.job_id += 1
        ref = self.model.run_job(job, self.mem)
        got = await self.driver.run(job, res_delay)
        errs = compare_result(got, ref, check_beats)
        self.log.info("job %d %-22s status %d n=%d keys=%d values=%d lsb=%d cycles=%d",
                      job.job_id, label, int(ref.status), job.n_tokens, ref.n_keys,
                      ref.n_values, int(ref.lsb_fetched), got["cycles"])
        assert not errs, f"job {job.job_id} ({label}): " + "; ".join(errs)
        return ref, got


async def setup(dut):
    await CoreDriver(dut).start(PERIOD_PS)


async def attach(dut, bench):
    target = DramTarget(IdealMemory(read_latency=20), PERIOD_PS)
    attach_read_responders(dut, dut.clk, bench.mem, target, 1)
    await target.start(dut.clk)


def rand12(gen, n, scale):
    return (torch.randn(n, 64, generator=gen) * scale).round().clamp(-2048, 2047).to(torch.int64)


@cocotb.test(timeout_time=1500, timeout_unit="sec")
async def core_jobs(dut):
    seed = cocotb.RANDOM_SEED % (1 << 63)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    dut._log.info("seed %d", seed)
    await setup(dut)
    b = Bench(dut, rng)
    tr = load_trace(TRACE)

    # trace heads: (layer, head) pairs, one placement per width set
    heads = []
    for layer, head in [(3, 0), (10, 4), (20, 7)]:
        tj = tr.job(2, layer, head)
        mult, shift = score_scale(tj["real_per_unit"])
        heads.append((tj, mult, shift))
    widths = [(12, 0, 12), (8, 4, 8), (6, 6, 6), (4, 8, 4), (4, 4, 12)]
    place = {}
    for hi, (tj, _, _) in enumerate(heads):
        for w in widths:
            place[(hi, w)] = b.place(tj["k"], tj["v"], *w)
    # error placements
    tj0 = heads[0][0]
    err_pb = {}
    for resp in (SLVERR, DECERR, "lsb"):
        pb = b.place(tj0["k"], tj0["v"], 8, 4, 8)
        err_pb[resp] = pb
    n0 = tj0["k"].shape[0]
    # SLVERR in the middle of the MSB plane; DECERR in the V plane; SLVERR in the LSB plane
    b.mem.add_error_range(err_pb["lsb"].k_lsb_base + 32 * 150,
                          err_pb["lsb"].k_lsb_base + 32 * 151, SLVERR)
    b.mem.add_error_range(err_pb[SLVERR].k_msb_base + 64 * 100,
                          err_pb[SLVERR].k_msb_base + 64 * 101, SLVERR)
    b.mem.add_error_range(err_pb[DECERR].v_base + 64 * (n0 - 3),
                          err_pb[DECERR].v_base + 64 * (n0 - 2), DECERR)
    # long random head
    k_long = rand12(gen, 1024, 300)
    v_long = rand12(gen, 1024, 300)
    pb_long = b.place(k_long, v_long, 12, 0, 12)
    await attach(dut, b)

    def job(hi, w, **kw):
        tj, mult, shift = heads[hi]
        pb = place[(hi, w)]
        args = dict(query=tj["query"], n_tokens=tj["k"].shape[0], k_msb_base=pb.k_msb_base,
                    k_lsb_base=pb.k_lsb_base, v_base=pb.v_base, msb_bits=w[0], lsb_bits=w[1],
                    v_bits=w[2], score_mult=mult, score_shift=shift)
        args.update(kw)
        return Job(**args)

    def msb_prob(j):
        m = copy.deepcopy(b.model)
        jj = copy.deepcopy(j)
        jj.lsb_bits = 0
        jj.requant_thresh = 0
        return m.run_job(jj, b.mem).max_prob_msb

    # 1. invalid descriptors (each status)
    q = heads[0][0]["query"]
    await b.run(Job(query=q, n_tokens=10, k_msb_base=0, n_heads=0), label="BAD_HEAD")
    await b.run(Job(query=q, n_tokens=10, k_msb_base=0, head_id=3, n_heads=3), label="BAD_HEAD2")
    await b.run(Job(query=q, n_tokens=0, k_msb_base=0), label="NO_TOKENS")
    await b.run(Job(query=q, n_tokens=1025, k_msb_base=0), label="TOO_MANY")
    await b.run(Job(query=q, n_tokens=10, k_msb_base=0, msb_bits=5), label="BAD_WIDTH")
    await b.run(Job(query=q, n_tokens=10, k_msb_base=0, msb_bits=8, lsb_bits=6),
                label="BAD_WIDTH2")
    await b.run(Job(query=q, n_tokens=10, k_msb_base=16), label="BAD_ADDR")
    await b.run(Job(query=q, n_tokens=10, k_msb_base=0xFFFFFF00), label="BAD_ADDR2")

    # 2. dense job, back-pressure on the result
    await b.run(job(0, (12, 0, 12)), res_delay=5, label="dense 12/0/12")
    # 3. widths, requant on / off around the model's max_prob_msb
    for hi in range(len(heads)):
        for w in widths[1:]:
            j = job(hi, w)
            mp = msb_prob(j)
            # alternate: just above (refetch) / equal (no refetch; the test is max < thresh)
            j.requant_thresh = min(mp + 1, 65535) if (hi + widths.index(w)) % 2 else mp
            await b.run(j, label=f"w{w} thr{j.requant_thresh - mp:+d}")
    # 4. v_topk
    for vk in (1, 17, 200):
        await b.run(job(1, (8, 4, 8), v_topk=vk, requant_thresh=65535), label=f"v_topk {vk}")
    # 5. 1 token
    await b.run(job(2, (12, 0, 12), n_tokens=1), label="1 token")
    # 6. AXI errors, each followed by a normal job
    for resp in (SLVERR, DECERR, "lsb"):
        pb = err_pb[resp]
        j = Job(query=tj0["query"], n_tokens=n0, k_msb_base=pb.k_msb_base,
                k_lsb_base=pb.k_lsb_base, v_base=pb.v_base, msb_bits=8, lsb_bits=4, v_bits=8,
                score_mult=heads[0][1], score_shift=heads[0][2], requant_thresh=65535,
                acc_tokens=True, acc_heads=True)
        await b.run(j, check_beats=False, label=f"AXI resp {resp}")
        await b.run(job(0, (8, 4, 8), v_topk=50), label="after error")
    # 7. token pruning across jobs (cascade): accumulate, then prune
    await b.run(job(0, (12, 0, 12), clear_tokens=True, clear_heads=True, acc_tokens=True),
                label="acc tokens")
    await b.run(job(1, (12, 0, 12), acc_tokens=True, n_tokens=200), label="acc tokens 2")
    await b.run(job(1, (8, 4, 8), token_keep=150, acc_tokens=True, requant_thresh=65535),
                label="token_keep 150")
    await b.run(job(2, (6, 6, 6), token_keep=60, acc_tokens=True, v_topk=20),
                label="token_keep 60")
    await b.run(job(0, (12, 0, 12), token_keep=300), label="token_keep >= count")
    # 8. head pruning with a skipped head
    await b.run(job(0, (12, 0, 12), clear_tokens=True, clear_heads=True), label="clear")
    for h in range(4):
        await b.run(job(h % 3, (12, 0, 12), head_id=h, n_heads=4, acc_heads=True),
                    label=f"acc head {h}")
    await b.run(job(0, (12, 0, 12), head_id=0, n_heads=4, head_keep=2), label="head_keep 2")
    for h in range(4):
        await b.run(job(h % 3, (8, 4, 8), head_id=h, n_heads=4, requant_thresh=65535),
                    label=f"head {h} after prune")
    await b.run(job(0, (12, 0, 12), clear_heads=True, clear_tokens=True), label="clear again")
    # 9. random jobs
    for i in range(N_RANDOM):
        hi = rng.randrange(len(heads))
        w = rng.choice(widths)
        n = heads[hi][0]["k"].shape[0]
        j = job(hi, w, n_tokens=rng.randint(1, n), requant_thresh=rng.choice([0, 8000, 65535]),
                v_topk=rng.choice([0, 0, rng.randint(1, 100)]), acc_tokens=rng.random() < 0.5,
                token_keep=rng.choice([0, 0, rng.randint(1, 200)]),
                clear_tokens=rng.random() < 0.2)
        await b.run(j, res_delay=rng.randrange(3), label=f"random {i}")
    # 10. long dense job
    mult, shift = score_scale(300 * 300 * 1e-6)
    j = Job(query=rand12(gen, 1, 300)[0], n_tokens=1024, k_msb_base=pb_long.k_msb_base,
            v_base=pb_long.v_base, score_mult=mult, score_shift=shift, clear_tokens=True)
    mon = {"cyc": 0, "r": [], "ar": []}

    async def monitor():
        while True:
            await ReadOnly()
            if int(dut.m_axi_arvalid.value) & int(dut.m_axi_arready.value):
                mon["ar"].append((mon["cyc"], int(dut.m_axi_araddr.value)))
            if int(dut.m_axi_rvalid.value) & int(dut.m_axi_rready.value):
                mon["r"].append(mon["cyc"])
            await RisingEdge(dut.clk)
            mon["cyc"] += 1

    mon_task = cocotb.start_soon(monitor())
    ref, got = await b.run(j, label="long dense 1024")
    mon_task.cancel()
    beats_msb = 1024 * 3
    r = mon["r"]
    v_ar = [c for c, a in mon["ar"] if a >= pb_long.v_base]
    if len(r) >= beats_msb and v_ar:
        dut._log.info("n=1024 MSB pass: K fetch %d cycles (first..last MSB beat, %.3f keys/cycle);"
                      " first K AR -> first V AR (fetch + softmax) %d cycles (%.3f keys/cycle)",
                      r[beats_msb - 1] - r[0] + 1, 1024 / (r[beats_msb - 1] - r[0] + 1),
                      v_ar[0] - mon["ar"][0][0], 1024 / (v_ar[0] - mon["ar"][0][0]))
    dut._log.info("n=1024 dense job: %d cycles, %.3f keys/cycle overall", got["cycles"],
                  1024 / got["cycles"])

    # 11. per-step re-selection (section 7 steps 3, 4, 6), last so that the jobs above keep
    # their cycle counts whatever this section does. Which tokens are kept shows in every
    # result field (keys, values, probabilities, out), compared with the model.
    w = (12, 0, 12)
    await b.run(job(0, w, clear_tokens=True, acc_tokens=True), label="rs: acc")
    await b.run(job(1, w, acc_tokens=True), label="rs: acc 2")
    await b.run(job(2, w, token_keep=30, acc_tokens=True), label="rs: keep 30")
    await b.run(job(0, w, token_keep=10, acc_tokens=True), label="rs: keep 10")
    await b.run(job(1, w, reselect=True, imp_shift=2, token_keep=60, protect_sink=4,
                    protect_recent=8, acc_tokens=True), label="rs: reselect 60 S4 W8")
    await b.run(job(2, w, reselect=True, imp_shift=31, token_keep=20, protect_recent=25),
                label="rs: shift 31, W > keep")
    await b.run(job(0, w, acc_tokens=True, n_tokens=100), label="rs: n=100 below the kept (NO_TOKENS)")
    await b.run(job(1, w, reselect=True, token_keep=15, protect_sink=200, protect_recent=200,
                    acc_tokens=True), label="rs: all protected")
    await b.run(job(2, w, token_keep=3, protect_sink=2, protect_recent=1), label="rs: S+W=keep")
    await b.run(job(0, w, msb_bits=5, reselect=True, imp_shift=4, token_keep=1),
                label="rs: invalid, no change")
    await b.run(job(1, w, reselect=True, acc_tokens=True), label="rs: reselect only")
    await b.run(job(2, w, imp_shift=1, head_keep=1, head_id=1, n_heads=2),
                label="rs: shift on skipped head")
    await b.run(job(0, w, protect_sink=5, protect_recent=5, n_tokens=7), label="rs: no keep")
    j = Job(query=rand12(gen, 1, 300)[0], n_tokens=1024, k_msb_base=pb_long.k_msb_base,
            v_base=pb_long.v_base, score_mult=mult, score_shift=shift, acc_tokens=True)
    await b.run(j, label="rs: long acc")
    j.token_keep, j.acc_tokens = 100, False
    await b.run(j, label="rs: long keep 100")
    j.reselect, j.imp_shift, j.token_keep, j.protect_recent = True, 3, 500, 64
    ref, got = await b.run(j, label="rs: long reselect 500")
    dut._log.info("n=1024 reselect + rescale + keep 500: %d cycles", got["cycles"])


@cocotb.test(timeout_time=1500, timeout_unit="sec")
async def core_ddr4_channels(dut):
    """Whole jobs with N_CH AXI read channels on a DDR4-2400R model (CORE_N_CH DRAM channels,
    clocked with the core): results bit-exact, and the cycles each job takes are reported."""
    n_ch = int(os.environ.get("CORE_N_CH", "1"))
    seed = cocotb.RANDOM_SEED % (1 << 63)
    gen = torch.Generator().manual_seed(seed)
    dut._log.info("seed %d, %d AXI channel(s), DDR4-2400R with %d channel(s)", seed, n_ch, n_ch)
    await setup(dut)
    b = Bench(dut, random.Random(seed))
    tr = load_trace(TRACE)
    tj = tr.job(4, 12, 5)
    mult, shift = score_scale(tj["real_per_unit"])
    pbs = {w: b.place(tj["k"], tj["v"], *w) for w in [(12, 0, 12), (8, 4, 8), (4, 8, 4)]}
    k_long, v_long = rand12(gen, 1024, 300), rand12(gen, 1024, 300)
    pb_long = b.place(k_long, v_long, 6, 6, 6)
    model = MemorySystem(SystemConfig.from_presets("DDR4", "DDR4_2400R", channels=n_ch))
    target = DramTarget(model, PERIOD_PS)
    attach_read_responders(dut, dut.clk, b.mem, target, n_ch)
    await target.start(dut.clk)

    def job(w, **kw):
        pb = pbs[w]
        args = dict(query=tj["query"], n_tokens=tj["k"].shape[0], k_msb_base=pb.k_msb_base,
                    k_lsb_base=pb.k_lsb_base, v_base=pb.v_base, msb_bits=w[0], lsb_bits=w[1],
                    v_bits=w[2], score_mult=mult, score_shift=shift)
        args.update(kw)
        return Job(**args)

    cycles = {}
    for label, j in [("dense 12/0/12", job((12, 0, 12))),
                     ("8/4/8 LSB refetch", job((8, 4, 8), requant_thresh=65535)),
                     ("4/8/4 v_topk 17", job((4, 8, 4), v_topk=17, acc_tokens=True)),
                     ("token_keep 100", job((12, 0, 12), token_keep=100, v_topk=30))]:
        _, got = await b.run(j, label=label)
        cycles[label] = got["cycles"]
    mult, shift = score_scale(300 * 300 * 1e-6)
    j = Job(query=rand12(gen, 1, 300)[0], n_tokens=1024, k_msb_base=pb_long.k_msb_base,
            k_lsb_base=pb_long.k_lsb_base, v_base=pb_long.v_base, msb_bits=6, lsb_bits=6,
            v_bits=6, score_mult=mult, score_shift=shift, requant_thresh=65535,
            clear_tokens=True)
    _, got = await b.run(j, label="n=1024 6/6/6 refetch")
    cycles["n=1024 6/6/6 refetch"] = got["cycles"]
    dut._log.info("DDR4-2400R, %d channel(s): cycles per job %s; %d DRAM reads", n_ch,
                  cycles, target.reads)
