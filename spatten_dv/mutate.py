"""Source-level RTL mutation testing of the core (`spatten-dv mutate`).

A mutant is one small textual change to one module of the core (hdl/*.v, CORE_MODULES without
the generated ROM): (file, line, column, original text, replacement, operator). The sites come
from a small Verilog tokenizer and statement parser that only looks at behavioural code: the
statements of `always` blocks and functions (if/case conditions, right-hand sides), the
right-hand sides of `assign` and of net declarations (`wire w = expr;`). Never mutated:
declarations, parameter / port lists, anything inside `[...]` (widths, ranges, bit selects),
replication counts `{N{...}}`, for-loop headers, case labels, event controls, comments and
strings.

Operators (OPERATORS):
  const      integer constant off by one: N -> N+1 / N-1 (11'd1 -> 11'd2 / 11'd0; the literal's
             width is respected)
  arith      binary + <-> -
  compare    < <-> <=, > <-> >=, == <-> !=
  logic      && <-> ||, binary & <-> |
  drop_term  one operand of && / || dropped (a && b -> a, -> b)
  round      a rounding constant (a power-of-two literal >= 2 that is added) -> 0 / doubled
  if_force   if (c) -> if (1'b0) / if (1'b1): a branch (state transition, error path) ignored
             or always taken
  invert     single-bit conditions inverted: if (c) -> if (!(c)), c ? a : b -> !c ? a : b,
             !x -> x

Candidates are enumerated in a fixed order (CORE_MODULES order, then source order); each has a
global index. A campaign samples `count` of them with random.Random(seed), so mutant k of a seed
(and a selection of files / operators) is always the same one.

Running a mutant (one worker process each, its own process group, killed at the wall timeout):
copy hdl/ to a temp folder, apply the change, lint it (`verilator --lint-only`; an error =
INVALID), then run the tests through `regress.run_one(..., hdl_dir=tmp, build_tag=...)` on
Verilator until one fails (KILLED by that test) or all pass (SURVIVED). A build that fails is
INVALID, a worker over its wall timeout is TIMEOUT (counted as killed: the tests hung). The
mutant's build folder and its sources are deleted when it ends.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from spatten_dv.sim import CORE_MODULES, HDL_DIR

OPERATORS = ("const", "arith", "compare", "logic", "drop_term", "round", "if_force", "invert")
# spatten_exp2_lut: a generated ROM (spatten-dv gen-rom); the wide fetcher and unpacker are
# built only at QK_MULS > D (`paper`), not in the default core the campaign's tests run (their
# faults are caught by their block tests' fault-injection cases)
EXCLUDED_MODULES = ("spatten_exp2_lut", "spatten_fetcher_wide", "spatten_plane_unpack_wide")
MUTABLE_MODULES = tuple(m for m in CORE_MODULES if m not in EXCLUDED_MODULES)

# ---------------------------------------------------------------------------- tokenizer

_TOKEN_RE = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<string>"(?:\\.|[^"\\\n])*")
  | (?P<number>(?:\d[\d_]*)?\s*'[sS]?[bBoOdDhH]\s*[0-9a-fA-F_xXzZ?]+|\d[\d_]*(?:\.\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_$]*|\$[A-Za-z_][A-Za-z0-9_$]*|`[A-Za-z_][A-Za-z0-9_]*
               |\\\S+)
  | (?P<op><<<|>>>|===|!==|<<|>>|<=|>=|==|!=|&&|\|\||~&|~\||~\^|\^~|\+:|-:|\*\*|->|'|.)
""", re.S | re.X)

KEYWORDS = {
    "module", "endmodule", "input", "output", "inout", "wire", "reg", "integer", "real",
    "parameter", "localparam", "genvar", "generate", "endgenerate", "always", "initial",
    "assign", "begin", "end", "if", "else", "case", "casez", "casex", "endcase", "default",
    "for", "while", "repeat", "forever", "function", "endfunction", "task", "endtask",
    "posedge", "negedge", "or", "signed", "unsigned", "fork", "join", "tri", "supply0",
    "supply1", "wand", "wor", "logic", "bit", "always_ff", "always_comb", "always_latch",
}
DECL_KEYWORDS = {"input", "output", "inout", "wire", "reg", "integer", "real", "parameter",
                 "localparam", "genvar", "tri", "logic", "bit"}


@dataclass
class Tok:
    kind: str  # number, ident, op
    text: str
    start: int  # character offsets in the file text
    end: int


def tokenize(text: str) -> list[Tok]:
    """Significant tokens (no whitespace, comments or strings are dropped; strings kept)."""
    toks = []
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind in ("ws", "comment"):
            continue
        toks.append(Tok(kind, m.group(), m.start(), m.end()))
    return toks


