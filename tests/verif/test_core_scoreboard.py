"""The scoreboard's field comparison (verif/core_scoreboard.py) fires on each kind of difference."""

import torch

from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.verif.core_scoreboard import compare_result


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
                n_values=ref.n_values, beats=ref.beats, cycles=123,
                out=[int(x) for x in ref.out.tolist()])
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
