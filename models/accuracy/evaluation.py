"""Teacher-forced evaluation over text chunks and the whole study (results written per config)."""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from spatten_dv.errors import UserError
from spatten_dv.models.accuracy.attention import _ACTIVE, ATTN_NAME, _Study, register_attention
from spatten_dv.models.accuracy.configs import FULL_BITS, StudyConfig, layer_schedule
from spatten_dv.models.accuracy.report import ConfigResult, plot, plot_title, write_results
from spatten_dv.models.params import DEFAULT_PARAMS

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_TEXT = DATA_DIR / "austen_persuasion_ch1-8.txt"


@dataclass
class Chunks:
    """Sliding chunks of a token stream: chunk c = tokens [c*stride, c*stride + length)."""

    tokens: list[int]
    length: int
    context: int
    n_chunks: int

    @property
    def stride(self) -> int:
        return self.length - self.context

    @property
    def scored(self) -> int:
        return self.n_chunks * self.stride

    def chunk(self, c: int) -> list[int]:
        return self.tokens[c * self.stride: c * self.stride + self.length]


def make_chunks(tokens: Sequence[int], n_scored: int, length: int = 1024,
                context: int = 256) -> Chunks:
    """Enough chunks for at least n_scored scored tokens (each with >= `context` before it)."""
    if not 1 <= context < length:
        raise UserError(f"context ({context}) must be in [1, chunk length {length})")
    if n_scored < 1:
        raise UserError(f"--tokens must be at least 1, got {n_scored}")
    stride = length - context
    n = -(-n_scored // stride)
    need = context + n * stride
    if need > len(tokens):
        most = (len(tokens) - context) // stride * stride
        raise UserError(f"{n_scored} scored tokens need {need} tokens of text, the text has "
                        f"{len(tokens)} (at most --tokens {most})")
    return Chunks(list(tokens), length, context, n)


def _model_dims(model) -> tuple[int, int, int]:
    c = model.config
    n_heads = c.num_attention_heads
    head_dim = getattr(c, "head_dim", None) or c.hidden_size // n_heads
    return c.num_hidden_layers, n_heads, head_dim


def _stride(bits: int, head_dim: int) -> int:
    if not bits:
        return 0
    word = DEFAULT_PARAMS.axi_data_bits
    return -(-head_dim * bits // word) * (word // 8)


def evaluate(model, chunks: Chunks, cfg: StudyConfig, batch: int = 1,
             progress: Callable[[int], None] | None = None,
             on_forward: Callable[[_Study], None] | None = None,
             record: bool = False) -> ConfigResult:
    """Perplexity of `model` on the scored tokens of `chunks` under one configuration."""
    cfg.validate()
    register_attention()
    if model.config._attn_implementation != ATTN_NAME:
        model.set_attn_implementation(ATTN_NAME)
    L, H, D = _model_dims(model)
    if cfg.method == "spatten":
        layer_schedule(cfg, L, H)  # fail early on an unreachable budget
    base = model.base_model
    head = model.get_output_embeddings()
    T, ctx = chunks.length, chunks.context
    rows = slice(ctx - 1, T - 1)  # query t predicts token t + 1 = a scored token
    totals = {"keys": 0.0, "values": 0.0, "lsb_keys": 0.0, "jobs": 0.0, "jobs_run": 0.0,
              "lsb_jobs": 0.0, "dense_keys": 0.0}
    nll, count = 0.0, 0
    t0 = time.monotonic()
    with torch.inference_mode():
        for first in range(0, chunks.n_chunks, batch):
            ids = torch.tensor([chunks.chunk(c)
                                for c in range(first, min(first + batch, chunks.n_chunks))])
            study = _Study(cfg, L, H, ids.shape[0], T, rows, record)
            _ACTIVE.append(study)
            try:
                hidden = base(input_ids=ids, use_cache=False).last_hidden_state
            finally:
                _ACTIVE.remove(study)
            if len(study.seen) != L:
                raise RuntimeError(f"{len(study.seen)} of {L} layers ran the study's attention")
            logits = head(hidden[:, rows]).float()
            targets = ids[:, ctx:]
            lp = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1))
            nll -= float(lp.double().sum())
            count += targets.numel()
            for name in totals:
                totals[name] += study.n[name]
            if on_forward:
                on_forward(study)
            if progress:
                progress(ids.shape[0])
    seconds = time.monotonic() - t0
    bits_k, bits_v, bits_l = cfg.k_bits, cfg.val_bits, cfg.lsb_bits
    per = D / 8 / count
    kv_bytes = (totals["keys"] * bits_k + totals["lsb_keys"] * bits_l
                + totals["values"] * bits_v) * per
    dense_bytes = totals["dense_keys"] * 2 * FULL_BITS * per
    bus = (totals["keys"] * _stride(bits_k, D) + totals["lsb_keys"] * _stride(bits_l, D)
           + totals["values"] * _stride(bits_v, D)) / count
    dense_bus = totals["dense_keys"] * 2 * _stride(FULL_BITS, D) / count
    return ConfigResult(
        name=cfg.name, method=cfg.method, description=cfg.describe(),
        perplexity=math.exp(nll / count), nll=nll / count, scored_tokens=count,
        keys_pct=100 * totals["keys"] / totals["dense_keys"],
        values_pct=100 * totals["values"] / totals["dense_keys"],
        lsb_refetch_pct=100 * totals["lsb_jobs"] / max(totals["jobs_run"], 1),
        heads_run_pct=100 * totals["jobs_run"] / totals["jobs"],
        kv_bytes_per_token=kv_bytes, dense_bytes_per_token=dense_bytes,
        bus_bytes_per_token=bus, dense_bus_bytes_per_token=dense_bus,
        seconds=seconds, config=asdict(cfg))