# ---------------------------------------------------------------------------- mutants

@dataclass
class Mutant:
    file: str  # file name in hdl/
    line: int  # 1-based
    col: int  # 1-based
    offset: int  # character offset of `original` in the file
    original: str
    replacement: str
    operator: str
    index: int = -1  # position among all candidates of hdl/ (stable for a given hdl/)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"

    @property
    def key(self) -> str:
        """Identity used by equivalence lists: location, operator and both texts."""
        return f"{self.where} {self.operator} {_short(self.original)} -> " \
               f"{_short(self.replacement)}"

    def describe(self) -> str:
        return f"{self.where:<28} {self.operator:<9} {_short(self.original)} -> " \
               f"{_short(self.replacement)}"

    def apply(self, text: str) -> str:
        if text[self.offset:self.offset + len(self.original)] != self.original:
            raise ValueError(f"{self.where}: source does not hold {self.original!r} there")
        return text[:self.offset] + self.replacement + text[self.offset + len(self.original):]


def _short(s: str, width: int = 40) -> str:
    s = " ".join(s.split())
    return s if len(s) <= width else s[:width - 3] + "..."


_OPEN = {"(": ")", "[": "]", "{": "}"}
_CLOSE = {")", "]", "}"}


class _Parser:
    """Finds the behavioural expression spans of one Verilog file and the mutants in them."""

    def __init__(self, text: str, file: str):
        self.text, self.file = text, file
        self.toks = tokenize(text)
        self.n = len(self.toks)
        self.spans: list[tuple[int, int, str]] = []  # (first token, end token, kind)
        self.if_conds: list[tuple[int, int]] = []  # token ranges of if conditions

    # -------------------------------------------------------------- helpers
    def t(self, i: int) -> str:
        return self.toks[i].text if i < self.n else ""

    def match(self, i: int) -> int:
        """Index after the group opened at i (tokens i must be an opening bracket)."""
        depth = 0
        while i < self.n:
            tx = self.toks[i].text
            if tx in _OPEN:
                depth += 1
            elif tx in _CLOSE:
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
        return i

    def skip_to(self, i: int, stop: str) -> int:
        """Index after the first depth-0 `stop` token from i."""
        depth = 0
        while i < self.n:
            tx = self.toks[i].text
            if tx in _OPEN:
                depth += 1
            elif tx in _CLOSE:
                depth -= 1
            elif tx == stop and depth == 0:
                return i + 1
            i += 1
        return i

    def find_assign_op(self, i: int, end_tokens: tuple[str, ...]) -> tuple[int, int]:
        """(index of the depth-0 `=` or `<=`, index of the statement end) from i."""
        depth, eq = 0, -1
        while i < self.n:
            tx = self.toks[i].text
            if tx in _OPEN:
                depth += 1
            elif tx in _CLOSE:
                depth -= 1
            elif depth == 0:
                if eq < 0 and tx in ("=", "<="):
                    eq = i
                elif tx in end_tokens:
                    return eq, i
            i += 1
        return eq, i

    # -------------------------------------------------------------- module level
    def parse(self) -> None:
        i = 0
        while i < self.n:
            tx = self.t(i)
            if tx == "module":
                i = self.skip_to(i, ";")  # header: parameter and port lists
            elif tx in ("always", "always_ff", "always_comb", "always_latch"):
                i = self.stmt(i + 1)
            elif tx == "initial":
                i = self.stmt(i + 1, mutable=False)
            elif tx == "assign":
                i = self.declarators(i + 1)
            elif tx in ("wire", "tri", "wand", "wor"):
                i = self.declarators(i + 1)
            elif tx in ("function", "task"):
                i = self.function(i)
            elif tx in DECL_KEYWORDS:
                i = self.skip_to(i, ";")  # reg / integer / parameter ...: never mutated
            else:
                i += 1

    def declarators(self, i: int) -> int:
        """`lhs = rhs, lhs = rhs ;` (assign, or a net declaration): the right-hand sides."""
        while i < self.n:
            eq, end = self.find_assign_op(i, (",", ";"))
            if eq >= 0 and self.t(eq) == "=":
                self.spans.append((eq + 1, end, "rhs"))
            if end >= self.n or self.t(end) == ";":
                return end + 1
            i = end + 1
        return i

    def function(self, i: int) -> int:
        end_kw = "endfunction" if self.t(i) == "function" else "endtask"
        i = self.skip_to(i, ";")
        while i < self.n and self.t(i) != end_kw:
            if self.t(i) in DECL_KEYWORDS:
                i = self.skip_to(i, ";")
            else:
                i = self.stmt(i)
        return i + 1

    # -------------------------------------------------------------- statements
    def stmt(self, i: int, mutable: bool = True) -> int:
        """Parse one statement from i; record its mutable spans; return the index after it."""
        if i >= self.n:
            return i
        tx = self.t(i)
        if tx in ("begin", "fork"):
            close = "end" if tx == "begin" else "join"
            i += 1
            if self.t(i) == ":":
                i += 2
            while i < self.n and self.t(i) != close:
                if self.t(i) in DECL_KEYWORDS:
                    i = self.skip_to(i, ";")
                else:
                    i = self.stmt(i, mutable)
            return i + 1
        if tx == "if":
            j = self.match(i + 1)
            if mutable:
                self.spans.append((i + 2, j - 1, "cond"))
                self.if_conds.append((i + 2, j - 1))
            i = self.stmt(j, mutable)
            if self.t(i) == "else":
                i = self.stmt(i + 1, mutable)
            return i
        if tx in ("case", "casez", "casex"):
            j = self.match(i + 1)
            if mutable:
                self.spans.append((i + 2, j - 1, "cond"))
            i = j
            while i < self.n and self.t(i) != "endcase":
                if self.t(i) == "default":
                    i += 1
                    if self.t(i) == ":":
                        i += 1
                else:
                    i = self.skip_to(i, ":")  # case labels are not mutated
                i = self.stmt(i, mutable)
            return i + 1
        if tx == "for":
            return self.stmt(self.match(i + 1), mutable)  # the loop header is not mutated
        if tx in ("while", "repeat"):
            j = self.match(i + 1)
            if mutable and tx == "while":
                self.spans.append((i + 2, j - 1, "cond"))
            return self.stmt(j, mutable)
        if tx == "forever":
            return self.stmt(i + 1, mutable)
        if tx in ("@", "#"):
            i += 1
            i = self.match(i) if self.t(i) == "(" else i + 1
            return self.stmt(i, mutable)
        if tx == ";":
            return i + 1
        if tx.startswith("$") or tx in ("end", "endcase", "join", "endfunction", "endtask",
                                        "endmodule"):
            return self.skip_to(i, ";") if tx.startswith("$") else i + 1
        eq, end = self.find_assign_op(i, (";",))
        if eq >= 0 and mutable:
            self.spans.append((eq + 1, end, "rhs"))
        return end + 1

    # -------------------------------------------------------------- mutants
    def _excluded(self, a: int, b: int) -> set[int]:
        """Token indices in [a, b) inside [...] or a replication count."""
        out: set[int] = set()
        i = a
        while i < b:
            tx = self.t(i)
            if tx == "[":
                j = self.match(i)
                out.update(range(i, j))
            elif tx == "{":
                # a replication {N{...}}: the tokens before the inner brace are a width
                depth, k = 0, i + 1
                while k < b:
                    kt = self.t(k)
                    if depth == 0 and kt == "{":
                        out.update(range(i + 1, k))
                        break
                    if depth == 0 and kt in (",", "}"):
                        break
                    if kt in _OPEN:
                        depth += 1
                    elif kt in _CLOSE:
                        depth -= 1
                    k += 1
            i += 1
        return out

    def _mk(self, start: int, end: int, replacement: str, op: str) -> Mutant:
        original = self.text[start:end]
        line = self.text.count("\n", 0, start) + 1
        col = start - (self.text.rfind("\n", 0, start) + 1) + 1
        return Mutant(self.file, line, col, start, original, replacement, op)

    def _is_operand_end(self, i: int) -> bool:
        if i < 0:
            return False
        tok = self.toks[i]
        if tok.kind == "number":
            return True
        if tok.kind == "ident":
            return tok.text not in KEYWORDS
        return tok.text in _CLOSE

    def _operand_bounds(self, p: int, a: int, b: int, stops: set[str]) -> tuple[int, int]:
        """(first token of the left operand, end of the right operand) of the operator at p."""
        depth, i = 0, p - 1
        while i >= a:
            tx = self.t(i)
            if tx in _CLOSE:
                depth += 1
            elif tx in _OPEN:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and tx in stops:
                break
            i -= 1
        left = i + 1
        depth, i = 0, p + 1
        while i < b:
            tx = self.t(i)
            if tx in _OPEN:
                depth += 1
            elif tx in _CLOSE:
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and tx in stops:
                break
            i += 1
        return left, i

    def mutants(self) -> list[Mutant]:
        self.parse()
        found: list[Mutant] = []
        seen: set[tuple[int, str, str]] = set()

        def add(m: Mutant) -> None:
            k = (m.offset, m.original, m.replacement)
            if m.original != m.replacement and k not in seen:
                seen.add(k)
                found.append(m)

        whole_if_not = set()
        for a, b in self.if_conds:
            if b <= a:
                continue
            s, e = self.toks[a].start, self.toks[b - 1].end
            add(self._mk(s, e, "1'b0", "if_force"))
            add(self._mk(s, e, "1'b1", "if_force"))
            cond = self.text[s:e]
            if self.t(a) == "!" and self._operand_end(a + 1, b) == b:
                whole_if_not.add(a)
                add(self._mk(s, e, self.text[self.toks[a + 1].start:e], "invert"))
            else:
                add(self._mk(s, e, f"!({cond})", "invert"))

        for a, b, _kind in sorted(self.spans):
            skip = self._excluded(a, b)
            for i in range(a, b):
                if i in skip:
                    continue
                tok = self.toks[i]
                tx = tok.text
                binary = self._is_operand_end(i - 1) and i - 1 >= a
                if tok.kind == "number":
                    for rep in _off_by_one(tx):
                        add(self._mk(tok.start, tok.end, rep, "const"))
                    if self._is_rounding(i, a, b):
                        v = _literal(tx)
                        for rep in (_with_value(tx, 0), _with_value(tx, v[1] * 2)):
                            if rep is not None:
                                add(self._mk(tok.start, tok.end, rep, "round"))
                elif tx in ("+", "-") and binary:
                    add(self._mk(tok.start, tok.end, "-" if tx == "+" else "+", "arith"))
                elif tx in _CMP_SWAP:
                    add(self._mk(tok.start, tok.end, _CMP_SWAP[tx], "compare"))
                elif tx in ("&&", "||"):
                    add(self._mk(tok.start, tok.end, "||" if tx == "&&" else "&&", "logic"))
                    stops = {"||", "?", ":", ","} | ({"&&"} if tx == "&&" else set())
                    left, right = self._operand_bounds(i, a, b, stops)
                    if left < i and right > i + 1:
                        s, e = self.toks[left].start, self.toks[right - 1].end
                        add(self._mk(s, e, self.text[s:self.toks[i - 1].end], "drop_term"))
                        add(self._mk(s, e, self.text[self.toks[i + 1].start:e], "drop_term"))
                elif tx in ("&", "|") and binary:
                    add(self._mk(tok.start, tok.end, "|" if tx == "&" else "&", "logic"))
                elif tx == "!" and i not in whole_if_not and self._operand_end(i + 1, b) > i + 1:
                    e = self._operand_end(i + 1, b)
                    add(self._mk(tok.start, self.toks[e - 1].end,
                                 self.text[self.toks[i + 1].start:self.toks[e - 1].end],
                                 "invert"))
                elif tx == "?":
                    c0 = self._cond_start(i, a)
                    if c0 is not None:
                        s, e = self.toks[c0].start, self.toks[i - 1].end
                        add(self._mk(s, e, "!" + self.text[s:e], "invert"))
        found.sort(key=lambda m: (m.offset, OPERATORS.index(m.operator), m.replacement))
        return found

    def _operand_end(self, i: int, b: int) -> int:
        """End of a simple operand at i: an identifier (with selects) or a paren group."""
        if i >= b:
            return i
        if self.t(i) == "(":
            return self.match(i)
        if self.toks[i].kind not in ("ident", "number") or self.t(i) in KEYWORDS:
            return i
        j = i + 1
        while j < b and self.t(j) in ("[", "."):
            j = self.match(j) if self.t(j) == "[" else j + 2
        if j < b and self.t(j) == "(":  # a function call
            j = self.match(j)
        return j

    def _cond_start(self, q: int, a: int) -> int | None:
        """First token of a ternary condition ending before `?` at q when it is one operand."""
        j = q - 1
        if j < a:
            return None
        if self.t(j) == ")":
            depth, k = 0, j
            while k >= a:
                if self.t(k) == ")":
                    depth += 1
                elif self.t(k) == "(":
                    depth -= 1
                    if depth == 0:
                        break
                k -= 1
            start = k
        else:
            k = j
            while k >= a and self.t(k) == "]":  # bit selects
                depth = 0
                while k >= a:
                    if self.t(k) == "]":
                        depth += 1
                    elif self.t(k) == "[":
                        depth -= 1
                        if depth == 0:
                            break
                    k -= 1
                k -= 1
            if k < a or self.toks[k].kind != "ident" or self.t(k) in KEYWORDS:
                return None
            start = k
        before = self.t(start - 1) if start - 1 >= a else "="
        if start > a and before not in ("(", "{", ",", "?", ":", "=", "<="):
            return None
        if start - 1 >= 0 and self.t(start - 1).startswith("$"):
            return None  # $signed(x) ? ...: the call is the operand, not the group
        return start

    def _is_rounding(self, i: int, a: int, b: int) -> bool:
        """A power-of-two literal >= 2 added to something (`x + C` / `C + x`)."""
        v = _literal(self.t(i))
        if v is None or v[1] < 2 or v[1] & (v[1] - 1):
            return False
        prev = self.t(i - 1) if i - 1 >= a else ""
        nxt = self.t(i + 1) if i + 1 < b else ""
        return (prev == "+" and self._is_operand_end(i - 2)) or nxt == "+"


