"""Capture on tiny random GPT-2 and Llama models (proves the code paths, not realism).

q/K/V in the trace are checked against a direct full-sequence forward computation of the same
model (GPT-2: c_attn of ln_1; Llama: q_proj/k_proj of input_layernorm with a hand-written
rotary embedding), the stored attention output against softmax(q.K^T * scale).V over the rows
the step attends to, and two captures against each other bit for bit.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from spatten_dv.commands import capture as capture_cmd  # noqa: E402
from spatten_dv.commands import trace as trace_cmd  # noqa: E402
from spatten_dv.errors import UserError  # noqa: E402
from spatten_dv.traces.loader import load_trace  # noqa: E402

TEXT = ("The quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun. "
        "def add(a, b):\n    return a + b\n" * 3)
STEPS = 4


def _tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([TEXT] * 4, trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok)
    fast.save_pretrained(folder)
    return fast


def _save(model, folder):
    model.save_pretrained(folder)
    _tokenizer(folder)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(1234)
    gpt2 = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=320, n_positions=256, n_embd=32, n_layer=2, n_head=4,
        bos_token_id=0, eos_token_id=0, scale_attn_by_inverse_layer_idx=True))
    _save(gpt2, root / "gpt2")
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
        rope_theta=10000.0))
    _save(llama, root / "llama")
    (root / "prompt.txt").write_text(TEXT)
    return root


def _run(argv):
    parser = argparse.ArgumentParser(prog="spatten-dv")
    sub = parser.add_subparsers(dest="command")
    capture_cmd.register(sub)
    trace_cmd.register(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def _capture(models_dir, family, out):
    assert _run(["capture", "--model", str(models_dir / family), "--prompt-file",
                 str(models_dir / "prompt.txt"), "--steps", str(STEPS), "--out", str(out),
                 "--prompt-kind", "prose", "--no-progress"]) == 0
    return load_trace(out)


def _direct_hidden(model, trace):
    ids = np.concatenate([trace.prompt_ids, trace.generated_ids[:-1]]).astype(np.int64)
    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(ids)[None], output_hidden_states=True)
    return out.hidden_states  # [layer] -> (1, T, hidden): input of layer


def _check_attention_output(trace):
    """attn_out == softmax(q.K^T * scale) V over rows 0..P+s (float values of the trace)."""
    q, k, v = trace.q_float(), trace.k_float(), trace.v_float()
    m = trace.meta
    for s in range(m.n_steps):
        n = trace.n_tokens(s)
        for layer in range(m.n_layers):
            for h in range(m.n_heads):
                g = trace.kv_head(h)
                scores = k[layer, g, :n] @ q[s, layer, h] * trace.score_scale[layer]
                p = np.exp(scores - scores.max())
                p /= p.sum()
                np.testing.assert_allclose(p @ v[layer, g, :n], trace.attn_out[s, layer, h],
                                           rtol=1e-3, atol=1e-4)


def _close(a, b, scale):
    assert np.abs(np.asarray(a) - np.asarray(b)).max() <= 1e-4 * max(scale, 1e-6), \
        np.abs(np.asarray(a) - np.asarray(b)).max()


def test_gpt2_capture(models_dir, tmp_path):
    trace = _capture(models_dir, "gpt2", tmp_path / "g.safetensors")
    m = trace.meta
    assert (m.model_family, m.positional, m.n_layers, m.n_heads, m.n_kv_heads, m.head_dim) == \
        ("gpt2", "learned-absolute", 2, 4, 4, 8)
    assert m.n_steps == STEPS and len(trace.generated_ids) == STEPS + 1
    assert trace.k_int.shape == (2, 4, m.n_prompt + STEPS, 8)
    # GPT-2 scaling: 1/sqrt(D), and / (layer+1) with scale_attn_by_inverse_layer_idx
    np.testing.assert_allclose(trace.score_scale, [8**-0.5, 8**-0.5 / 2])
    model = transformers.AutoModelForCausalLM.from_pretrained(models_dir / "gpt2").eval()
    hidden = _direct_hidden(model, trace)
    P = m.n_prompt
    for layer in range(2):
        block = model.transformer.h[layer]
        with torch.inference_mode():
            qkv = block.attn.c_attn(block.ln_1(hidden[layer]))[0].double().numpy()  # (T, 3E)
        qd, kd, vd = np.split(qkv, 3, axis=1)
        for h in range(4):
            sl = slice(8 * h, 8 * h + 8)
            _close(trace.k_float()[layer, h], kd[:, sl], np.abs(kd).max())
            _close(trace.v_float()[layer, h], vd[:, sl], np.abs(vd).max())
            for s in range(STEPS):
                _close(trace.q_float()[s, layer, h], qd[P + s, sl], np.abs(qd).max())
    # greedy: the direct forward's argmax reproduces the generated tokens
    ids = np.concatenate([trace.prompt_ids, trace.generated_ids[:-1]]).astype(np.int64)
    with torch.inference_mode():
        logits = model(input_ids=torch.from_numpy(ids)[None]).logits[0]
    np.testing.assert_array_equal(logits[P - 1:].argmax(-1).numpy(), trace.generated_ids)
    _check_attention_output(trace)


def _rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def test_llama_capture_gqa_rotary(models_dir, tmp_path):
    trace = _capture(models_dir, "llama", tmp_path / "l.safetensors")
    m = trace.meta
    assert (m.model_family, m.positional, m.n_heads, m.n_kv_heads, m.head_dim, m.rope_theta) == \
        ("llama", "rotary", 4, 2, 16, 10000.0)
    assert trace.k_int.shape == (2, 2, m.n_prompt + STEPS, 16)
    assert trace.q_int.shape == (STEPS, 2, 4, 16)
    np.testing.assert_allclose(trace.score_scale, [0.25, 0.25])
    model = transformers.AutoModelForCausalLM.from_pretrained(models_dir / "llama").eval()
    hidden = _direct_hidden(model, trace)
    T, P, D = m.n_prompt + STEPS, m.n_prompt, 16
    inv_freq = 1.0 / (10000.0 ** (np.arange(0, D, 2) / D))
    ang = np.arange(T)[:, None] * inv_freq[None]
    cos, sin = np.cos(np.concatenate([ang, ang], 1)), np.sin(np.concatenate([ang, ang], 1))
    for layer in range(2):
        attn = model.model.layers[layer].self_attn
        with torch.inference_mode():
            x = model.model.layers[layer].input_layernorm(hidden[layer])
            qd = attn.q_proj(x)[0].double().numpy().reshape(T, 4, D)
            kd = attn.k_proj(x)[0].double().numpy().reshape(T, 2, D)
            vd = attn.v_proj(x)[0].double().numpy().reshape(T, 2, D)
        for g in range(2):
            k_rot = kd[:, g] * cos + _rotate_half(kd[:, g]) * sin
            _close(trace.k_float()[layer, g], k_rot, np.abs(k_rot).max())
            # K really is post-rotary: the pre-rotary K is far away
            assert np.abs(trace.k_float()[layer, g] - kd[:, g]).max() > 1e-2 * np.abs(kd).max()
            _close(trace.v_float()[layer, g], vd[:, g], np.abs(vd).max())
        for h in range(4):
            for s in range(STEPS):
                pos = P + s
                q_rot = qd[pos, h] * cos[pos] + _rotate_half(qd[pos, h]) * sin[pos]
                _close(trace.q_float()[s, layer, h], q_rot, np.abs(q_rot).max())
    _check_attention_output(trace)  # with h // (H / G) as the KV head of query head h


def test_bit_for_bit_reproducible(models_dir, tmp_path):
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    _capture(models_dir, "gpt2", a)
    _capture(models_dir, "gpt2", b)
    assert a.read_bytes() == b.read_bytes()


def test_capture_user_errors(models_dir, tmp_path):
    with pytest.raises(UserError, match="steps"):
        _run(["capture", "--model", str(models_dir / "gpt2"), "--prompt-file",
              str(models_dir / "prompt.txt"), "--steps", "0", "--out", str(tmp_path / "x")])
    with pytest.raises(UserError, match="prompt file"):
        _run(["capture", "--model", str(models_dir / "gpt2"), "--prompt-file",
              str(tmp_path / "none.txt"), "--steps", "2", "--out", str(tmp_path / "x")])
    with pytest.raises(UserError, match="positions"):
        _run(["capture", "--model", str(models_dir / "gpt2"), "--prompt-file",
              str(models_dir / "prompt.txt"), "--steps", "400", "--out", str(tmp_path / "x")])
