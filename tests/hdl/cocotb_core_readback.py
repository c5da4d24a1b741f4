"""cocotb test of spatten_core's state readback port (docs/architecture.md section 10).

Jobs go through the DUT and ONE SpAttenCoreModel as in cocotb_core.py; after every job the
pruning state is read back through the dbg_* port (StateReadbackBfm) and compared bit for bit
with `SpAttenCoreModel.state_view`: tokens with n = the job's n_tokens and n = L_MAX, heads with
n > H_MAX (clamped). Also: readback right after reset, n = 0, n not a multiple of 32,
back-pressure on dbg_ready, a second readback equal to the first (no state change), a readback
requested together with a descriptor (the readback goes first), a check that the comparison
can fail, and cycles of full readbacks. `readback_saturation` drives a head's importance to
2^32-1 (2048 one-token jobs of maximal |out|). CORE_N_CH (env) = AXI read channels.
"""

import copy
import os
import random

import cocotb
import torch

from spatten_dv.models.core import IMP_MAX, SpAttenCoreModel
from spatten_dv.models.descriptor import Job, Status
from spatten_dv.models.dram.ideal import IdealMemory
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import SLVERR, DramImage
from spatten_dv.models.softmax import score_scale
from spatten_dv.traces.loader import load_trace
from spatten_dv.verif.axi_read_responder import attach_read_responders
from spatten_dv.verif.core_driver import CoreDriver
from spatten_dv.verif.core_scoreboard import compare_result
from spatten_dv.verif.dram_target import DramTarget
from spatten_dv.verif.state_readback import StateReadbackBfm, compare_state

PERIOD_PS = 10_000
N_CH = int(os.environ.get("CORE_N_CH", "1"))
TRACE = os.path.join(os.path.dirname(__file__), "..", "..", "traces", "smollm2_prose.safetensors")


class Bench:
    def __init__(self, dut):
        self.dut = dut
        self.mem = DramImage()
        self.model = SpAttenCoreModel()
        self.params = self.model.params
        self.next_base = 0x10000
        self.job_id = 0
        self.log = dut._log
        self.driver = CoreDriver(dut)
        self.rb = StateReadbackBfm(dut)
        self.readbacks = 0

    async def start(self):
        self.rb.idle_inputs()  # dbg_* inputs 0 from time 0 (CoreDriver.start drives them too)
        await self.driver.start(PERIOD_PS)
        target = DramTarget(IdealMemory(read_latency=20), PERIOD_PS)
        attach_read_responders(self.dut, self.dut.clk, self.mem, target, N_CH)
        await target.start(self.dut.clk)

    def place(self, k12, v12, msb, lsb, vb):
        pb = write_head(self.mem, self.next_base, k12, v12, msb, lsb, vb)
        self.next_base = pb.end + 4096
        return pb

    async def run(self, job, check_beats=True, label=""):
        job.job_id = self.job_id & 0xFFFF
        self.job_id += 1
        ref = self.model.run_job(job, self.mem)
        got = await self.driver.run(job)
        errs = compare_result(got, ref, check_beats)
        assert not errs, f"job {job.job_id} ({label}): " + "; ".join(errs)
        return ref, got

    async def check(self, heads, n, label="", ready_delay=0):
        """Read back (heads, n) and compare with the model; returns what was read."""
        got = await self.rb.read(heads, n, ready_delay)
        self.readbacks += 1
        errs = compare_state(got, self.model.state_view(heads, n),
                             f"{label}: {'heads' if heads else 'tokens'} n={n}")
        assert not errs, "; ".join(errs)
        return got

    async def check_all(self, job=None, label=""):
        """After a job: tokens n = n_tokens (if in range) and n = L_MAX, heads n > H_MAX."""
        if job is not None and 0 < job.n_tokens <= self.params.max_tokens:
            await self.check(False, job.n_tokens, label)
        await self.check(False, self.params.max_tokens, label)
        await self.check(True, self.params.max_heads + 7, label)