def read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read text file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text") from None


def run_study(model, tokenizer, text: str, configs: Sequence[StudyConfig], out: Path,
              n_scored: int = 20000, length: int = 1024, context: int = 256, batch: int = 3,
              meta: dict | None = None, progress: bool = True,
              log: Callable[[str], None] = print) -> list[ConfigResult]:
    """Run every config; results.json/csv/table.md and accuracy.png in `out` after each."""
    from tqdm import tqdm

    for cfg in configs:
        cfg.validate()
    tokens = tokenizer(text, add_special_tokens=False)["input_ids"]
    limit = getattr(model.config, "n_positions", None) or getattr(
        model.config, "max_position_embeddings", None)
    if limit and length > limit:
        raise UserError(f"chunk length {length} exceeds the model's {limit} positions")
    chunks = make_chunks(tokens, n_scored, length, context)
    L, H, D = _model_dims(model)
    meta = dict(meta or {})
    meta.update({"text_tokens": len(tokens), "scored_tokens": chunks.scored,
                 "chunks": chunks.n_chunks, "chunk_length": length, "context": context,
                 "layers": L, "heads": H, "head_dim": D, "threads": torch.get_num_threads()})
    log(f"{chunks.n_chunks} chunks of {length} tokens (first {context} of each are context), "
        f"{chunks.scored} scored tokens of {len(tokens)}; {len(configs)} configs")
    results: list[ConfigResult] = []
    title = plot_title(meta)
    bar = tqdm(total=chunks.n_chunks * len(configs), unit="chunk", disable=not progress,
               desc="accuracy", dynamic_ncols=True,
               mininterval=0.1 if sys.stderr.isatty() else 30.0)
    try:
        for cfg in configs:
            bar.set_postfix_str(cfg.name)
            res = evaluate(model, chunks, cfg, batch=batch, progress=bar.update)
            results.append(res)
            write_results(out, results, meta)
            plot(results, out / "accuracy.png", title)
            bar.write(f"{cfg.name}: perplexity {res.perplexity:.3f}, keys {res.keys_pct:.1f}%, "
                      f"values {res.values_pct:.1f}%, {res.reduction:.1f}x fewer K/V bytes "
                      f"({res.seconds:.0f} s)")
    finally:
        bar.close()
    return results
