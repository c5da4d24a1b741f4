"""One object of knobs for the verification environment (OpenTitan-style "cfg").

Every knob is resolved, in this order: a plusarg `+name=value`, an environment variable
`SPATTEN_<NAME>` (upper case), the run spec that `spatten-dv sim` hands over as JSON in
`SPATTEN_ENV`, then the default below. `EnvConfig.log()` prints each knob with where its value
came from, so a log says exactly how the run was configured.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields

# name -> (default, parser, help)
_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


def _bool(text) -> bool:
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in _BOOL_TRUE:
        return True
    if t in _BOOL_FALSE:
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {text!r}")


def _prob(text) -> float:
    v = float(text)
    if not 0.0 < v <= 1.0:
        raise ValueError(f"expected a probability in (0, 1], got {text!r}")
    return v


def _nonneg(text) -> int:
    v = int(text)
    if v < 0:
        raise ValueError(f"expected an integer >= 0, got {text!r}")
    return v


class ConfigError(ValueError):
    """A knob has a value that does not parse or is out of range."""


@dataclass
class EnvConfig:
    # what to run
    sequences: str = "corners"  # comma list of sequence names (verif/sequences)
    trace: str = "smollm2_prose"  # committed trace name or a path to a trace file
    steps: str = ""  # selection "N", "A:B", "a,b" ('' = all) for trace / workload replay
    layers: str = ""
    heads: str = ""
    workload: str = "summary-gpt2-small-wikitext2-per8"  # GPT-2 workload (shipped name / CSV)
    jobs: int = 20  # job count of the random / back-to-back sequences
    # the core
    config: str = "default"  # named configuration (models/params.py CONFIGURATIONS)
    # memory and bus
    dram: str = "DDR4_2400R"  # a timing preset (models/dram/presets.py) or "ideal"
    dram_mapper: str = "RoBaRaCoCh"  # address mapping (models/dram/address_mapper.py MAPPERS)
    ideal_latency: int = 20  # read latency in cycles of dram=ideal
    channels: int = 1  # AXI read channels of the core = DRAM channels (must match N_CH)
    clock_mhz: float = 1000.0
    ar_ready_prob: float = 1.0  # AR back-pressure: chance ARREADY is offered in a cycle
    r_valid_prob: float = 1.0  # R gaps: chance a ready beat is offered in a cycle
    extra_latency: int = 0  # up to this many random extra cycles per burst
    res_ready_prob: float = 1.0  # result back-pressure: chance RES_READY is high in a cycle
    # checking
    scoreboard: bool = True
    coverage: bool = True
    state_check: bool = True  # read the pruning state back after every job that changes it
    job_timeout_us: int = 2000  # simulated time a job may take before the test fails
    inject: str = ""  # fault injection for expect-fail tests (verif/fault_injector.py)
    out: str = ""  # folder for jobs.jsonl, summary.json, func_cov.xml ('' = none)
    seed: int = 0  # filled from cocotb.RANDOM_SEED
    sources: dict = field(default_factory=dict, repr=False, compare=False)

    _PARSERS = {
        "jobs": _nonneg, "ideal_latency": _nonneg, "channels": int, "clock_mhz": float,
        "ar_ready_prob": _prob, "r_valid_prob": _prob, "extra_latency": _nonneg,
        "res_ready_prob": _prob, "scoreboard": _bool, "coverage": _bool,
        "state_check": _bool, "job_timeout_us": _nonneg, "seed": int,
    }

    @classmethod
    def knob_names(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "sources"]

    @classmethod
    def resolve(cls, plusargs: dict | None = None, environ: dict | None = None,
                spec: dict | None = None) -> EnvConfig:
        plusargs = plusargs or {}
        environ = os.environ if environ is None else environ
        if spec is None:
            raw = environ.get("SPATTEN_ENV", "")
            try:
                spec = json.loads(raw) if raw else {}
            except json.JSONDecodeError as exc:
                raise ConfigError(f"SPATTEN_ENV is not valid JSON: {exc}") from None
        unknown = sorted(set(spec) - set(cls.knob_names()))
        if unknown:
            raise ConfigError(f"unknown knob(s) {unknown}; knobs: {cls.knob_names()}")
        cfg = cls()
        for name in cls.knob_names():
            for source, table, key in (("plusarg", plusargs, name),
                                       ("env", environ, f"SPATTEN_{name.upper()}"),
                                       ("spec", spec, name)):
                if key in table:
                    raw = table[key]
                    parse = cls._PARSERS.get(name, str)
                    try:
                        value = parse(raw)
                    except (TypeError, ValueError) as exc:
                        raise ConfigError(f"knob {name} ({source}): {exc}") from None
                    setattr(cfg, name, value)
                    cfg.sources[name] = source
                    break
            else:
                cfg.sources[name] = "default"
        # the memory system the configuration was designed for, unless a knob set it
        from spatten_dv.models.params import CONFIGURATION_KNOBS

        for name, value in CONFIGURATION_KNOBS.get(cfg.config, {}).items():
            if cfg.sources[name] == "default":
                setattr(cfg, name, value)
                cfg.sources[name] = f"config {cfg.config}"
        cfg.check()
        return cfg

    def check(self) -> None:
        from spatten_dv.models.dram.presets import TIMING_PRESETS

        if self.dram != "ideal" and self.dram not in TIMING_PRESETS:
            raise ConfigError(f"knob dram={self.dram!r}: choose ideal or one of "
                              f"{', '.join(TIMING_PRESETS)}")
        from spatten_dv.models.dram.address_mapper import MAPPERS
        from spatten_dv.models.params import CONFIGURATIONS

        if self.dram_mapper not in MAPPERS:
            raise ConfigError(f"knob dram_mapper={self.dram_mapper!r}: choose from "
                              f"{', '.join(MAPPERS)}")
        if self.config not in CONFIGURATIONS:
            raise ConfigError(f"knob config={self.config!r}: choose from "
                              f"{', '.join(CONFIGURATIONS)}")
        if self.channels not in (1, 2, 4, 8):
            raise ConfigError(f"knob channels={self.channels}: must be 1, 2, 4 or 8")
        if self.dram == "ideal" and self.ideal_latency < 1:
            raise ConfigError("knob ideal_latency must be >= 1")
        if not 1.0 <= self.clock_mhz <= 5000.0:
            raise ConfigError(f"knob clock_mhz={self.clock_mhz}: must be in 1..5000")

    @property
    def params(self):
        """CoreParams of the configuration the environment checks against."""
        from spatten_dv.models.params import configuration

        return configuration(self.config)

    @property
    def period_ps(self) -> int:
        return round(1e6 / self.clock_mhz)

    def sequence_names(self) -> list[str]:
        return [s.strip() for s in self.sequences.split(",") if s.strip()]

    def log(self, logger) -> None:
        logger.info("configuration (knob = value [source]):")
        for name in self.knob_names():
            logger.info("  %-15s = %-40s [%s]", name, getattr(self, name),
                        self.sources.get(name, "default"))

    def as_dict(self) -> dict:
        return {name: getattr(self, name) for name in self.knob_names()}
