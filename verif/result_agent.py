"""Result agent (passive): publishes every result the core returned, as the pins carried it.

`FaultInjector` (expect-fail tests only) may alter or drop a result between the BFM and the
analysis port, to prove that the scoreboard catches each kind of error.
"""

from __future__ import annotations

from pyuvm import ConfigDB, uvm_agent, uvm_analysis_port, uvm_monitor

from spatten_dv.verif.items import ObservedResult


class ResultMonitor(uvm_monitor):
    def build_phase(self):
        self.bfm = ConfigDB().get(self, "", "CORE_BFM")
        self.injector = ConfigDB().get(self, "", "INJECTOR")
        self.ap = uvm_analysis_port("ap", self)
        self.count = 0

    async def run_phase(self):
        while True:
            cycle, fields, wait = await self.bfm.results.get()
            res = ObservedResult(self.count, cycle, fields, wait)
            self.count += 1
            if self.injector is not None:
                res = self.injector.on_result(res)
                if res is None:
                    continue
            self.ap.write(res)


class ResultAgent(uvm_agent):
    def build_phase(self):
        self.monitor = ResultMonitor("monitor", self)
