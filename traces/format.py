"""On-disk format of one captured decode run (`traces/README.md` is the prose version).

A trace is a standard safetensors file: an 8-byte little-endian header length, a JSON header
(tensor table plus `__metadata__`), then the raw tensor bytes. The writer here emits the header
with sorted keys, tensors in name order, no timestamps, so equal inputs give equal bytes.

Version 1 tensors (L layers, H query heads, G KV heads, D head dim, S decode steps,
P prompt tokens, T = P + S cached tokens):

| name | dtype | shape | meaning |
| --- | --- | --- | --- |
| `prompt_ids` | int32 | (P,) | prompt token ids |
| `generated_ids` | int32 | (S+1,) | greedy tokens: [0] from the prompt pass, [s+1] from step s |
| `score_scale` | float64 | (L,) | the model's q.k factor (1/sqrt(D), GPT-2 layer scaling) |
| `k_int`, `v_int` | int16 | (L, G, T, D) | 12-bit K/V (post-rotary K), whole final sequence, once |
| `k_scale`, `v_scale` | float64 | (L, G) | one scale per (layer, KV head): x ~= int * scale |
| `k_res`, `v_res` | int8 | (L, G, T, D) | x = (int + res/254) * scale within scale/508 |
| `q_int` | int16 | (S, L, H, D) | 12-bit query of step s (post-rotary) |
| `q_scale` | float64 | (S, L, H) | one scale per (step, layer, head) |
| `q_res` | int8 | (S, L, H, D) | rounding residual, as for K/V |
| `attn_out` | float32 | (S, L, H, D) | the model's attention output of that head (pre o_proj) |

Step s (0-based) is the forward pass whose input is `generated_ids[s]` at position P + s. Its
query attends over rows 0 .. P + s of K and V (n_tokens = P + s + 1, its own row included, as
in causal attention); query head h reads KV head h // (H / G).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from spatten_dv.models.formats import QKV_MAX, quantize_symmetric

FORMAT_NAME = "spatten-dv-trace"
FORMAT_VERSION = 1
METADATA_KEY = "spatten_dv.trace"
RES_FRAC = 254  # residual units per integer step: |res| <= 127 always fits int8

POSITIONAL = ("learned-absolute", "rotary")
PROMPT_KINDS = ("prose", "code", "dialogue", "other")


@dataclass(frozen=True)
class TraceMeta:
    """Everything about a trace that is not a tensor (stored as JSON in `__metadata__`)."""

    model: str  # what was asked for: hub name, local folder or gguf file name
    model_revision: str  # hub commit hash, or "sha256:<hex>" of the local weights file
    model_family: str  # "gpt2" or "llama"
    tokenizer: str
    prompt_kind: str  # one of PROMPT_KINDS
    prompt_source: str  # prompt file name as given (no directories)
    prompt_sha256: str  # of the prompt file's bytes
    prompt_text: str  # the text fed to the tokenizer (after the chat template, if any)
    chat_template: bool
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    positional: str  # one of POSITIONAL
    rope_theta: float | None
    n_prompt: int
    n_steps: int
    model_dtype: str = "float32"
    qkv_bits: int = 12
    q_scale_granularity: str = "per (step, layer, head)"
    kv_scale_granularity: str = "per (layer, kv_head)"
    software: dict = field(default_factory=dict)  # versions of torch/transformers used
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION

    @property
    def n_cached(self) -> int:
        return self.n_prompt + self.n_steps

    @property
    def group_size(self) -> int:
        return self.n_heads // self.n_kv_heads

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


# name -> (dtype, shape from meta)
def tensor_specs(m: TraceMeta) -> dict[str, tuple[np.dtype, tuple[int, ...]]]:
    L, H, G, D, S, T = m.n_layers, m.n_heads, m.n_kv_heads, m.head_dim, m.n_steps, m.n_cached
    return {
        "prompt_ids": (np.dtype(np.int32), (m.n_prompt,)),
        "generated_ids": (np.dtype(np.int32), (S + 1,)),
        "score_scale": (np.dtype(np.float64), (L,)),
        "k_int": (np.dtype(np.int16), (L, G, T, D)),
        "v_int": (np.dtype(np.int16), (L, G, T, D)),
        "k_scale": (np.dtype(np.float64), (L, G)),
        "v_scale": (np.dtype(np.float64), (L, G)),
        "k_res": (np.dtype(np.int8), (L, G, T, D)),
        "v_res": (np.dtype(np.int8), (L, G, T, D)),
        "q_int": (np.dtype(np.int16), (S, L, H, D)),
        "q_scale": (np.dtype(np.float64), (S, L, H)),
        "q_res": (np.dtype(np.int8), (S, L, H, D)),
        "attn_out": (np.dtype(np.float32), (S, L, H, D)),
    }


@dataclass
class Trace:
    """A loaded (validated) or freshly captured trace: metadata plus numpy arrays."""

    meta: TraceMeta
    tensors: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> np.ndarray:
        tensors = self.__dict__.get("tensors", {})
        if name in tensors:
            return tensors[name]
        raise AttributeError(name)

    # ---- the jobs
    def n_tokens(self, step: int) -> int:
        """Rows of K/V that the query of `step` attends over (its own row included)."""
        return self.meta.n_prompt + step + 1

    def kv_head(self, head: int) -> int:
        return head // self.meta.group_size

    def job(self, step: int, layer: int, head: int) -> dict:
        """q, K, V (12-bit int64 tensors) and scales of one (step, layer, head) job."""
        g, n = self.kv_head(head), self.n_tokens(step)
        return {
            "query": torch.from_numpy(self.q_int[step, layer, head].astype(np.int64)),
            "k": torch.from_numpy(self.k_int[layer, g, :n].astype(np.int64)),
            "v": torch.from_numpy(self.v_int[layer, g, :n].astype(np.int64)),
            "q_scale": float(self.q_scale[step, layer, head]),
            "k_scale": float(self.k_scale[layer, g]),
            "v_scale": float(self.v_scale[layer, g]),
            "score_scale": float(self.score_scale[layer]),
            # real score per Q.K integer unit: the argument of softmax.score_scale()
            "real_per_unit": float(self.q_scale[step, layer, head] * self.k_scale[layer, g]
                                   * self.score_scale[layer]),
        }

    # ---- float values (the model's own, within scale/508 per element)
    def q_float(self) -> np.ndarray:
        return dequantize(self.q_int, self.q_res, self.q_scale[..., None])

    def k_float(self) -> np.ndarray:
        return dequantize(self.k_int, self.k_res, self.k_scale[..., None, None])

    def v_float(self) -> np.ndarray:
        return dequantize(self.v_int, self.v_res, self.v_scale[..., None, None])


def dequantize(ints: np.ndarray, res: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    """float64 values of 12-bit ints (plus residuals when given) at `scale` (broadcast)."""
    x = ints.astype(np.float64)
    if res is not None:
        x = x + res.astype(np.float64) / RES_FRAC
    return x * scale


def quantize_group(x: torch.Tensor) -> tuple[np.ndarray, float, np.ndarray]:
    """One group (one scale) of float values -> (int16 12-bit, scale, int8 residual).

    The scale is max|x| / 2047 (`formats.quantize_symmetric`); the residual is
    round((x / scale - int) * 254); |x / scale - int| <= 1/2 keeps it within -127..127.
    """
    x = torch.as_tensor(x).to(torch.float64)
    _, scale = quantize_symmetric(x)
    ints, _ = quantize_symmetric(x, scale)
    res = torch.round((x / scale - ints.to(torch.float64)) * RES_FRAC).clamp(-127, 127)
    # (the clamp only acts on float rounding at exactly 1/2)
    assert int(ints.abs().max()) <= QKV_MAX
    return ints.numpy().astype(np.int16), float(scale), res.numpy().astype(np.int8)


def quantize_grouped(x: torch.Tensor, group_dims: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantize with one scale per index of the first `group_dims` dimensions."""
    x = torch.as_tensor(x).to(torch.float64)
    lead = tuple(x.shape[:group_dims])
    flat = x.reshape(math.prod(lead), -1)
    ints = np.empty(flat.shape, np.int16)
    res = np.empty(flat.shape, np.int8)
    scales = np.empty(flat.shape[0], np.float64)
    for i in range(flat.shape[0]):
        ints[i], scales[i], res[i] = quantize_group(flat[i])
    return ints.reshape(x.shape), scales.reshape(lead), res.reshape(x.shape)