_CMP_SWAP = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "=="}
_LIT_RE = re.compile(r"^(\d[\d_]*)?\s*'([sS]?)([bBoOdDhH])\s*([0-9a-fA-F_]+)$")
_BASES = {"b": 2, "o": 8, "d": 10, "h": 16}


def _literal(text: str) -> tuple[int | None, int] | None:
    """(width or None, value) of an integer literal without x/z digits, else None."""
    if re.fullmatch(r"\d[\d_]*", text):
        return None, int(text.replace("_", ""))
    m = _LIT_RE.match(text)
    if not m:
        return None
    width = int(m.group(1).replace("_", "")) if m.group(1) else None
    try:
        value = int(m.group(4).replace("_", ""), _BASES[m.group(3).lower()])
    except ValueError:
        return None
    return width, value


def _with_value(text: str, value: int) -> str | None:
    """`text` with its value replaced (same width, signedness and base), None if it does not
    fit or is negative."""
    lit = _literal(text)
    if lit is None or value < 0:
        return None
    width, _ = lit
    if width is not None and value >= 1 << width:
        return None
    if re.fullmatch(r"\d[\d_]*", text):
        return str(value)
    m = _LIT_RE.match(text)
    base = m.group(3).lower()
    digits = {"b": f"{value:b}", "o": f"{value:o}", "d": f"{value:d}", "h": f"{value:x}"}[base]
    if m.group(4).isupper() and base == "h":
        digits = digits.upper()
    return f"{m.group(1) or ''}'{m.group(2)}{m.group(3)}{digits}"


