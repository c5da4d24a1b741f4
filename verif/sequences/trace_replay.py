"""Trace replay: a decode run of a captured trace through the core, in order.

Every selected (step, layer, head) becomes one job: q from the trace, the step's K/V rows written
to DRAM as planes (K 6-bit MSB + 4-bit LSB, V 8-bit: progressive quantization with the LSB
threshold at 0.1), and SpAtten's cascade schedule carried across jobs in the core's pruning
state: the first job of each step clears it (the core has no per-step re-selection yet); the
first head of each layer prunes tokens to a budget that falls linearly from all tokens at layer 0
to 60 % at the last layer, and heads from all to 75 %; every job accumulates token and head
importance; local value pruning fetches V for the top half of each layer's token budget.
Knobs: trace (committed name or file), steps, layers, heads (selections; '' = all).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path

from spatten_dv.errors import UserError
from spatten_dv.models.descriptor import Job
from spatten_dv.models.softmax import score_scale
from spatten_dv.traces.loader import load_trace
from spatten_dv.traces.workload import parse_selection
from spatten_dv.verif.sequences.base import JobSequence

WIDTHS = (6, 4, 8)
REQUANT = round(0.1 * 32768)
TOKEN_KEEP_LAST = 0.6
HEAD_KEEP_LAST = 0.75


def committed_traces() -> list[str]:
    folder = resources.files("spatten_dv.traces")
    return sorted(p.name[:-len(".safetensors")] for p in folder.iterdir()
                  if p.name.endswith(".safetensors"))


def resolve_trace(spec: str) -> Path:
    """A committed trace name (e.g. smollm2_prose) or a path to a trace file."""
    if spec in committed_traces():
        return Path(str(resources.files("spatten_dv.traces") / f"{spec}.safetensors"))
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"trace {spec!r}: no such file and not a committed trace "
                        f"({', '.join(committed_traces())})")
    return path


def select(text: str, count: int, what: str) -> list[int]:
    chosen = parse_selection(text or None, what)
    if chosen is None:
        return list(range(count))
    bad = sorted(i for i in chosen if not 0 <= i < count)
    if bad:
        raise UserError(f"--{what} {text!r}: {bad[:3]} outside 0..{count - 1}")
    return sorted(chosen)


def trace_jobs(tr, path: Path, steps: list[int], layers: list[int], heads: list[int], place,
               params):
    """The replay's jobs in order: (job, label, meta) per selected (step, layer, head).

    `place(k, v, msb, lsb, vb)` writes a head's planes and returns their PlaneBases (the
    environment's PlaneAllocator.place; the performance model, models/perf, passes its own).
    """
    m = tr.meta
    last = max(m.n_layers - 1, 1)
    for step in steps:
        n = tr.n_tokens(step)
        if n > params.max_tokens:
            raise UserError(f"{path}: step {step} has {n} tokens, the core takes at most "
                            f"{params.max_tokens}")
        first_of_step = True
        for layer in layers:
            frac = layer / last
            tok_budget = max(1, math.ceil(n * (1 - (1 - TOKEN_KEEP_LAST) * frac)))
            head_budget = max(1, math.ceil(m.n_heads * (1 - (1 - HEAD_KEEP_LAST) * frac)))
            for hi, head in enumerate(heads):
                tj = tr.job(step, layer, head)
                pb = place(tj["k"], tj["v"], *WIDTHS)
                mult, shift = score_scale(tj["real_per_unit"])
                first_head = hi == 0
                job = Job(query=tj["query"], n_tokens=n, k_msb_base=pb.k_msb_base,
                          k_lsb_base=pb.k_lsb_base, v_base=pb.v_base,
                          msb_bits=WIDTHS[0], lsb_bits=WIDTHS[1], v_bits=WIDTHS[2],
                          score_mult=mult, score_shift=shift, requant_thresh=REQUANT,
                          v_topk=max(1, tok_budget // 2),
                          token_keep=tok_budget if first_head and tok_budget < n else 0,
                          head_keep=head_budget if first_head else 0,
                          clear_tokens=first_of_step, clear_heads=first_of_step,
                          acc_tokens=True, acc_heads=True, head_id=head,
                          n_heads=m.n_heads, params=params)
                first_of_step = False
                yield job, f"{path.stem} s{step} l{layer} h{head}", {
                    "trace": path.name, "step": step, "layer": layer, "head": head}


class TraceReplaySeq(JobSequence):
    async def body(self):
        path = resolve_trace(self.cfg.trace)
        tr = load_trace(path)
        m = tr.meta
        steps = select(self.cfg.steps, m.n_steps, "steps")
        layers = select(self.cfg.layers, m.n_layers, "layers")
        heads = select(self.cfg.heads, m.n_heads, "heads")
        if m.head_dim != self.params.head_dim:
            raise UserError(f"{path}: head_dim {m.head_dim}, the core has "
                            f"{self.params.head_dim}")
        self.logger.info("trace replay %s: steps %s, layers %s, heads %s (%d jobs)", path.name,
                         steps, layers, heads, len(steps) * len(layers) * len(heads))
        for job, label, meta in trace_jobs(tr, path, steps, layers, heads, self.alloc.place,
                                           self.params):
            await self.send(job, label, meta=meta)
