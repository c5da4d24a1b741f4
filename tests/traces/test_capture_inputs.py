"""`spatten-dv capture` checks every input before loading a model, parses the common chat
transcript forms, and fails at once (not after a minute of hub retries) when the Hugging Face hub
is unreachable and the model is not cached.

The CLI runs in a subprocess that asserts it never imported torch or transformers, so a bad input
cannot have loaded a model; each run must end within a few seconds with exit code 2 and one line
on stderr.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spatten_dv.errors import UserError
from spatten_dv.traces import model_source
from spatten_dv.traces.transcript import ACCEPTED_FORMS, parse_transcript, transcript_form

# Runs the CLI's main(); exit 3 if a model library got imported.
CLI = ("import sys; from spatten_dv.cli import main; rc = main(sys.argv[1:]); "
       "heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
       "print('imported: ' + ', '.join(heavy), file=sys.stderr) if heavy else None; "
       "sys.exit(3 if heavy else rc)")
FAST_S = 5.0  # generous on a busy 2-core machine; measured about 0.2 s


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed once the socket is


def offline_env(tmp_path: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_ENDPOINT")}
    env["SPATTEN_DV_HUB_CHECK"] = f"127.0.0.1:{closed_port()}"
    env["HF_HOME"] = str(tmp_path / "hf_home")  # an empty cache
    env.pop("HF_HUB_CACHE", None)
    env.update(extra)
    return env


def cli(args: list[str], env: dict | None = None, code: str = CLI, timeout: float = 120):
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=env, timeout=timeout)
    return proc, time.monotonic() - t0


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "prompt.txt").write_text("Once upon a time")
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "blank.txt").write_text(" \n\t\n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "folder").mkdir()
    (tmp_path / "chat_empty_turn.txt").write_text("### user\n\n### assistant\nHi\n")
    (tmp_path / "chat_preamble.txt").write_text("hello\n### user\nHi\n")
    (tmp_path / "chat_bad.json").write_text('[{"role": "user", "content": "Hi"},]')
    (tmp_path / "chat_role.json").write_text('[{"role": "wizard", "content": "Hi"}]')
    (tmp_path / "chat_no_user.txt").write_text("System: be brief\nAssistant: ok\n")
    return tmp_path


BAD_INPUTS = [  # (arguments, a part of the stderr line); {d} is the tmp folder
    (["--prompt-file", "{d}/none.txt"], "does not exist"),
    (["--prompt-file", "{d}/folder"], "is a directory"),
    (["--prompt-file", "{d}/empty.txt"], "is empty"),
    (["--prompt-file", "{d}/blank.txt"], "is empty"),
    (["--prompt-file", "{d}/latin1.txt"], "not UTF-8"),
    (["--steps", "0"], "--steps must be at least 1"),
    (["--steps", "-3"], "--steps must be at least 1"),
    (["--threads", "0"], "--threads must be at least 1"),
    (["--out", "{d}/no_such_folder/x.safetensors"], "does not exist"),
    (["--out", "{d}/folder"], "is a directory"),
    (["--out", "{d}/prompt.txt/x.safetensors"], "is not a folder"),
    (["--out", "/proc/x.safetensors"], "is not writable"),
    (["--chat", "--prompt-file", "{d}/chat_empty_turn.txt"], "turn 1 (user"),
    (["--chat", "--prompt-file", "{d}/chat_preamble.txt"], "line 1: text before the first turn"),
    (["--chat", "--prompt-file", "{d}/chat_bad.json"], "invalid JSON"),
    (["--chat", "--prompt-file", "{d}/chat_role.json"], "unknown role 'wizard'"),
    (["--chat", "--prompt-file", "{d}/chat_no_user.txt"], "no user turn"),
    (["--model", "{d}/missing.gguf"], "no such GGUF file"),
    (["--model", "./no_such_model_folder"], "no such model folder"),
]


@pytest.mark.parametrize("extra, message", BAD_INPUTS, ids=[
    "missing-prompt", "prompt-is-dir", "empty-prompt", "blank-prompt", "not-utf8", "steps-0",
    "steps-negative", "threads-0", "out-folder-missing", "out-is-dir", "out-parent-is-file",
    "out-not-writable", "chat-empty-turn", "chat-preamble", "chat-bad-json", "chat-bad-role",
    "chat-no-user", "missing-gguf", "missing-folder"])
def test_bad_input_is_one_line_exit_2_before_any_model(files, tmp_path, extra, message):
    if "/proc/" in " ".join(extra) and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    args = {"--model": "gpt2", "--prompt-file": "{d}/prompt.txt",
            "--out": "{d}/out.safetensors"}
    it = iter(extra)
    flags = []
    for a in it:
        if a in args:
            args[a] = next(it)
        else:
            flags.append(a)
    argv = ["capture", *[x for kv in args.items() for x in kv], *flags]
    argv = [a.format(d=files) for a in argv]
    # the hub check must not even be reached: point it at a closed port anyway (no network use)
    proc, seconds = cli(argv, env=offline_env(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("spatten-dv capture: error: "), proc.stderr
    assert message in lines[0]
    assert seconds < FAST_S
    assert not (files / "out.safetensors").exists()
    if "--chat" in flags:
        assert "--chat accepts" in lines[0]


def test_capture_to_file_checks_before_loading(files, monkeypatch):
    """The Python API too: a bad `out` is reported before load_model is called."""
    from spatten_dv.traces import capture

    def no_load(*a, **k):
        raise AssertionError("model loaded before the inputs were checked")

    monkeypatch.setattr(capture, "load_model", no_load)
    monkeypatch.setattr(capture, "resolve_model", no_load)
    for out, match in ((files / "nope" / "t.safetensors", "does not exist"),
                       (files / "folder", "is a directory")):
        with pytest.raises(UserError, match=match):
            capture.capture_to_file("gpt2", files / "prompt.txt", 2, out)
    with pytest.raises(UserError, match="--chat accepts"):
        capture.capture_to_file("gpt2", files / "chat_empty_turn.txt", 2,
                                files / "t.safetensors", chat=True)


# ---------------------------------------------------------------- no network


def test_unreachable_hub_fails_fast_with_clear_message(files, tmp_path):
    argv = ["capture", "--model", "gpt2", "--prompt-file", f"{files}/prompt.txt",
            "--out", f"{files}/out.safetensors"]
    proc, seconds = cli(argv, env=offline_env(tmp_path))
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "model 'gpt2' is not in the local Hugging Face cache" in lines[0]
    assert "hub is unreachable" in lines[0]
    assert "--model smollm2-135m-instruct" in lines[0]
    assert seconds < 10


def test_hub_offline_variable_is_honoured_without_a_connection(files, tmp_path):
    argv = ["capture", "--model", "gpt2", "--prompt-file", f"{files}/prompt.txt",
            "--out", f"{files}/out.safetensors"]
    env = offline_env(tmp_path, HF_HUB_OFFLINE="1", SPATTEN_DV_HUB_CHECK="192.0.2.1:9")
    proc, seconds = cli(argv, env=env)
    assert proc.returncode == 2, proc.stderr
    assert "switched off (HF_HUB_OFFLINE" in proc.stderr
    assert "--model smollm2-135m-instruct" in proc.stderr
    assert seconds < FAST_S  # no 2 s connection attempt to the unroutable address


def test_unreachable_hub_loads_a_cached_model_offline(files, tmp_path):
    """A hub model already in the cache is captured with the hub unreachable."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    snap = tmp_path / "hub" / "models--tiny--gpt2" / "snapshots" / ("0" * 40)
    snap.mkdir(parents=True)
    (tmp_path / "hub" / "models--tiny--gpt2" / "refs").mkdir()
    (tmp_path / "hub" / "models--tiny--gpt2" / "refs" / "main").write_text("0" * 40)
    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=300, n_positions=64, n_embd=16, n_layer=1, n_head=2)).save_pretrained(snap)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["Once upon a time"] * 4, trainers.BpeTrainer(
        vocab_size=300, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(snap)
    out = files / "out.safetensors"
    env = offline_env(tmp_path, HF_HUB_CACHE=str(tmp_path / "hub"))
    proc, _ = cli(["capture", "--model", "tiny/gpt2", "--prompt-file", f"{files}/prompt.txt",
                   "--steps", "2", "--out", str(out), "--no-progress"], env=env,
                  code="import sys; from spatten_dv.cli import main; sys.exit(main(sys.argv[1:]))")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "wrote" in proc.stdout


def test_can_connect_closed_port_and_timeout():
    t0 = time.monotonic()
    assert not model_source.can_connect("127.0.0.1", closed_port(), timeout=2)
    assert time.monotonic() - t0 < 2.5
    t0 = time.monotonic()  # TEST-NET-1: unroutable, so the connection times out
    assert not model_source.can_connect("192.0.2.1", 443, timeout=0.5)
    assert time.monotonic() - t0 < 1.5
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        assert model_source.can_connect("127.0.0.1", s.getsockname()[1], timeout=2)


def test_hub_address(monkeypatch):
    for k in ("SPATTEN_DV_HUB_CHECK", "HF_ENDPOINT", "https_proxy", "HTTPS_PROXY",
              "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(k, raising=False)
    assert model_source.hub_address() == ("huggingface.co", 443)
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example:8080")
    assert model_source.hub_address() == ("mirror.example", 8080)
    monkeypatch.setenv("HF_ENDPOINT", "https://hf-mirror.example")
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    assert model_source.hub_address() == ("proxy.example", 3128)
    monkeypatch.setenv("SPATTEN_DV_HUB_CHECK", "127.0.0.1:9")
    assert model_source.hub_address() == ("127.0.0.1", 9)


@pytest.mark.parametrize("value, offline", [("1", True), ("true", True), ("ON", True),
                                            ("0", False), ("", False)])
def test_offline_requested(value, offline):
    assert model_source.offline_requested({"HF_HUB_OFFLINE": value}) is offline
    assert model_source.offline_requested({"TRANSFORMERS_OFFLINE": value}) is offline


# ---------------------------------------------------------------- transcript forms

EXPECTED = [{"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi there.\nHow are you?"},
            {"role": "assistant", "content": "Fine."},
            {"role": "user", "content": "Good."}]


@pytest.mark.parametrize("form, text", [
    ("headings", "### system\nBe brief.\n### user\nHi there.\nHow are you?\n\n"
                 "### assistant\nFine.\n### user\nGood.\n"),
    ("headings", "###System:\n\nBe brief.\n### USER\nHi there.\nHow are you?\n"
                 "### Assistant\nFine.\n###user\nGood."),
    ("prefixes", "System: Be brief.\nUser: Hi there.\nHow are you?\nAssistant: Fine.\n"
                 "User: Good.\n"),
    ("prefixes", "\nsystem:Be brief.\n\nHUMAN: Hi there.\nHow are you?\n\nai: Fine.\n"
                 "human:\nGood.\n"),
    ("json", json.dumps(EXPECTED)),
    ("json", "  " + json.dumps({"messages": [
        {"role": "System", "content": "Be brief."},
        {"role": "human", "content": "Hi there.\nHow are you?\n"},
        {"role": "ai", "content": " Fine."}, {"role": "user", "content": "Good."}]}, indent=2)),
])
def test_transcript_forms(form, text):
    assert transcript_form(text) == form
    assert parse_transcript(text) == EXPECTED


def test_plain_text_is_one_user_turn():
    text = "Tell me about mills.\nThey grind grain: wheat, mostly.\n"
    assert transcript_form(text) == "plain"
    assert parse_transcript(text) == [{"role": "user", "content": text.strip()}]
    # a text starting with '[' that is not a JSON list of objects is plain text
    assert parse_transcript("[1] a footnote") == [{"role": "user", "content": "[1] a footnote"}]


def test_headings_keep_prefix_lines_inside_turns():
    text = "### user\nQuote this:\nUser: hello\n### assistant\nAI: hello\n"
    assert parse_transcript(text) == [{"role": "user", "content": "Quote this:\nUser: hello"},
                                      {"role": "assistant", "content": "AI: hello"}]


def test_json_file_parsed_as_json_whatever_it_starts_with():
    with pytest.raises(UserError, match="invalid JSON"):
        parse_transcript("User: hi", "t.json", json_file=True)


@pytest.mark.parametrize("text, match", [
    ("", "is empty"),
    ("### user\n   \n", r"turn 1 \(user"),
    ("User: hi\nAssistant:\n", r"turn 2 \(assistant"),
    ("intro\nUser: hi\n", "line 1: text before the first turn"),
    ("### system\nBe brief.\n", "no user turn"),
    ("[{\"role\": \"user\"}]", "string 'role' and 'content'"),
    ("[{\"role\": \"user\", \"content\": \"hi\"", "invalid JSON"),
    ("[{\"role\": \"tool\", \"content\": \"x\"}]", "unknown role"),
    ("{\"turns\": []}", "non-empty list"),
    ("[{\"role\": \"user\", \"content\": \"\"}]", "is empty"),
])
def test_transcript_errors_name_the_accepted_forms(text, match):
    with pytest.raises(UserError, match=match) as info:
        parse_transcript(text, "talk.txt")
    msg = str(info.value)
    assert msg.startswith("talk.txt: ") and msg.endswith(ACCEPTED_FORMS)
    assert "\n" not in msg


def test_committed_dialogue_prompt_parses_as_before():
    """The committed dialogue trace's prompt: same turns as the original '### role' parser."""
    root = Path(__file__).parents[2] / "traces" / "prompts"
    for name in ("dialogue.txt", "chat_demo.txt"):
        text = (root / name).read_text()
        old: list[dict] = []
        for line in text.splitlines(keepends=True):
            head = line.strip()
            if head.startswith("### ") and head[4:] in ("system", "user", "assistant"):
                old.append({"role": head[4:], "content": ""})
            elif old:
                old[-1]["content"] += line
        for m in old:
            m["content"] = m["content"].strip()
        assert parse_transcript(text) == old


def test_chat_command_reads_every_form(tmp_path):
    from spatten_dv.chat import read_turns

    (tmp_path / "t.json").write_text(json.dumps(EXPECTED))
    (tmp_path / "t.txt").write_text("User: Hi there.\nHow are you?\n")
    assert read_turns(tmp_path / "t.json") == EXPECTED
    assert read_turns(tmp_path / "t.txt") == [EXPECTED[1]]