def _off_by_one(text: str) -> list[str]:
    lit = _literal(text)
    if lit is None:
        return []
    return [r for r in (_with_value(text, lit[1] + 1), _with_value(text, lit[1] - 1))
            if r is not None]


def mutants_of_text(text: str, file: str = "snippet.v") -> list[Mutant]:
    """All mutants of one Verilog text, in source order (index unset)."""
    return _Parser(text, file).mutants()


def all_mutants(hdl_dir: Path = HDL_DIR) -> list[Mutant]:
    """Every candidate mutant of the core's modules (without the generated ROM), indexed."""
    out: list[Mutant] = []
    for name in MUTABLE_MODULES:
        path = Path(hdl_dir) / f"{name}.v"
        out.extend(mutants_of_text(path.read_text(), path.name))
    for k, m in enumerate(out):
        m.index = k
    return out


def select(mutants: list[Mutant], *, count: int, seed: int,
           operators: list[str] | None = None, files: list[str] | None = None,
           exclude_keys: set[str] | frozenset = frozenset()) -> list[Mutant]:
    """Deterministic sample: mutant k of (seed, selection) is always the same one."""
    pool = [m for m in mutants
            if (not operators or m.operator in operators)
            and (not files or m.file in files or m.file[:-2] in files)
            and m.key not in exclude_keys]
    rng = random.Random(seed)
    return rng.sample(pool, min(count, len(pool)))


