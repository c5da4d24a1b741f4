"""Accuracy study (models/accuracy/) on tiny random GPT-2 and Llama models.

Checks the plumbing (dense = the model's own loss, full budgets = dense bit for bit), the
cascades against straightforward references built on the spec's top-k (models.topk), the
H2O / StreamingLLM keep sets, progressive quantization and value pruning against the float
SpAtten job model (models.float_model), the byte accounting, and the command's errors.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest
import torch
import transformers  # noqa: E402  (the capture extra, installed by nox -s tests)

from spatten_dv.commands import accuracy as accuracy_cmd  # noqa: E402
from spatten_dv.errors import UserError  # noqa: E402
from spatten_dv.models import accuracy as acc  # noqa: E402
from spatten_dv.models.float_model import SpAttenFloatModel  # noqa: E402
from spatten_dv.models.topk import topk_indices  # noqa: E402

T = 48  # chunk length of the model tests
VOCAB = 97


@pytest.fixture(autouse=True)
def _one_thread():
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def _sharpen(model, factor: float = 6.0) -> None:
    """Scale the query projections so that attention is peaked (like a trained model)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("q_proj.weight") or name.endswith("c_attn.weight"):
                p.mul_(factor)


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(7)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        max_position_embeddings=256, rope_theta=10000.0))
    _sharpen(model)
    return model.eval()


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(8)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=VOCAB, n_positions=128, n_embd=32, n_layer=3, n_head=4))
    return model.eval()


def _tokens(n: int, seed: int = 3) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (n,), generator=g).tolist()


def _chunks(n_chunks: int = 2, context: int = 16) -> acc.Chunks:
    stride = T - context
    return acc.make_chunks(_tokens(context + n_chunks * stride), n_chunks * stride, T, context)


def _own_loss(model, ids: list[int]) -> float:
    model.set_attn_implementation("eager")
    try:
        with torch.inference_mode():
            x = torch.tensor([ids])
            return float(model(input_ids=x, labels=x).loss)
    finally:
        model.set_attn_implementation(acc.ATTN_NAME)


# ---------------------------------------------------------------- dense and full budgets


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_dense_is_the_models_own_loss(which, request):
    model = request.getfixturevalue(which)
    ids = _tokens(T)
    chunks = acc.make_chunks(ids, T - 1, T, context=1)  # every position scored
    res = acc.evaluate(model, chunks, acc.CONFIGS_BY_NAME["dense"])
    assert res.scored_tokens == T - 1
    assert res.nll == pytest.approx(_own_loss(model, ids), rel=1e-6, abs=1e-6)
    assert res.keys_pct == res.values_pct == 100.0
    assert res.reduction == 1.0


@pytest.mark.parametrize("which", ["llama", "gpt2"])
def test_full_budgets_reproduce_dense_exactly(which, request):
    model = request.getfixturevalue(which)
    chunks = _chunks()
    dense = acc.evaluate(model, chunks, acc.CONFIGS_BY_NAME["dense"], batch=2)
    for cfg in (acc.StudyConfig("sp-100", "spatten", recent=0.5),
                acc.StudyConfig("h2o-100", "h2o"), acc.StudyConfig("st-100", "streaming")):
        res = acc.evaluate(model, chunks, cfg, batch=2)
        assert res.nll == dense.nll, cfg.name  # bit for bit, not approximately
        assert res.keys_pct == 100.0 and res.values_pct == 100.0
    # batching does not change anything either
    assert acc.evaluate(model, chunks, acc.CONFIGS_BY_NAME["dense"], batch=1).nll == dense.nll


def test_twelve_bit_quantization_costs_little(llama):
    chunks = _chunks()
    dense = acc.evaluate(llama, chunks, acc.CONFIGS_BY_NAME["dense"])
    q12 = acc.evaluate(llama, chunks, acc.CONFIGS_BY_NAME["dense-12bit"])
    assert q12.nll != dense.nll
    assert q12.nll == pytest.approx(dense.nll, rel=1e-3)


