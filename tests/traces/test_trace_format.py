"""Trace format round trip, loader errors (each naming file and field) and `trace info`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import struct

import numpy as np
import pytest

from spatten_dv.commands import trace as trace_cmd
from spatten_dv.errors import UserError
from spatten_dv.traces.format import (
    FORMAT_VERSION,
    Trace,
    TraceMeta,
    quantize_grouped,
    raw_bytes,
    tensor_specs,
    write_trace,
)
from spatten_dv.traces.loader import TraceError, load_trace


def make_trace(seed: int = 0, L: int = 2, H: int = 4, G: int = 2, D: int = 8, P: int = 5,
               S: int = 3) -> Trace:
    rng = np.random.default_rng(seed)
    meta = TraceMeta(
        model="synthetic", model_revision="none", model_family="llama", tokenizer="none",
        prompt_kind="other", prompt_source="none.txt", prompt_sha256="0" * 64,
        prompt_text="héllo", chat_template=False, n_layers=L, n_heads=H, n_kv_heads=G,
        head_dim=D, positional="rotary", rope_theta=10000.0, n_prompt=P, n_steps=S,
        software={"torch": "x"})
    k_int, k_scale, k_res = quantize_grouped(rng.normal(size=(L, G, P + S, D)), 2)
    v_int, v_scale, v_res = quantize_grouped(rng.normal(size=(L, G, P + S, D)), 2)
    q_int, q_scale, q_res = quantize_grouped(rng.normal(size=(S, L, H, D)), 3)
    tensors = {
        "prompt_ids": rng.integers(0, 1000, P).astype(np.int32),
        "generated_ids": rng.integers(0, 1000, S + 1).astype(np.int32),
        "score_scale": np.full(L, D**-0.5),
        "k_int": k_int, "k_scale": k_scale, "k_res": k_res,
        "v_int": v_int, "v_scale": v_scale, "v_res": v_res,
        "q_int": q_int, "q_scale": q_scale, "q_res": q_res,
        "attn_out": rng.normal(size=(S, L, H, D)).astype(np.float32),
    }
    return Trace(meta, tensors)


def test_roundtrip(tmp_path):
    t = make_trace()
    path = tmp_path / "t.safetensors"
    write_trace(path, t)
    u = load_trace(path)
    assert u.meta == t.meta
    for name, arr in t.tensors.items():
        assert u.tensors[name].dtype == arr.dtype
        np.testing.assert_array_equal(u.tensors[name], arr)
    # a standard safetensors file: the reference reader agrees
    st = pytest.importorskip("safetensors.numpy")
    other = st.load_file(str(path))
    assert sorted(other) == sorted(t.tensors)
    for name, arr in t.tensors.items():
        np.testing.assert_array_equal(other[name], arr)
    # writing again gives the same bytes
    path2 = tmp_path / "t2.safetensors"
    write_trace(path2, make_trace())
    assert path.read_bytes() == path2.read_bytes()


def test_quantization_and_residuals():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(3, 5, 64)) * rng.uniform(0.1, 10, size=(3, 1, 1))
    ints, scales, res = quantize_grouped(x, 1)
    assert ints.dtype == np.int16 and res.dtype == np.int8 and scales.shape == (3,)
    assert np.abs(ints).max() == 2047
    for i in range(3):
        np.testing.assert_allclose(scales[i], np.abs(x[i]).max() / 2047)
        np.testing.assert_array_equal(ints[i], np.clip(np.round(x[i] / scales[i]), -2048, 2047))
        # int + residual reproduces the float within scale/508
        rec = (ints[i] + res[i] / 254.0) * scales[i]
        assert np.abs(rec - x[i]).max() <= scales[i] / 508 * 1.0001
        assert np.abs(ints[i] * scales[i] - x[i]).max() <= scales[i] / 2 * 1.0001


def test_job_view():
    t = make_trace()
    job = t.job(step=2, layer=1, head=3)
    assert job["k"].shape == (t.meta.n_prompt + 3, t.meta.head_dim)
    np.testing.assert_array_equal(job["k"].numpy(), t.k_int[1, 1, : t.meta.n_prompt + 3])
    assert t.kv_head(1) == 0 and t.kv_head(2) == 1
    assert job["real_per_unit"] == pytest.approx(
        t.q_scale[2, 1, 3] * t.k_scale[1, 1] * t.score_scale[1])


# ---------------------------------------------------------------- malformed files


def _write_raw(path, meta: dict, tensors: dict) -> None:
    path.write_bytes(raw_bytes(json.dumps(meta, sort_keys=True), tensors))


def _expect(path, fieldname: str) -> TraceError:
    with pytest.raises(TraceError) as info:
        load_trace(path)
    err = info.value
    assert isinstance(err, UserError)
    assert err.field == fieldname, str(err)
    assert str(path) in str(err) and f"'{fieldname}'" in str(err)
    return err


def test_truncated(tmp_path):
    path = tmp_path / "t.safetensors"
    write_trace(path, make_trace())
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-10])
    err = _expect(cut, "v_scale")  # the last tensor in name order
    assert "truncated" in str(err)
    cut.write_bytes(data[:100])
    assert "truncated" in str(_expect(cut, "header"))
    cut.write_bytes(data[:5])
    _expect(cut, "header")
    _expect(tmp_path / "missing.safetensors", "file")


def test_missing_and_bad_fields(tmp_path):
    t = make_trace()
    meta = dataclasses.asdict(t.meta)
    path = tmp_path / "bad.safetensors"
    for fieldname in ("n_heads", "prompt_kind", "model"):
        m = dict(meta)
        del m[fieldname]
        _write_raw(path, m, t.tensors)
        assert "missing" in str(_expect(path, fieldname))
    m = dict(meta, version=FORMAT_VERSION + 1)
    _write_raw(path, m, t.tensors)
    assert "version" in str(_expect(path, "version"))
    m = dict(meta, n_kv_heads=3)
    _write_raw(path, m, t.tensors)
    _expect(path, "n_kv_heads")
    m = dict(meta, format="other")
    _write_raw(path, m, t.tensors)
    _expect(path, "format")
    path.write_bytes(raw_bytes("{not json", t.tensors))
    _expect(path, "spatten_dv.trace")


def test_bad_tensors(tmp_path):
    t = make_trace()
    meta = dataclasses.asdict(t.meta)
    path = tmp_path / "bad.safetensors"
    for name in tensor_specs(t.meta):
        tensors = dict(t.tensors)
        del tensors[name]
        _write_raw(path, meta, tensors)
        assert "missing" in str(_expect(path, name))
    tensors = dict(t.tensors, k_int=t.k_int.astype(np.int32))
    _write_raw(path, meta, tensors)
    assert "dtype" in str(_expect(path, "k_int"))
    tensors = dict(t.tensors, q_scale=t.q_scale.astype(np.float32))
    _write_raw(path, meta, tensors)
    _expect(path, "q_scale")
    tensors = dict(t.tensors, v_int=t.v_int[:, :, :-1])
    _write_raw(path, meta, tensors)
    assert "shape" in str(_expect(path, "v_int"))
    bad = t.q_int.copy()
    bad[0, 0, 0, 0] = 2048
    _write_raw(path, meta, dict(t.tensors, q_int=bad))
    assert "12-bit" in str(_expect(path, "q_int"))
    bad = t.k_scale.copy()
    bad[0, 0] = 0.0
    _write_raw(path, meta, dict(t.tensors, k_scale=bad))
    _expect(path, "k_scale")
    _write_raw(path, meta, dict(t.tensors, extra=np.zeros(3, np.int8)))
    _expect(path, "extra")


def test_header_corruption(tmp_path):
    path = tmp_path / "t.safetensors"
    write_trace(path, make_trace())
    data = bytearray(path.read_bytes())
    (hlen,) = struct.unpack("<Q", data[:8])
    data[:8] = struct.pack("<Q", hlen + 10**6)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(bytes(data))
    _expect(bad, "header")


# ---------------------------------------------------------------- trace info


def _cli(argv: list[str]) -> int:
    """What spatten_dv.cli.main does, with this module's command registered."""
    from spatten_dv import cli

    parser = argparse.ArgumentParser(prog="spatten-dv")
    sub = parser.add_subparsers(dest="command")
    trace_cmd.register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"spatten-dv {args.command}: error: {exc}", file=cli.sys.stderr)
        return 2


def test_trace_info(tmp_path, capsys):
    path = tmp_path / "t.safetensors"
    write_trace(path, make_trace())
    assert _cli(["trace", "info", str(path)]) == 0
    out = capsys.readouterr().out
    for text in ("synthetic", "layers        2", "4 query, 2 KV", "5 prompt + 3 decode steps",
                 "int12", f"{path.stat().st_size} bytes", "prompt        other"):
        assert text in out, out
    path.write_bytes(path.read_bytes()[:-1])
    assert _cli(["trace", "info", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and "'v_scale'" in err


def test_trace_info_via_main(tmp_path):
    """Through the real entry point."""
    from spatten_dv import cli

    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"1234")
    assert cli.main(["trace", "info", str(path)]) == 2
