"""Load and validate a trace file; every problem is a `TraceError` naming the file and field."""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np

from spatten_dv.errors import UserError
from spatten_dv.models.formats import QKV_MAX, QKV_MIN
from spatten_dv.traces.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    METADATA_KEY,
    POSITIONAL,
    PROMPT_KINDS,
    ST_DTYPE_NAMES,
    Trace,
    TraceMeta,
    tensor_specs,
)

MAX_HEADER = 1 << 24


class TraceError(UserError):
    """A malformed, truncated or inconsistent trace file."""

    def __init__(self, path: str | Path, fieldname: str, problem: str) -> None:
        self.path, self.field, self.problem = str(path), fieldname, problem
        super().__init__(f"{path}: field '{fieldname}': {problem}")


_META_TYPES = {f.name: f.type for f in dataclasses.fields(TraceMeta)}
_INT_FIELDS = ("n_layers", "n_heads", "n_kv_heads", "head_dim", "n_prompt", "n_steps",
               "qkv_bits", "version")


def _check_meta(path: Path, raw: dict) -> TraceMeta:
    if raw.get("format") != FORMAT_NAME:
        raise TraceError(path, "format", f"expected '{FORMAT_NAME}', got {raw.get('format')!r}")
    if raw.get("version") != FORMAT_VERSION:
        raise TraceError(path, "version", f"unsupported version {raw.get('version')!r}; this "
                         f"loader reads version {FORMAT_VERSION}")
    for name in _META_TYPES:
        if name not in raw:
            raise TraceError(path, name, "missing from the metadata")
    unknown = sorted(set(raw) - set(_META_TYPES))
    if unknown:
        raise TraceError(path, unknown[0], "unknown metadata field")
    for name in _INT_FIELDS:
        v = raw[name]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise TraceError(path, name, f"must be a non-negative integer, got {v!r}")
    for name in ("n_layers", "n_heads", "n_kv_heads", "head_dim", "n_prompt"):
        if raw[name] < 1:
            raise TraceError(path, name, "must be at least 1")
    for name in ("model", "model_revision", "model_family", "tokenizer", "prompt_kind",
                 "prompt_source", "prompt_sha256", "prompt_text", "model_dtype",
                 "q_scale_granularity", "kv_scale_granularity"):
        if not isinstance(raw[name], str):
            raise TraceError(path, name, f"must be a string, got {type(raw[name]).__name__}")
    if raw["n_heads"] % raw["n_kv_heads"]:
        raise TraceError(path, "n_kv_heads", f"{raw['n_kv_heads']} does not divide n_heads "
                         f"{raw['n_heads']}")
    if raw["qkv_bits"] != 12:
        raise TraceError(path, "qkv_bits", f"must be 12, got {raw['qkv_bits']}")
    if raw["positional"] not in POSITIONAL:
        raise TraceError(path, "positional", f"must be one of {POSITIONAL}")
    if raw["prompt_kind"] not in PROMPT_KINDS:
        raise TraceError(path, "prompt_kind", f"must be one of {PROMPT_KINDS}")
    if not isinstance(raw["chat_template"], bool):
        raise TraceError(path, "chat_template", "must be true or false")
    if not isinstance(raw["software"], dict):
        raise TraceError(path, "software", "must be an object")
    if raw["rope_theta"] is not None and not isinstance(raw["rope_theta"], int | float):
        raise TraceError(path, "rope_theta", "must be a number or null")
    return TraceMeta(**raw)


