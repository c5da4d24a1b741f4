"""Per-step re-selection controls of the model: reselect, imp_shift, protect_sink/recent
(docs/architecture.md section 7, steps 3, 4 and 6). Expected sets are worked out by hand or
from a plain sort, not from the model."""

import pytest
import torch

from conftest import make_job
from spatten_dv.models import SpAttenCoreModel, Status
from spatten_dv.models.descriptor import descriptor_fields, unpack_fields

IMP_MAX = (1 << 32) - 1


def kept(m: SpAttenCoreModel, n: int) -> list[int]:
    return torch.nonzero(m.token_kept[:n]).flatten().tolist()


def test_descriptor_grows_by_the_new_fields_after_the_query():
    layout = descriptor_fields()
    names = [n for n, _ in layout]
    assert names[-5:] == ["query", "reselect", "imp_shift", "protect_sink", "protect_recent"]
    assert sum(w for _, w in layout) == 984 + 1 + 5 + 11 + 11
    job, _, _ = make_job(1, 20, reselect=True, imp_shift=31, protect_sink=1024,
                         protect_recent=7)
    f = unpack_fields(job.pack(), layout)
    assert (f["reselect"], f["imp_shift"], f["protect_sink"], f["protect_recent"]) == \
        (1, 31, 1024, 7)
    with pytest.raises(ValueError, match="imp_shift"):
        make_job(1, 20, imp_shift=32)


def test_reselect_restores_candidates_and_keeps_importance():
    m = SpAttenCoreModel()
    m.token_importance[:8] = torch.tensor([1, 50, 2, 40, 3, 30, 4, 20])
    m.prune_tokens(8, 2)  # keeps 1 and 3
    assert kept(m, 8) == [1, 3]
    m.token_importance[:8] = torch.tensor([1, 0, 2, 0, 90, 30, 4, 20])  # a pruned token rises
    m.prune_tokens(8, 1)  # without reselect only 1 and 3 compete
    assert kept(m, 8) == [1]
    m.reselect_tokens(6)
    assert kept(m, 10) == [0, 1, 2, 3, 4, 5, 8, 9]  # 6, 7 stay pruned: at or above n
    assert m.token_importance[:8].tolist() == [1, 0, 2, 0, 90, 30, 4, 20]


def test_reselect_then_keep_in_one_job_selects_by_importance():
    """The descriptor order: reselect before token_keep, so a token pruned earlier comes back."""
    job, mem, _ = make_job(3, 40, token_keep=5)
    m = SpAttenCoreModel()
    m.token_importance[:40] = torch.arange(40)
    m.run_job(job, mem)
    assert kept(m, 40) == [35, 36, 37, 38, 39]
    m.token_importance[:40] = torch.arange(40).flip(0)  # now the low indices matter most
    r = m.run_job(job, mem)  # no reselect: the 5 survivors stay
    assert r.keys.tolist() == [35, 36, 37, 38, 39]
    job.reselect = True
    r = m.run_job(job, mem)
    assert r.keys.tolist() == [0, 1, 2, 3, 4]
    assert m.token_importance[:40].tolist() == list(range(39, -1, -1))


@pytest.mark.parametrize("shift", [1, 5, 31])
def test_rescale_shifts_every_token_before_the_prune(shift):
    m = SpAttenCoreModel()
    imp = torch.tensor([IMP_MAX, 3, 1 << 31, 96, 0, 7] + [12345] * 1018, dtype=torch.int64)
    m.token_importance[:] = imp
    job, mem, _ = make_job(4, 6, imp_shift=shift)
    m.run_job(job, mem)
    assert m.token_importance.tolist() == [v >> shift for v in imp.tolist()]  # all 1024
    if shift == 31:
        assert m.token_importance.tolist()[:6] == [1, 0, 1, 0, 0, 0]


def test_rescale_ties_decide_the_prune_by_index():
    """5 and 4 differ before a shift by 1 and tie after it: the prune sees the rescaled value."""
    job, mem, _ = make_job(5, 4, imp_shift=1, token_keep=1)
    m = SpAttenCoreModel()
    m.token_importance[:4] = torch.tensor([4, 5, 0, 0])
    m.run_job(job, mem)
    assert kept(m, 4) == [0]


def test_clear_comes_before_rescale_and_reselect():
    job, mem, _ = make_job(6, 10, clear_tokens=True, reselect=True, imp_shift=2, token_keep=3)
    m = SpAttenCoreModel()
    m.token_importance[:10] = 100
    m.token_kept[:10] = False
    r = m.run_job(job, mem)
    assert r.keys.tolist() == [0, 1, 2]  # cleared: all zero, lowest indices


