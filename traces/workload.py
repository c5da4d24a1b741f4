"""GPT-2 workload summaries published with SpAtten: a validating loader, and a converter into
job descriptors for the core that reproduce GPT-2's pruning shapes exactly.

A workload CSV has one row per (decode step, layer, head) of a GPT-2 run with SpAtten's pruning:
sentence length, how many keys and values were fetched after pruning, the quantisation widths
and whether the LSBs were refetched. `docs/workloads.md` documents the columns, the mapping onto
descriptors and the data the jobs attend over.

* `load_workload(path)` parses and validates a CSV (plain or gzip). Every problem is a
  `WorkloadError` (a `UserError`) naming the file, the line and the column.
* `build_jobs(workload, source)` turns the rows into `Job`s plus the `DramImage` holding the K/V
  planes they read. Running them in order through one `SpAttenCoreModel` fetches exactly
  `key_fetch_num` keys and `value_fetch_num` values per row, and refetches LSBs exactly where
  `if_requant` says. Q/K/V come from a captured trace (`TraceSource`) or are synthetic and
  labelled so (`SyntheticSource`).
* `replay(plan)` runs the jobs through the model and checks them against the CSV row by row.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import torch

from spatten_dv.errors import UserError
from spatten_dv.models.core import SpAttenCoreModel
from spatten_dv.models.descriptor import IMP_SHIFT_BITS, Job, JobResult, Status
from spatten_dv.models.layout import plane_bytes, plane_fetch_beats, write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import (
    DEFAULT_PARAMS,
    LSB_WIDTHS,
    PLANE_WIDTHS,
    QKV_BITS,
    CoreParams,
)
from spatten_dv.models.softmax import score_scale

# ------------------------------------------------------------------------------- the format

# Column name -> attribute of WorkloadRow, in the order SpAtten's exporter writes them.
COLUMNS: dict[str, str] = {
    "iteration_id": "step",
    "layer_id": "layer",
    "head_id": "head",
    "embedding_length_D": "head_dim",
    "sentence_length_L": "n_tokens",
    "key_fetch_num": "keys",
    "quant_key_bit": "key_bits",
    "quant_query_bit": "query_bits",
    "auto_requant_thres": "requant_thresh",
    "if_requant": "requant",
    "auto_requant_incre": "requant_incre",
    "value_fetch_num": "values",
    "quant_value_bit": "value_bits",
    "if_accumulate_importance": "acc_importance",
    "if_rescale_previous_importance": "rescale_importance",
    "if_topk": "topk_flag",
    "topk": "topk",
}
OFF = -1  # the exporter's "not used / not quantised"
MAX_BITS = 32
GPT2_SIZES = {  # model name -> (layers, heads); all have head dim 64
    "gpt2": (12, 12),
    "gpt2-medium": (24, 16),
    "gpt2-large": (36, 20),
    "gpt2-xl": (48, 25),
}
REQUANT_ALWAYS = 0xFFFF  # Q1.15 max prob <= 32768 < 0xFFFF: the LSBs are always refetched
REQUANT_NEVER = 0
PLANES_BASE = 0x1000_0000
# imp_shift on the job after a row marked if_rescale_previous_importance. The CSV does not give
# SpAtten's factor; halving once per step makes the importance an exponential average in which
# older steps weigh less. It changes which tokens are kept, never how many.
RESCALE_SHIFT = 1
SHIPPED_DIR = "workloads"  # inside the spatten_dv.traces package (traces/workloads/)


class WorkloadError(UserError):
    """A malformed, truncated or inconsistent workload CSV, or rows the core cannot replay."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None,
                 column: str | None = None) -> None:
        self.path, self.line, self.column, self.problem = str(path), line, column, problem
        where = str(path)
        if line is not None:
            where += f": line {line}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {problem}")


@dataclass(frozen=True)
class WorkloadRow:
    """One CSV row. Integer columns keep the file's -1 for "off"."""

    line: int  # 1-based line in the (uncompressed) file
    step: int
    layer: int
    head: int
    head_dim: int
    n_tokens: int  # sentence_length_L
    keys: int  # key_fetch_num
    key_bits: int  # quant_key_bit: K MSB width, -1 = not quantised (12 on the core)
    query_bits: int
    requant_thresh: float  # auto_requant_thres (max-probability threshold), -1 = off
    requant: bool  # if_requant: the LSBs were refetched
    requant_incre: int  # auto_requant_incre: bits the refetch adds, -1 = off
    values: int  # value_fetch_num
    value_bits: int
    acc_importance: bool
    rescale_importance: bool
    topk_flag: bool  # if_topk: a token top-k was taken after this row
    topk: int  # tokens it kept, -1 when if_topk is False


@dataclass
class Workload:
    path: str
    name: str  # file name without .csv / .csv.gz
    rows: list[WorkloadRow]
    config: str | None  # the trailer line: the config file of the run
    model: str | None  # "gpt2", "gpt2-medium", ... from the config path; None if unknown
    dataset: str | None
    n_layers: int  # of the model (or as seen in the rows when the model is unknown)
    n_heads: int
    sha256: str  # of the uncompressed text
    extra_columns: tuple[str, ...] = ()

    @property
    def steps(self) -> list[int]:
        return sorted({r.step for r in self.rows})

    @property
    def layers(self) -> list[int]:
        return sorted({r.layer for r in self.rows})

    @property
    def heads(self) -> list[int]:
        return sorted({r.head for r in self.rows})


# ------------------------------------------------------------------------------- the loader

def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        x = float(text)  # "64.0": the exporter writes some integer columns as floats
        if not math.isfinite(x) or x != int(x):
            raise ValueError(text) from None
        return int(x)


def _bool(text: str) -> bool:
    low = text.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise ValueError(text)


def _float(text: str) -> float:
    x = float(text)
    if not math.isfinite(x):
        raise ValueError(text)
    return x