def site_table(mutants: list[Mutant]) -> list[str]:
    """Per file x operator counts of candidate mutants (the --list output)."""
    files = list(dict.fromkeys(m.file for m in mutants))
    head = f"{'file':<26}" + "".join(f"{op:>10}" for op in OPERATORS) + f"{'total':>8}"
    lines = [head]
    for f in files:
        row = [sum(1 for m in mutants if m.file == f and m.operator == op) for op in OPERATORS]
        lines.append(f"{f:<26}" + "".join(f"{c:>10}" for c in row) + f"{sum(row):>8}")
    tot = [sum(1 for m in mutants if m.operator == op) for op in OPERATORS]
    lines.append(f"{'total':<26}" + "".join(f"{c:>10}" for c in tot) + f"{sum(tot):>8}")
    return lines


# ---------------------------------------------------------------------------- running

KILLED, SURVIVED, INVALID, TIMEOUT = "KILLED", "SURVIVED", "INVALID", "TIMEOUT"


@dataclass
class MutantResult:
    k: int
    mutant: Mutant | None
    status: str
    test: str = ""
    failure: str = ""
    wall_s: float = 0.0
    tests_run: list[dict] = field(default_factory=list)
    log: str = ""

    def as_dict(self) -> dict:
        d = {"k": self.k, "status": self.status, "test": self.test, "failure": self.failure,
             "wall_s": round(self.wall_s, 1), "tests_run": self.tests_run, "log": self.log}
        if self.mutant is not None:
            d.update(asdict(self.mutant), key=self.mutant.key)
        return d