# ---------------------------------------------------------------- cascades


def _cascade_reference(prev, acc_, keep, protect=None):
    """Sequential spec semantics with models.topk (integer importances, lower index wins)."""
    B, Tq, N = prev.shape
    kept = np.zeros_like(prev)
    for b in range(B):
        alive = np.ones(N, dtype=bool)
        imp = np.zeros(N, dtype=np.int64)
        for t in range(Tq):
            imp += acc_[b, t].astype(np.int64)
            cand = np.nonzero(prev[b, t] & alive)[0]
            w = protect[t] if protect else 0
            safe = cand[cand > t - w] if w else cand[:0]
            rest = np.setdiff1d(cand, safe)
            k = keep[t] - len(safe)
            if len(cand) > keep[t]:
                win = rest[topk_indices(torch.from_numpy(imp[rest]), k).numpy()]
                alive[np.setdiff1d(rest, win)] = False
                chosen = np.union1d(win, safe)
            else:
                chosen = cand
            kept[b, t, chosen] = True
    return kept


@pytest.mark.parametrize("seed", range(4))
def test_cascade_matches_the_spec_top_k(seed):
    rng = np.random.default_rng(seed)
    B, n = 2, 40
    causal = np.tril(np.ones((n, n), dtype=bool))
    # previous layer: causal minus some tokens, pruned for good from a random query on
    prev = np.broadcast_to(causal, (B, n, n)).copy()
    for b in range(B):
        for s in rng.choice(n, 8, replace=False):
            prev[b, rng.integers(s, n):, s] = False
    acc_ = rng.integers(0, 4, (B, n, n)).astype(np.float64) * causal  # many ties
    keep = [acc.keep_count(0.4, t + 1) for t in range(n)]
    got = acc.cascade(prev, acc_, keep)
    assert np.array_equal(got, _cascade_reference(prev, acc_, keep))
    protect = [math.floor(0.5 * k) for k in keep]
    got = acc.cascade(prev, acc_, keep, protect=protect)
    assert np.array_equal(got, _cascade_reference(prev, acc_, keep, protect))
    # heads: not causal, constant budget
    hp = np.ones((B, n, 6), dtype=bool)
    ha = rng.integers(0, 3, (B, n, 6)).astype(np.float64)
    got = acc.cascade(hp, ha, [4] * n, causal=False)
    assert np.array_equal(got, _cascade_reference(hp, ha, [4] * n))
    assert (got.sum(-1) == 4).all()


def _spatten_run(model, cfg, chunks):
    studies = []
    res = acc.evaluate(model, chunks, cfg, batch=2, record=True, on_forward=studies.append)
    return res, studies


def test_spatten_cascade_is_monotone_and_within_budget(llama):
    cfg = acc.StudyConfig("t", "spatten", keys=0.4, heads=0.5, dense_layers=0.25,
                          ramp_layers=0.25, recent=0.25)
    chunks = _chunks()
    res, studies = _spatten_run(llama, cfg, chunks)
    L, H = 4, 4
    ratios, head_keep = acc.layer_schedule(cfg, L, H)
    assert ratios[0] == 1.0 and head_keep[0] == H
    causal = np.tril(np.ones((T, T), dtype=bool))
    for st in studies:
        prev_tok, prev_head = causal[None], np.ones((1, T, H), dtype=bool)
        for layer in range(L):
            kept, heads = st.kept_history[layer], st.head_history[layer]
            # within budget, subsets of the previous layer
            budget = np.array([acc.keep_count(ratios[layer], t + 1) for t in range(T)])
            assert (kept.sum(-1) <= budget).all()
            assert (kept <= prev_tok).all() and (heads <= prev_head).all()
            assert (heads.sum(-1) <= head_keep[layer]).all()
            # the newest floor(recent * budget) tokens are all there if the layer above kept them
            for t in range(T):
                w = math.floor(cfg.recent * budget[t])
                lo = t + 1 - w
                assert (kept[:, t, lo:t + 1] == prev_tok[..., t, lo:t + 1]).all()
            # a token (or head) pruned for query t never returns for a later query
            for t in range(1, T):
                assert (kept[:, t, :t] <= kept[:, t - 1, :t]).all()
                assert (heads[:, t] <= heads[:, t - 1]).all()
            prev_tok, prev_head = kept, heads
        assert (st.kept_history[-1].sum(-1)[:, -1] < T).all()  # something was pruned
        assert not st.head_history[-1].all()
    assert res.heads_run_pct < 100
    assert res.keys_pct < 100


