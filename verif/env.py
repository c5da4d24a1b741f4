"""The environment: descriptor agent, result agent, one AXI read agent per channel, the
scoreboard and the functional coverage collector, wired through analysis ports.

  descriptor monitor --> scoreboard.desc_export (predict with the model)
  result monitor ------> scoreboard.result_export (compare) --> coverage (checked jobs)
  driver state_ap -----> scoreboard.state_export (compare pruning state) --> coverage
  AXI burst monitors --> coverage
"""

from __future__ import annotations

from pyuvm import ConfigDB, uvm_env, uvm_subscriber

from spatten_dv.verif.axi_agent import AxiReadAgent
from spatten_dv.verif.coverage import CoverageCollector
from spatten_dv.verif.descriptor_agent import DescriptorAgent
from spatten_dv.verif.result_agent import ResultAgent
from spatten_dv.verif.scoreboard import CoreScoreboard


class _StateTap(uvm_subscriber):
    """Routes the driver's state snapshots through the fault injector (expect-fail tests)."""

    def __init__(self, name, parent):
        super().__init__(name, parent)
        self.injector, self.targets = None, []

    def write(self, snap):
        if self.injector is not None:
            snap = self.injector.on_state(snap)
        for t in self.targets:
            t.write(snap)


class SpattenEnv(uvm_env):
    def build_phase(self):
        self.cfg = ConfigDB().get(self, "", "CFG")
        self.desc_agent = DescriptorAgent("desc_agent", self)
        self.result_agent = ResultAgent("result_agent", self)
        self.axi_agents = [AxiReadAgent(f"axi_agent{ch}", self, ch)
                           for ch in range(self.cfg.channels)]
        self.scoreboard = CoreScoreboard("scoreboard", self) if self.cfg.scoreboard else None
        self.coverage = CoverageCollector("coverage", self) if self.cfg.coverage else None
        self.state_tap = _StateTap("state_tap", self)

    def connect_phase(self):
        sb, cov = self.scoreboard, self.coverage
        injector = ConfigDB().get(self, "", "INJECTOR")
        state_targets = []
        if sb is not None:
            self.desc_agent.monitor.ap.connect(sb.desc_export.analysis_export)
            self.result_agent.monitor.ap.connect(sb.result_export.analysis_export)
            state_targets.append(sb.state_export.analysis_export)
        if cov is not None:
            if sb is not None:
                sb.checked_ap.connect(cov.job_export.analysis_export)
            self.result_agent.monitor.ap.connect(cov.result_export.analysis_export)
            for agent in self.axi_agents:
                agent.monitor.ap.connect(cov.burst_export.analysis_export)
            state_targets.append(cov.state_export.analysis_export)
        self.state_tap.injector, self.state_tap.targets = injector, state_targets
        self.desc_agent.driver.state_ap.connect(self.state_tap.analysis_export)
        if injector is not None:
            injector.sent_items = self.desc_agent.driver.sent_items
