import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import make_job
from spatten_dv.models import DramImage, Job, SpAttenCoreModel, SpAttenFloatModel, Status
from spatten_dv.models.float_model import attention_float


def test_full_precision_output_tracks_float_attention():
    """Fixed-point output within the documented bound of float attention (architecture 4.6)."""
    worst = 0.0
    for seed, n in [(1, 1), (2, 17), (3, 256), (4, 1024), (5, 700)]:
        job, mem, (q12, k12, v12, scale) = make_job(seed, n)
        r = SpAttenCoreModel().run_job(job, mem)
        assert r.status == Status.OK
        ref = attention_float(q12, k12, v12, scale) * 16
        vmax = float(v12.abs().max()) * 16
        err = float((r.out.to(torch.float64) - ref).abs().max())
        bound = vmax * (0.006 + n / 32768) + 1
        assert err <= bound, (seed, n, err, bound)
        worst = max(worst, err / vmax)
    assert worst < 0.01


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 400), st.floats(0.3, 6.0))
def test_output_bound_property(seed, n, spread):
    from conftest import make_head
    from spatten_dv.models import score_scale, write_head

    q12, k12, v12, scale = make_head(seed, n, spread=spread)
    mem = DramImage()
    b = write_head(mem, 0, k12, v12, 12, 0, 12)
    mult, shift = score_scale(scale)
    job = Job(query=q12, n_tokens=n, k_msb_base=b.k_msb_base, v_base=b.v_base,
              score_mult=mult, score_shift=shift)
    r = SpAttenCoreModel().run_job(job, mem)
    ref = attention_float(q12, k12, v12, scale) * 16
    vmax = float(v12.abs().max()) * 16
    assert float((r.out - ref).abs().max()) <= vmax * (0.006 + n / 32768) + 1


@pytest.mark.parametrize("thresh_offset,expect", [(0, False), (1, True)])
def test_lsb_refetch_exactly_below_threshold(thresh_offset, expect):
    job, mem, _ = make_job(7, 200, msb=6, lsb=4, vb=8)
    probe = SpAttenCoreModel().run_job(job, mem)
    assert not probe.lsb_fetched and probe.bytes_k_lsb == 0
    job.requant_thresh = probe.max_prob_msb + thresh_offset
    r = SpAttenCoreModel().run_job(job, mem)
    assert r.lsb_fetched is expect
    assert r.max_prob_msb == probe.max_prob_msb
    assert r.bytes_k_lsb == (200 * 32 if expect else 0)
    # With the LSB plane the keys are the 10-bit values: same as a 10-bit MSB-only job would be
    # if such a width existed, so compare against the float model's view of the precision.
    f = SpAttenFloatModel().run_job(job.query, *_kv(job, mem, 200)[0:2], score_scale=1.0,
                                    msb_bits=6, lsb_bits=4, v_bits=8,
                                    requant_thresh=2.0 if expect else 0.0)
    assert f.lsb_fetched is expect


def _kv(job, mem, n):
    from spatten_dv.models.formats import unpack_plane

    k = unpack_plane(mem.gather(job.k_msb_base + torch.arange(n).numpy() * 64, 64), 6, True)
    v = unpack_plane(mem.gather(job.v_base + torch.arange(n).numpy() * 64, 64), 8, True)
    return k << 6, v << 4


def test_no_lsb_plane_never_refetches():
    job, mem, _ = make_job(8, 50, msb=8, lsb=0, vb=8, requant_thresh=65535)
    assert not SpAttenCoreModel().run_job(job, mem).lsb_fetched


def test_local_value_pruning_fetches_topk_by_probability():
    job, mem, _ = make_job(9, 300, v_topk=30)
    r = SpAttenCoreModel().run_job(job, mem)
    assert r.n_values == 30 and r.bytes_v == 30 * 96
    ranked = sorted(range(300), key=lambda i: (-int(r.probs[i]), i))[:30]
    assert r.values.tolist() == sorted(ranked)
    assert r.beats == (300 * 96 + 30 * 96) // 32


def test_cascade_token_pruning_by_hand():
    """Four tokens; importance after two accumulating jobs decides who survives."""
    m = SpAttenCoreModel()
    m.token_importance[:6] = torch.tensor([5, 9, 9, 1, 7, 0])
    m.prune_tokens(n_tokens=5, keep=3)
    # Candidates 0..4 with importance 5,9,9,1,7 -> keep 1,2,4; token 5 (beyond n) untouched.
    assert m.token_kept[:6].tolist() == [False, True, True, False, True, True]
    m.prune_tokens(n_tokens=5, keep=2)  # among 1,2,4 (9,9,7) -> 1,2
    assert m.token_kept[:5].tolist() == [False, True, True, False, False]
    m.prune_tokens(n_tokens=5, keep=1)  # tie 9 vs 9: lower index wins
    assert m.token_kept[:5].tolist() == [False, True, False, False, False]