def test_byte_counts_match_the_kept_sets(llama):
    cfg = acc.StudyConfig("b", "spatten", keys=0.5, values=0.3, msb_bits=6, lsb_bits=4,
                          v_bits=8, requant_thresh=0.1, dense_layers=0.25, ramp_layers=0.25,
                          heads=0.75)
    chunks = _chunks()
    res, studies = _spatten_run(llama, cfg, chunks)
    rows = slice(chunks.context - 1, T - 1)
    keys = values = lsb = dense = 0
    D = 16
    for st in studies:
        for layer in range(4):
            n_kept = st.kept_history[layer].sum(-1)[:, rows]  # (B, rows)
            heads = st.head_history[layer][:, rows]  # (B, rows, H)
            refetch = st.refetch_history[layer][:, :, rows].transpose(0, 2, 1)
            kv = np.minimum(np.maximum(np.ceil(cfg.values * n_kept - 1e-9), 1), n_kept)
            keys += (n_kept[..., None] * heads).sum()
            values += (kv[..., None] * heads).sum()
            lsb += (n_kept[..., None] * refetch).sum()
            assert not (refetch & ~heads).any()
        dense += 4 * 4 * np.arange(chunks.context, T).sum() * st.B
    count = chunks.scored
    assert res.keys_pct == pytest.approx(100 * keys / dense)
    assert res.values_pct == pytest.approx(100 * values / dense)
    assert 0 < lsb < keys  # some rows refetched, not all
    assert res.kv_bytes_per_token == pytest.approx((keys * 6 + lsb * 4 + values * 8) * D / 8
                                                   / count)
    assert res.dense_bytes_per_token == pytest.approx(dense * 24 * D / 8 / count)
    # padded planes at the default 256-bit bus: D=16 -> 6 and 4 bits: 32 bytes, 12: 32 bytes
    assert res.bus_bytes_per_token == pytest.approx((keys + lsb + values) * 32 / count)


def test_layer_schedule_meets_the_mean():
    cfg = acc.CONFIGS_BY_NAME["spatten-20"]
    ratios, heads = acc.layer_schedule(cfg, 30, 9)
    assert ratios[0] == 1.0 and heads[0] == 9
    assert all(a >= b for a, b in zip(ratios, ratios[1:], strict=False))
    assert np.mean(np.array(ratios) * np.array(heads) / 9) == pytest.approx(0.20)
    assert heads[-1] == 8
    with pytest.raises(UserError, match="cannot be reached"):
        acc.layer_schedule(acc.StudyConfig("x", "spatten", keys=0.05, dense_layers=0.5), 30, 9)


# ---------------------------------------------------------------- H2O and StreamingLLM


def _h2o_reference(scores, keys):
    """Per (b, h) loop: heavy = top by accumulated attention among never-evicted older tokens."""
    B, H, n, _ = scores.shape
    mask = np.zeros((B, H, n, n), dtype=bool)
    for b in range(B):
        for h in range(H):
            acc_ = np.zeros(n)
            alive = np.ones(n, dtype=bool)
            for t in range(n):
                k = acc.keep_count(keys, t + 1)
                if k >= t + 1:
                    keep = np.arange(t + 1)
                else:
                    heavy, recent = k // 2, k - k // 2
                    start = t + 1 - recent
                    cand = np.nonzero(alive[:start])[0]
                    # top `heavy` by accumulated attention, lower index on ties
                    order = np.array(sorted(cand, key=lambda s: (-acc_[s], s))[:heavy],
                                     dtype=np.int64)
                    alive[:start] = False
                    alive[order] = True
                    keep = np.union1d(order, np.arange(start, t + 1))
                mask[b, h, t, keep] = True
                s = scores[b, h, t, keep]
                p = np.exp(s - s.max())
                acc_[keep] += p / p.sum()
    return mask


