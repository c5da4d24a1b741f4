"""The scoreboard's field comparison (verif/core_scoreboard.py) fires on each kind of difference."""

import torch

from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job, JobResult, Status
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.verif.core_scoreboard import compare_result, counter_errors


def consistent_counters(ref) -> dict:
    """Stage counters that obey every rule of counter_errors for this model result."""
    qk = ref.n_keys * (1 + int(ref.lsb_fetched))
    c = dict(cyc_fetch_wait=ref.beats + 40, cyc_qk=qk, cyc_softmax=50, cyc_topk=30,
             cyc_v=ref.n_values + 3, cyc_ctrl=20)
    c.update(cyc_fetch_busy=c["cyc_fetch_wait"] + qk + ref.n_values,
             cyc_fetch_stall=c["cyc_fetch_wait"] - 5, cycles=sum(c.values()))
    return c


def test_scoreboard_fires_on_each_kind_of_difference():
    gen = torch.Generator().manual_seed(7)
    k = torch.randint(-2048, 2048, (40, 64), generator=gen)
    v = torch.randint(-2048, 2048, (40, 64), generator=gen)
    mem = DramImage()
    pb = write_head(mem, 0x10000, k, v, 8, 4, 8)
    job = Job(query=torch.randint(-2048, 2048, (64,), generator=gen), n_tokens=40,
              k_msb_base=pb.k_msb_base, k_lsb_base=pb.k_lsb_base, v_base=pb.v_base,
              msb_bits=8, lsb_bits=4, v_bits=8, score_mult=300, score_shift=20, v_topk=9)
    ref = SpAttenCoreModel().run_job(job, mem)
    good = dict(job_id=ref.job_id, status=int(ref.status), lsb_fetched=int(ref.lsb_fetched),
                max_prob_msb=ref.max_prob_msb, max_prob=ref.max_prob, n_keys=ref.n_keys,
                n_values=ref.n_values, beats=ref.beats,
                out=[int(x) for x in ref.out.tolist()], **consistent_counters(ref))
    assert compare_result(good, ref) == []
    for name in ("status", "lsb_fetched", "max_prob_msb", "max_prob", "n_keys", "n_values",
                 "beats"):
        bad = dict(good, **{name: good[name] + 1})
        assert [e.split(":")[0] for e in compare_result(bad, ref)] == [name]
    assert compare_result(dict(good, beats=0), ref, check_beats=False) == []
    out = list(good["out"])
    out[5] += 1
    (err,) = compare_result(dict(good, out=out), ref)
    assert err.startswith("out differs at [5]")


def test_counter_rules_fire():
    gen = torch.Generator().manual_seed(3)
    k = torch.randint(-2048, 2048, (20, 64), generator=gen)
    mem = DramImage()
    pb = write_head(mem, 0x10000, k, k, 8, 4, 8)
    job = Job(query=torch.randint(-2048, 2048, (64,), generator=gen), n_tokens=20,
              k_msb_base=pb.k_msb_base, k_lsb_base=pb.k_lsb_base, v_base=pb.v_base,
              msb_bits=8, lsb_bits=4, v_bits=8, requant_thresh=65535)
    ref = SpAttenCoreModel().run_job(job, mem)
    assert ref.lsb_fetched
    good = consistent_counters(ref)
    assert counter_errors(good, ref) == []
    bad_cases = [
        dict(good, cyc_ctrl=good["cyc_ctrl"] + 1),  # partition no longer sums to cycles
        dict(good, cyc_qk=good["cyc_qk"] + 1, cyc_ctrl=good["cyc_ctrl"] - 1),  # qk != keys x 2
        dict(good, cyc_fetch_stall=good["cyc_fetch_wait"] + 1),
        dict(good, cyc_fetch_busy=good["cyc_fetch_wait"] - 1),
        dict(good, cyc_v=0, cyc_ctrl=good["cyc_ctrl"] + good["cyc_v"]),
        dict(good, cyc_fetch_busy=ref.beats - 1, cyc_fetch_wait=0, cyc_fetch_stall=0,
             cyc_ctrl=good["cyc_ctrl"] + good["cyc_fetch_wait"]),
    ]
    for bad in bad_cases:
        assert len(counter_errors(bad, ref)) >= 1, bad
    skipped = JobResult(0, Status.HEAD_SKIPPED, torch.zeros(64, dtype=torch.int64))
    idle = dict({n: 0 for n in good}, cyc_topk=7, cyc_ctrl=5, cycles=12)
    assert counter_errors(idle, skipped) == []
    (err,) = counter_errors(dict(idle, cyc_qk=1, cyc_ctrl=4), skipped)
    assert "cyc_qk 1" in err
    invalid = JobResult(0, Status.BAD_WIDTH, torch.zeros(64, dtype=torch.int64))
    assert "cyc_topk" in counter_errors(idle, invalid)[0]
