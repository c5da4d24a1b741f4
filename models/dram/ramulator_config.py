"""Load the fully resolved YAML that Ramulator 2.1 exports (`python -m ramulator export`).

Only what the model reproduces is accepted: a GenericDRAM memory system with a
CacheLineInterleave channel mapper, one or more identical GenericDDR/HBM12 controllers, the
FRFCFS scheduler, AllBank or NoRefresh refresh, Open or ClosedCAP rows, and a DDR4 or HBM2
device. The device's organisation, timing values, read latency and resolved timing-constraint
table are taken from the file as they are, so a user's own timings run unchanged. Anything
else is a `ConfigError` naming the field.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .config import ConfigError, ControllerConfig, DramSpec, SystemConfig
from .standard import STANDARDS, rules_from_ramulator_table

__all__ = ["ConfigError", "from_document", "load"]

_CONTROLLER_FIELDS = {
    "wr_low_watermark": ("wr_low_watermark", float),
    "wr_high_watermark": ("wr_high_watermark", float),
    "read_buffer_size": ("read_buffer_size", int),
    "write_buffer_size": ("write_buffer_size", int),
    "priority_buffer_size": ("priority_buffer_size", int),
}
_SUPPORTED = {
    "scheduler": ("FRFCFS", "FCFS"),
    "refresh_manager": ("AllBank", "NoRefresh"),
    "row_policy": ("Open", "ClosedCAP"),
    "addr_mapper": ("RoBaRaCoCh", "ChRaBaRoCo", "MOP4CLXOR"),
}


class _Fields:
    """Typed access to a YAML mapping, with errors that name the file and the field path."""

    def __init__(self, source: str, node, where: str):
        self.source = source
        self.node = node
        self.where = where
        if not isinstance(node, dict):
            self.fail(f"expected a mapping, got {type(node).__name__}")

    def fail(self, message: str, key: str | None = None):
        where = f"{self.where}.{key}" if key else self.where
        raise ConfigError(f"{self.source}: {where}: {message}")

    def get(self, key: str, kind, default=None, required: bool = True):
        if key not in self.node:
            if required:
                self.fail("missing", key)
            return default
        value = self.node[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is int and isinstance(value, bool):
            self.fail(f"expected an integer, got {value!r}", key)
        if not isinstance(value, kind):
            name = getattr(kind, "__name__", str(kind))
            self.fail(f"expected {name}, got {value!r}", key)
        return value

    def child(self, key: str) -> _Fields:
        return _Fields(self.source, self.get(key, dict), f"{self.where}.{key}")

    def impl(self, choices) -> str:
        name = self.get("impl", str)
        if name not in choices:
            self.fail(f"{name!r} is not modelled (supported: {', '.join(choices)})", "impl")
        return name


def _int_list(fields: _Fields, key: str) -> list[int]:
    values = fields.get(key, list)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        fields.fail("expected a list of integers", key)
    return values


def _dram_spec(fields: _Fields) -> DramSpec:
    name = fields.impl(tuple(STANDARDS))
    std = STANDARDS[name]
    org = fields.child("org")
    counts = _int_list(org, "count")
    if len(counts) != len(std.levels):
        org.fail(f"{name} has {len(std.levels)} levels ({', '.join(std.levels)}), "
                 f"got {len(counts)} counts", "count")
    timing_values = _int_list(fields, "timing")
    if len(timing_values) != len(std.timing_names):
        fields.fail(f"{name} has {len(std.timing_names)} timing values "
                    f"({', '.join(std.timing_names)}), got {len(timing_values)}", "timing")
    timings = dict(zip(std.timing_names, timing_values, strict=True))
    cycles = _int_list(fields, "command_cycles") if "command_cycles" in fields.node else None
    if cycles is not None and len(cycles) != len(std.commands):
        fields.fail(f"expected {len(std.commands)} entries, one per command", "command_cycles")
    table = fields.get("timing_constraints", list)
    for i, row in enumerate(table):
        ok = (isinstance(row, list) and 4 <= len(row) <= 6 and isinstance(row[0], int)
              and 0 <= row[0] < len(std.levels) and isinstance(row[1], list)
              and isinstance(row[2], list) and isinstance(row[3], int)
              and all(isinstance(c, int) and 0 <= c < len(std.commands)
                      for c in row[1] + row[2]))
        if not ok:
            fields.fail(f"entry {i} {row!r} is not [level, [preceding], [following], latency"
                        f"(, window, sibling)] with valid {name} indices", "timing_constraints")
    return DramSpec(
        standard=std,
        level_sizes=tuple(counts),
        timings=timings,
        rules=tuple(rules_from_ramulator_table(table)),
        read_latency=fields.get("read_latency", int),
        channel_width=fields.get("channel_width", int),
        dq=org.get("dq", int),
        org_name=f"{name} x{org.get('dq', int)} (YAML)",
        timing_name=f"{timings['rate']} MT/s (YAML)",
    )


def _controller(fields: _Fields) -> tuple[ControllerConfig, DramSpec]:
    impl = fields.impl(("GenericDDR", "HBM12"))
    kwargs = {"controller": impl}
    for key, (name, kind) in _CONTROLLER_FIELDS.items():
        if key in fields.node:
            kwargs[name] = fields.get(key, kind)
    kwargs["scheduler"] = fields.child("scheduler").impl(_SUPPORTED["scheduler"])
    refresh = fields.child("refresh_manager")
    kwargs["refresh"] = refresh.impl(_SUPPORTED["refresh_manager"])
    if refresh.get("scatter_interval", int, 0, required=False):
        refresh.fail("staggered refresh is not modelled; use 0", "scatter_interval")
    policy = fields.child("row_policy")
    kwargs["row_policy"] = policy.impl(_SUPPORTED["row_policy"])
    if kwargs["row_policy"] == "ClosedCAP":
        kwargs["row_policy_cap"] = policy.get("cap", int, 4, required=False)
    kwargs["mapper"] = fields.child("addr_mapper").impl(_SUPPORTED["addr_mapper"])
    if fields.node.get("plugins"):
        fields.fail("controller plugins are not modelled", "plugins")
    return ControllerConfig(**kwargs), _dram_spec(fields.child("dram"))


def load(path: str | Path) -> SystemConfig:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not valid YAML "
                          f"({getattr(exc, 'problem', None) or exc})") from None
    return from_document(document, str(path))


def from_document(document, source: str = "<config>") -> SystemConfig:
    root = _Fields(source, document, "config")
    if "frontend" in root.node:
        frontend = root.child("frontend")
        if frontend.get("clock_ratio", int, 1, required=False) != 1:
            frontend.fail("only clock_ratio 1 (one request offer per memory cycle) is modelled",
                          "clock_ratio")
    system = root.child("memory_system")
    system.impl(("GenericDRAM",))
    if system.get("clock_ratio", int, 1, required=False) != 1:
        system.fail("only clock_ratio 1 is modelled", "clock_ratio")
    interleave_bits = 0
    if "channel_mapper" in system.node:
        mapper = system.child("channel_mapper")
        mapper.impl(("CacheLineInterleave",))
        interleave_bits = mapper.get("interleave_bits", int, 0, required=False)
    controllers = system.get("controllers", list)
    if not controllers:
        system.fail("needs at least one controller", "controllers")
    parsed = [_controller(_Fields(source, c, f"memory_system.controllers[{i}]"))
              for i, c in enumerate(controllers)]
    if any(p != parsed[0] for p in parsed[1:]):
        system.fail("all channels must be configured identically", "controllers")
    controller, dram = parsed[0]
    config = SystemConfig(dram=dram, controller=controller, channels=len(controllers),
                          interleave_bits=interleave_bits)
    try:
        config.validate()
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    if controller.controller == "HBM12" and not dram.standard.dual_command_bus:
        raise ConfigError(f"{source}: the HBM12 controller needs an HBM device, "
                          f"not {dram.standard.name}")
    return config