def _spec_dict(spec) -> dict:
    return {"name": spec.name, "sequences": spec.sequences, "knobs": dict(spec.knobs),
            "test": spec.test, "simulators": list(spec.simulators), "tier": spec.tier}


def mutant_build_dirs(tag: str, channels: set[int]) -> list[Path]:
    """Build folders run_one makes for `tag` (one per N_CH) under the current build root."""
    from spatten_dv import sim

    root = Path(os.environ.get("SPATTEN_SIM_BUILD", sim.BUILD_ROOT))
    keys = [dict({"N_CH": ch}, **({"_tag": tag} if tag else {})) for ch in sorted(channels)]
    return [root / sim._build_dir("spatten_core", "verilator", key, False).name for key in keys]


_EXC_RE = re.compile(r"^\s*((?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Mismatch))(:.*)?$")


def _first_error(folder: Path) -> str:
    """The most telling line of a failed test's log: the first scoreboard mismatch, else the
    exception that failed the test (a job timeout said as such), else the first ERROR line."""
    for log in sorted(folder.glob("sim-*.log")):
        try:
            lines = log.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            if "FIRST MISMATCH" in line:
                return line[line.index("FIRST MISMATCH"):][:300]
        when = ""
        for line in lines:
            m = re.match(r"^\s*([\d.]+)ns\s+WARNING\s+cocotb\.regression\s+.*failed", line)
            if m:
                when = f" at {float(m.group(1)):.0f} ns"
        exc = [m for m in map(_EXC_RE.match, lines) if m]
        if exc:
            name, msg = exc[-1].group(1), (exc[-1].group(2) or "")
            if name.endswith("SimTimeoutError"):
                return (f"job timeout{when}: no result within job_timeout_us (the core hung "
                        "or stalled)")
            return f"{name.rsplit('.', 1)[-1]}{msg}{when}"[:300]
        for line in lines:
            if " ERROR " in line:
                return re.sub(r"^\s*[\d.]+\w*\s+ERROR\s+\S+\s+", "", line)[:300]
    return ""