@pytest.mark.parametrize("sink,recent,keep,expect", [
    (2, 0, 4, [0, 1, 6, 9]),            # sinks first, then importance (9: 90, 6: 60)
    (0, 2, 3, [9, 10, 11]),             # the two newest, then 9
    (2, 2, 4, [0, 1, 10, 11]),          # protected fill the budget exactly
    (2, 2, 3, [0, 10, 11]),             # |P| > keep: most important protected (0: 8, 1: 1)
    (2, 2, 1, [10]),                    # 10 and 11 tie at 9: lower index
    (8, 6, 3, [6, 9, 10]),              # overlap: everything protected -> plain importance
    (2000, 0, 3, [6, 9, 10]),           # sink beyond n: everything protected
    (0, 2000, 3, [6, 9, 10]),           # recent beyond n
    (0, 0, 3, [6, 9, 10]),              # no protection: plain top-k
])
def test_protection_ranks_protected_first(sink, recent, keep, expect):
    m = SpAttenCoreModel()
    imp = [8, 1, 0, 3, 5, 0, 60, 4, 2, 90, 9, 9]
    m.token_importance[:12] = torch.tensor(imp)
    m.token_importance[12] = 10_000  # beyond n: never a candidate
    m.prune_tokens(12, keep, sink, recent)
    assert kept(m, 12) == expect
    assert bool(m.token_kept[12])


def test_protection_never_restores_a_pruned_token():
    m = SpAttenCoreModel()
    m.token_importance[:8] = torch.tensor([0, 0, 5, 6, 7, 8, 9, 10])
    m.prune_tokens(8, 4)  # 4..7 survive
    m.prune_tokens(8, 2, protect_sink=2)  # 0 and 1 are not candidates any more
    assert kept(m, 8) == [6, 7]


def test_protection_without_keep_does_nothing():
    job, mem, _ = make_job(7, 16, protect_sink=3, protect_recent=3)
    m = SpAttenCoreModel()
    r = m.run_job(job, mem)
    assert r.status == Status.OK and r.n_keys == 16 and kept(m, 16) == list(range(16))


def test_random_prune_matches_a_sorted_ranking():
    g = torch.Generator().manual_seed(11)
    for _ in range(40):
        n = int(torch.randint(1, 200, (1,), generator=g))
        imp = torch.randint(0, 6, (n,), generator=g)  # many ties
        pre = torch.rand(n, generator=g) < 0.7
        sink, recent = (int(x) for x in torch.randint(0, n + 3, (2,), generator=g))
        keep = int(torch.randint(1, n + 1, (1,), generator=g))
        m = SpAttenCoreModel()
        m.token_importance[:n] = imp
        m.token_kept[:n] = pre
        m.prune_tokens(n, keep, sink, recent)
        cand = [t for t in range(n) if pre[t]]
        if keep >= len(cand):
            want = cand
        else:
            prot = {t for t in cand if t < sink or t >= n - recent}
            order = sorted(cand, key=lambda t: (t not in prot, -int(imp[t]), t))
            want = sorted(order[:keep])
        assert kept(m, n) == want


@pytest.mark.parametrize("change", [dict(n_tokens=0), dict(msb_bits=5), dict(n_heads=0)])
def test_invalid_job_with_new_controls_changes_nothing(change):
    job, mem, _ = make_job(8, 10, reselect=True, imp_shift=3, token_keep=2, protect_sink=1)
    for k, v in change.items():
        setattr(job, k, v)
    m = SpAttenCoreModel()
    m.token_importance[:10] = torch.arange(10) * 8
    m.token_kept[:10] = torch.arange(10) % 2 == 0
    before = (m.token_importance.clone(), m.token_kept.clone())
    assert m.run_job(job, mem).status != Status.OK
    assert torch.equal(m.token_importance, before[0]) and torch.equal(m.token_kept, before[1])


def test_head_skipped_job_keeps_the_new_state_changes():
    job, mem, _ = make_job(9, 10, reselect=True, imp_shift=1, head_keep=1, head_id=1,
                           n_heads=2)
    m = SpAttenCoreModel()
    m.head_importance[:2] = torch.tensor([5, 1])
    m.token_importance[:10] = 8
    m.token_kept[:10] = False
    assert m.run_job(job, mem).status == Status.HEAD_SKIPPED
    assert kept(m, 10) == list(range(10)) and m.token_importance[:10].tolist() == [4] * 10
