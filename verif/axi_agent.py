"""AXI4 read agent, one per read channel of the core.

Each agent owns one `AxiReadResponder` (verif/axi_read_responder.py: the protocol slave, the
only code driving that channel's pins) whose data comes from the shared DramImage and whose
timing comes from the shared DRAM model (`DramTarget`), and a monitor that publishes one
BurstObservation per completed burst (for coverage of latency, burst length and responses).
"""

from __future__ import annotations

from pyuvm import ConfigDB, uvm_agent, uvm_analysis_port, uvm_monitor

from spatten_dv.verif.axi_read_responder import AxiReadResponder, ResponderKnobs
from spatten_dv.verif.items import BurstObservation


class AxiBurstMonitor(uvm_monitor):
    def build_phase(self):
        self.ap = uvm_analysis_port("ap", self)

    def on_burst(self, record) -> None:
        first = record.first_beat_cycle  # set in both R modes (beat_cycles: see BurstRecord)
        latency = first - record.ar_cycle if first >= 0 else 0
        self.ap.write(BurstObservation(record.channel, record.beats, latency, record.resp))


class AxiReadAgent(uvm_agent):
    def __init__(self, name, parent, channel: int):
        super().__init__(name, parent)
        self.channel = channel

    def build_phase(self):
        self.monitor = AxiBurstMonitor("monitor", self)

    def connect_phase(self):
        cfg = ConfigDB().get(self, "", "CFG")
        port = ConfigDB().get(self, "", "AXI_PORT")
        self.responder = AxiReadResponder(
            port, self.channel, ConfigDB().get(self, "", "CLK"),
            ConfigDB().get(self, "", "MEMORY"), ConfigDB().get(self, "", "DRAM_TARGET"),
            tx_bytes=ConfigDB().get(self, "", "TX_BYTES"),
            knobs=ResponderKnobs(ar_ready_prob=cfg.ar_ready_prob, r_valid_prob=cfg.r_valid_prob,
                                 extra_latency=(0, cfg.extra_latency), seed=cfg.seed))
        self.responder.keep_records = False  # the monitor publishes each burst as it ends
        self.responder.listeners.append(self.monitor.on_burst)

    def start(self) -> None:
        """Start serving (after reset: before it the master's pins may be X on Icarus)."""
        self.responder.start()
