"""Unit tests of the job-overlap model (models/perf/pipeline.py): the two-stage recurrence, the
hazard wait, DRAM sharing between the stages' fetches and the prune-state stall (no simulator),
and the measured table's span / legacy comparison (models/perf/measured.py)."""

import json

import numpy as np
import pytest

from spatten_dv.models.descriptor import Status
from spatten_dv.models.perf import measured
from spatten_dv.models.perf.configs import DEFAULT, TIMING, PipelineTiming
from spatten_dv.models.perf.dram import DramFit
from spatten_dv.models.perf.pipeline import co_run, schedule
from spatten_dv.models.perf.shape import JobShape
from spatten_dv.models.perf.stages import Phase, job_phases
from spatten_dv.models.perf.steps import predict

FIT = DramFit("test", 1, 64, latency=100.0, tx_cycles=4.0, peak_bytes_per_cycle=16.0)
SEQ = DEFAULT.with_(overlap=False, dram="ideal")
OVL = DEFAULT.with_(overlap=True, dram="ideal")


def shape(m=200, nv=100, hazard=False, step=0, status=Status.OK):
    return JobShape(step=step, label="t", status=int(status), n_tokens=m, clear=hazard,
                    head_prune=None, token_prune=None, keys=np.arange(m, dtype=np.int64),
                    values=np.arange(0, 2 * nv, 2, dtype=np.int64)[:nv], v_select=nv < m,
                    lsb_fetched=False, msb_bits=8, lsb_bits=4, v_bits=8, k_msb_base=0x10000,
                    k_lsb_base=0x20000, v_base=0x80000, acc_tokens=True, hazard=hazard)


def test_one_job_alone_is_the_sequential_prediction():
    s = [shape()]
    (seq,), _ = predict(s, SEQ)
    (ovl,), _ = predict(s, OVL)
    assert ovl.cycles == pytest.approx(seq.cycles + TIMING.handoff)
    assert seq.cycles == pytest.approx(sum(p.cycles for p in seq.phases))
    # the sequential core: result one cycle after NEXT, the next accept one after that
    assert seq.result - seq.accept - 1 == pytest.approx(seq.cycles)


def test_plain_jobs_overlap_and_the_span_is_below_the_sum_of_latencies():
    s = [shape(step=0) for _ in range(4)]
    jobs, steps = predict(s, OVL)
    for prev, nxt in zip(jobs, jobs[1:], strict=False):
        assert nxt.accept < prev.result  # job i+1 accepted while job i is in the back stage
    st = steps[0]
    assert st.cycles < st.latency
    _, seq = predict(s, SEQ)
    assert st.cycles < seq[0].cycles  # overlap shortens the step
    assert seq[0].cycles == pytest.approx(seq[0].latency + 2 * 4)  # sequential: +2 per job


def test_a_hazard_job_waits_until_the_back_stage_is_empty():
    jobs, _ = predict([shape(), shape(hazard=True)], OVL)
    first, second = jobs
    front = sum(p.cycles for p in second.phases if not p.back)
    # CHECK, then the wait: its other front phases start after the first job's result
    assert second.accept < first.result
    assert second.stages["wait"] > 0
    plain, _ = predict([shape(), shape()], OVL)
    assert plain[1].stages["wait"] < second.stages["wait"]
    handoff = second.result - sum(p.cycles for p in second.phases if p.back) - TIMING.handoff
    assert handoff >= first.result + TIMING.hazard + front - 1 - 1e-6


def test_contention_slows_both_fetches():
    fetch = Phase("k_msb", 400, unit="fetch", dram=1.0, beat=0.5)
    vfetch = Phase("v", 400, True, unit="fetch", dram=1.0, beat=0.5)
    fair = PipelineTiming(contention=0.0, v_share=0.5)
    a_alone, _ = co_run([fetch], 0, [], 0, timing=fair)
    _, b_alone = co_run([], 0, [vfetch], 0, timing=fair)
    a, b = co_run([fetch], 0, [vfetch], 0, timing=fair)
    assert a > a_alone and b > b_alone
    assert a == pytest.approx(800) and b == pytest.approx(800)  # one channel, shared
    # a fetch light on DRAM (beats bound) shares the R bus only: less slowdown
    light = Phase("k_msb", 400, unit="fetch", dram=0.2, beat=1.0)
    lv = Phase("v", 400, True, unit="fetch", dram=0.2, beat=0.5)
    a2, b2 = co_run([light], 0, [lv], 0, timing=fair)
    assert 400 < a2 < 800 and a2 == pytest.approx(600)
    # the contention share adds DRAM time while both stream
    slow = PipelineTiming(contention=0.25, v_share=0.5)
    a3, _ = co_run([fetch], 0, [vfetch], 0, timing=slow)
    assert a3 > a
    # V first: with the whole channel the V fetch runs as alone, K waits for it
    first = PipelineTiming(contention=0.0, v_share=1.0)
    a4, b4 = co_run([fetch], 0, [vfetch], 0, timing=first)
    assert b4 == pytest.approx(400) and a4 == pytest.approx(800)


