"""Checks of `spatten-dv capture`'s inputs, run before any model is loaded.

Standard library only (no torch, no transformers), so a bad prompt file, `--steps` or `--out` is
reported in well under a second.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from spatten_dv.errors import UserError
from spatten_dv.traces.transcript import parse_transcript


@dataclass(frozen=True)
class Prompt:
    raw: bytes  # the file's bytes (hashed into the trace)
    text: str  # decoded text
    messages: list[dict] | None  # chat turns (with --chat), else None


def read_prompt_file(path: Path, chat: bool = False) -> Prompt:
    """The prompt file, checked: exists, is a readable file, UTF-8, not empty; with `chat`, a
    transcript in one of the forms of traces/transcript.py."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"cannot read prompt file {path}: it does not exist")
    if path.is_dir():
        raise UserError(f"cannot read prompt file {path}: it is a directory")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"cannot read prompt file {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"cannot read prompt file {path}: not UTF-8 text "
                        f"(byte {exc.start})") from None
    if not text.strip():
        raise UserError(f"prompt file {path} is empty")
    messages = parse_transcript(text, str(path), json_file=path.suffix.lower() == ".json") \
        if chat else None
    return Prompt(raw, text, messages)


def check_out_path(out: Path, option: str = "--out") -> None:
    """`out` can be written: not a directory, its folder exists and accepts a new file."""
    out = Path(out)
    if out.is_dir():
        raise UserError(f"{option} {out} is a directory; give a file name")
    parent = out.parent
    if not parent.exists():
        raise UserError(f"{option} {out}: folder {parent} does not exist")
    if not parent.is_dir():
        raise UserError(f"{option} {out}: {parent} is not a folder")
    if out.exists() and not os.access(out, os.W_OK):
        raise UserError(f"{option} {out} exists and is not writable")
    try:  # a real write probe: also catches read-only file systems and root-owned folders
        with tempfile.NamedTemporaryFile(dir=parent, prefix=f".{out.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise UserError(f"{option} {out}: folder {parent} is not writable "
                        f"({exc.strerror or exc})") from None


def check_positive(value: int, option: str) -> None:
    if value < 1:
        raise UserError(f"{option} must be at least 1, got {value}")
