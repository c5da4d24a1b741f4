"""A Ramulator-2-style DRAM timing model in pure Python.

Quick use::

    from spatten_dv.models.dram import SystemConfig, MemorySystem, read_trace, run_trace

    config = SystemConfig.from_presets("DDR4", "DDR4_2400R", refresh="AllBank")
    result = run_trace(config, read_trace("my.trace"))
    print(result.stats.cycles, result.stats.avg_read_latency)

    # or clocked from outside, one cycle (or one event) at a time:
    memory = MemorySystem(config)
    req = memory.try_send(0x1000, is_write=False, tag="beat0")   # None: queue full, retry
    memory.advance_to(memory.next_event_cycle())
    for done in memory.pop_completions():
        print(done.tag, done.arrive, done.depart)

Parts (one concern per module): `standard` (declarative DRAM standards), `presets`,
`config`, `ramulator_config` (Ramulator 2.1 YAML), `device` (timing and bank state),
`address_mapper`, `scheduler`, `row_policy`, `refresh`, `controller`, `memory_system`
(channels, trace driver), `ideal`, `trace`, `stats`, `validation`, `bench`.
"""

from .config import ConfigError, ControllerConfig, DramSpec, SystemConfig
from .ideal import IdealMemory
from .memory_system import ARRIVAL_MODELS, MemorySystem, TraceResult, run_trace
from .request import Request
from .stats import RunStats
from .trace import Trace, TraceError, read_trace

__all__ = [
    "ARRIVAL_MODELS",
    "ConfigError",
    "ControllerConfig",
    "DramSpec",
    "IdealMemory",
    "MemorySystem",
    "Request",
    "RunStats",
    "SystemConfig",
    "Trace",
    "TraceError",
    "TraceResult",
    "read_trace",
    "run_trace",
]
