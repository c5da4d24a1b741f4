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
from spatten_dv.traces.inputs import Prompt, check_out_path, check_positive, read_prompt_file
from spatten_dv.traces.model_source import (  # noqa: F401  (SMOLLM2_*: re-exported)
    SMOLLM2_ALIAS,
    SMOLLM2_GGUF,
    ModelSource,
    resolve_model,
    smollm2_folder,
)

ATTN_NAME = "spatten_capture"
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


def load_model(name: str | ModelSource) -> LoadedModel:
    """A hub name, a local model folder, a local .gguf file, or the alias smollm2-135m-instruct
    (or its `model_source.resolve_model`, which checks it first: without a reachable hub, a hub
    name loads from the local cache only, and fails at once if it is not there)."""
    src = name if isinstance(name, ModelSource) else resolve_model(name)
    transformers = _transformers()
    register_attention()
    kw: dict = {"gguf_file": src.gguf_file} if src.gguf_file else {}
    if src.offline:
        kw["local_files_only"] = True
    try:
        tok = transformers.AutoTokenizer.from_pretrained(src.folder, **kw)
        model = transformers.AutoModelForCausalLM.from_pretrained(
            src.folder, dtype=torch.float32, attn_implementation=ATTN_NAME, **kw)
    except OSError as exc:
        raise UserError(f"cannot load model {src.name!r}: {str(exc).splitlines()[0]}") from None
    model.eval()
    if src.gguf_file:
        revision = _sha256_file(Path(src.folder) / src.gguf_file)
    elif not src.hub:
        folder = Path(src.folder)
        weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
        revision = _sha256_file(weights[0]) if weights else "unknown"
    else:
        revision = getattr(model.config, "_commit_hash", None) or "unknown"
    return LoadedModel(model, tok, src.label, revision)


# ---------------------------------------------------------------- prompts


def read_prompt(path: Path | Prompt, tokenizer, chat: bool) -> tuple[str, bytes]:
    """(text fed to the tokenizer, raw file bytes).

    With `chat`, the file is a transcript in one of the forms of traces/transcript.py
    (`### user` headings, `User:` prefixes, JSON messages, plain text); its turns go through
    the tokenizer's chat template with a generation prompt, so the decode steps write the
    assistant's next reply. Pass a `Prompt` (inputs.read_prompt_file) to use a file already
    read and checked.
    """
    prompt = path if isinstance(path, Prompt) else read_prompt_file(Path(path), chat)
    if not chat:
        return prompt.text, prompt.raw
    if getattr(tokenizer, "chat_template", None) is None:
        raise UserError("--chat: the model's tokenizer has no chat template")
    return tokenizer.apply_chat_template(prompt.messages, tokenize=False,
                                         add_generation_prompt=True), prompt.raw


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


def capture_to_file(model_name: str | ModelSource, prompt_file: Path, steps: int, out: Path,
                    prompt_kind: str = "other", chat: bool = False, threads: int = 1,
                    progress: bool = True, loaded: LoadedModel | None = None) -> Trace:
    """The whole `spatten-dv capture`: check the inputs, load, tokenize, decode, quantize,
    write. Every input (steps, threads, prompt file or chat transcript, `out`, the model's
    source) is checked before the model is loaded."""
    check_positive(steps, "--steps")
    check_positive(threads, "--threads")
    if prompt_kind not in PROMPT_KINDS:
        raise UserError(f"--prompt-kind must be one of {PROMPT_KINDS}")
    prompt = read_prompt_file(Path(prompt_file), chat)
    check_out_path(Path(out))
    if loaded is None and not isinstance(model_name, ModelSource):
        model_name = resolve_model(model_name)
    saved = (torch.are_deterministic_algorithms_enabled(), torch.random.get_rng_state())
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)
    with torch_threads(threads):
        try:
            lm = loaded or load_model(model_name)
            text, raw = read_prompt(prompt, lm.tokenizer, chat)
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
