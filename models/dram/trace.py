"""Ramulator `LoadStoreTrace` files: one request per line, `LD <addr>` or `ST <addr>`.

Addresses are byte addresses, hexadecimal with 0x or decimal. The file may be gzip-compressed
(detected from its first bytes, whatever its name). Blank lines and lines starting with `#` are
skipped; any other malformed line is an error naming the file and line.
"""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class TraceError(ValueError):
    """The trace file is missing or is not in LD/ST format."""


@dataclass(frozen=True)
class Trace:
    name: str
    is_write: np.ndarray  # bool, one per request
    addrs: np.ndarray  # int64 byte addresses

    def __len__(self) -> int:
        return len(self.addrs)

    @property
    def reads(self) -> int:
        return int(len(self.addrs) - self.is_write.sum())

    @property
    def writes(self) -> int:
        return int(self.is_write.sum())

    @classmethod
    def from_requests(cls, requests, name: str = "requests") -> Trace:
        """From [(is_write, addr), ...] or [("LD"|"ST", addr), ...]."""
        kinds, addrs = [], []
        for kind, addr in requests:
            kinds.append(kind == "ST" if isinstance(kind, str) else bool(kind))
            addrs.append(int(addr))
        return cls(name, np.array(kinds, dtype=bool), np.array(addrs, dtype=np.int64))


_OPS = {"LD": False, "ST": True}
_MAX_ADDR = (1 << 63) - 1


def _parse_address(token: str) -> int:
    if token[:2].lower() == "0x":
        return int(token[2:], 16)
    if token.isdigit():
        return int(token, 10)
    raise ValueError(token)


def read_trace(path: str | Path) -> Trace:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"{path}: no such trace file") from None
    except IsADirectoryError:
        raise TraceError(f"{path}: is a directory, not a trace file") from None
    except OSError as exc:
        raise TraceError(f"{path}: cannot read: {exc.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TraceError(f"{path}: corrupt gzip data ({exc})") from None
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise TraceError(f"{path}:{line}: not a text trace (byte {raw[exc.start]:#04x})") from None

    kinds: list[bool] = []
    addrs: list[int] = []
    for lineno, line in enumerate(io.StringIO(text), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) != 2 or tokens[0] not in _OPS:
            raise TraceError(f"{path}:{lineno}: expected 'LD 0x<addr>' or 'ST 0x<addr>', "
                             f"got {line.strip()[:60]!r}")
        try:
            addr = _parse_address(tokens[1])
        except ValueError:
            raise TraceError(f"{path}:{lineno}: bad address {tokens[1][:40]!r} "
                             "(use 0x-prefixed hex or decimal)") from None
        if addr > _MAX_ADDR:
            raise TraceError(f"{path}:{lineno}: address {tokens[1]} does not fit in 63 bits")
        kinds.append(_OPS[tokens[0]])
        addrs.append(addr)
    if not addrs:
        raise TraceError(f"{path}: the trace has no requests")
    return Trace(path.name, np.array(kinds, dtype=bool), np.array(addrs, dtype=np.int64))
