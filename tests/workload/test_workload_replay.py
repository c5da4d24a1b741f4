"""The converter: jobs built from the shipped workloads, run through SpAttenCoreModel, fetch
exactly what each CSV row says (keys, values, LSB refetch, plane widths)."""

import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from spatten_dv.errors import UserError
from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import Job
from spatten_dv.models.formats import lsb_code, msb_code, unpack_plane
from spatten_dv.models.params import DEFAULT_PARAMS
from spatten_dv.traces.loader import load_trace
from spatten_dv.traces.workload import (
    REQUANT_ALWAYS,
    SyntheticSource,
    TraceSource,
    WorkloadError,
    build_jobs,
    core_widths,
    load_workload,
    parse_selection,
    replay,
    resolve_workload,
    write_jobs_jsonl,
)

TRACE = Path(__file__).resolve().parents[2] / "traces" / "smollm2_prose.safetensors"
PER8 = "summary-gpt2-small-wikitext2-per8"
MEDIUM_HP = "summary-gpt2-medium-wikitext2-per0-hp-step5+dedic+glob_p+local_p+hp+topk+quant"
HEADER = ("iteration_id,layer_id,head_id,embedding_length_D,sentence_length_L,key_fetch_num,"
          "quant_key_bit,quant_query_bit,auto_requant_thres,if_requant,auto_requant_incre,"
          "value_fetch_num,quant_value_bit,if_accumulate_importance,"
          "if_rescale_previous_importance,if_topk,topk")
TRAILER = "configs/custom/test/run.yml" + "," * 16  # not GPT-2: heads as seen in rows

# Steps replayed per shipped workload (None: the whole file). The model takes ~13 ms per dense
# 1k-token job on one thread, so the dense and the medium files get a few full steps, each
# selection crossing a step boundary; `spatten-dv workload replay` runs whole files
# (docs/workloads.md has the figures). per8, the file with every feature, runs whole (~7 s).
STEPS = {
    "small": None,
    "summary-gpt2-medium-ptb-per0": {0, 31},
    MEDIUM_HP: {0, 1, 2, 31},
    "summary-gpt2-small-wikitext2-per8-step1+dedic": {0, 31},
    PER8: None,
}
WIDTHS = {  # (msb, lsb, v, q) on the core
    "small": (12, 0, 12, 12),
    "summary-gpt2-medium-ptb-per0": (12, 0, 12, 12),
    MEDIUM_HP: (12, 0, 8, 12),
    "summary-gpt2-small-wikitext2-per8-step1+dedic": (12, 0, 12, 12),
    PER8: (6, 4, 6, 12),
}


@pytest.fixture(scope="module")
def source():
    return TraceSource(load_trace(TRACE), TRACE)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def csv_file(tmp_path, rows, name="t.csv", trailer=TRAILER):
    """rows: (step, layer, head, L, keys, values, key_bits, requant, incre, value_bits)."""
    lines = [HEADER]
    for s, layer, h, n, k, v, kb, rq, inc, vb in rows:
        thr = "0.05" if inc != -1 else "-1"
        lines.append(f"{s},{layer},{h},64.0,{n},{k},{kb},16,{thr},{rq},{inc},{v},{vb},True,"
                     "False,False,-1")
    p = tmp_path / name
    p.write_text("\n".join(lines + ([trailer] if trailer else [])) + "\n")
    return p


