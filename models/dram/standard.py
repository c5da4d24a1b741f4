"""Declarative description of a DRAM standard, in the style of Ramulator 2.

A standard is data, not code: its hierarchy levels, its commands (with what each one does to a
bank and which command bus it uses), the names of its timing parameters, and its timing rules.
A rule reads "at this level, once one of the *preceding* commands issues, each *following*
command waits `latency` cycles"; a rule with `window` N counts from the N-th most recent
preceding command (nFAW), and a `sibling` rule applies to the other nodes of that level (rank
switching). Latencies are arithmetic expressions over the timing parameter names, resolved to
integers once the preset values are known (`resolve_rules`).

The resolved form is the same integer table Ramulator 2.1 exports in its YAML
(`[level, [preceding], [following], latency(, window, sibling)]`), so a resolved standard and a
Ramulator config can drive the same device model.
"""

from __future__ import annotations

import ast
import enum
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field


class Role(enum.Enum):
    """What a command does, independent of the name a standard gives it."""

    ACTIVATE = "activate"
    PRECHARGE = "precharge"  # closes one bank
    PRECHARGE_ALL = "precharge_all"  # closes every bank under the addressed node
    READ = "read"
    WRITE = "write"
    READ_AP = "read_autoprecharge"  # read, then close the bank
    WRITE_AP = "write_autoprecharge"
    REFRESH_ALL = "refresh_all"  # needs every bank under the node closed
    REFRESH_BANK = "refresh_bank"


class Bus(enum.Enum):
    SHARED = "shared"  # single command bus (DDR4)
    ROW = "row"  # HBM row-command bus (ACT, PRE, REF)
    COLUMN = "column"  # HBM column-command bus (RD, WR)


@dataclass(frozen=True)
class Command:
    name: str
    role: Role
    bus: Bus = Bus.SHARED

    @property
    def opens(self) -> bool:
        return self.role is Role.ACTIVATE

    @property
    def closes(self) -> bool:
        return self.role in (Role.PRECHARGE, Role.PRECHARGE_ALL, Role.READ_AP, Role.WRITE_AP)

    @property
    def accesses(self) -> bool:
        return self.role in (Role.READ, Role.WRITE, Role.READ_AP, Role.WRITE_AP)

    @property
    def refreshes(self) -> bool:
        return self.role in (Role.REFRESH_ALL, Role.REFRESH_BANK)

    @property
    def all_banks(self) -> bool:
        """True when the command acts on every bank under its address (bank fields wildcard)."""
        return self.role in (Role.PRECHARGE_ALL, Role.REFRESH_ALL)


@dataclass(frozen=True)
class TimingRule:
    level: str
    preceding: tuple[str, ...]
    following: tuple[str, ...]
    latency: str  # expression over timing parameter names, e.g. "nCL + nBL + 2 - nCWL"
    window: int = 1
    sibling: bool = False


@dataclass(frozen=True)
class ResolvedRule:
    """One (preceding, following) pair with an integer latency; indices into the standard."""

    level: int
    preceding: int
    following: int
    latency: int
    window: int = 1
    sibling: bool = False


@dataclass(frozen=True)
class Standard:
    name: str
    levels: tuple[str, ...]  # outermost first; the last two are always Row and Column
    commands: tuple[Command, ...]
    timing_names: tuple[str, ...]  # order of Ramulator's `timing:` list
    rules: tuple[TimingRule, ...]
    refresh_level: str  # the node one REFab refreshes (Rank for DDR4, PseudoChannel for HBM2)
    internal_prefetch: int  # bursts per column access (BL8 -> 8)
    read_latency: str = "nCL + nBL"
    command_cycles: Mapping[str, int] = field(default_factory=dict)  # multi-cycle commands only
    request_commands: Mapping[str, str] = field(
        default_factory=lambda: {"read": "RD", "write": "WR"})

    @property
    def bank_level(self) -> int:
        return self.levels.index("Bank")

    @property
    def row_level(self) -> int:
        return self.levels.index("Row")

    @property
    def dual_command_bus(self) -> bool:
        return any(c.bus is not Bus.SHARED for c in self.commands)

    def command_index(self, name: str) -> int:
        for i, c in enumerate(self.commands):
            if c.name == name:
                return i
        raise KeyError(f"{self.name} has no command {name!r}")

    def role_index(self, role: Role) -> int:
        """Index of the command playing `role`, or -1 when the standard has none."""
        for i, c in enumerate(self.commands):
            if c.role is role:
                return i
        return -1