_PARSERS: dict[str, Callable[[str], Any]] = {
    "iteration_id": _int, "layer_id": _int, "head_id": _int, "embedding_length_D": _int,
    "sentence_length_L": _int, "key_fetch_num": _int, "quant_key_bit": _int,
    "quant_query_bit": _int, "auto_requant_thres": _float, "if_requant": _bool,
    "auto_requant_incre": _int, "value_fetch_num": _int, "quant_value_bit": _int,
    "if_accumulate_importance": _bool, "if_rescale_previous_importance": _bool,
    "if_topk": _bool, "topk": _int,
}
_KINDS = {_int: "an integer", _bool: "True or False", _float: "a number"}


def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise WorkloadError(path, f"cannot read: {exc.strerror or exc}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as exc:
            raise WorkloadError(path, f"corrupt or truncated gzip data ({exc})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WorkloadError(path, f"not UTF-8 text (byte {exc.start})") from None


def _is_trailer(fields: list[str]) -> bool:
    """The exporter's last line: the config path in the first field, the others empty."""
    if not fields or not fields[0].strip() or any(f.strip() for f in fields[1:]):
        return False
    try:
        float(fields[0])
    except ValueError:
        return True
    return False


def _check_row(path: Path, r: WorkloadRow) -> None:
    def bad(column: str, problem: str) -> WorkloadError:
        return WorkloadError(path, problem, r.line, column)

    for column in ("iteration_id", "layer_id", "head_id"):
        if getattr(r, COLUMNS[column]) < 0:
            raise bad(column, f"must be >= 0, got {getattr(r, COLUMNS[column])}")
    if r.head_dim < 1:
        raise bad("embedding_length_D", f"must be >= 1, got {r.head_dim}")
    if r.n_tokens < 1:
        raise bad("sentence_length_L", f"must be >= 1, got {r.n_tokens}")
    if not 1 <= r.keys <= r.n_tokens:
        raise bad("key_fetch_num", f"{r.keys} is outside 1..sentence_length_L ({r.n_tokens})")
    if not 1 <= r.values <= r.keys:
        raise bad("value_fetch_num", f"{r.values} is outside 1..key_fetch_num ({r.keys})")
    for column in ("quant_key_bit", "quant_query_bit", "quant_value_bit"):
        v = getattr(r, COLUMNS[column])
        if v != OFF and not 1 <= v <= MAX_BITS:
            raise bad(column, f"must be -1 (not quantised) or 1..{MAX_BITS}, got {v}")
    if r.requant_thresh != OFF and not 0 < r.requant_thresh <= 1:
        raise bad("auto_requant_thres", f"must be -1 (off) or in (0, 1], got {r.requant_thresh}")
    if r.requant_incre != OFF and not 1 <= r.requant_incre <= MAX_BITS:
        raise bad("auto_requant_incre", f"must be -1 (off) or 1..{MAX_BITS}, got "
                  f"{r.requant_incre}")
    if r.requant and (r.requant_thresh == OFF or r.requant_incre == OFF):
        raise bad("if_requant", "True, but progressive quantization is off in this row "
                  "(auto_requant_thres or auto_requant_incre is -1)")
    if r.topk_flag and not 1 <= r.topk <= r.n_tokens:
        raise bad("topk", f"if_topk is True, so topk must be in 1..{r.n_tokens}, got {r.topk}")
    if not r.topk_flag and r.topk != OFF:
        raise bad("topk", f"if_topk is False, so topk must be -1, got {r.topk}")


def model_from_config(config: str | None) -> tuple[str | None, str | None]:
    """(model, dataset) from a trailer such as `configs/gpt2/ptb/medium_baseline.yml`."""
    if not config:
        return None, None
    parts = PurePosixPath(config.strip()).parts
    if len(parts) < 3 or parts[0] != "configs" or parts[1] != "gpt2":
        return None, None
    dataset = parts[2] if len(parts) >= 4 else None
    stem = parts[-1]
    for size in ("medium", "large", "xl"):
        if stem.startswith(size):
            return f"gpt2-{size}", dataset
    return "gpt2", dataset


def load_workload(path: str | Path, *, require_trailer: bool = True) -> Workload:
    """Read and validate a workload CSV (gzip-compressed or not).

    Rules (docs/workloads.md): a header naming every column of COLUMNS (any order; unknown
    columns are ignored and listed in `extra_columns`), data rows with one field per column,
    strictly increasing (step, layer, head), and the config-path trailer as the last line. A
    missing trailer is reported as a truncated file unless `require_trailer` is False.
    """
    path = Path(path)
    text = _read_text(path)
    lines = text.splitlines()
    numbered = [(i + 1, line) for i, line in enumerate(lines) if line.strip()]
    if not numbered:
        raise WorkloadError(path, "empty file")
    parsed = list(csv.reader(io.StringIO("\n".join(line for _, line in numbered))))
    if len(parsed) != len(numbered):  # a quoted field spanning lines
        raise WorkloadError(path, "quoted fields spanning lines are not part of the format")
    header_line, header = numbered[0][0], [h.strip() for h in parsed[0]]
    if not set(COLUMNS) & set(header):
        raise WorkloadError(path, f"the first line is not a header: it names none of the "
                            f"columns ({', '.join(list(COLUMNS)[:3])}, ...) (no header line?)",
                            header_line)
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise WorkloadError(path, f"duplicate column '{dupes[0]}' in the header", header_line)
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise WorkloadError(path, f"header lacks column(s) {', '.join(missing)}", header_line,
                            missing[0])
    index = {c: header.index(c) for c in COLUMNS}
    rows: list[WorkloadRow] = []
    config: str | None = None
    n = len(numbered)
    for k in range(1, n):
        line_no, fields = numbered[k][0], parsed[k]
        if config is not None:
            raise WorkloadError(path, f"data after the config trailer line ({config!r}, line "
                                f"{numbered[k - 1][0]}); the trailer must be the last line",
                                line_no)
        if [f.strip() for f in fields] == header:
            raise WorkloadError(path, "header line repeated (two files concatenated?)", line_no)
        if _is_trailer(fields):
            if len(fields) != len(header):
                raise WorkloadError(path, f"config trailer line has {len(fields)} fields, "
                                    f"expected {len(header)} (truncated file?)", line_no)
            config = fields[0].strip()
            continue
        if len(fields) != len(header):
            hint = " (truncated file?)" if k == n - 1 else ""
            raise WorkloadError(path, f"expected {len(header)} fields, got {len(fields)}{hint}",
                                line_no)
        values: dict[str, Any] = {"line": line_no}
        for column, attr in COLUMNS.items():
            raw = fields[index[column]].strip()
            parser = _PARSERS[column]
            try:
                values[attr] = parser(raw)
            except ValueError:
                hint = " (truncated file?)" if k == n - 1 else ""
                raise WorkloadError(path, f"{raw!r} is not {_KINDS[parser]}{hint}", line_no,
                                    column) from None
        row = WorkloadRow(**values)
        _check_row(path, row)
        if rows and (row.step, row.layer, row.head) <= (rows[-1].step, rows[-1].layer,
                                                         rows[-1].head):
            prev = rows[-1]
            raise WorkloadError(path, f"(step, layer, head) = ({row.step}, {row.layer}, "
                                f"{row.head}) does not follow ({prev.step}, {prev.layer}, "
                                f"{prev.head}) of line {prev.line}: rows must be in strictly "
                                "increasing (step, layer, head) order", line_no)
        rows.append(row)
    if not rows:
        raise WorkloadError(path, "no data rows")
    if config is None and require_trailer:
        raise WorkloadError(path, f"the file ends at line {numbered[-1][0]} without the config "
                            "trailer line that SpAtten's exporter writes last (truncated file?)")
    model, dataset = model_from_config(config)
    max_layer = max(r.layer for r in rows)
    max_head = max(r.head for r in rows)
    if model is not None:
        n_layers, n_heads = GPT2_SIZES[model]
        for r in rows:
            if r.layer >= n_layers or r.head >= n_heads:
                column = "layer_id" if r.layer >= n_layers else "head_id"
                raise WorkloadError(path, f"the config names {model} ({n_layers} layers, "
                                    f"{n_heads} heads) but this row has layer {r.layer}, head "
                                    f"{r.head}", r.line, column)
    else:
        n_layers, n_heads = max_layer + 1, max_head + 1
    name = path.name
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    return Workload(path=str(path), name=name, rows=rows, config=config, model=model,
                    dataset=dataset, n_layers=n_layers, n_heads=n_heads,
                    sha256=hashlib.sha256(text.encode("utf-8")).hexdigest(),
                    extra_columns=tuple(h for h in header if h not in COLUMNS))


# ------------------------------------------------------------------------------- shipped data

def shipped_dir() -> Path:
    """traces/workloads/: the CSVs published with SpAtten, gzip-compressed."""
    return Path(str(resources.files("spatten_dv.traces") / SHIPPED_DIR))


def shipped_workloads() -> list[Path]:
    return sorted(shipped_dir().glob("*.csv.gz"))


def resolve_workload(spec: str | Path) -> Path:
    """A path as given if it exists, else a shipped workload by name (with or without .csv)."""
    p = Path(spec)
    if p.exists():
        return p
    name = str(spec)
    for suffix in (".gz", ".csv"):
        name = name.removesuffix(suffix)
    for cand in shipped_workloads():
        if cand.name == f"{name}.csv.gz":
            return cand
    names = ", ".join(c.name.removesuffix(".csv.gz") for c in shipped_workloads())
    raise WorkloadError(spec, f"no such file, and not a shipped workload (shipped: {names})")


# ------------------------------------------------------------------------------- summary

def _runs(pairs: Sequence[tuple[int, Any]]) -> str:
    """'0-1: 994, 2: 921, 3-4: 819' from [(layer, value), ...] sorted by layer."""
    out: list[str] = []
    i = 0
    while i < len(pairs):
        j = i
        while j + 1 < len(pairs) and pairs[j + 1][1] == pairs[i][1] \
                and pairs[j + 1][0] == pairs[j][0] + 1:
            j += 1
        a, b = pairs[i][0], pairs[j][0]
        out.append(f"{a}{'' if a == b else f'-{b}'}: {pairs[i][1]}")
        i = j + 1
    return ", ".join(out)


def _bits_text(values: Iterable[int]) -> str:
    return "/".join("off" if v == OFF else str(v) for v in sorted(set(values)))


def summarize(wl: Workload, params: CoreParams = DEFAULT_PARAMS) -> dict:
    """The facts `spatten-dv workload info` prints (also its --json output)."""
    rows = wl.rows
    groups: dict[tuple[int, int], list[WorkloadRow]] = {}
    for r in rows:
        groups.setdefault((r.step, r.layer), []).append(r)
    sum_l = sum(r.n_tokens for r in rows)
    keys = sum(r.keys for r in rows)
    values = sum(r.values for r in rows)
    pq_rows = [r for r in rows if r.requant_thresh != OFF and r.requant_incre != OFF]
    refetch = sum(r.requant for r in rows)
    equal_keys = all(len({r.keys for r in g}) == 1 for g in groups.values())
    equal_values = all(len({r.values for r in g}) == 1 for g in groups.values())
    # head pruning: heads absent from a (step, layer) that has rows
    absent = sum(wl.n_heads - len(g) for g in groups.values())
    heads_per_layer = [(layer, f"{len(groups[(s, layer)])}/{wl.n_heads}")
                       for (s, layer) in sorted(groups) if s == rows[-1].step]
    # key counts of the last step, by layer (the steady-state pruning schedule)
    last = rows[-1].step
    sched = [(layer, "/".join(str(k) for k in sorted({r.keys for r in g}, reverse=True)))
             for (s, layer), g in sorted(groups.items()) if s == last]
    # topk annotations: the next (step, layer) group fetches `topk` keys
    order = sorted(groups)
    topk_total = topk_ok = 0
    for i, key in enumerate(order):
        for r in groups[key]:
            if r.topk_flag:
                topk_total += 1
                if i + 1 < len(order) and {x.keys for x in groups[order[i + 1]]} == {r.topk}:
                    topk_ok += 1
    first_step_full = all(r.keys == r.n_tokens for r in rows if r.step == rows[0].step)
    layer0_full = [r.step for r in rows if r.layer == 0 and r.keys == r.n_tokens]
    widths = sorted({core_widths(r, params)[:4] for r in rows})
    notes = sorted({n for r in rows for n in core_widths(r, params)[4]})
    steps = wl.steps
    return {
        "file": wl.path,
        "name": wl.name,
        "sha256": wl.sha256,
        "config": wl.config,
        "model": wl.model,
        "dataset": wl.dataset,
        "model_layers": wl.n_layers,
        "model_heads": wl.n_heads,
        "rows": len(rows),
        "steps": {"first": steps[0], "last": steps[-1], "count": len(steps)},
        "layers": {"first": wl.layers[0], "last": wl.layers[-1], "count": len(wl.layers)},
        "heads_seen": len(wl.heads),
        "sentence_length": {"min": min(r.n_tokens for r in rows),
                            "max": max(r.n_tokens for r in rows)},
        "head_dim": sorted({r.head_dim for r in rows}),
        "keys_fetched_pct": 100.0 * keys / sum_l,
        "values_fetched_pct": 100.0 * values / sum_l,
        "values_per_key_pct": 100.0 * values / keys,
        "keys_equal_across_heads": equal_keys,
        "values_equal_across_heads": equal_values,
        "first_step_fetches_every_key": first_step_full,
        "steps_with_full_layer0": len(set(layer0_full)),
        "key_schedule_last_step": _runs(sched),
        "absent_head_rows": absent,
        "heads_per_layer_last_step": _runs(heads_per_layer),
        "bits": {"key_msb": _bits_text(r.key_bits for r in rows),
                 "key_lsb_increment": _bits_text(r.requant_incre for r in rows),
                 "query": _bits_text(r.query_bits for r in rows),
                 "value": _bits_text(r.value_bits for r in rows)},
        "core_widths": [{"msb_bits": w[0], "lsb_bits": w[1], "v_bits": w[2], "q_bits": w[3]}
                        for w in widths],
        "width_notes": notes,
        "requant_threshold": sorted({r.requant_thresh for r in rows}),
        "progressive_quant_rows": len(pq_rows),
        "lsb_refetch_rows": refetch,
        "lsb_refetch_pct": 100.0 * refetch / len(rows),
        "acc_importance_rows": sum(r.acc_importance for r in rows),
        "rescale_importance_rows": sum(r.rescale_importance for r in rows),
        "topk_rows": topk_total,
        "topk_matching_next_layer": topk_ok,
        "extra_columns": list(wl.extra_columns),
    }


def format_summary(s: dict) -> str:
    model = s["model"] or "unknown model"
    lines = [
        f"file          {s['file']}",
        f"sha256        {s['sha256']} (uncompressed)",
        f"config        {s['config'] or '(none)'}",
        f"model         {model} ({s['model_layers']} layers x {s['model_heads']} heads"
        f"{', from the config path' if s['model'] else ', as seen in the rows'}), dataset "
        f"{s['dataset'] or 'unknown'}, head dim {'/'.join(map(str, s['head_dim']))}",
        f"rows          {s['rows']}",
        f"steps         {s['steps']['count']} ({s['steps']['first']}..{s['steps']['last']}), "
        f"sentence length L {s['sentence_length']['min']}..{s['sentence_length']['max']}",
        f"layers        {s['layers']['count']} ({s['layers']['first']}..{s['layers']['last']})"
        f", heads seen {s['heads_seen']}",
        f"head pruning  {s['absent_head_rows']} (step, layer, head) rows absent; heads per layer "
        f"(last step): {s['heads_per_layer_last_step']}",
        f"keys          {s['keys_fetched_pct']:.2f} % of L fetched; equal across heads: "
        f"{'yes' if s['keys_equal_across_heads'] else 'no'}; first step fetches every key: "
        f"{'yes' if s['first_step_fetches_every_key'] else 'no'}; layer 0 full in "
        f"{s['steps_with_full_layer0']} of {s['steps']['count']} steps",
        f"key schedule  last step, by layer: {s['key_schedule_last_step']}",
        f"values        {s['values_fetched_pct']:.2f} % of L fetched ({s['values_per_key_pct']:.1f}"
        f" % of the keys); equal across heads: "
        f"{'yes' if s['values_equal_across_heads'] else 'no'}",
        f"bits          K MSB {s['bits']['key_msb']}, K LSB increment "
        f"{s['bits']['key_lsb_increment']}, q {s['bits']['query']}, V {s['bits']['value']}",
        "core widths   " + "; ".join(f"msb {w['msb_bits']} lsb {w['lsb_bits']} v {w['v_bits']} "
                                     f"q {w['q_bits']}" for w in s["core_widths"])
        + ("" if not s["width_notes"] else " (" + "; ".join(s["width_notes"]) + ")"),
        f"LSB refetch   {s['lsb_refetch_rows']} of {s['rows']} rows ({s['lsb_refetch_pct']:.2f} "
        f"%); progressive quantization on in {s['progressive_quant_rows']} rows, threshold "
        f"{'/'.join('off' if t == OFF else f'{t:g}' for t in s['requant_threshold'])}",
        f"importance    accumulated in {s['acc_importance_rows']} rows, rescaled in "
        f"{s['rescale_importance_rows']} (imp_shift on the next job); top-k marks "
        f"{s['topk_rows']}, {s['topk_matching_next_layer']} equal to the next layer's key count",
    ]
    if s["extra_columns"]:
        lines.append(f"ignored       columns {', '.join(s['extra_columns'])}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------- widths

def _round_up(bits: int, supported: Sequence[int]) -> int:
    for w in sorted(supported):
        if w >= bits:
            return w
    return max(supported)


def core_widths(r: WorkloadRow, params: CoreParams = DEFAULT_PARAMS
                ) -> tuple[int, int, int, int, tuple[str, ...]]:
    """(msb_bits, lsb_bits, v_bits, q_bits, notes) the core runs a row with.

    -1 (not quantised) is the core's full 12 bits. A width the core lacks is rounded up to the
    next supported one (widths above 12 become 12), and each such mapping is named in `notes`.
    LSBs: with progressive quantization on (auto_requant_thres and auto_requant_incre not -1)
    the LSB plane is auto_requant_incre bits, rounded up to a supported LSB width and cut so
    that msb + lsb <= 12. The query is always 12-bit on the core.
    """
    notes: list[str] = []

    def plane(bits: int, what: str) -> int:
        if bits == OFF:
            return QKV_BITS
        w = _round_up(min(bits, QKV_BITS), PLANE_WIDTHS)
        if w != bits:
            notes.append(f"{what} {bits} -> {w} bits")
        return w

    msb = plane(r.key_bits, "K MSB")
    v = plane(r.value_bits, "V")
    lsb = 0
    if r.requant_thresh != OFF and r.requant_incre != OFF:
        lsb = _round_up(r.requant_incre, [w for w in LSB_WIDTHS if w])
        while lsb and msb + lsb > QKV_BITS:
            lsb = max(w for w in LSB_WIDTHS if w < lsb)
        if lsb != r.requant_incre:
            notes.append(f"K LSB increment {r.requant_incre} -> {lsb} bits (K MSB {msb})")
    if r.query_bits != QKV_BITS and r.query_bits != OFF:
        notes.append(f"q {r.query_bits} -> 12 bits")
    return msb, lsb, v, QKV_BITS, tuple(notes)


# ------------------------------------------------------------------------------- data sources

class TraceSource:
    """q, K, V and score scales from a captured trace (traces/README.md).

    GPT-2 (step, layer, head) reads trace step `step mod S`, layer `layer mod L`, query head
    `head mod H` (and that head's KV head); GPT-2 token t reads K/V row `t mod T`, T = P + S
    (every captured row, tiled).
    """

    kind = "trace"

    def __init__(self, trace, path: str | Path, params: CoreParams = DEFAULT_PARAMS) -> None:
        m = trace.meta
        if m.head_dim != params.head_dim:
            raise UserError(f"{path}: trace head dim {m.head_dim} differs from the core's "
                            f"D = {params.head_dim}")
        self.trace, self.path, self.meta = trace, str(path), m
        self.rows = m.n_cached

    def label(self) -> str:
        m = self.meta
        return (f"trace {self.path} ({m.model}, {m.prompt_kind} prompt, {m.n_layers} layers x "
                f"{m.n_heads} heads, {m.n_prompt}+{m.n_steps} tokens; K/V rows tiled mod "
                f"{self.rows})")

    def describe(self) -> dict:
        m = self.meta
        return {"kind": "trace", "file": self.path, "model": m.model,
                "model_revision": m.model_revision, "prompt_kind": m.prompt_kind,
                "step_map": f"trace_step = step mod {m.n_steps}",
                "layer_map": f"trace_layer = layer mod {m.n_layers}",
                "head_map": f"trace_head = head mod {m.n_heads}; kv_head = trace_head // "
                            f"{m.group_size}",
                "token_map": f"trace_row = token mod {self.rows}"}

    def _map(self, layer: int, head: int) -> tuple[int, int, int]:
        m = self.meta
        t_layer, t_head = layer % m.n_layers, head % m.n_heads
        return t_layer, t_head, self.trace.kv_head(t_head)

    def kv_key(self, layer: int, head: int) -> tuple:
        t_layer, _, kv = self._map(layer, head)
        return ("trace", t_layer, kv)

    def kv(self, layer: int, head: int, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        t_layer, _, kv = self._map(layer, head)
        idx = np.arange(n_rows) % self.rows
        k = torch.from_numpy(self.trace.k_int[t_layer, kv][idx].astype(np.int64))
        v = torch.from_numpy(self.trace.v_int[t_layer, kv][idx].astype(np.int64))
        return k, v

    def query(self, step: int, layer: int, head: int) -> tuple[torch.Tensor, float, dict]:
        t_layer, t_head, kv = self._map(layer, head)
        t_step = step % self.meta.n_steps
        tj = self.trace.job(t_step, t_layer, t_head)
        return tj["query"], tj["real_per_unit"], {
            "kind": "trace", "file": self.path, "trace_step": t_step, "trace_layer": t_layer,
            "trace_head": t_head, "kv_head": kv, "token_map": f"row = token mod {self.rows}"}


class SyntheticSource:
    """SYNTHETIC q, K, V: seeded Gaussian 12-bit integers, not attention of any model.

    A pool of `pool` synthetic heads; GPT-2 (layer, head) uses head (layer * H + head) mod pool.
    Elements are N(0, 400^2) rounded and clamped; the score scale makes the real scores
    N(0, 2^2), a moderately peaked softmax. The query of (step, layer, head) has its own seed.
    """

    kind = "synthetic"
    SIGMA = 400.0
    SCORE_STD = 2.0

    def __init__(self, seed: int = 0, n_heads: int = 12, pool: int = 16,
                 params: CoreParams = DEFAULT_PARAMS) -> None:
        self.seed, self.n_heads, self.pool, self.d = seed, n_heads, pool, params.head_dim

    def label(self) -> str:
        return (f"SYNTHETIC q/K/V (seeded Gaussian, seed {self.seed}, {self.pool} heads): shapes "
                "only, not real attention")

    def describe(self) -> dict:
        return {"kind": "synthetic", "seed": self.seed, "pool": self.pool,
                "head_map": f"synthetic_head = (layer * {self.n_heads} + head) mod {self.pool}",
                "distribution": f"N(0, {self.SIGMA:g}^2) rounded, clamped to 12 bits; real "
                                f"score std {self.SCORE_STD:g}"}

    def _gen(self, *key: int) -> torch.Generator:
        h = hashlib.sha256(json.dumps([self.seed, *key]).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(h[:8], "little") >> 1)

    def _head(self, layer: int, head: int) -> int:
        return (layer * self.n_heads + head) % self.pool

    def _ints(self, gen: torch.Generator, *shape: int) -> torch.Tensor:
        x = torch.randn(*shape, generator=gen, dtype=torch.float64) * self.SIGMA
        return x.round().clamp(-2048, 2047).to(torch.int64)

    def kv_key(self, layer: int, head: int) -> tuple:
        return ("synthetic", self._head(layer, head))

    def kv(self, layer: int, head: int, n_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._gen(0, self._head(layer, head))
        k = self._ints(g, n_rows, self.d)
        return k, self._ints(g, n_rows, self.d)

    def query(self, step: int, layer: int, head: int) -> tuple[torch.Tensor, float, dict]:
        q = self._ints(self._gen(1, step, layer, head), self.d)
        real = self.SCORE_STD / (self.SIGMA * self.SIGMA * math.sqrt(self.d))
        return q, real, {"kind": "synthetic", "seed": self.seed,
                         "synthetic_head": self._head(layer, head)}


# ------------------------------------------------------------------------------- converter

@dataclass
class PlannedJob:
    job: Job
    row: WorkloadRow
    widths: tuple[int, int, int, int]  # msb, lsb, v, q on the core
    width_notes: tuple[str, ...]
    data: dict  # where q and the K/V planes come from
    actions: tuple[str, ...]  # state operations this job carries, for reports


@dataclass
class JobPlan:
    workload: Workload
    source: dict  # the data source's describe()
    source_label: str
    jobs: list[PlannedJob]
    memory: DramImage
    params: CoreParams
    head_pruning: str
    notes: list[str] = field(default_factory=list)


def _plane_bytes(n: int, msb: int, lsb: int, v: int, params: CoreParams) -> int:
    def align(a: int) -> int:
        return (a + 4095) & ~4095

    return sum(align(plane_bytes(n, w, params)) for w in (msb, lsb, v))


def parse_selection(text: str | None, what: str) -> set[int] | None:
    """'3', '0:4' (half-open), '0,2,5' or a mix ('0:2,7'); None or '' selects everything."""
    if not text:
        return None
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                a, b = part.split(":", 1)
                lo = int(a) if a.strip() else 0
                if not b.strip():
                    raise UserError(f"--{what} {text!r}: an open end ('{part}') needs a bound")
                out.update(range(lo, int(b)))
            else:
                out.add(int(part))
        except ValueError:
            raise UserError(f"--{what} {text!r}: expected N, A:B or a comma list") from None
    if not out:
        raise UserError(f"--{what} {text!r} selects nothing")
    return out


def build_jobs(wl: Workload, source, *, steps: set[int] | None = None,
               layers: set[int] | None = None, head_pruning: str = "keep",
               params: CoreParams = DEFAULT_PARAMS, planes_base: int = PLANES_BASE,
               rescale_shift: int = RESCALE_SHIFT) -> JobPlan:
    """Jobs for the selected rows (file order) and the DRAM image they read.

    Token pruning: the converter tracks how many tokens below n_tokens the core keeps and sets,
    per job, `token_keep` = key_fetch_num where that is fewer, or `reselect` (plus
    `token_keep` when needed) where the count grows back, so the kept set comes from the
    accumulated importance of every token (`clear_tokens` only on the first job, or where the
    sentence got shorter). A row marked if_rescale_previous_importance puts
    `imp_shift` = rescale_shift on the next job. Head pruning: absent heads get no job;
    with head_pruning="keep" the layer's first job also carries `head_keep` (and `clear_heads`)
    so that the core's head state keeps exactly the present heads, where that is possible with
    zero head importance (the present heads are the lowest indices). Rules: docs/workloads.md.
    The K/V planes are laid out contiguously from `planes_base` (a multiple of 4 KiB).
    """
    if head_pruning not in ("keep", "omit"):
        raise ValueError(f"head_pruning must be 'keep' or 'omit', got {head_pruning!r}")
    if not 0 <= rescale_shift < 1 << IMP_SHIFT_BITS:
        raise UserError(f"rescale shift {rescale_shift}: expected 0..{(1 << IMP_SHIFT_BITS) - 1}")
    rows = [r for r in wl.rows if (steps is None or r.step in steps)
            and (layers is None or r.layer in layers)]
    if not rows:
        raise UserError(f"{wl.path}: the step/layer selection matches no row")
    H = wl.n_heads
    if H > params.max_heads:
        raise WorkloadError(wl.path, f"{H} heads per layer exceed the core's H_MAX = "
                            f"{params.max_heads}")
    for r in rows:
        if r.head_dim != params.head_dim:
            raise WorkloadError(wl.path, f"head dim {r.head_dim} differs from the core's D = "
                                f"{params.head_dim}", r.line, "embedding_length_D")
        if r.n_tokens > params.max_tokens:
            raise WorkloadError(wl.path, f"{r.n_tokens} tokens exceed the core's L_MAX = "
                                f"{params.max_tokens}", r.line, "sentence_length_L")
    # Widths of every row, and the refetches the mapped widths can do.
    widths = {}
    for r in rows:
        w = core_widths(r, params)
        if r.requant and w[1] == 0:
            raise WorkloadError(wl.path, f"the row refetches LSBs but the core cannot: K MSB "
                                f"{w[0]} bits leaves no room below 12 bits", r.line, "if_requant")
        widths[r.line] = w
    # DRAM: one plane set per (data head, widths), sized for the longest job reading it.
    need: dict[tuple, int] = {}
    for r in rows:
        msb, lsb, v, _, _ = widths[r.line]
        key = (source.kv_key(r.layer, r.head), msb, lsb, v)
        need[key] = max(need.get(key, 0), r.n_tokens)
    memory = DramImage()
    total = sum(_plane_bytes(n, *key[1:], params) for key, n in need.items())
    if planes_base % 4096:
        raise ValueError(f"planes_base {planes_base:#x} is not a multiple of 4 KiB")
    if planes_base + total > 1 << params.axi_addr_bits:
        raise UserError(f"{wl.path}: the K/V planes ({total} bytes) do not fit the "
                        f"{params.axi_addr_bits}-bit address space")
    memory.write(planes_base, np.zeros(total, dtype=np.uint8))  # one region: fast gathers
    planes, base = {}, planes_base
    representative = {}
    for r in rows:
        representative.setdefault((source.kv_key(r.layer, r.head),) + widths[r.line][:3], r)
    for key, n in need.items():
        r = representative[key]
        k12, v12 = source.kv(r.layer, r.head, n)
        pb = write_head(memory, base, k12, v12, *key[1:], params=params)
        planes[key] = (pb, n)
        base = pb.end

    # Head pruning plan per (step, layer) group.
    present: dict[tuple[int, int], list[int]] = {}
    for r in rows:
        present.setdefault((r.step, r.layer), []).append(r.head)
    notes: list[str] = []
    jobs: list[PlannedJob] = []
    # token state as the converter knows it: kept tokens below `pruned_upto` number
    # `kept_in_pruned`; every token at or above `pruned_upto` is kept.
    pruned_upto = kept_in_pruned = 0
    kept_heads = set(range(H))
    group = None
    non_prefix = 0
    rescale_pending = False  # the previous selected row rescaled the importance after it
    for i, r in enumerate(rows):
        msb, lsb, v, qb, wnotes = widths[r.line]
        actions: list[str] = []
        clear_tokens = clear_heads = reselect = False
        token_keep = head_keep = imp_shift = 0
        if rescale_pending and rescale_shift:
            imp_shift = rescale_shift
            actions.append(f"imp_shift={imp_shift}")
        rescale_pending = r.rescale_importance
        if i == 0:
            clear_tokens = clear_heads = True
            actions[:0] = ["clear_tokens", "clear_heads"]
            pruned_upto = kept_in_pruned = 0
            kept_heads = set(range(H))
        # heads: at the first job of a (step, layer)
        if (r.step, r.layer) != group:
            group = (r.step, r.layer)
            P = present[group]
            if head_pruning == "keep":
                cur = sorted(kept_heads)
                if set(P) <= kept_heads and cur[:len(P)] == P:
                    if len(P) < len(cur):
                        head_keep = len(P)
                elif P == list(range(len(P))):
                    clear_heads = True
                    head_keep = len(P) if len(P) < H else 0
                else:  # not the lowest indices: keep every head, omit the absent ones' jobs
                    non_prefix += 1
                    if not set(P) <= kept_heads:
                        clear_heads = True
                        kept_heads = set(range(H))
                if clear_heads and "clear_heads" not in actions:
                    actions.append("clear_heads")
                    kept_heads = set(range(H))
                if head_keep:
                    actions.append(f"head_keep={head_keep}")
                    kept_heads = set(sorted(kept_heads)[:head_keep])
        # tokens
        n, k = r.n_tokens, r.keys
        available = kept_in_pruned + (n - pruned_upto) if n >= pruned_upto else None
        if available is None:
            # fewer tokens than a prune before covered: the state above n is unknown to a
            # reselect (it only restores tokens below n), so start over
            clear_tokens = True
            if "clear_tokens" not in actions:
                actions.append("clear_tokens")
            pruned_upto = kept_in_pruned = 0
            available = n
        elif k > available:
            # the count grows back: every token below n competes again, by importance
            if not clear_tokens:
                reselect = True
                actions.append("reselect")
            pruned_upto = kept_in_pruned = 0
            available = n
        if k < available:
            token_keep = k
            actions.append(f"token_keep={k}")
            pruned_upto, kept_in_pruned = n, k
        pb, _ = planes[(source.kv_key(r.layer, r.head), msb, lsb, v)]
        q, real, data = source.query(r.step, r.layer, r.head)
        try:
            mult, shift = score_scale(real)
        except ValueError as exc:
            raise UserError(f"{wl.path}: line {r.line}: data source score scale: {exc}") from None
        job = Job(query=q, n_tokens=n, k_msb_base=pb.k_msb_base,
                  k_lsb_base=pb.k_lsb_base if lsb else 0, v_base=pb.v_base, msb_bits=msb,
                  lsb_bits=lsb, v_bits=v, score_mult=mult, score_shift=shift,
                  requant_thresh=REQUANT_ALWAYS if r.requant else REQUANT_NEVER,
                  v_topk=r.values, token_keep=token_keep, head_keep=head_keep,
                  clear_tokens=clear_tokens, clear_heads=clear_heads, reselect=reselect,
                  imp_shift=imp_shift, acc_tokens=r.acc_importance, acc_heads=False,
                  head_id=r.head, n_heads=H, job_id=i & 0xFFFF, params=params)
        data = dict(data, k_msb_base=pb.k_msb_base, k_lsb_base=job.k_lsb_base,
                    v_base=pb.v_base)
        jobs.append(PlannedJob(job, r, (msb, lsb, v, qb), wnotes, data, tuple(actions)))
    if non_prefix:
        notes.append(f"{non_prefix} (step, layer) groups keep heads that are not the lowest "
                     "indices: no head_keep there, the absent heads' jobs are omitted")
    wnotes_all = sorted({n for j in jobs for n in j.width_notes})
    notes += [f"width mapping: {n}" for n in wnotes_all]
    return JobPlan(workload=wl, source=source.describe(), source_label=source.label(),
                   jobs=jobs, memory=memory, params=params, head_pruning=head_pruning,
                   notes=notes)


# ------------------------------------------------------------------------------- replay

def check_result(pj: PlannedJob, res: JobResult, params: CoreParams = DEFAULT_PARAMS
                 ) -> list[str]:
    """Differences between a model (or RTL) result and the CSV row; empty when they agree."""
    r = pj.row
    msb, lsb, v, _ = pj.widths
    errs = []
    if res.status != Status.OK:
        errs.append(f"status {Status(res.status).name}, expected OK")
        return errs
    if res.n_keys != r.keys:
        errs.append(f"keys {res.n_keys} != key_fetch_num {r.keys}")
    if res.n_values != r.values:
        errs.append(f"values {res.n_values} != value_fetch_num {r.values}")
    if bool(res.lsb_fetched) != r.requant:
        errs.append(f"LSB refetch {bool(res.lsb_fetched)} != if_requant {r.requant}")
    beats = plane_fetch_beats  # bus words of the tokens the model fetched (section 3)
    want = (beats(res.keys, msb, params) * params.bus_bytes,
            beats(res.keys, lsb, params) * params.bus_bytes if r.requant else 0,
            beats(res.values, v, params) * params.bus_bytes)
    got = (res.bytes_k_msb, res.bytes_k_lsb, res.bytes_v)
    if got != want:
        errs.append(f"bytes (K MSB, K LSB, V) {got} != {want} for widths {msb}/{lsb}/{v}")
    return errs


@dataclass
class Totals:
    rows: int = 0
    n_tokens_min: int = 0
    n_tokens_max: int = 0
    keys: int = 0
    values: int = 0
    dense_keys: int = 0  # sum of L: what an unpruned core fetches
    lsb_refetches: int = 0
    bytes_k_msb: int = 0
    bytes_k_lsb: int = 0
    bytes_v: int = 0
    dense_bytes: int = 0  # K and V of every token at 12 bits
    beats: int = 0
    mismatched_rows: int = 0

    @property
    def bytes(self) -> int:
        return self.bytes_k_msb + self.bytes_k_lsb + self.bytes_v

    def add(self, pj: PlannedJob, res: JobResult, bad: bool, params: CoreParams) -> None:
        n = pj.row.n_tokens
        self.n_tokens_min = n if not self.rows else min(self.n_tokens_min, n)
        self.n_tokens_max = max(self.n_tokens_max, n)
        self.rows += 1
        self.keys += res.n_keys
        self.values += res.n_values
        self.dense_keys += n
        self.lsb_refetches += int(res.lsb_fetched)
        self.bytes_k_msb += res.bytes_k_msb
        self.bytes_k_lsb += res.bytes_k_lsb
        self.bytes_v += res.bytes_v
        self.dense_bytes += 2 * n * params.token_bytes(QKV_BITS)
        self.beats += res.beats
        self.mismatched_rows += int(bad)

    def as_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["bytes"] = self.bytes
        return d


@dataclass
class ReplayReport:
    plan: JobPlan
    steps: dict[int, Totals]
    total: Totals
    mismatches: list[str]  # "line N (step s, layer l, head h): ..." (first 50)
    results: list[JobResult] | None = None

    @property
    def ok(self) -> bool:
        return self.total.mismatched_rows == 0

    def as_dict(self) -> dict:
        p = self.plan
        return {"workload": p.workload.path, "name": p.workload.name, "config": p.workload.config,
                "data_source": p.source, "data_label": p.source_label,
                "head_pruning": p.head_pruning, "notes": p.notes, "jobs": len(p.jobs),
                "steps": {str(s): t.as_dict() for s, t in self.steps.items()},
                "total": self.total.as_dict(), "ok": self.ok,
                "mismatches": self.mismatches}


def replay(plan: JobPlan, model: SpAttenCoreModel | None = None, *, progress: bool | None = False,
           keep_results: bool = False) -> ReplayReport:
    """Run the plan's jobs in order through one SpAttenCoreModel and check every row."""
    from tqdm import tqdm

    model = model or SpAttenCoreModel(plan.params)
    steps: dict[int, Totals] = {}
    total = Totals()
    mismatches: list[str] = []
    results: list[JobResult] = []
    # progress: True / False, or None for "when stderr is a terminal" (tqdm's disable=None)
    bar = tqdm(plan.jobs, desc=plan.workload.name[:40], unit="job", leave=False,
               disable=None if progress is None else not progress)
    for pj in bar:
        res = model.run_job(pj.job, plan.memory)
        errs = check_result(pj, res, plan.params)
        r = pj.row
        if errs and len(mismatches) < 50:
            mismatches.append(f"line {r.line} (step {r.step}, layer {r.layer}, head {r.head}): "
                              + "; ".join(errs))
        steps.setdefault(r.step, Totals()).add(pj, res, bool(errs), plan.params)
        total.add(pj, res, bool(errs), plan.params)
        if keep_results:
            results.append(res)
    return ReplayReport(plan, steps, total, mismatches, results if keep_results else None)


# ------------------------------------------------------------------------------- job list

def job_record(pj: PlannedJob, plan: JobPlan) -> dict:
    """One JSON-lines record: the descriptor, where its data comes from, what the CSV expects."""
    j, r = pj.job, pj.row
    desc = {k: v for k, v in j.field_values().items() if k != "query"}
    desc["query"] = [int(x) for x in j.query.tolist()]
    return {
        "job_id": j.job_id,
        "csv": {"file": plan.workload.name, "line": r.line, "step": r.step, "layer": r.layer,
                "head": r.head},
        "descriptor": desc,
        "descriptor_hex": f"{j.pack():x}",
        "expect": {"status": "OK", "n_keys": r.keys, "n_values": r.values,
                   "lsb_fetched": r.requant},
        "widths": {"msb_bits": pj.widths[0], "lsb_bits": pj.widths[1], "v_bits": pj.widths[2],
                   "q_bits": pj.widths[3], "notes": list(pj.width_notes)},
        "actions": list(pj.actions),
        "data": pj.data,
    }


def write_jobs_jsonl(plan: JobPlan, out: IO[str]) -> int:
    """Write one record per job; returns the number written."""
    for pj in plan.jobs:
        out.write(json.dumps(job_record(pj, plan), separators=(",", ":")) + "\n")
    return len(plan.jobs)
