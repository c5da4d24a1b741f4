"""Windows of a text, one dense prefill per window, teacher-forced decode steps for all
configurations at once (one batch row each), and the whole study with per-window results."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from spatten_dv.errors import UserError
from spatten_dv.models.accuracy.attention import (
    _ACTIVE,
    ATTN_NAME,
    DecodeBatch,
    PrefillRecorder,
    WindowKV,
    register_attention,
)
from spatten_dv.models.accuracy.configs import StudyConfig, resolve
from spatten_dv.models.accuracy.policies import Policy, make_policy


@dataclass
class WindowResult:
    """One configuration on one window: summed NLL of the decoded tokens and fetched bytes."""

    config: str
    window: int
    nll: float  # sum over the scored tokens
    tokens: int
    kv_bits: float
    bus_bytes: float
    dense_bits: float
    dense_bus_bytes: float
    lsb_rows: int
    rows: int
    nll_per_step: list[float] = field(default_factory=list)


def window_starts(n_tokens: int, n_windows: int, prompt: int, decode: int) -> list[int]:
    """n_windows starts spread evenly over the text (each window: prompt + decode + 1)."""
    span = prompt + decode + 1
    if n_windows < 1:
        raise UserError(f"--windows must be at least 1, got {n_windows}")
    if prompt < 1 or decode < 1:
        raise UserError("--prompt and --decode must be at least 1")
    last = n_tokens - span
    if last < 0:
        raise UserError(f"a window needs {span} tokens, the text has {n_tokens}")
    if n_windows > last + 1:
        raise UserError(f"{n_windows} windows of {span} tokens need more text "
                        f"(at most {last + 1} windows)")
    if n_windows == 1:
        return [0]
    return [round(i * last / (n_windows - 1)) for i in range(n_windows)]


def model_dims(model) -> tuple[int, int, int]:
    c = model.config
    n_heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_heads
    return c.num_hidden_layers, n_heads, head_dim


def _use_study_attention(model) -> None:
    register_attention()
    if model.config._attn_implementation != ATTN_NAME:
        model.set_attn_implementation(ATTN_NAME)


def run_window(model, ids: Sequence[int], prompt: int, configs: Sequence[StudyConfig],
               record: bool = False) -> tuple[list[WindowResult], list[Policy], torch.Tensor]:
    """Dense prefill of ids[:prompt], then teacher-forced decode of ids[prompt:] (each step
    feeds token t and scores token t + 1) under every config at once.

    Returns per config the window's result, the policies (kept sets with `record`) and the
    decode logits (C, steps, vocab) (for tests).
    """
    from transformers import DynamicCache

    _use_study_attention(model)
    L, H, D = model_dims(model)
    ids_t = torch.tensor([list(ids)])
    n_steps = len(ids) - prompt - 1
    recorder = PrefillRecorder(L)
    cache = DynamicCache(config=model.config)
    with torch.inference_mode():
        _ACTIVE.append(recorder)
        try:
            model(input_ids=ids_t[:, :prompt], past_key_values=cache, use_cache=True,
                  logits_to_keep=1)
        finally:
            _ACTIVE.remove(recorder)
        toks = [t[0] for t in recorder.tokens]
        heads = [h[0] for h in recorder.heads]
        policies = [make_policy(c, L, H, D, toks, heads, len(ids), record) for c in configs]
        C = len(configs)
        kv = WindowKV([layer.keys for layer in cache.layers],
                      [layer.values for layer in cache.layers], C, n_steps)
        del cache
        batch = DecodeBatch(policies, kv)
        nll = torch.zeros(C, n_steps, dtype=torch.float64)
        all_logits = []
        for s in range(n_steps):
            pos = prompt + s
            for p in policies:
                p.begin_step()
            batch.step = s
            _ACTIVE.append(batch)
            try:
                out = model(input_ids=ids_t[:, pos:pos + 1].expand(C, 1),
                            position_ids=torch.full((C, 1), pos), use_cache=False)
            finally:
                _ACTIVE.remove(batch)
            logits = out.logits[:, -1].float()
            if record:
                all_logits.append(logits)
            lp = torch.log_softmax(logits, dim=-1)[:, int(ids_t[0, pos + 1])]
            nll[:, s] = -lp.double()
    results = [WindowResult(config=c.name, window=-1, nll=float(nll[i].sum()), tokens=n_steps,
                            kv_bits=p.bits, bus_bytes=p.bus, dense_bits=p.dense_bits,
                            dense_bus_bytes=p.dense_bus, lsb_rows=p.lsb_rows, rows=p.rows,
                            nll_per_step=nll[i].tolist())
               for i, (c, p) in enumerate(zip(configs, policies, strict=True))]
    logits = torch.stack(all_logits, 1) if record else torch.empty(0)
    return results, policies, logits


def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read text file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def run_study(model, tokenizer, text: str, configs: Sequence[StudyConfig], out: Path,
              n_windows: int = 64, prompt: int = 1000, decode: int = 32,
              meta: dict | None = None, progress: bool = True,
              log: Callable[[str], None] = print, summary_every: int = 2):
    """Every window once (prefill reused by every config); windows.jsonl gets one line per
    config and window as it finishes; results.json, table.md and accuracy.png are rewritten
    every `summary_every` windows and at the end. Returns the summary (report.summarize)."""
    from tqdm import tqdm

    from spatten_dv.models.accuracy.report import summarize, write_outputs

    L, H, D = model_dims(model)
    configs = resolve(configs, L, H)
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    if limit and prompt + decode + 1 > limit:
        raise UserError(f"a window of {prompt + decode + 1} tokens exceeds the model's "
                        f"{limit} positions")
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    starts = window_starts(len(tokens), n_windows, prompt, decode)
    meta = dict(meta or {})
    meta.update({"protocol": "dense prefill, teacher-forced decode, re-selection per step",
                 "text_tokens": len(tokens), "windows": n_windows, "prompt_tokens": prompt,
                 "decode_tokens": decode, "scored_tokens": n_windows * decode,
                 "window_starts": starts, "layers": L, "heads": H, "head_dim": D,
                 "kv_heads": getattr(model.config, "num_key_value_heads", H),
                 "threads": torch.get_num_threads()})
    log(f"{n_windows} windows of {prompt} prompt + {decode} decoded tokens over {len(tokens)} "
        f"text tokens; {len(configs)} configs decoded as one batch")
    out.mkdir(parents=True, exist_ok=True)
    lines = out / "windows.jsonl"
    lines.write_text("")
    per_window: list[WindowResult] = []
    t0 = time.monotonic()
    bar = tqdm(total=n_windows, unit="window", disable=not progress, desc="accuracy",
               dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 30.0)
    summary = None
    try:
        for w, start in enumerate(starts):
            res, _, _ = run_window(model, tokens[start:start + prompt + decode + 1], prompt,
                                   configs)
            with open(lines, "a") as f:
                for r in res:
                    r.window = w
                    f.write(json.dumps(r.__dict__) + "\n")
            per_window += res
            bar.update(1)
            if (w + 1) % summary_every == 0 or w + 1 == n_windows:
                meta["seconds"] = round(time.monotonic() - t0, 1)
                meta["windows_done"] = w + 1
                summary = summarize(configs, per_window, meta)
                write_outputs(out, summary)
                dense = next((c for c in summary["configs"] if c["method"] == "dense"), None)
                if dense:
                    bar.set_postfix_str(f"dense ppl {dense['ppl']:.3f}")
    finally:
        bar.close()
    return summary


def ppl(nll_sum: float, tokens: int) -> float:
    return math.exp(nll_sum / tokens)