# ---------------------------------------------------------------- writer

_ST_DTYPES = {np.dtype(np.int8): "I8", np.dtype(np.int16): "I16", np.dtype(np.int32): "I32",
              np.dtype(np.float32): "F32", np.dtype(np.float64): "F64"}
ST_DTYPE_NAMES = {v: k for k, v in _ST_DTYPES.items()}


def validate_shapes(trace: Trace) -> None:
    specs = tensor_specs(trace.meta)
    if set(trace.tensors) != set(specs):
        raise ValueError(f"tensors {sorted(trace.tensors)} != expected {sorted(specs)}")
    for name, (dtype, shape) in specs.items():
        t = trace.tensors[name]
        if t.dtype != dtype or tuple(t.shape) != shape:
            raise ValueError(f"{name}: {t.dtype}{tuple(t.shape)} != expected {dtype}{shape}")


def to_bytes(trace: Trace) -> bytes:
    """The safetensors bytes of a trace (deterministic)."""
    validate_shapes(trace)
    return raw_bytes(trace.meta.to_json(), trace.tensors)


def raw_bytes(meta_json: str, tensors: dict[str, np.ndarray]) -> bytes:
    """safetensors bytes with sorted keys, tensors in name order, no validation (tests use it
    to build malformed files)."""
    header: dict = {"__metadata__": {METADATA_KEY: meta_json}}
    chunks, offset = [], 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        data = arr.tobytes()
        header[name] = {"dtype": _ST_DTYPES[np.dtype(arr.dtype.str.replace(">", "<"))],
                        "shape": list(arr.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    text += b" " * (-len(text) % 8)  # align the data section to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def write_trace(path: str | Path, trace: Trace) -> int:
    """Write `trace` to `path`; returns the file size in bytes."""
    data = to_bytes(trace)
    Path(path).write_bytes(data)
    return len(data)