def test_h2o_keeps_recent_and_heavy_hitters():
    rng = np.random.default_rng(5)
    n = 40
    scores = rng.standard_normal((2, 3, n, n)) * 3
    scores[..., :, 7] += 4  # a heavy hitter
    mask = acc.h2o_masks(scores, 0.3)
    assert np.array_equal(mask, _h2o_reference(scores, 0.3))
    for t in range(n):
        k = acc.keep_count(0.3, t + 1)
        assert (mask[:, :, t].sum(-1) == k).all()
        recent = k - k // 2
        assert mask[:, :, t, t + 1 - recent:t + 1].all()
        assert not mask[:, :, t, t + 1:].any()
    assert mask[:, :, n - 1, 7].all()
    # evicted tokens never return
    for t in range(n):
        k = acc.keep_count(0.3, t + 1)
        start = t + 1 - (k - k // 2)
        evicted = ~mask[:, :, t, :start]
        assert not (mask[:, :, t + 1:, :start] & evicted[:, :, None]).any()


def test_streaming_keeps_sinks_and_window():
    m = acc.streaming_mask(60, 0.25, 4).numpy()
    for t in range(60):
        k = acc.keep_count(0.25, t + 1)
        row = np.nonzero(m[t])[0]
        if k >= t + 1:
            assert row.tolist() == list(range(t + 1))
        else:
            recent = max(1, k - 4)
            assert row.tolist() == list(range(k - recent)) + list(range(t + 1 - recent, t + 1))


def test_baseline_budgets_in_the_model(llama):
    chunks = _chunks()
    for cfg in (acc.StudyConfig("h", "h2o", keys=0.3), acc.StudyConfig("s", "streaming",
                                                                     keys=0.3)):
        studies = []
        res = acc.evaluate(llama, chunks, cfg, batch=2, record=True, on_forward=studies.append)
        expect = sum(acc.keep_count(0.3, t + 1) for t in range(chunks.context - 1, T - 1))
        total = sum(t + 1 for t in range(chunks.context - 1, T - 1))
        assert res.keys_pct == pytest.approx(100 * expect / total)
        assert res.values_pct == res.keys_pct
        assert res.reduction == pytest.approx(total / expect)
        for st in studies:
            for m in st.kept_history:
                assert (m.sum(-1) == [acc.keep_count(0.3, t + 1) for t in range(T)]).all()


# ---------------------------------------------------------------- one job vs the float model


class _Layer:
    def __init__(self, idx):
        self.layer_idx = idx


def test_jobs_match_the_float_spatten_model():
    """Layer 0 (dense) of a quantized config, row by row, against SpAttenFloatModel.run_job."""
    torch.manual_seed(11)
    B, H, G, n, D = 1, 4, 2, 40, 16
    q = torch.randn(B, H, n, D) * 2
    k = torch.randn(B, G, n, D) * 2
    v = torch.randn(B, G, n, D)
    k[:, 0, 5] *= 3  # a few peaked rows
    scaling = D ** -0.5
    q12, sq = acc._quantize(q, (-1,))
    k12, sk = acc._quantize(k, (2, 3))
    v12, sv = acc._quantize(v, (2, 3))

    def job(h, t, thresh):
        g = h // (H // G)
        return g, SpAttenFloatModel(max_tokens=64).run_job(
            q12[0, h, t], k12[0, g, :t + 1], v12[0, g, :t + 1],
            score_scale=float(sq[0, h, t] * sk[0, g] * scaling), msb_bits=4, lsb_bits=4,
            v_bits=6, requant_thresh=thresh, v_topk=math.ceil(0.3 * (t + 1) - 1e-9))

    # a threshold between the rows' max probabilities, so both kinds of rows occur
    thresh = float(np.median([job(h, t, 0.0)[1].max_prob_msb for h in range(H)
                              for t in range(n)]))
    cfg = acc.StudyConfig("j", "spatten", keys=0.75, values=0.3, msb_bits=4, lsb_bits=4,
                          v_bits=6, requant_thresh=thresh)
    st = acc._Study(cfg, 2, H, B, n, slice(0, n), record=True)
    out, _ = st.attend(_Layer(0), q, k, v, None, scaling, None, {})
    refetched = 0
    for h in range(H):
        for t in range(n):
            g, r = job(h, t, thresh)
            assert bool(st.refetch_history[0][0, h, t]) == r.lsb_fetched, (h, t)
            refetched += r.lsb_fetched
            want = (r.out * float(sv[0, g])).float()
            assert torch.allclose(out[0, t, h], want, rtol=1e-4, atol=1e-5), (h, t)
    assert 0 < refetched < H * n  # both kinds of rows occur


# ---------------------------------------------------------------- options and the command


def test_bad_options_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="unknown config"):
        acc.select_configs(["dense", "nope"])
    with pytest.raises(UserError, match="msb_bits"):
        acc.StudyConfig("x", "spatten", msb_bits=5, v_bits=8).validate()
    with pytest.raises(UserError, match="lsb_bits"):
        acc.StudyConfig("x", "spatten", msb_bits=8, lsb_bits=6, v_bits=8).validate()
    with pytest.raises(UserError, match="SpAtten options"):
        acc.StudyConfig("x", "h2o", values=0.5).validate()
    with pytest.raises(UserError, match="need"):
        acc.make_chunks(list(range(100)), 500, 64, 16)
    with pytest.raises(UserError, match="context"):
        acc.make_chunks(list(range(100)), 10, 64, 0)
    with pytest.raises(UserError, match="cannot read"):
        acc.read_text(tmp_path / "missing.txt")

    def args(**kw):
        base = dict(list=False, threads=1, batch=1, tokens=10, configs=None, text=None,
                    model="x", out=tmp_path, chunk=64, context=16, no_progress=True)
        base.update(kw)
        return argparse.Namespace(**base)

    for kw, msg in ((dict(tokens=0), "--tokens"), (dict(threads=0), "--threads"),
                    (dict(batch=0), "--batch"), (dict(configs="dense,bogus"), "unknown"),
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
    a = parser.parse_args(["accuracy", "--tokens", "100", "--configs", "dense,h2o-20"])
    assert [c.name for c in accuracy_cmd.parse_configs(a.configs)] == ["dense", "h2o-20"]
    assert len(accuracy_cmd.parse_configs("all")) == len(acc.ALL_CONFIGS)


class _CharTokenizer:
    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [ord(c) % VOCAB for c in text]}


def test_run_study_writes_results_after_each_config(llama, tmp_path):
    text = "It was a truth universally acknowledged, that tiny models know nothing. " * 3
    configs = acc.select_configs(["dense", "streaming-20"])
    seen = []
    results = acc.run_study(llama, _CharTokenizer(), text, configs, tmp_path, n_scored=60,
                            length=T, context=16, batch=2, meta={"model": "tiny"},
                            progress=False, log=seen.append)
    assert [r.name for r in results] == ["dense", "streaming-20"]
    data = json.loads((tmp_path / "results.json").read_text())
    assert [r["name"] for r in data["results"]] == ["dense", "streaming-20"]
    assert data["meta"]["scored_tokens"] == 64 and data["meta"]["model"] == "tiny"
    csv_lines = (tmp_path / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("name,method,perplexity") and len(csv_lines) == 3
    table = (tmp_path / "table.md").read_text()
    assert "| streaming-20 |" in table and "| dense |" in table
    assert (tmp_path / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 chunks" in seen[0]


def test_cli_reports_a_bad_option_in_one_line(capsys):
    from spatten_dv import cli

    assert cli.main(["accuracy", "--tokens", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["spatten-dv accuracy: error: --tokens must be at least 1, got 0"]