def trace_heads():
    tr = load_trace(TRACE)
    heads = []
    for layer, head in [(3, 0), (10, 4), (20, 7)]:
        tj = tr.job(2, layer, head)
        mult, shift = score_scale(tj["real_per_unit"])
        heads.append((tj, mult, shift))
    return heads


@cocotb.test(timeout_time=1500, timeout_unit="sec")
async def readback_jobs(dut):
    b = Bench(dut)
    await b.start()
    heads = trace_heads()
    W = (12, 0, 12)
    place = {hi: b.place(tj["k"], tj["v"], *W) for hi, (tj, _, _) in enumerate(heads)}
    pb_w = b.place(heads[1][0]["k"], heads[1][0]["v"], 8, 4, 8)
    err_pb = b.place(heads[0][0]["k"], heads[0][0]["v"], 12, 0, 12)
    n_err = heads[0][0]["k"].shape[0]
    b.mem.add_error_range(err_pb.v_base, err_pb.v_base + 96 * n_err, SLVERR)  # every V
    L, H = b.params.max_tokens, b.params.max_heads
    dut._log.info("%d AXI read channel(s); trace heads n_tokens %s", N_CH,
                  [tj["k"].shape[0] for tj, _, _ in heads])

    def job(hi, **kw):
        tj, mult, shift = heads[hi]
        pb = place[hi]
        args = dict(query=tj["query"], n_tokens=tj["k"].shape[0], k_msb_base=pb.k_msb_base,
                    k_lsb_base=pb.k_lsb_base, v_base=pb.v_base, msb_bits=W[0], lsb_bits=W[1],
                    v_bits=W[2], score_mult=mult, score_shift=shift)
        args.update(kw)
        return Job(**args)

    # 1. reset state; n = 0 (one all-zero chunk with dbg_last), odd n, heads n > H_MAX
    for heads_, n in [(False, 0), (True, 0), (False, 1), (False, 31), (False, 33), (True, 5),
                      (True, H), (True, H + 1), (True, 2047), (False, L)]:
        await b.check(heads_, n, "after reset")

    # 2. job sequence: accumulate, prune (tokens and heads), skipped head, invalid, AXI error
    n1 = heads[1][0]["k"].shape[0]
    seq = [
        ("acc h0", job(0, clear_tokens=True, clear_heads=True, acc_tokens=True, acc_heads=True,
                       head_id=0, n_heads=4)),
        ("acc h1 n=200", job(1, n_tokens=200, acc_tokens=True, acc_heads=True, head_id=1,
                             n_heads=4)),
        ("acc h2 v_topk", job(2, v_topk=40, acc_tokens=True, acc_heads=True, head_id=2,
                              n_heads=4)),
        ("acc h3 8/4/8", Job(query=heads[1][0]["query"], n_tokens=n1 - 5,
                             k_msb_base=pb_w.k_msb_base, k_lsb_base=pb_w.k_lsb_base,
                             v_base=pb_w.v_base, msb_bits=8, lsb_bits=4, v_bits=8,
                             score_mult=heads[1][1], score_shift=heads[1][2],
                             requant_thresh=65535, acc_tokens=True, acc_heads=True, head_id=3,
                             n_heads=4)),
        ("token_keep 150", job(1, token_keep=150, acc_tokens=True, acc_heads=True, head_id=1,
                               n_heads=4)),
        ("head_keep 2", job(0, head_keep=2, acc_tokens=True, acc_heads=True, head_id=0,
                            n_heads=4)),
        ("skipped heads", None),
        ("invalid (no state change)", Job(query=heads[0][0]["query"], n_tokens=10,
                                          k_msb_base=16, acc_tokens=True, clear_tokens=True)),
        ("token_keep 60 + acc", job(2, token_keep=60, acc_tokens=True, acc_heads=True,
                                    head_id=1, n_heads=4, v_topk=20)),
        ("AXI error after prune", Job(query=heads[0][0]["query"],
                                      n_tokens=heads[0][0]["k"].shape[0],
                                      k_msb_base=err_pb.k_msb_base, v_base=err_pb.v_base,
                                      score_mult=heads[0][1], score_shift=heads[0][2],
                                      token_keep=40, acc_tokens=True, acc_heads=True,
                                      head_id=1, n_heads=4)),
        ("token_keep >= count", job(0, token_keep=300, acc_tokens=True, head_id=1, n_heads=4)),
        ("acc n=77", job(2, n_tokens=77, clear_tokens=True, clear_heads=True, acc_tokens=True,
                         acc_heads=True, head_id=0, n_heads=4)),
        ("acc n=250 head 17", job(1, n_tokens=250, acc_tokens=True, acc_heads=True,
                                  head_id=17, n_heads=20, v_topk=64)),
        ("head_keep 1 of 20", job(0, head_keep=1, token_keep=70, acc_tokens=True,
                                  acc_heads=True, head_id=17, n_heads=20)),
    ]
    seq.append(("clear heads", job(0, clear_heads=True, acc_heads=True, acc_tokens=True,
                                   head_id=2, n_heads=4)))
    rng = random.Random(cocotb.RANDOM_SEED)
    for i in range(4):
        hi = rng.randrange(3)
        seq.append((f"random {i}", job(hi, n_tokens=rng.randint(1, 271),
                                       v_topk=rng.choice([0, rng.randint(1, 100)]),
                                       acc_tokens=rng.random() < 0.7,
                                       acc_heads=rng.random() < 0.7,
                                       token_keep=rng.choice([0, 0, rng.randint(1, 200)]),
                                       head_keep=rng.choice([0, 0, 0, rng.randint(1, 4)]),
                                       clear_tokens=rng.random() < 0.2,
                                       clear_heads=rng.random() < 0.2,
                                       head_id=rng.randrange(4), n_heads=4)))
    for label, j in seq:
        if j is None:  # every head of the layer; the pruned ones come back HEAD_SKIPPED
            skipped = 0
            for h in range(4):
                jj = job(h % 3, head_id=h, n_heads=4, acc_tokens=True, acc_heads=True)
                ref, _ = await b.run(jj, label=f"head {h}")
                skipped += ref.status == Status.HEAD_SKIPPED
                await b.check_all(jj, f"head {h}")
            assert skipped == 2, f"{skipped} heads skipped after head_keep 2, expected 2"
            continue
        ref, got = await b.run(j, check_beats="AXI" not in label, label=label)
        dut._log.info("job %-26s status %d n=%d cycles %d", label, int(ref.status), j.n_tokens,
                      got["cycles"])
        await b.check_all(j, label)

    # 3. back-pressure on dbg_ready (3 cycles per chunk); read twice: no state change
    first = await b.check(False, 100, "back-pressure", ready_delay=3)
    second = await b.check(False, 100, "back-pressure again", ready_delay=1)
    assert first == second, "two readbacks of the same state differ"
    await b.check(True, 9, "heads back-pressure", ready_delay=2)
    t1 = await b.rb.read(False, L)
    t2 = await b.rb.read(False, L)
    assert t1 == t2, "two full token readbacks differ"
    h1 = await b.rb.read(True, H)
    h2 = await b.rb.read(True, H)
    assert h1 == h2, "two head readbacks differ"

    # 4. the readbacks changed nothing a job sees: same job, same state, same result and cycles
    await b.run(job(0, clear_heads=True, clear_tokens=True, acc_tokens=True, acc_heads=True,
                    head_id=0, n_heads=4), label="clear all")
    await b.check_all(None, "clear all")
    probe = job(1, head_id=0, n_heads=4, v_topk=30)
    _, got_a = await b.run(probe, label="probe")
    for _ in range(3):
        await b.rb.read(False, L)
        await b.rb.read(True, H)
    _, got_b = await b.run(copy.deepcopy(probe), label="probe after readbacks")
    assert got_a["cycles"] == got_b["cycles"], \
        f"job cycles {got_a['cycles']} -> {got_b['cycles']} after readbacks"
    await b.check_all(probe, "probe")

    # 5. a readback requested in the same cycle as a descriptor goes first (it shows the state
    #    before the job; the job accumulates, so after it the state differs)
    j = job(0, acc_tokens=True, acc_heads=True, head_id=1, n_heads=4)
    n_j = j.n_tokens
    before = b.model.state_view(False, n_j)
    j.job_id = b.job_id & 0xFFFF
    b.job_id += 1
    rb_task = cocotb.start_soon(b.rb.read(False, n_j))
    job_task = cocotb.start_soon(b.driver.run(j))
    got_rb = await rb_task
    ref = b.model.run_job(j, b.mem)
    got = await job_task
    errs = compare_state(got_rb, before, "readback with desc_valid high")
    assert not errs, "; ".join(errs)
    assert b.model.state_view(False, n_j) != before, "probe job did not change the state"
    errs = compare_result(got, ref)
    assert not errs, "job behind a readback: " + "; ".join(errs)
    await b.check_all(j, "after readback-first job")

    # 6. the comparison can fail: one importance (and one kept bit) changed in a model copy
    got = await b.rb.read(False, L)
    bad = copy.deepcopy(b.model)
    bad.token_importance[123] += 1
    errs = compare_state(got, bad.state_view(False, L), "expect-fail")
    assert len(errs) == 1 and "importance differs at 1 entries [123]" in errs[0], errs
    bad = copy.deepcopy(b.model)
    bad.head_kept[2] = not bool(bad.head_kept[2])
    errs = compare_state(await b.rb.read(True, H), bad.state_view(True, H), "expect-fail")
    assert len(errs) == 1 and "kept differs at 1 entries [2]" in errs[0], errs
    dut._log.info("expect-fail check: the comparison reports %s", errs[0])

    # 7. cycles (dbg_req edge .. last handshake, dbg_ready held high)
    cyc = {}
    for heads_, n in [(False, L), (False, 300), (False, 32), (False, 0), (True, H)]:
        await b.rb.read(heads_, n)
        cyc[f"{'heads' if heads_ else 'tokens'} n={n}"] = (b.rb.last_cycles, b.rb.last_chunks)
    dut._log.info("readback cycles (cycles, chunks): %s", cyc)
    dut._log.info("%d jobs, %d compared readbacks", b.job_id, b.readbacks)