@pytest.mark.parametrize("name", sorted(STEPS))
def test_shipped_workload_replays_exactly(name, source):
    wl = load_workload(resolve_workload(name))
    plan = build_jobs(wl, source, steps=STEPS[name])
    rows = [r for r in wl.rows if STEPS[name] is None or r.step in STEPS[name]]
    assert [pj.row for pj in plan.jobs] == rows
    rep = replay(plan, keep_results=True)
    assert rep.ok, rep.mismatches[:5]
    for pj, res in zip(plan.jobs, rep.results, strict=True):
        r = pj.row
        assert (res.n_keys, res.n_values, res.lsb_fetched) == (r.keys, r.values, r.requant)
        assert pj.widths == WIDTHS[name]
        j = pj.job
        assert (j.msb_bits, j.lsb_bits, j.v_bits) == WIDTHS[name][:3]
        assert j.requant_thresh == (REQUANT_ALWAYS if r.requant else 0)
        assert j.head_id == r.head and j.n_heads == wl.n_heads and j.n_tokens == r.n_tokens
        assert j.acc_tokens == r.acc_importance and not j.acc_heads
    for step, t in rep.steps.items():
        sel = [r for r in rows if r.step == step]
        assert (t.rows, t.keys, t.values, t.lsb_refetches) == (
            len(sel), sum(r.keys for r in sel), sum(r.values for r in sel),
            sum(r.requant for r in sel))
    assert rep.total.keys == sum(r.keys for r in rows)
    lsb_keys = sum(r.keys for r in rows if r.requant)
    token = DEFAULT_PARAMS.token_bytes(WIDTHS[name][1])
    # dense planes: a token costs its bytes rounded to words, less when neighbours share one
    assert lsb_keys * token <= rep.total.bytes_k_lsb <= lsb_keys * (-(-token // 32) * 32)
    if token % 32 == 0:
        assert rep.total.bytes_k_lsb == lsb_keys * token
    assert plan.source["kind"] == "trace" and "smollm2_prose" in plan.source_label


def test_pruning_actions_follow_the_data(source):
    """per8: step 1 prunes 994 -> 921 (importance from step 0) -> 716 -> 204 -> 102; step 2
    grows back to 921: reselect + token_keep, by the importance rescaled after step 1."""
    wl = load_workload(resolve_workload(PER8))
    plan = build_jobs(wl, source, steps={0, 1, 2})
    first = {(pj.row.step, pj.row.layer): pj.actions for pj in plan.jobs if pj.row.head == 0}
    assert first[(0, 0)] == ("clear_tokens", "clear_heads")
    assert all(first[(0, layer)] == () for layer in range(1, 12))
    assert first[(1, 0)] == ("imp_shift=1", "token_keep=921")
    assert first[(1, 1)] == ("token_keep=716",)
    assert first[(1, 2)] == ("token_keep=204",)
    assert first[(1, 3)] == ()
    assert first[(1, 6)] == ("token_keep=102",)
    assert first[(2, 0)] == ("imp_shift=1", "reselect", "token_keep=921")
    assert all(pj.actions == () for pj in plan.jobs if pj.row.head != 0)


def test_reselection_keeps_tokens_by_importance_not_index(source):
    """After step 0 the kept set comes from importance: at the first job of steps 1 and 2 the
    921 kept tokens are the top 921 of the rescaled importance of every token (computed here
    from the model's state before the job with a plain sort), which is not tokens 0..920."""
    wl = load_workload(resolve_workload(PER8))
    plan = build_jobs(wl, source, steps={0, 1, 2}, layers={0, 1, 11})
    model = SpAttenCoreModel()
    checked = 0
    for pj in plan.jobs:
        j = pj.job
        if j.token_keep and pj.row.layer == 0 and pj.row.step > 0:
            imp = (model.token_importance[:j.n_tokens] >> j.imp_shift).tolist()
            cands = [t for t in range(j.n_tokens) if j.reselect or bool(model.token_kept[t])]
            want = sorted(sorted(cands, key=lambda t: (-imp[t], t))[:j.token_keep])
            res = model.run_job(j, plan.memory)
            assert res.keys.tolist() == want, f"step {pj.row.step}: kept set not by importance"
            assert want != list(range(j.token_keep))
            checked += 1
        else:
            res = model.run_job(j, plan.memory)
        assert res.n_keys == pj.row.keys and res.n_values == pj.row.values
    assert checked == 2  # steps 1 and 2, head 0 (only the layer's first job prunes)
    # the rescale happened once per step, on the job after the marked row
    shifts = [(pj.row.step, pj.row.layer, pj.row.head) for pj in plan.jobs if pj.job.imp_shift]
    assert shifts == [(1, 0, 0), (2, 0, 0)]


def test_rescale_shift_option(source):
    wl = load_workload(resolve_workload(PER8))
    plan = build_jobs(wl, source, steps={0, 1}, layers={11, 0}, rescale_shift=0)
    assert not any(pj.job.imp_shift for pj in plan.jobs)
    with pytest.raises(UserError, match="rescale shift"):
        build_jobs(wl, source, steps={0}, layers={0}, rescale_shift=32)


def test_head_pruning_keep_and_omit(source):
    wl = load_workload(resolve_workload(MEDIUM_HP))
    plan = build_jobs(wl, source, steps={1, 2}, layers={0, 15, 16, 21, 22, 23})
    acts = [(pj.row.step, pj.row.layer, a) for pj in plan.jobs for a in pj.actions
            if "heads" in a or "head_keep" in a]
    assert acts == [(1, 0, "clear_heads"), (1, 16, "head_keep=13"), (1, 22, "head_keep=10"),
                    (2, 0, "clear_heads"), (2, 16, "head_keep=13"), (2, 22, "head_keep=10")]
    assert {pj.row.head for pj in plan.jobs if pj.row.layer == 22} == set(range(10))
    assert replay(plan).ok
    omit = build_jobs(wl, source, steps={1}, layers={15, 16, 22}, head_pruning="omit")
    assert not any(pj.job.head_keep for pj in omit.jobs)
    assert replay(omit).ok


def test_trace_data_mapping(source):
    """q from trace (step mod 8, layer mod 30, head mod 9); K/V row = token mod 276."""
    wl = load_workload(resolve_workload(MEDIUM_HP))
    plan = build_jobs(wl, source, steps={9}, layers={23})
    tr, p = source.trace, DEFAULT_PARAMS
    assert source.rows == 276
    for pj in plan.jobs[:3] + plan.jobs[-1:]:
        r, j = pj.row, pj.job
        t_head = r.head % 9
        d = pj.data
        assert (d["trace_step"], d["trace_layer"], d["trace_head"], d["kv_head"]) == (
            1, 23, t_head, t_head // 3)
        assert torch.equal(j.query, torch.from_numpy(tr.q_int[1, 23, t_head].astype(np.int64)))
        toks = np.array([0, 275, 276, 700, r.n_tokens - 1])
        k_rows = torch.from_numpy(tr.k_int[23, t_head // 3][toks % 276].astype(np.int64))
        v_rows = torch.from_numpy(tr.v_int[23, t_head // 3][toks % 276].astype(np.int64))
        for base, width, want in ((j.k_msb_base, 12, msb_code(k_rows, 12)),
                                  (j.v_base, 8, msb_code(v_rows, 8))):
            stride = p.token_bytes(width)
            raw = plan.memory.gather(base + toks * stride, stride)
            assert torch.equal(unpack_plane(raw, width, True, p), want)
    per8 = build_jobs(load_workload(resolve_workload(PER8)), source, steps={0}, layers={3})
    j = per8.jobs[0].job
    k = torch.from_numpy(tr.k_int[3, 0][np.arange(993) % 276].astype(np.int64))
    raw = per8.memory.gather(j.k_lsb_base + np.arange(993) * 32, 32)
    assert torch.equal(unpack_plane(raw, 4, False, DEFAULT_PARAMS), lsb_code(k, 6, 4))


def test_synthetic_source_is_labelled_and_exact():
    wl = load_workload(resolve_workload(PER8))
    src = SyntheticSource(seed=3, n_heads=wl.n_heads)
    plan = build_jobs(wl, src, steps={1, 2}, layers={0, 5, 6})
    assert "SYNTHETIC" in plan.source_label and plan.source["kind"] == "synthetic"
    assert all(pj.data["kind"] == "synthetic" for pj in plan.jobs)
    assert replay(plan).ok
    again = build_jobs(wl, SyntheticSource(seed=3, n_heads=12), steps={1}, layers={0})
    assert torch.equal(again.jobs[0].job.query, plan.jobs[0].job.query)


def test_generic_token_schedules(tmp_path):
    """Counts that differ across heads, grow back within a step, or stay equal."""
    rows = []
    ks = {(0, 0): [50, 50], (0, 1): [40, 30], (0, 2): [35, 35], (1, 0): [51, 20],
          (1, 1): [20, 20], (2, 0): [10, 52]}
    for (s, layer), counts in ks.items():
        for h, k in enumerate(counts):
            rows.append((s, layer, h, 50 + s, k, max(1, k // 3), 8, False, -1, 8))
    p = csv_file(tmp_path, rows)
    wl = load_workload(p)
    plan = build_jobs(wl, SyntheticSource(1, wl.n_heads))
    acts = [pj.actions for pj in plan.jobs]
    assert acts == [("clear_tokens", "clear_heads"), (), ("token_keep=40",), ("token_keep=30",),
                    ("reselect", "token_keep=35"), (), ("reselect",),
                    ("token_keep=20",), (), (), ("token_keep=10",), ("reselect",)]
    assert replay(plan).ok


def test_width_mapping(tmp_path):
    rows = [(0, 0, 0, 100, 100, 50, 5, True, 3, 10),    # K 5 -> 6, LSB 3 -> 4, V 10 -> 12
            (0, 0, 1, 100, 100, 50, 8, True, 6, 16),    # LSB 6 -> 4 (8 + 6 > 12), V 16 -> 12
            (0, 0, 2, 100, 100, 50, -1, False, -1, 4),  # K off -> 12
            (0, 0, 3, 100, 100, 50, 12, False, 4, 7)]   # K 12 leaves no room for LSBs
    wl = load_workload(csv_file(tmp_path, rows))
    got = [core_widths(r)[:4] for r in wl.rows]
    assert got == [(6, 4, 12, 12), (8, 4, 12, 12), (12, 0, 4, 12), (12, 0, 8, 12)]
    notes = core_widths(wl.rows[0])[4]
    assert notes == ("K MSB 5 -> 6 bits", "V 10 -> 12 bits", "K LSB increment 3 -> 4 bits "
                     "(K MSB 6)", "q 16 -> 12 bits")
    plan = build_jobs(wl, SyntheticSource(0, 4))
    assert replay(plan).ok
    assert any("K LSB increment 6 -> 4 bits (K MSB 8)" in n for n in plan.notes)
    rows[3] = (0, 0, 3, 100, 100, 50, 12, True, 4, 7)  # a refetch the core cannot do
    with pytest.raises(WorkloadError, match=r"line 5, column 'if_requant': the row refetches"):
        build_jobs(load_workload(csv_file(tmp_path, rows)), SyntheticSource(0, 4))


def test_non_prefix_head_sets_are_omitted(tmp_path):
    rows = [(0, 0, h, 40, 40, 10, 8, False, -1, 8) for h in range(4)]
    rows += [(0, 1, h, 40, 30, 10, 8, False, -1, 8) for h in (1, 3)]
    rows += [(0, 2, h, 40, 30, 10, 8, False, -1, 8) for h in (0, 1)]
    wl = load_workload(csv_file(tmp_path, rows, trailer=None), require_trailer=False)
    assert wl.n_heads == 4
    plan = build_jobs(wl, SyntheticSource(0, 4))
    assert [pj.job.head_keep for pj in plan.jobs] == [0] * 4 + [0, 0] + [2, 0]
    assert any("not the lowest indices" in n for n in plan.notes)
    assert replay(plan).ok


def test_core_limits(tmp_path):
    rows = [(0, 0, 0, 1025, 1000, 10, 8, False, -1, 8)]
    with pytest.raises(WorkloadError, match=r"line 2, column 'sentence_length_L': 1025 tokens "
                       r"exceed the core's L_MAX = 1024"):
        build_jobs(load_workload(csv_file(tmp_path, rows)), SyntheticSource(0))
    p = csv_file(tmp_path, [(0, 0, 0, 100, 100, 10, 8, False, -1, 8)])
    p.write_text(p.read_text().replace(",64.0,", ",128.0,"))
    with pytest.raises(WorkloadError, match=r"column 'embedding_length_D': head dim 128"):
        build_jobs(load_workload(p), SyntheticSource(0))
    with pytest.raises(UserError, match="matches no row"):
        build_jobs(load_workload(resolve_workload("small")), SyntheticSource(0), steps={5})


def test_mismatch_is_reported(source):
    wl = load_workload(resolve_workload(PER8))
    plan = build_jobs(wl, source, steps={1}, layers={0, 6})
    assert plan.jobs[2].row.requant and plan.jobs[15].row.values == 20
    plan.jobs[2].job.requant_thresh = 0  # the row refetched, this job will not
    plan.jobs[15].job.v_topk = 19
    rep = replay(plan)
    assert not rep.ok and rep.total.mismatched_rows == 2
    # bytes: the job's own K MSB and V, no K LSB, against the same with the row's K LSB (4-bit
    # plane: whole words, keys x 32 B)
    m = re.fullmatch(
        rf"line {plan.jobs[2].row.line} \(step 1, layer 0, head 2\): LSB refetch False != "
        r"if_requant True; bytes \(K MSB, K LSB, V\) \((\d+), 0, (\d+)\) != "
        r"\((\d+), (\d+), (\d+)\) for widths 6/4/6", rep.mismatches[0])
    assert m, rep.mismatches[0]
    msb, v, msb_csv, lsb_csv, v_csv = map(int, m.groups())
    assert (msb, v) == (msb_csv, v_csv) and lsb_csv == plan.jobs[2].row.keys * 32
    assert rep.mismatches[1] == (f"line {plan.jobs[15].row.line} (step 1, layer 6, head 3): "
                                 "values 19 != value_fetch_num 20")


def test_jobs_jsonl(source):
    wl = load_workload(resolve_workload(MEDIUM_HP))
    plan = build_jobs(wl, source, steps={1}, layers={16})
    buf = io.StringIO()
    assert write_jobs_jsonl(plan, buf) == 13
    recs = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert len(recs) == 13
    for rec, pj in zip(recs, plan.jobs, strict=True):
        d = dict(rec["descriptor"])
        d["query"] = torch.tensor(d["query"])
        job = Job(**d)
        assert f"{job.pack():x}" == rec["descriptor_hex"] == f"{pj.job.pack():x}"
        assert rec["csv"] == {"file": wl.name, "line": pj.row.line, "step": 1, "layer": 16,
                              "head": pj.row.head}
        assert rec["expect"] == {"status": "OK", "n_keys": 307, "n_values": 92,
                                 "lsb_fetched": False}
        assert rec["data"]["kind"] == "trace" and rec["data"]["file"] == str(TRACE)
        assert rec["data"]["token_map"] == "row = token mod 276"
    assert recs[0]["actions"] == ["clear_tokens", "clear_heads", "head_keep=13",
                                  "token_keep=307"]


def test_parse_selection():
    assert parse_selection(None, "steps") is None
    assert parse_selection("3", "steps") == {3}
    assert parse_selection("0:4", "steps") == {0, 1, 2, 3}
    assert parse_selection(":2,7", "layers") == {0, 1, 7}
    for bad in ("a", "1:", "4:2", "1-3"):
        with pytest.raises(UserError, match="--steps"):
            parse_selection(bad, "steps")
