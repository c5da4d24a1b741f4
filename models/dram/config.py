"""Resolved configuration of a memory system: the DRAM of one channel, the controller parts,
and the channel count. Built from our presets (`SystemConfig.from_presets`) or from a Ramulator
2.1 YAML export (`ramulator_config.load`)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .presets import DEFAULT_ORG, ORG_PRESETS, TIMING_PRESETS, standard_of
from .standard import ResolvedRule, Standard, evaluate_latency, resolve_rules


class ConfigError(ValueError):
    """A configuration that cannot describe a memory system (bad name, field or value)."""


SCHEDULERS = ("FRFCFS", "FCFS")
REFRESH_MANAGERS = ("AllBank", "NoRefresh")
ROW_POLICIES = ("Open", "ClosedCAP")
ADDRESS_MAPPERS = ("RoBaRaCoCh", "ChRaBaRoCo", "MOP4CLXOR")
CONTROLLERS = ("GenericDDR", "HBM12")


@dataclass(frozen=True)
class DramSpec:
    """Everything the device model needs to know about one channel's DRAM."""

    standard: Standard
    level_sizes: tuple[int, ...]  # per level, channel (=1) first
    timings: dict[str, int]
    rules: tuple[ResolvedRule, ...]
    read_latency: int
    channel_width: int
    dq: int
    org_name: str = "custom"
    timing_name: str = "custom"

    @property
    def tx_bytes(self) -> int:
        return self.channel_width // 8 * self.standard.internal_prefetch

    @property
    def tCK_ns(self) -> float:
        return self.timings["tCK_ps"] / 1000.0

    @property
    def banks(self) -> int:
        n = 1
        for size in self.level_sizes[1:self.standard.bank_level + 1]:
            n *= size
        return n

    @property
    def preset_name(self) -> str:
        return f"{self.org_name}/{self.timing_name}"


@dataclass(frozen=True)
class ControllerConfig:
    controller: str = "GenericDDR"  # GenericDDR: one command per cycle; HBM12: row + column slot
    scheduler: str = "FRFCFS"
    refresh: str = "AllBank"
    row_policy: str = "Open"
    row_policy_cap: int = 4  # ClosedCAP: column accesses before the row is closed
    mapper: str = "RoBaRaCoCh"
    read_buffer_size: int = 32
    write_buffer_size: int = 32
    priority_buffer_size: int = 1568
    wr_low_watermark: float = 0.2
    wr_high_watermark: float = 0.8

    def validate(self) -> None:
        for value, allowed, what in (
            (self.controller, CONTROLLERS, "controller"),
            (self.scheduler, SCHEDULERS, "scheduler"),
            (self.refresh, REFRESH_MANAGERS, "refresh manager"),
            (self.row_policy, ROW_POLICIES, "row policy"),
            (self.mapper, ADDRESS_MAPPERS, "address mapper"),
        ):
            if value not in allowed:
                raise ConfigError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
        if self.read_buffer_size < 1 or self.write_buffer_size < 1:
            raise ConfigError("read_buffer_size and write_buffer_size must be at least 1")
        if self.row_policy_cap < 1:
            raise ConfigError("the ClosedCAP cap must be at least 1")


@dataclass(frozen=True)
class SystemConfig:
    dram: DramSpec
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    channels: int = 1
    interleave_bits: int = 0  # channel bits sit above the transaction offset plus this many bits

    def validate(self) -> None:
        self.controller.validate()
        if self.channels < 1 or self.channels & (self.channels - 1):
            raise ConfigError(f"channel count must be a power of two, got {self.channels}")
        if self.interleave_bits < 0:
            raise ConfigError("interleave_bits must be >= 0")
        for size in self.dram.level_sizes[1:]:
            if size < 1 or size & (size - 1):
                raise ConfigError(f"level sizes must be powers of two, got {self.dram.level_sizes}")
        if self.dram.standard.bank_level != 3:
            raise ConfigError("the model supports standards with Channel/X/Y/Bank hierarchies")
        if self.dram.level_sizes[0] != 1:
            raise ConfigError("the DRAM description covers one channel: its channel count is 1")

    def with_controller(self, **changes) -> SystemConfig:
        return replace(self, controller=replace(self.controller, **changes))

    @classmethod
    def from_presets(cls, standard: str = "DDR4", preset: str = "DDR4_2400R",
                     org: str | None = None, channels: int = 1,
                     **controller_fields) -> SystemConfig:
        try:
            std = standard_of(standard)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        if preset not in TIMING_PRESETS:
            raise ConfigError(f"unknown timing preset {preset!r}; known: "
                              f"{', '.join(TIMING_PRESETS)}")
        timing = TIMING_PRESETS[preset]
        if timing.standard != std.name:
            raise ConfigError(f"timing preset {preset} belongs to {timing.standard}, "
                              f"not {std.name}")
        org_name = org or DEFAULT_ORG[std.name]
        if org_name not in ORG_PRESETS or ORG_PRESETS[org_name].standard != std.name:
            raise ConfigError(f"unknown {std.name} organisation preset {org_name!r}")
        org_preset = ORG_PRESETS[org_name]
        timings = timing.resolve(org_preset)
        dram = DramSpec(
            standard=std,
            level_sizes=org_preset.level_sizes,
            timings=timings,
            rules=tuple(resolve_rules(std, timings)),
            read_latency=evaluate_latency(std.read_latency, timings),
            channel_width=org_preset.channel_width,
            dq=org_preset.dq,
            org_name=org_name,
            timing_name=preset,
        )
        controller_fields.setdefault("controller",
                                     "HBM12" if std.dual_command_bus else "GenericDDR")
        config = cls(dram=dram, controller=ControllerConfig(**controller_fields),
                     channels=channels)
        config.validate()
        return config
