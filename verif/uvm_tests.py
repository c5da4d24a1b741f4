"""The cocotb/pyuvm test module of the environment (`spatten-dv sim` runs it).

`SpattenTest` builds the environment from the config knobs (verif/config.py), runs the named
sequences in order on the descriptor agent's sequencer, waits for every result, and writes
`<out>/summary.json`. `InjectedFaultTest` is the same with a deliberate fault (knob `inject`):
it passes only if the scoreboard reports exactly that fault (expect_error=ScoreboardMismatch;
any other outcome, including the fault going unseen, fails it).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import pyuvm
import torch
from pyuvm import ConfigDB, uvm_test

from spatten_dv.models.descriptor import descriptor_fields, result_fields
from spatten_dv.models.dram.config import SystemConfig
from spatten_dv.models.dram.ideal import IdealMemory
from spatten_dv.models.dram.memory_system import MemorySystem
from spatten_dv.models.dram.presets import TIMING_PRESETS
from spatten_dv.models.memory import DramImage
from spatten_dv.verif.axi_read_port import AxiReadPort
from spatten_dv.verif.config import EnvConfig
from spatten_dv.verif.core_bfm import CoreBfm
from spatten_dv.verif.dram_target import DramTarget
from spatten_dv.verif.env import SpattenEnv
from spatten_dv.verif.fault_injector import FaultInjector
from spatten_dv.verif.memory_alloc import PlaneAllocator
from spatten_dv.verif.scoreboard import ScoreboardMismatch
from spatten_dv.verif.sequences import SEQUENCES

# The reference model's tensors are one job's (at most 1024 x 64): torch's thread pool only adds
# wake-ups, and `sim -j N` runs N of these processes side by side. Measured on per8 step 1
# (2-core machine): 27.0k -> 30.5-33.8k simulated cycles/s, 26.4 -> 21.8-23.4 s of CPU.
torch.set_num_threads(1)
SIM_TIMEOUT_S = 3600  # simulated seconds: far beyond any run; each job has its own timeout


def dram_model(cfg: EnvConfig):
    if cfg.dram == "ideal":
        return IdealMemory(read_latency=cfg.ideal_latency), 64
    preset = TIMING_PRESETS[cfg.dram]
    sysc = SystemConfig.from_presets(preset.standard, cfg.dram, channels=cfg.channels,
                                     mapper=cfg.dram_mapper)
    return MemorySystem(sysc), sysc.dram.tx_bytes  # the DRAM transaction size (HBM2: 32 B)


def check_geometry(dut, params, name: str) -> None:
    """The DUT was built for the configuration the knobs name (its port widths follow the
    descriptor and result layouts): a clear error instead of misread descriptors."""
    want = {"desc_data": sum(w for _, w in descriptor_fields(params)),
            "res_data": sum(w for _, w in result_fields(params))}
    for port, bits in want.items():
        got = len(getattr(dut, port))
        if got != bits:
            raise ValueError(f"knob config={name} expects {port} of {bits} bits but the DUT "
                             f"has {got}: build it with that configuration "
                             f"(spatten-dv sim --config {name})")


class SpattenTest(uvm_test):
    def build_phase(self):
        self.t0 = time.monotonic()
        self.cpu0 = time.process_time()  # CPU seconds: a speed figure robust to shared cores
        cfg = EnvConfig.resolve(cocotb.plusargs)
        # the run's seed as the user gives it (cocotb derives per-test seeds from it)
        cfg.seed = int(os.environ.get("COCOTB_RANDOM_SEED", cocotb.RANDOM_SEED % (1 << 31)))
        cfg.sources["seed"] = "COCOTB_RANDOM_SEED"
        self.cfg = cfg
        self.logger.info("seed %d (rerun with COCOTB_RANDOM_SEED=%d)", cfg.seed, cfg.seed)
        cfg.log(self.logger)
        unknown = [s for s in cfg.sequence_names() if s not in SEQUENCES]
        if unknown or not cfg.sequence_names():
            raise ValueError(f"sequences={cfg.sequences!r}: choose from {', '.join(SEQUENCES)}")
        dut = cocotb.top
        n_ch = len(dut.m_axi_arvalid)
        if n_ch != cfg.channels:
            raise ValueError(f"knob channels={cfg.channels} but the DUT was built with N_CH="
                             f"{n_ch}")
        params = cfg.params
        check_geometry(dut, params, cfg.config)
        memory = DramImage()
        self.bfm = CoreBfm(dut, params, cfg.period_ps, cfg.res_ready_prob, cfg.seed,
                           timeout_ns=cfg.job_timeout_us * 1000)
        model, tx_bytes = dram_model(cfg)
        self.target = DramTarget(model, cfg.period_ps, keep_completed=False)
        readback = None
        if hasattr(dut, "dbg_req"):
            from spatten_dv.verif.state_readback import StateReadbackBfm

            readback = StateReadbackBfm(dut, params, timeout_ns=cfg.job_timeout_us * 1000)
        elif cfg.state_check:
            self.logger.warning("the DUT has no state readback port: state_check is off")
            cfg.state_check = False
        injector = FaultInjector(cfg.inject, []) if cfg.inject else None
        db = ConfigDB()
        for key, value in (("CFG", cfg), ("PARAMS", params), ("MEMORY", memory),
                           ("CORE_BFM", self.bfm), ("STATE_BFM", readback),
                           ("DRAM_TARGET", self.target), ("CLK", dut.clk),
                           ("AXI_PORT", AxiReadPort(dut, "m_axi", cfg.channels)),
                           ("TX_BYTES", tx_bytes), ("INJECTOR", injector),
                           ("ALLOC", PlaneAllocator(memory, params)),
                           ("LOGGER", self.logger)):
            db.set(None, "*", key, value)
        self.env = SpattenEnv("env", self)

    async def run_phase(self):
        self.raise_objection()
        await self.bfm.start()
        for agent in self.env.axi_agents:
            agent.start()
        await self.target.start(cocotb.top.clk)
        seqr = self.env.desc_agent.seqr
        for name in self.cfg.sequence_names():
            seq = SEQUENCES[name](name)
            self.logger.info("sequence %s: start", name)
            await seq.start(seqr)
            self.logger.info("sequence %s: %d jobs sent", name, seq.sent)
        await self.bfm.wait_results(len(self.env.desc_agent.driver.sent_items))
        self.drop_objection()

    def extract_phase(self):
        wall = time.monotonic() - self.t0
        cpu = time.process_time() - self.cpu0
        cycles = self.bfm.cycle()
        sb, cov = self.env.scoreboard, self.env.coverage
        summary = {
            "seed": self.cfg.seed, "config": self.cfg.as_dict(),
            "jobs": len(self.env.desc_agent.driver.sent_items),
            "checked": sb.records if sb else 0,
            "mismatches": len(sb.mismatches) if sb else 0,
            "states_checked": sb.states_checked if sb else 0,
            "sim_cycles": cycles, "wall_s": round(wall, 2),
            "cycles_per_s": round(cycles / wall) if wall else 0,
            "cpu_s": round(cpu, 2), "cycles_per_cpu_s": round(cycles / cpu) if cpu else 0,
            "dram_reads": self.target.reads,
            "dram_bytes": (sb.totals["beats"] * self.cfg.params.bus_bytes) if sb else 0,
            "totals": sb.totals if sb else {},
        }
        if cov is not None:
            from cocotb_coverage.coverage import coverage_db

            from spatten_dv.verif.coverage import COVERGROUPS

            summary["functional_coverage"] = {
                n: round(coverage_db[n].cover_percentage, 2)
                for n in ("top",) + COVERGROUPS
                if n in coverage_db}
        self.summary = summary
        self.logger.info("summary: %d jobs, %d cycles, %.1f s, %d cycles/s, %d DRAM bytes, "
                         "%d mismatch(es)", summary["jobs"], cycles, wall,
                         summary["cycles_per_s"], summary["dram_bytes"],
                         summary["mismatches"])
        if self.cfg.out:
            Path(self.cfg.out).mkdir(parents=True, exist_ok=True)
            (Path(self.cfg.out) / "summary.json").write_text(json.dumps(summary, indent=1))


@pyuvm.test(timeout_time=SIM_TIMEOUT_S, timeout_unit="sec")
class SpattenSimTest(SpattenTest):
    """The environment's test: sequences and knobs from the config."""


@pyuvm.test(timeout_time=SIM_TIMEOUT_S, timeout_unit="sec", expect_error=ScoreboardMismatch)
class InjectedFaultTest(SpattenTest):
    """Passes only if the scoreboard reports the injected fault (knob inject) as its own."""