def _lint(folder: Path) -> str:
    """First error of `verilator --lint-only` on the core in `folder` ('' = clean)."""
    from spatten_dv import toolchain

    env = toolchain.setup_environment(dict(os.environ))
    exe = shutil.which("verilator", path=env.get("PATH")) or "verilator"
    srcs = [str(Path(folder) / f"{m}.v") for m in CORE_MODULES]
    try:
        out = subprocess.run([exe, "--lint-only", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                              "--top-module", "spatten_core", *srcs],
                             capture_output=True, text=True, timeout=300, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"lint did not run: {exc}"
    if out.returncode == 0:
        return ""
    errs = [ln for ln in out.stderr.splitlines() if ln.startswith("%Error")]
    tail = out.stderr.strip().splitlines()
    return (errs[0] if errs else tail[-1] if tail else "verilator lint failed")[:300]


def run_mutant(job: dict) -> dict:
    """The worker: one mutant (or the baseline when job['mutant'] is None) on the tests."""
    from spatten_dv.regress import TestSpec

    k = job["k"]
    mutant = Mutant(**job["mutant"]) if job.get("mutant") else None
    out = Path(job["out"])
    tag = job.get("tag", "")
    specs = [TestSpec(**dict(s, simulators=tuple(s["simulators"]))) for s in job["tests"]]
    t0 = time.monotonic()
    res = MutantResult(k, mutant, SURVIVED)
    try:
        _run_mutant(job, mutant, specs, out, tag, res)
    finally:
        res.wall_s = time.monotonic() - t0
    return res.as_dict()


def _run_mutant(job, mutant, specs, out, tag, res) -> None:
    from spatten_dv.regress import run_one

    k = job["k"]
    tmp = None
    try:
        hdl_dir = None
        if mutant is not None:
            tmp = Path(tempfile.mkdtemp(prefix=f"spatten-mutant{k}-"))
            (out / "sources.txt").write_text(str(tmp))  # removed by the parent on a timeout
            for src in Path(job.get("hdl_src", HDL_DIR)).glob("*.v"):
                shutil.copy2(src, tmp / src.name)
            path = tmp / mutant.file
            path.write_text(mutant.apply(path.read_text()))
            (out / "mutant.diff").write_text(f"{mutant.where} [{mutant.operator}]\n"
                                             f"- {mutant.original}\n+ {mutant.replacement}\n")
            hdl_dir = tmp
            err = _lint(tmp)
            if err:
                res.status, res.failure = INVALID, err
                return
            for d in mutant_build_dirs(tag, {s.channels for s in specs}):
                shutil.rmtree(d, ignore_errors=True)  # never reuse a stale mutant build
        for spec in specs:
            t1 = time.monotonic()
            try:
                r = run_one(spec, "verilator", job["seed"], out, knobs=job.get("knobs") or None,
                            progress=False, hdl_dir=hdl_dir, build_tag=tag)
            except Exception as exc:  # noqa: BLE001 - build error or simulator crash
                built = any((d / "spatten_core").is_file()
                            for d in mutant_build_dirs(tag, {spec.channels}))
                if not built:
                    res.status = INVALID
                    res.failure = f"build failed: {type(exc).__name__}: {exc}"[:300]
                else:
                    res.status, res.test = KILLED, spec.name
                    res.failure = f"simulator crashed: {type(exc).__name__}: {exc}"[:300]
                res.tests_run.append({"test": spec.name, "passed": False,
                                      "wall_s": round(time.monotonic() - t1, 1)})
                return
            res.tests_run.append({"test": spec.name, "passed": r.passed,
                                  "wall_s": round(r.wall_s, 1),
                                  "sim_s": r.summary.get("wall_s")})
            if not r.passed:
                res.status, res.test = KILLED, spec.name
                res.failure = _first_error(r.folder) or r.failure
                res.log = str(r.folder)
                return
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if mutant is not None:
            for d in mutant_build_dirs(tag, {s.channels for s in specs}):
                shutil.rmtree(d, ignore_errors=True)


def _worker_main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    result = run_mutant(job)
    tmp = Path(job["result"]).with_suffix(".tmp")
    tmp.write_text(json.dumps(result))
    tmp.rename(job["result"])
    return 0


class Campaign:
    """Runs mutants in worker processes, `jobs` at a time, and reports them as they end."""

    def __init__(self, mutants: list[Mutant], tests: list, out: Path, *, seed: int,
                 knobs: dict | None = None, jobs: int = 1, timeout_s: float = 1800,
                 echo=print):
        self.mutants, self.tests, self.out = mutants, list(tests), Path(out)
        self.seed, self.knobs, self.jobs, self.timeout_s = seed, dict(knobs or {}), jobs, timeout_s
        self.echo = echo
        self.results: list[MutantResult] = []
        self.stamp = f"{os.getpid()}"

    def _job(self, k: int, mutant: Mutant | None, folder: Path, tests: list) -> dict:
        return {"k": k, "mutant": asdict(mutant) if mutant else None, "out": str(folder),
                "tests": [_spec_dict(s) for s in tests], "seed": self.seed,
                "knobs": self.knobs, "hdl_src": str(HDL_DIR),
                "tag": f"mutant{mutant.index}-{self.stamp}" if mutant else "",
                "result": str(folder / "result.json")}

    def _spawn(self, job: dict) -> subprocess.Popen:
        folder = Path(job["out"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").unlink(missing_ok=True)
        (folder / "job.json").write_text(json.dumps(job, indent=1))
        log = open(folder / "worker.log", "w")  # noqa: SIM115 - closed by the child's exit
        env = dict(os.environ)
        env.pop("PYTEST_CURRENT_TEST", None)
        try:
            return subprocess.Popen([sys.executable, "-m", "spatten_dv.mutate", "--worker",
                                     str(folder / "job.json")], stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True, env=env)
        finally:
            log.close()

    @staticmethod
    def _kill(p: subprocess.Popen) -> None:
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the worker, its simulator and compilers
        except ProcessLookupError:
            pass
        p.wait()

    def _collect(self, job: dict, p: subprocess.Popen, t0: float, timed_out: bool) -> dict:
        folder = Path(job["out"])
        if timed_out:
            chans = {int(s.get("knobs", {}).get("channels", 1)) for s in job["tests"]}
            for d in mutant_build_dirs(job["tag"], chans) if job["tag"] else []:
                shutil.rmtree(d, ignore_errors=True)
            try:
                shutil.rmtree((folder / "sources.txt").read_text().strip(), ignore_errors=True)
            except OSError:
                pass
            r = MutantResult(job["k"], Mutant(**job["mutant"]) if job["mutant"] else None,
                             TIMEOUT, failure=f"no verdict after {self.timeout_s:.0f} s "
                             "(a test hung): counted as killed")
            return r.as_dict() | {"wall_s": round(time.monotonic() - t0, 1)}
        try:
            return json.loads((folder / "result.json").read_text())
        except (OSError, json.JSONDecodeError):
            tail = ""
            try:
                tail = (folder / "worker.log").read_text(errors="replace").strip()
                tail = tail.splitlines()[-1] if tail else ""
            except OSError:
                pass
            r = MutantResult(job["k"], Mutant(**job["mutant"]) if job["mutant"] else None,
                             INVALID, failure=f"worker exited {p.returncode} without a "
                             f"verdict: {tail}"[:300])
            return r.as_dict() | {"wall_s": round(time.monotonic() - t0, 1)}

    def baseline(self) -> dict:
        """The unmutated core on the tests (they must pass, or every mutant looks killed)."""
        job = self._job(-1, None, self.out / "baseline", self.tests)
        t0 = time.monotonic()
        p = self._spawn(job)
        try:
            p.wait(timeout=self.timeout_s)
            timed_out = False
        except subprocess.TimeoutExpired:
            self._kill(p)
            timed_out = True
        return self._collect(job, p, t0, timed_out)

    def run(self, on_result=None) -> list[dict]:
        self.out.mkdir(parents=True, exist_ok=True)
        jsonl = self.out / "mutants.jsonl"
        jsonl.write_text("")
        pending = list(enumerate(self.mutants))
        running: list[tuple[dict, subprocess.Popen, float]] = []
        done: list[dict] = []
        try:
            while pending or running:
                while pending and len(running) < self.jobs:
                    k, m = pending.pop(0)
                    job = self._job(k, m, self.out / "mutants" / f"m{k:03d}-{m.index}",
                                    self.tests)
                    running.append((job, self._spawn(job), time.monotonic()))
                time.sleep(0.5)
                still = []
                for job, p, t0 in running:
                    over = time.monotonic() - t0 > self.timeout_s
                    if p.poll() is None and not over:
                        still.append((job, p, t0))
                        continue
                    if p.poll() is None:
                        self._kill(p)
                    r = self._collect(job, p, t0, over and not
                                      (Path(job["out"]) / "result.json").is_file())
                    done.append(r)
                    with open(jsonl, "a", encoding="utf-8") as f:
                        f.write(json.dumps(r) + "\n")
                    if on_result:
                        on_result(r, len(done), len(self.mutants))
                running = still
        finally:
            for job, p, t0 in running:  # Ctrl-C: nothing left behind
                self._kill(p)
                self._collect(job, p, t0, True)
        return done


def summarize(results: list[dict], *, extra: dict | None = None) -> dict:
    counts = {s: sum(1 for r in results if r["status"] == s)
              for s in (KILLED, TIMEOUT, SURVIVED, INVALID)}
    killed = counts[KILLED] + counts[TIMEOUT]
    scored = killed + counts[SURVIVED]

    def by(key: str) -> dict:
        out: dict = {}
        for r in results:
            row = out.setdefault(r.get(key, "?"), {"killed": 0, "survived": 0, "invalid": 0})
            st = r["status"]
            row["killed" if st in (KILLED, TIMEOUT) else st.lower()] += 1
        return out

    return dict(extra or {}, mutants=len(results), killed=killed, timeouts=counts[TIMEOUT],
                survived=counts[SURVIVED], invalid=counts[INVALID],
                score=round(killed / scored, 4) if scored else None,
                by_operator=by("operator"), by_file=by("file"),
                killed_by={t: sum(1 for r in results if r.get("test") == t
                                  and r["status"] == KILLED)
                           for t in sorted({r.get("test") for r in results if r.get("test")})},
                survivors=[{"index": r["index"], "key": r["key"]} for r in results
                           if r["status"] == SURVIVED])


def result_line(r: dict) -> str:
    st = r["status"]
    where = f"{r['file']}:{r['line']}:{r['col']}"
    change = f"{_short(r['original'])} -> {_short(r['replacement'])}"
    s = f"{st:<8} #{r['index']:<5} {where:<28} {r['operator']:<9} {change}"
    if st == KILLED:
        s += f"  by {r['test']}"
    return s + f"  ({r['wall_s']:.0f} s)"


if __name__ == "__main__":  # the worker process of a campaign
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        sys.exit(_worker_main(sys.argv[2]))
    sys.exit("usage: python -m spatten_dv.mutate --worker JOB.json")