_BINARY_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul}


def evaluate_latency(expression: str, timings: Mapping[str, int]) -> int:
    """Evaluate "nCWL + nBL + nWR" with integer timing values (only + - * and names)."""

    def walk(node: ast.AST) -> int:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.Name):
            if node.id not in timings:
                raise KeyError(f"timing parameter {node.id!r} in {expression!r} has no value")
            return int(timings[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY_OPS:
            return _BINARY_OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -walk(node.operand)
        raise ValueError(f"unsupported latency expression {expression!r}")

    return walk(ast.parse(expression, mode="eval"))


def resolve_rules(standard: Standard, timings: Mapping[str, int]) -> list[ResolvedRule]:
    """Integer rules for `timings`, including multi-cycle command adjustments and bus occupancy.

    A command that takes k > 1 command-bus cycles is recorded at its first cycle, so a rule whose
    preceding command is k cycles long starts k-1 cycles later (+k-1) and a rule whose following
    command is k cycles long may start k-1 cycles earlier (-(k-1)). Each multi-cycle command also
    blocks its own command bus for k cycles (a channel-level rule).
    """
    level_of = {name: i for i, name in enumerate(standard.levels)}
    cycles = {c.name: int(standard.command_cycles.get(c.name, 1)) for c in standard.commands}
    resolved: list[ResolvedRule] = []

    if standard.dual_command_bus:
        buses = [[c.name for c in standard.commands if c.bus is b] for b in (Bus.ROW, Bus.COLUMN)]
    else:
        buses = [[c.name for c in standard.commands]]
    for bus in buses:
        for name in bus:
            if cycles[name] > 1:
                for following in bus:
                    resolved.append(ResolvedRule(
                        0, standard.command_index(name), standard.command_index(following),
                        cycles[name]))

    for rule in standard.rules:
        nominal = evaluate_latency(rule.latency, timings)
        for p in rule.preceding:
            for f in rule.following:
                latency = nominal + (cycles[p] - 1) - (cycles[f] - 1)
                resolved.append(ResolvedRule(
                    level_of[rule.level], standard.command_index(p), standard.command_index(f),
                    latency, rule.window, rule.sibling))
    return resolved


def rules_from_ramulator_table(table: list) -> list[ResolvedRule]:
    """Expand Ramulator's exported `timing_constraints` rows into one rule per command pair."""
    resolved = []
    for row in table:
        level, preceding, following, latency = row[0], row[1], row[2], row[3]
        window = int(row[4]) if len(row) > 4 else 1
        sibling = bool(row[5]) if len(row) > 5 else False
        for p in preceding:
            for f in following:
                resolved.append(ResolvedRule(int(level), int(p), int(f), int(latency),
                                             window, sibling))
    return resolved


# --------------------------------------------------------------------------------------------
# DDR4 (JESD79-4): one rank level, four bank groups of four banks.
# --------------------------------------------------------------------------------------------

_RD_ANY = ("RD", "RDA")
_WR_ANY = ("WR", "WRA")

DDR4 = Standard(
    name="DDR4",
    levels=("Channel", "Rank", "BankGroup", "Bank", "Row", "Column"),
    commands=(
        Command("ACT", Role.ACTIVATE),
        Command("PREpb", Role.PRECHARGE),
        Command("PREab", Role.PRECHARGE_ALL),
        Command("RD", Role.READ),
        Command("WR", Role.WRITE),
        Command("RDA", Role.READ_AP),
        Command("WRA", Role.WRITE_AP),
        Command("REFab", Role.REFRESH_ALL),
    ),
    timing_names=("rate", "nBL", "nCL", "nRCD", "nRP", "nRAS", "nRC", "nWR", "nRTP", "nCWL",
                  "nCCDS", "nCCDL", "nRRDS", "nRRDL", "nWTRS", "nWTRL", "nFAW", "nRFC", "nREFI",
                  "nCS", "tCK_ps"),
    refresh_level="Rank",
    internal_prefetch=8,
    rules=(
        # Data bus: one burst at a time on the channel.
        TimingRule("Channel", _RD_ANY, _RD_ANY, "nBL"),
        TimingRule("Channel", _WR_ANY, _WR_ANY, "nBL"),
        # Column commands to different bank groups, and read/write turnarounds.
        TimingRule("Rank", _RD_ANY, _RD_ANY, "nCCDS"),
        TimingRule("Rank", _WR_ANY, _WR_ANY, "nCCDS"),
        TimingRule("Rank", _RD_ANY, _WR_ANY, "nCL + nBL + 2 - nCWL"),
        TimingRule("Rank", _WR_ANY, _RD_ANY, "nCWL + nBL + nWTRS"),
        # Switching the data bus to another rank.
        TimingRule("Rank", _RD_ANY, _RD_ANY + _WR_ANY, "nBL + nCS", sibling=True),
        TimingRule("Rank", _WR_ANY, _RD_ANY, "nCWL + nBL + nCS - nCL", sibling=True),
        # Closing every bank of the rank.
        TimingRule("Rank", ("RD",), ("PREab",), "nRTP"),
        TimingRule("Rank", ("WR",), ("PREab",), "nCWL + nBL + nWR"),
        # Activations: spacing, four-activate window, and all-bank precharge.
        TimingRule("Rank", ("ACT",), ("ACT",), "nRRDS"),
        TimingRule("Rank", ("ACT",), ("ACT",), "nFAW", window=4),
        TimingRule("Rank", ("ACT",), ("PREab",), "nRAS"),
        TimingRule("Rank", ("PREab",), ("ACT",), "nRP"),
        # Refresh needs every bank precharged and blocks the rank for nRFC.
        TimingRule("Rank", ("ACT",), ("REFab",), "nRC"),
        TimingRule("Rank", ("PREpb", "PREab"), ("REFab",), "nRP"),
        TimingRule("Rank", ("RDA",), ("REFab",), "nRP + nRTP"),
        TimingRule("Rank", ("WRA",), ("REFab",), "nCWL + nBL + nWR + nRP"),
        TimingRule("Rank", ("REFab",), ("ACT", "PREab"), "nRFC"),
        # Same bank group: long column-to-column and activate spacing.
        TimingRule("BankGroup", _RD_ANY, _RD_ANY, "nCCDL"),
        TimingRule("BankGroup", _WR_ANY, _WR_ANY, "nCCDL"),
        TimingRule("BankGroup", _WR_ANY, _RD_ANY, "nCWL + nBL + nWTRL"),
        TimingRule("BankGroup", ("ACT",), ("ACT",), "nRRDL"),
        # One bank: row cycle, activate-to-column, precharge windows.
        TimingRule("Bank", ("ACT",), ("ACT",), "nRC"),
        TimingRule("Bank", ("ACT",), _RD_ANY + _WR_ANY, "nRCD"),
        TimingRule("Bank", ("ACT",), ("PREpb",), "nRAS"),
        TimingRule("Bank", ("PREpb",), ("ACT",), "nRP"),
        TimingRule("Bank", ("RD",), ("PREpb",), "nRTP"),
        TimingRule("Bank", ("WR",), ("PREpb",), "nCWL + nBL + nWR"),
        TimingRule("Bank", ("RDA",), ("ACT",), "nRTP + nRP"),
        TimingRule("Bank", ("WRA",), ("ACT",), "nCWL + nBL + nWR + nRP"),
    ),
)


# --------------------------------------------------------------------------------------------
# HBM2 (JESD235): a channel holds two pseudo-channels with their own data buses; row and column
# commands travel on separate command buses, and ACT takes two row-bus cycles.
# --------------------------------------------------------------------------------------------

HBM2 = Standard(
    name="HBM2",
    levels=("Channel", "PseudoChannel", "BankGroup", "Bank", "Row", "Column"),
    commands=(
        Command("ACT", Role.ACTIVATE, Bus.ROW),
        Command("PREpb", Role.PRECHARGE, Bus.ROW),
        Command("PREab", Role.PRECHARGE_ALL, Bus.ROW),
        Command("RD", Role.READ, Bus.COLUMN),
        Command("WR", Role.WRITE, Bus.COLUMN),
        Command("RDA", Role.READ_AP, Bus.COLUMN),
        Command("WRA", Role.WRITE_AP, Bus.COLUMN),
        Command("REFab", Role.REFRESH_ALL, Bus.ROW),
        Command("REFpb", Role.REFRESH_BANK, Bus.ROW),
    ),
    timing_names=("rate", "nBL", "nCL", "nRCDRD", "nRCDWR", "nRP", "nRAS", "nRC", "nWR",
                  "nRTPL", "nCWL", "nCCDS", "nCCDL", "nRRDS", "nRRDL", "nWTRS", "nWTRL", "nFAW",
                  "nRFC", "nRFCpb", "nRREFD", "nREFI", "nREFIpb", "tCK_ps"),
    refresh_level="PseudoChannel",
    internal_prefetch=4,
    command_cycles={"ACT": 2},
    rules=(
        # Each pseudo-channel has its own 64-bit data bus.
        TimingRule("PseudoChannel", _RD_ANY, _RD_ANY, "nBL"),
        TimingRule("PseudoChannel", _WR_ANY, _WR_ANY, "nBL"),
        TimingRule("PseudoChannel", _RD_ANY, _RD_ANY, "nCCDS"),
        TimingRule("PseudoChannel", _WR_ANY, _WR_ANY, "nCCDS"),
        TimingRule("PseudoChannel", _RD_ANY, _WR_ANY, "nCL + nBL + 2 - nCWL"),
        TimingRule("PseudoChannel", _WR_ANY, _RD_ANY, "nCWL + nBL + nWTRS"),
        TimingRule("PseudoChannel", ("RD",), ("PREab",), "nRTPL"),
        TimingRule("PseudoChannel", ("WR",), ("PREab",), "nCWL + nBL + nWR"),
        TimingRule("PseudoChannel", ("ACT",), ("ACT",), "nRRDS"),
        TimingRule("PseudoChannel", ("ACT",), ("ACT",), "nFAW", window=4),
        TimingRule("PseudoChannel", ("ACT",), ("PREab",), "nRAS"),
        TimingRule("PseudoChannel", ("PREab",), ("ACT",), "nRP"),
        TimingRule("PseudoChannel", ("ACT",), ("REFab",), "nRC"),
        TimingRule("PseudoChannel", ("PREpb", "PREab"), ("REFab",), "nRP"),
        TimingRule("PseudoChannel", ("RDA",), ("REFab",), "nRP + nRTPL"),
        TimingRule("PseudoChannel", ("WRA",), ("REFab",), "nCWL + nBL + nWR + nRP"),
        TimingRule("PseudoChannel", ("REFab",), ("ACT", "PREab"), "nRFC"),
        TimingRule("PseudoChannel", ("REFpb",), ("ACT",), "nRREFD"),
        TimingRule("PseudoChannel", ("ACT",), ("REFpb",), "nRRDS"),
        TimingRule("BankGroup", _RD_ANY, _RD_ANY, "nCCDL"),
        TimingRule("BankGroup", _WR_ANY, _WR_ANY, "nCCDL"),
        TimingRule("BankGroup", _WR_ANY, _RD_ANY, "nCWL + nBL + nWTRL"),
        TimingRule("BankGroup", ("ACT",), ("ACT",), "nRRDL"),
        TimingRule("Bank", ("ACT",), ("ACT",), "nRC"),
        TimingRule("Bank", ("ACT",), _RD_ANY, "nRCDRD"),
        TimingRule("Bank", ("ACT",), _WR_ANY, "nRCDWR"),
        TimingRule("Bank", ("ACT",), ("PREpb",), "nRAS"),
        TimingRule("Bank", ("PREpb",), ("ACT",), "nRP"),
        TimingRule("Bank", ("RD",), ("PREpb",), "nRTPL"),
        TimingRule("Bank", ("WR",), ("PREpb",), "nCWL + nBL + nWR"),
        TimingRule("Bank", ("RDA",), ("ACT",), "nRTPL + nRP"),
        TimingRule("Bank", ("WRA",), ("ACT",), "nCWL + nBL + nWR + nRP"),
        TimingRule("Bank", ("REFpb",), ("ACT",), "nRFCpb"),
        TimingRule("Bank", ("ACT",), ("REFpb",), "nRC"),
        TimingRule("Bank", ("PREpb",), ("REFpb",), "nRP"),
    ),
)

STANDARDS: dict[str, Standard] = {s.name: s for s in (DDR4, HBM2)}