@cocotb.test(timeout_time=1500, timeout_unit="sec")
async def readback_saturation(dut):
    """Head importance to 2^32-1: one token with v = -2048 in every element and p = 1.0 gives
    out_d = -32768, sum |out| = 2^21 per job, so job 2048 reaches 2^32 and saturates.
    (Token importance gains <= 32768 per job: saturating it takes >= 131072 jobs; not run.)"""
    b = Bench(dut)
    await b.start()
    D = b.params.head_dim
    k = torch.full((1, D), 100, dtype=torch.int64)
    v = torch.full((1, D), -2048, dtype=torch.int64)
    pb = b.place(k, v, 12, 0, 12)
    q = torch.full((D,), 7, dtype=torch.int64)
    n_jobs = 2050
    per_job = 1 << 21
    for i in range(n_jobs):
        j = Job(query=q, n_tokens=1, k_msb_base=pb.k_msb_base, v_base=pb.v_base,
                score_mult=1000, score_shift=10, acc_tokens=True, acc_heads=True, head_id=5,
                n_heads=8, clear_heads=(i == 0), clear_tokens=(i == 0))
        ref, _ = await b.run(j, label=f"sat {i}")
        if i == 0:
            assert int(ref.out.abs().sum()) == per_job, int(ref.out.abs().sum())
        if i in (0, 1023, 2046, 2047, n_jobs - 1):
            imp, _ = await b.check(True, 8, f"after job {i}")
            await b.check(False, 1, f"after job {i}")
            exp = min((i + 1) * per_job, IMP_MAX)
            assert imp[5] == exp, f"head 5 importance {imp[5]} after {i + 1} jobs, expected {exp}"
            dut._log.info("after %d jobs: head 5 importance %d%s", i + 1, imp[5],
                          " (saturated)" if imp[5] == IMP_MAX else "")
    assert int(b.model.head_importance[5]) == IMP_MAX