def test_cascade_head_pruning_skips_heads():
    m = SpAttenCoreModel()
    m.head_importance[:4] = torch.tensor([10, 40, 20, 30])
    job, mem, _ = make_job(10, 20, head_keep=2, head_id=0, n_heads=4)
    r = m.run_job(job, mem)
    assert r.status == Status.HEAD_SKIPPED and r.beats == 0 and int(r.out.abs().sum()) == 0
    assert m.head_kept[:4].tolist() == [False, True, False, True]
    job.head_keep, job.head_id = 0, 3
    assert m.run_job(job, mem).status == Status.OK


def test_importance_accumulates_probabilities_and_abs_output():
    m = SpAttenCoreModel()
    job, mem, _ = make_job(11, 40, acc_tokens=True, acc_heads=True, head_id=2, n_heads=4)
    r1 = m.run_job(job, mem)
    r2 = m.run_job(job, mem)
    assert torch.equal(m.token_importance[:40], r1.probs + r2.probs)
    assert int(m.head_importance[2]) == int(r1.out.abs().sum() + r2.out.abs().sum())
    job.clear_tokens = job.clear_heads = True
    job.acc_tokens = job.acc_heads = False
    m.run_job(job, mem)
    assert int(m.token_importance.sum()) == 0 and int(m.head_importance.sum()) == 0


def test_pruned_job_fetches_only_kept_tokens():
    m = SpAttenCoreModel()
    m.token_importance[:100] = torch.arange(100)
    job, mem, _ = make_job(12, 100, token_keep=25)
    r = m.run_job(job, mem)
    assert r.keys.tolist() == list(range(75, 100))
    assert r.bytes_k_msb == 25 * 96


@pytest.mark.parametrize("change,status", [
    (dict(n_tokens=0), Status.NO_TOKENS),
    (dict(n_tokens=1025), Status.TOO_MANY_TOKENS),
    (dict(msb_bits=5), Status.BAD_WIDTH),
    (dict(msb_bits=8, lsb_bits=6), Status.BAD_WIDTH),
    (dict(v_bits=0), Status.BAD_WIDTH),
    (dict(k_msb_base=0x10010), Status.BAD_ADDR),
    (dict(v_base=0xFFFFFF00), Status.BAD_ADDR),
    (dict(head_id=3, n_heads=3), Status.BAD_HEAD),
    (dict(n_heads=0), Status.BAD_HEAD),
    (dict(n_heads=33, head_id=0), Status.BAD_HEAD),
])
def test_invalid_descriptor_status_and_no_state_change(change, status):
    job, mem, _ = make_job(13, 10, acc_tokens=True, clear_tokens=True)
    for k, v in change.items():
        setattr(job, k, v)
    m = SpAttenCoreModel()
    m.token_importance[0] = 99
    r = m.run_job(job, mem)
    assert r.status == status and r.beats == 0
    assert int(m.token_importance[0]) == 99


def test_axi_error_aborts_job_without_accumulating():
    job, mem, _ = make_job(14, 10, acc_tokens=True)
    mem.add_error_range(job.v_base + 96 * 5, job.v_base + 96 * 6, resp=3)
    m = SpAttenCoreModel()
    r = m.run_job(job, mem)
    assert r.status == Status.AXI_DECERR and int(r.out.abs().sum()) == 0
    assert int(m.token_importance.sum()) == 0


def test_bad_model_input_names_the_field():
    q = torch.zeros(64, dtype=torch.int64)
    with pytest.raises(ValueError, match="n_tokens"):
        Job(query=q, n_tokens=5000, k_msb_base=0)
    with pytest.raises(ValueError, match="score_mult"):
        Job(query=q, n_tokens=1, k_msb_base=0, score_mult=1 << 16)
    with pytest.raises(ValueError, match="query"):
        Job(query=torch.zeros(63, dtype=torch.int64), n_tokens=1, k_msb_base=0)
    with pytest.raises(ValueError, match="query"):
        Job(query=torch.full((64,), 4000), n_tokens=1, k_msb_base=0)
    with pytest.raises(TypeError, match="query"):
        Job(query=torch.zeros(64), n_tokens=1, k_msb_base=0)


def test_descriptor_pack_roundtrip():
    from spatten_dv.models.descriptor import descriptor_fields, unpack_fields

    job, _, _ = make_job(15, 33, msb=6, lsb=4, vb=8, v_topk=5, job_id=77)
    fields = unpack_fields(job.pack(), descriptor_fields())
    assert fields["n_tokens"] == 33 and fields["job_id"] == 77 and fields["msb_bits"] == 6
    q = [((fields["query"] >> (12 * d)) & 0xFFF) for d in range(64)]
    q = [v - 4096 if v >= 2048 else v for v in q]
    assert q == job.query.tolist()


def test_float_model_dense_matches_plain_attention():
    job, mem, (q12, k12, v12, scale) = make_job(16, 64)
    f = SpAttenFloatModel().run_job(q12, k12, v12, score_scale=scale)
    assert torch.allclose(f.out, attention_float(q12, k12, v12, scale))
    r = SpAttenCoreModel().run_job(job, mem)
    assert float((r.out - f.out * 16).abs().max()) < 0.01 * 16 * 2047
