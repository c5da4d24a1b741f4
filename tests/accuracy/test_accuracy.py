"""Accuracy study under SpAtten's decode protocol (models/accuracy/) on a tiny random Llama.

Checks: the decode path's dense logits are the model's own; full budgets give dense; the kept
sets follow the configured per-layer counts and cascade; re-selection brings a pruned token
back (and without it, it stays out); V pruning and LSB refetch; H2O/StreamingLLM budgets and
byte matching; the results schema; the command's errors.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace

import pytest
import torch
import transformers  # noqa: E402  (the capture extra, installed by nox -s tests)

from spatten_dv.commands import accuracy as accuracy_cmd  # noqa: E402
from spatten_dv.errors import UserError  # noqa: E402
from spatten_dv.models import accuracy as acc  # noqa: E402
from spatten_dv.models.accuracy.attention import WindowKV  # noqa: E402
from spatten_dv.models.accuracy.policies import SpAttenPolicy  # noqa: E402

VOCAB = 97
L, H, KVH, D = 4, 4, 2, 16
PROMPT, STEPS = 40, 6


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(7)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=L,
        num_attention_heads=H, num_key_value_heads=KVH, head_dim=D,
        max_position_embeddings=512, rope_theta=10000.0))
    with torch.no_grad():  # peaked attention, like a trained model
        for name, p in model.named_parameters():
            if name.endswith("q_proj.weight"):
                p.mul_(6.0)
    return model.eval()


def _tokens(n: int, seed: int = 3) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n,), generator=g).tolist()


def _own_logits(model, ids):
    model.set_attn_implementation("eager")
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0]


def test_dense_decode_is_the_models_own_forward(llama):
    ids = _tokens(PROMPT + STEPS + 1)
    res, _, logits = acc.run_window(llama, ids, PROMPT, [acc.CONFIGS_BY_NAME["dense"]],
                                    record=True)
    ref = _own_logits(llama, ids)[PROMPT:PROMPT + STEPS]
    assert (logits[0] - ref).abs().max() < 1e-4
    lp = torch.log_softmax(ref.double(), -1)
    want = -sum(float(lp[s, ids[PROMPT + s + 1]]) for s in range(STEPS))
    assert res[0].nll == pytest.approx(want, rel=1e-5)
    assert res[0].tokens == STEPS
    assert res[0].kv_bits == res[0].dense_bits  # dense fetches every token at 12 bits


def test_full_budgets_give_dense(llama):
    ids = _tokens(PROMPT + STEPS + 1, seed=5)
    full = acc.StudyConfig("full", "spatten", scale=100.0)
    res, _, logits = acc.run_window(llama, ids, PROMPT, [acc.CONFIGS_BY_NAME["dense"], full],
                                    record=True)
    assert (logits[0] - logits[1]).abs().max() < 1e-5
    assert res[1].kv_bits == res[0].kv_bits


def _per8(**kw):
    return replace(acc.CONFIGS_BY_NAME["spatten-per8"], **kw)


def test_spatten_kept_sets_follow_the_schedule(llama):
    ids = _tokens(PROMPT + STEPS + 1, seed=11)
    cfg = _per8(heads=0.5, scale=3.0, protect_recent=4)
    _, (pol,), _ = acc.run_window(llama, ids, PROMPT, [cfg], record=True)
    ratios = acc.depth_ratios(3.0, L)
    heads = cfg.head_counts(L, H)
    assert min(heads) == 2 and max(heads) == H
    log = pol.kept_log
    assert len(log) == L * STEPS
    for i, e in enumerate(log):
        step, layer = divmod(i, L)
        n = PROMPT + step + 1
        assert e["layer"] == layer and e["n"] == n
        kept = set(e["kept"].tolist())
        assert len(kept) == acc.keep_count(ratios[layer], n)
        assert set(range(cfg.protect_sink)) <= kept  # protected sink
        assert set(range(n - cfg.protect_recent, n)) <= kept  # protected recent
        assert int(e["heads"].sum()) == heads[layer]
        assert e["values"] == acc.keep_count(cfg.values, len(kept))
        if layer:  # cascade within the step
            prev = log[i - 1]
            assert kept <= set(prev["kept"].tolist())
            assert not (e["heads"] & ~prev["heads"]).any()


def _policy(cfg, n_prompt=30, n_max=40):
    imp = torch.linspace(2.0, 1.0, n_prompt, dtype=torch.float64)  # older = more important
    toks = [imp.expand(H, n_prompt) / H / L for _ in range(L)]
    heads = [torch.ones(H, dtype=torch.float64) for _ in range(L)]
    return SpAttenPolicy(cfg, L, H, D, toks, heads, n_max, record=True)


def _view(k, v, layer=0):
    """All n tokens as the 'prompt' of a one-configuration WindowKV."""
    kv = WindowKV([k[None]] * L, [v[None]] * L, 1, 0)
    return kv.view(layer, 0, k.shape[1])


def _step(pol, n, q=None, k=None):
    g = torch.Generator().manual_seed(n)
    q = torch.randn(H, D, generator=g) if q is None else q
    k = torch.randn(KVH, n, D, generator=g) if k is None else k
    v = torch.randn(KVH, n, D, generator=g)
    pol.begin_step()
    for layer in range(L):
        pol.attend(layer, q, _view(k, v, layer), D ** -0.5)
    return [set(e["kept"].tolist()) for e in pol.kept_log[-L:]]


@pytest.mark.parametrize("reselect", [True, False])
def test_reselection_brings_a_pruned_token_back(reselect):
    cfg = acc.StudyConfig("t", "spatten", reselect=reselect)
    pol = _policy(cfg)
    first = _step(pol, 31)
    victim = 20
    assert victim in first[0] and victim not in first[-1]  # pruned in the deep layers
    # token 20 becomes the most attended one: every query looks only at it
    g = torch.Generator().manual_seed(1)
    k = torch.randn(KVH, 32, D, generator=g) * 0.01
    k[:, victim] = 50.0
    q = torch.ones(H, D)
    pol.begin_step()
    for layer in range(L):  # importance given in the early layers, where it is still kept
        pol.attend(layer, q, _view(k, torch.randn(KVH, 32, D, generator=g), layer), D ** -0.5)
    later = _step(pol, 33)
    assert (victim in later[-1]) is reselect


def test_value_pruning_and_lsb_refetch():
    cfg = acc.StudyConfig("t", "spatten", values=0.25, msb_bits=4, lsb_bits=4, v_bits=8,
                          requant_thresh=0.5, scale=100.0)
    pol = _policy(cfg)
    g = torch.Generator().manual_seed(2)
    n = 31
    q, k, v = torch.randn(H, D, generator=g), torch.randn(KVH, n, D, generator=g), \
        torch.randn(KVH, n, D, generator=g)
    pol.begin_step()
    out = pol.attend(0, q, _view(k, v), D ** -0.5)
    nv = acc.keep_count(0.25, n)
    # reference: 12-bit K for refetched rows (all: flat random scores stay under 0.5)
    from spatten_dv.models.accuracy.policies import _dequant, _quantize

    q12, sq = _quantize(q, (-1,))
    k12, sk = _quantize(k, (-2, -1))
    v12, sv = _quantize(v, (-2, -1))
    kf = _dequant(k12, 8, sk).repeat_interleave(2, 0)
    vq = _dequant(v12, 8, sv).repeat_interleave(2, 0)
    p = torch.softmax(torch.einsum("hd,hnd->hn", _dequant(q12, 12, sq), kf) * D ** -0.5, -1)
    top = p.topk(nv, -1).indices
    want = torch.einsum("hn,hnd->hd", torch.zeros_like(p).scatter(1, top, p.gather(1, top)), vq)
    assert pol.lsb_rows == H
    assert torch.allclose(out, want, atol=1e-5)
    assert pol.bits == (H * n * 4 + H * n * 4 + H * nv * 8) * D


def test_h2o_and_streaming_budgets_and_bytes(llama):
    ids = _tokens(200 + STEPS + 1, seed=13)
    sp = _per8(protect_sink=0, protect_recent=0, msb_bits=None, lsb_bits=0, v_bits=None,
               requant_thresh=0.0)
    frac = sp.byte_fraction(L, H)
    h2o = acc.StudyConfig("h", "h2o", keys=frac)
    st = acc.StudyConfig("s", "streaming", keys=frac, sinks=4)
    res, pols, _ = acc.run_window(llama, ids, 200, [sp, h2o, st], record=True)
    # equal K/V bytes, up to the rounding of per-layer counts
    assert res[1].kv_bits == pytest.approx(res[0].kv_bits, rel=0.03)
    assert res[2].kv_bits == res[1].kv_bits
    for e in pols[2].kept_log:
        kept, n = e["kept"].tolist(), e["n"]
        k = acc.keep_count(frac, n)
        assert kept == list(range(4)) + list(range(n - (k - 4), n))
    evicted = torch.zeros(L, H, len(ids), dtype=torch.bool)
    for e in pols[1].kept_log:
        keep, n, layer = e["kept"], e["n"], e["layer"]
        k = acc.keep_count(frac, n)
        assert (keep.sum(-1) == k).all()
        assert keep[:, n - (k - k // 2):].all()  # the recent half
        assert not (keep & evicted[layer, :, :n]).any()  # evictions are final
        evicted[layer, :, :n] |= ~keep
        evicted[layer, :, n - (k - k // 2):n] = False


def test_matched_configs_take_the_spatten_bytes():
    cfgs = acc.resolve(acc.select_configs(["h2o@spatten-per8", "streaming@spatten-x2"]), 30, 9)
    assert cfgs[0].keys == pytest.approx(acc.CONFIGS_BY_NAME["spatten-per8"].byte_fraction(30, 9))
    assert cfgs[1].keys == pytest.approx(acc.CONFIGS_BY_NAME["spatten-x2"].byte_fraction(30, 9))
    # the per8 point: about 10x fewer bytes than dense 12-bit
    assert 8 < 1 / cfgs[0].keys < 16


def test_per8_shape_from_the_workload():
    ratios, vk, msb, lsb, vb, thr = acc.per8_shape()
    assert [round(r * 1024) for r in ratios] == [921, 716] + [204] * 4 + [102] * 6
    assert (vk, msb, lsb, vb, thr) == (0.2, 6, 4, 6, 0.05)
    assert acc.depth_ratios(1.0, 30)[:3] == [ratios[0]] * 3
    assert acc.depth_ratios(1.0, 30)[-1] == ratios[-1]


# ---------------------------------------------------------------- results and the command


class _CharTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % VOCAB for c in text]}


def test_run_study_writes_the_results_schema(llama, tmp_path):
    text = "It was a truth universally acknowledged, that tiny models know nothing. " * 3
    configs = acc.select_configs(["dense", "spatten-per8", "h2o@spatten-per8"])
    seen = []
    summary = acc.run_study(llama, _CharTokenizer(), text, configs, tmp_path, n_windows=3,
                            prompt=PROMPT, decode=4, meta={"model": "tiny"}, progress=False,
                            log=seen.append, summary_every=2)
    data = json.loads((tmp_path / "results.json").read_text())
    assert data == json.loads(json.dumps(summary))
    assert [c["name"] for c in data["configs"]] == [c.name for c in configs]
    for c in data["configs"]:
        assert c["method"] in acc.METHODS
        lo, hi = c["ppl_ci"]
        assert lo < c["ppl"] < hi
        assert c["kv_bytes_per_token"] > 0 and c["kv_bytes_reduction"] >= 1
    assert data["configs"][0]["kv_bytes_reduction"] == 1
    assert data["meta"]["windows_done"] == 3 and data["meta"]["model"] == "tiny"
    lines = (tmp_path / "windows.jsonl").read_text().splitlines()
    assert len(lines) == 3 * len(configs)
    rows = [json.loads(x) for x in lines]
    dense = [r for r in rows if r["config"] == "dense"]
    assert math.exp(sum(r["nll"] for r in dense) / 12) == pytest.approx(data["configs"][0]["ppl"])
    assert "| h2o@spatten-per8 |" in (tmp_path / "table.md").read_text()
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 windows" in seen[0]


def test_bad_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown config"):
        acc.select_configs(["dense", "nope"])
    with pytest.raises(UserError, match="msb_bits"):
        acc.StudyConfig("x", "spatten", msb_bits=5, v_bits=8).validate()
    with pytest.raises(UserError, match="SpAtten options"):
        acc.StudyConfig("x", "h2o", protect_recent=4).validate()
    with pytest.raises(UserError, match="more text"):
        acc.window_starts(100, 80, 20, 4)
    with pytest.raises(UserError, match="needs 25 tokens"):
        acc.window_starts(10, 1, 20, 4)
    with pytest.raises(UserError, match="cannot read"):
        acc.read_text(tmp_path / "missing.txt")

    def args(**kw):
        base = dict(list=False, threads=1, windows=2, prompt=10, decode=2, configs=None,
                    text=None, model="x", out=tmp_path, no_progress=True)
        base.update(kw)
        return argparse.Namespace(**base)

    for kw, msg in ((dict(windows=0), "--windows"), (dict(threads=0), "--threads"),
                    (dict(decode=0), "--decode"), (dict(configs="dense,bogus"), "unknown"),
                    (dict(configs=" , "), "at least one"),
                    (dict(text=tmp_path / "none.txt"), "cannot read")):
        with pytest.raises(UserError, match=msg):
            accuracy_cmd.run(args(**kw))


def test_cli_parser_and_list(capsys):
    parser = argparse.ArgumentParser()
    accuracy_cmd.register(parser.add_subparsers())
    a = parser.parse_args(["accuracy", "--list"])
    assert a.func(a) == 0
    out = capsys.readouterr().out
    for name in acc.DEFAULT_NAMES:
        assert f"* {name}" in out
    a = parser.parse_args(["accuracy", "--windows", "4", "--configs", "dense,h2o@spatten-x2"])
    assert [c.name for c in accuracy_cmd.parse_configs(a.configs)] == ["dense",
                                                                        "h2o@spatten-x2"]


def test_cli_reports_a_bad_option_in_one_line(capsys):
    from spatten_dv import cli

    assert cli.main(["accuracy", "--windows", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spatten-dv accuracy: error: --windows must be at least 1, got 0"]


def test_merge_of_config_groups_equals_one_run(llama, tmp_path):
    from spatten_dv.models.accuracy.merge import merge_runs

    text = "It was a truth universally acknowledged, that tiny models know nothing. " * 3
    kw = dict(n_windows=2, prompt=PROMPT, decode=3, meta={"model": "tiny"}, progress=False,
              log=lambda _: None)
    both = acc.select_configs(["dense", "spatten-per8", "streaming@spatten-per8"])
    one = acc.run_study(llama, _CharTokenizer(), text, both, tmp_path / "one", **kw)
    acc.run_study(llama, _CharTokenizer(), text, both[:2], tmp_path / "a", **kw)
    acc.run_study(llama, _CharTokenizer(), text, [both[0], both[2]], tmp_path / "b", **kw)
    merged = merge_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "m")
    assert [c["name"] for c in merged["configs"]] == [c["name"] for c in one["configs"]]
    for m, o in zip(merged["configs"], one["configs"], strict=True):
        assert m["ppl"] == pytest.approx(o["ppl"], rel=1e-5)  # batch size: float noise
        assert m["kv_bytes_per_token"] == o["kv_bytes_per_token"]
    with pytest.raises(UserError, match="not a study output"):
        merge_runs([tmp_path / "a", tmp_path / "nope"], tmp_path / "m2")
