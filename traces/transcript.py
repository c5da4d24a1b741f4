"""Chat transcripts for `spatten-dv capture --chat` and `spatten-dv chat --prompt-file`.

`parse_transcript(text)` turns a transcript into chat messages (`[{"role", "content"}]`, roles
`system`, `user`, `assistant`) without a model or tokenizer, so a bad file is reported before any
model is loaded. Accepted forms (see traces/README.md):

* heading lines `### system`, `### user`, `### assistant`, each followed by that turn's text;
* line prefixes `System:`, `User:`, `Assistant:` (any case; `Human:` = user, `AI:` = assistant),
  a turn running until the next prefixed line;
* JSON: a list of `{"role": ..., "content": ...}` objects (or `{"messages": [...]}`), in a
  `.json` file or a text starting with `[{` / `{`;
* plain text with none of these markers: one user turn.

Only the standard library is imported here (no torch, no transformers).
"""

from __future__ import annotations

import json
import re

from spatten_dv.errors import UserError

ACCEPTED_FORMS = ("'### user' / '### assistant' heading lines; 'User:' / 'Assistant:' line "
                  "prefixes (also System:, Human:, AI:); a JSON list of {\"role\", \"content\"} "
                  "messages; or plain text (one user turn)")

ROLE_ALIASES = {"system": "system", "user": "user", "human": "user",
                "assistant": "assistant", "ai": "assistant"}
_HEADING = re.compile(r"^[ \t]*###[ \t]*(system|user|assistant)[ \t]*:?[ \t]*$", re.I)
_PREFIX = re.compile(r"^[ \t]*(system|user|human|assistant|ai)[ \t]*:[ \t]?(.*)$", re.I | re.S)


class TranscriptError(UserError):
    """A chat transcript that none of the accepted forms parses."""


def _fail(source: str, problem: str) -> TranscriptError:
    return TranscriptError(f"{source}: {problem}; --chat accepts {ACCEPTED_FORMS}")


def _check(messages: list[dict], source: str, form: str) -> list[dict]:
    for i, m in enumerate(messages, 1):
        if not m["content"]:
            raise _fail(source, f"turn {i} ({m['role']}, {form} form) is empty")
    if not any(m["role"] == "user" for m in messages):
        raise _fail(source, f"no user turn ({form} form)")
    return messages


def _parse_json(text: str, source: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(source, f"invalid JSON at line {exc.lineno} column {exc.colno}: "
                            f"{exc.msg}") from None
    if isinstance(data, dict) and isinstance(data.get("messages"), list):
        data = data["messages"]
    if not isinstance(data, list) or not data:
        raise _fail(source, "JSON must be a non-empty list of {\"role\", \"content\"} objects")
    messages = []
    for i, m in enumerate(data, 1):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) \
                or not isinstance(m.get("content"), str):
            raise _fail(source, f"JSON message {i} is not an object with string 'role' and "
                                "'content'")
        role = ROLE_ALIASES.get(m["role"].strip().lower())
        if role is None:
            raise _fail(source, f"JSON message {i} has unknown role {m['role']!r} "
                                "(system, user, assistant)")
        messages.append({"role": role, "content": m["content"].strip()})
    return _check(messages, source, "JSON")


def _parse_lines(lines: list[str], source: str, match, form: str) -> list[dict]:
    """Turns opened by lines that `match` (returning (role, first content or '') or None)."""
    messages: list[dict] = []
    for n, line in enumerate(lines, 1):
        opened = match(line)
        if opened is not None:
            role, first = opened
            messages.append({"role": ROLE_ALIASES[role.lower()], "content": first})
        elif messages:
            messages[-1]["content"] += line
        elif line.strip():
            raise _fail(source, f"line {n}: text before the first turn ({form} form)")
    for m in messages:
        m["content"] = m["content"].strip()
    return _check(messages, source, form)


def _heading(line: str):
    m = _HEADING.match(line)
    return (m.group(1), "") if m else None


def _prefix(line: str):
    m = _PREFIX.match(line)
    return (m.group(1), m.group(2)) if m else None


def transcript_form(text: str, json_file: bool = False) -> str:
    """Which form `text` is in: 'json', 'headings', 'prefixes' or 'plain'."""
    start = text.lstrip()
    if json_file or start.startswith("{") or re.match(r"\[\s*\{", start):
        return "json"
    lines = text.splitlines(keepends=True)
    if any(_heading(line) for line in lines):
        return "headings"
    if any(_prefix(line) for line in lines):
        return "prefixes"
    return "plain"


def parse_transcript(text: str, source: str = "transcript", json_file: bool = False) -> list[dict]:
    """Chat messages of a transcript in one of the accepted forms (module docstring).

    `json_file`: parse as JSON whatever the text looks like (a `.json` file). Raises
    `TranscriptError` (a UserError) naming `source`, the problem and the accepted forms.
    """
    if not text.strip():
        raise _fail(source, "the transcript is empty")
    form = transcript_form(text, json_file)
    if form == "json":
        return _parse_json(text, source)
    lines = text.splitlines(keepends=True)
    if form == "headings":
        return _parse_lines(lines, source, _heading, "'### role' heading")
    if form == "prefixes":
        return _parse_lines(lines, source, _prefix, "'Role:' prefix")
    return [{"role": "user", "content": text.strip()}]