def load_trace(path: str | Path) -> Trace:
    """Read and fully validate a trace file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceError(path, "file", f"cannot read: {exc.strerror or exc}") from None
    if len(data) < 8:
        raise TraceError(path, "header", f"file is {len(data)} bytes: truncated before the "
                         "8-byte header length")
    (hlen,) = struct.unpack("<Q", data[:8])
    if hlen > MAX_HEADER or 8 + hlen > len(data):
        raise TraceError(path, "header", f"header length {hlen} runs past the end of the "
                         f"{len(data)}-byte file (truncated or not a safetensors file)")
    try:
        header = json.loads(data[8:8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TraceError(path, "header", f"not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise TraceError(path, "header", "not a JSON object")
    md = header.pop("__metadata__", None)
    if not isinstance(md, dict) or METADATA_KEY not in md:
        raise TraceError(path, METADATA_KEY, "missing from __metadata__ (not a spatten-dv trace)")
    try:
        raw = json.loads(md[METADATA_KEY])
    except (TypeError, json.JSONDecodeError) as exc:
        raise TraceError(path, METADATA_KEY, f"not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise TraceError(path, METADATA_KEY, "not a JSON object")
    meta = _check_meta(path, raw)

    body = memoryview(data)[8 + hlen:]
    specs = tensor_specs(meta)
    for name in sorted(set(header) - set(specs)):
        raise TraceError(path, name, "unexpected tensor")
    tensors: dict[str, np.ndarray] = {}
    for name, (dtype, shape) in specs.items():
        info = header.get(name)
        if not isinstance(info, dict):
            raise TraceError(path, name, "tensor missing")
        st_dtype = ST_DTYPE_NAMES.get(info.get("dtype"))
        if st_dtype != dtype:
            raise TraceError(path, name, f"dtype {info.get('dtype')!r}, expected "
                             f"{_st_name(dtype)}")
        if list(info.get("shape", [])) != list(shape):
            raise TraceError(path, name, f"shape {info.get('shape')}, expected {list(shape)}")
        offs = info.get("data_offsets")
        if (not isinstance(offs, list) or len(offs) != 2
                or not all(isinstance(o, int) for o in offs)):
            raise TraceError(path, name, "bad data_offsets")
        begin, end = offs
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end - begin != nbytes or begin < 0:
            raise TraceError(path, name, f"data_offsets {offs} hold {end - begin} bytes, "
                             f"expected {nbytes}")
        if end > len(body):
            raise TraceError(path, name, f"data runs to byte {end} of the data section but "
                             f"the file has only {len(body)} (truncated file)")
        arr = np.frombuffer(body[begin:end], dtype=dtype.newbyteorder("<")).reshape(shape)
        tensors[name] = arr.astype(dtype)
    _check_values(path, meta, tensors)
    return Trace(meta, tensors)


def _st_name(dtype: np.dtype) -> str:
    return {v: k for k, v in ST_DTYPE_NAMES.items()}[dtype]


def _check_values(path: Path, meta: TraceMeta, t: dict[str, np.ndarray]) -> None:
    for name in ("k_int", "v_int", "q_int"):
        a = t[name]
        if a.size and (a.min() < QKV_MIN or a.max() > QKV_MAX):
            raise TraceError(path, name, f"values outside the 12-bit range [{QKV_MIN}, {QKV_MAX}]")
    for name in ("k_scale", "v_scale", "q_scale", "score_scale"):
        a = t[name]
        if not (np.isfinite(a).all() and (a > 0).all()):
            raise TraceError(path, name, "scales must be finite and positive")
    for name in ("k_res", "v_res", "q_res"):
        if t[name].size and t[name].min() < -127:
            raise TraceError(path, name, "residual -128 is not used by the format")
    if not np.isfinite(t["attn_out"]).all():
        raise TraceError(path, "attn_out", "non-finite values")
    for name in ("prompt_ids", "generated_ids"):
        if t[name].size and t[name].min() < 0:
            raise TraceError(path, name, "negative token id")


def summary(trace: Trace, path: str | Path) -> str:
    """The `spatten-dv trace info` text."""
    m = trace.meta
    size = Path(path).stat().st_size
    lines = [
        f"file          {path}",
        f"format        {m.format} v{m.version}",
        f"model         {m.model} ({m.model_family}, revision {m.model_revision})",
        f"tokenizer     {m.tokenizer}",
        f"prompt        {m.prompt_kind} from {m.prompt_source} (sha256 {m.prompt_sha256[:16]}…,"
        f" chat template: {'yes' if m.chat_template else 'no'})",
        f"layers        {m.n_layers}",
        f"heads         {m.n_heads} query, {m.n_kv_heads} KV (group {m.group_size}), head dim "
        f"{m.head_dim}",
        f"positional    {m.positional}" + (f" (theta {m.rope_theta:g})" if m.rope_theta else ""),
        f"tokens        {m.n_prompt} prompt + {m.n_steps} decode steps "
        f"(step s attends over {m.n_prompt}+s+1 rows)",
        f"steps         {m.n_steps}",
        f"formats       q/K/V int{m.qkv_bits} in int16; K/V scale {m.kv_scale_granularity}, "
        f"q scale {m.q_scale_granularity}; int8 residuals; attn_out float32",
        f"score scale   {float(trace.score_scale[0]):.6g} (layer 0)",
        f"size          {size} bytes ({size / 2**20:.2f} MiB)",
    ]
    return "\n".join(lines)