def test_a_front_scan_stalls_the_back_accumulation():
    scan = Phase("key_scan", 100, unit="state")
    acc = Phase("accumulate", 100, True, unit="state")
    other = Phase("k_msb", 100)
    _, b_free = co_run([other], 0, [acc], 0)
    _, b_stalled = co_run([scan], 0, [acc], 0)
    assert b_free == pytest.approx(100) and b_stalled == pytest.approx(200)


def test_job_phases_split_front_and_back():
    phases, _ = job_phases(shape(), DEFAULT.with_(dram="ideal"), FIT)
    front = [p.stage for p in phases if not p.back]
    back = [p.stage for p in phases if p.back]
    assert "k_msb" in front and "v_select" not in front and "v" not in front
    assert set(back) == {"v_select", "v", "accumulate", "control"}
    assert phases[-1].back  # NEXT
    err, _ = job_phases(shape(status=Status.BAD_WIDTH), DEFAULT, FIT)
    assert [p.back for p in err] == [False, True]  # CHECK, then NEXT in the back stage


def test_schedule_sequential_and_overlapped_from_the_same_phases():
    ph = [Phase("control", 1), Phase("k_msb", 50), Phase("v", 30, True),
          Phase("control", 1, True)]
    seq = schedule([(ph, False)] * 3, overlap=False)
    assert [t.accept for t in seq] == [1, 85, 169]  # 82 cycles + result + idle
    bare = PipelineTiming(handoff=0, accept=0, b_free=1, hazard=1)
    ovl = schedule([(ph, False)] * 3, overlap=True, timing=bare)
    # the front stage (accept + 51 cycles) is the bottleneck: one job per 52 cycles
    assert [t.accept for t in ovl] == [1, 53, 105]
    assert [t.result for t in ovl] == [53 + 31, 105 + 31, 157 + 31]
    assert ovl[-1].result < seq[-1].result
    # a long back stage is the bottleneck: each handoff waits for the previous result
    slow_back = [Phase("control", 1), Phase("k_msb", 10), Phase("v", 100, True),
                 Phase("control", 1, True)]
    ovl = schedule([(slow_back, False)] * 3, overlap=True, timing=bare)
    for prev, nxt in zip(ovl, ovl[1:], strict=False):
        assert nxt.handoff == prev.result + bare.b_free
        assert nxt.result == nxt.handoff + 101 and nxt.stages["wait"] > 0


def _table(tmp_path, core, with_span):
    jobs = [dict(step=0, layer=0, head=h, keys=200, values=100, lsb_fetched=0, beats=600,
                 cycles=1000, accept_cycle=1 + 900 * h if with_span else None,
                 result_cycle=1002 + 900 * h if with_span else None) for h in range(2)]
    entry = {"selection": {"trace": "smollm2_code", "steps": "3"}, "jobs": jobs}
    if core is not None:
        entry["core"] = core
    path = tmp_path / "rtl_jobs.json"
    measured.save({"x": entry}, path)
    return measured.load(path)


def test_measured_table_compares_spans_or_legacy_sums(tmp_path):
    legacy = _table(tmp_path, None, False)["x"]
    assert legacy["core"] == "sequential" and not measured.has_span(legacy)
    assert measured.rtl_step_cycles(legacy["jobs"], span=False) == {0: 2000}
    new = _table(tmp_path, "pipelined", True)["x"]
    assert measured.has_span(new)
    assert measured.rtl_step_cycles(new["jobs"], span=True) == {0: 1902}
    raw = json.loads((tmp_path / "rtl_jobs.json").read_text())
    assert "accept_cycle" in raw["columns"] and raw["selections"]["x"]["core"] == "pipelined"
    broken = _table(tmp_path, "pipelined", False)
    with pytest.raises(ValueError, match="re-measure"):
        measured.agreement("x", broken)


def test_records_of_keeps_accept_and_result_cycles(tmp_path):
    rec = dict(step=1, layer=2, head=3, keys=4, values=2, lsb_fetched=0, beats=8, cycles=90,
               accept_cycle=10, result_cycle=120, cyc_ctrl=5)
    p = tmp_path / "jobs.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    (got,) = measured.records_of(p)
    assert got["accept_cycle"] == 10 and got["result_cycle"] == 120 and "cyc_ctrl" not in got
