"""Descriptor agent: sequencer, driver and monitor of spatten_core's job descriptor stream.

The driver numbers jobs (job_id = order mod 2^16), sends each through the BFM and, when the
`state_check` knob is on and the job can change the pruning state, waits for its result and
reads the state back through the core's debug port (StateReadbackBfm), publishing a
StateSnapshot on `state_ap`. Without state checks descriptors go back to back (the next one
waits at the pins while the core works).
The monitor publishes every descriptor the core took, unpacked from the pins.
"""

from __future__ import annotations

import torch
from pyuvm import ConfigDB, uvm_agent, uvm_analysis_port, uvm_driver, uvm_monitor, uvm_sequencer

from spatten_dv.models.descriptor import Job, descriptor_fields, unpack_fields
from spatten_dv.models.params import QKV_BITS, CoreParams
from spatten_dv.verif.items import ObservedDescriptor, StateSnapshot


def job_from_packed(word: int, params: CoreParams) -> Job:
    """The Job whose pack() is `word` (the inverse of Job.pack)."""
    f = unpack_fields(word, descriptor_fields(params))
    q = f.pop("query")
    mask, half = (1 << QKV_BITS) - 1, 1 << (QKV_BITS - 1)
    elems = [(q >> (QKV_BITS * d)) & mask for d in range(params.head_dim)]
    query = torch.tensor([e - (1 << QKV_BITS) if e >= half else e for e in elems],
                         dtype=torch.int64)
    for flag in ("clear_tokens", "clear_heads", "acc_tokens", "acc_heads", "reselect"):
        f[flag] = bool(f[flag])
    return Job(query=query, params=params, **f)


def changes_state(job: Job) -> bool:
    """The job changes the pruning state (before or after its attention): read it back."""
    return job.changes_pruning_state or bool(job.acc_tokens or job.acc_heads)


class DescriptorDriver(uvm_driver):
    def build_phase(self):
        self.bfm = ConfigDB().get(self, "", "CORE_BFM")
        self.readback = ConfigDB().get(self, "", "STATE_BFM")
        self.cfg = ConfigDB().get(self, "", "CFG")
        self.state_ap = uvm_analysis_port("state_ap", self)
        self.sent_items = []  # read by the monitor to attach labels (not for prediction)
        self.max_tokens = 0

    async def run_phase(self):
        bfm, params = self.bfm, self.bfm.params
        while True:
            item = await self.seq_item_port.get_next_item()
            item.job.job_id = len(self.sent_items) & 0xFFFF
            self.sent_items.append(item)
            await bfm.send(item.job.pack())
            self.max_tokens = min(max(self.max_tokens, item.job.n_tokens), params.max_tokens)
            if self.cfg.state_check and self.readback is not None and changes_state(item.job):
                await bfm.wait_results(len(self.sent_items))
                t_imp, t_kept = await self.readback.read(False, max(self.max_tokens, 1))
                h_imp, h_kept = await self.readback.read(True, params.max_heads)
                self.state_ap.write(StateSnapshot(len(self.sent_items) - 1, t_imp, t_kept,
                                                  h_imp, h_kept))
            self.seq_item_port.item_done()


class DescriptorMonitor(uvm_monitor):
    def build_phase(self):
        self.bfm = ConfigDB().get(self, "", "CORE_BFM")
        self.ap = uvm_analysis_port("ap", self)
        self.driver = None  # set by the agent's connect_phase
        self.count = 0

    async def run_phase(self):
        params = self.bfm.params
        while True:
            cycle, word = await self.bfm.descriptors.get()
            item = None
            if self.driver is not None and self.count < len(self.driver.sent_items):
                item = self.driver.sent_items[self.count]
            self.ap.write(ObservedDescriptor(self.count, cycle, job_from_packed(word, params),
                                             item))
            self.count += 1


class DescriptorAgent(uvm_agent):
    def build_phase(self):
        self.seqr = uvm_sequencer("seqr", self)
        self.driver = DescriptorDriver("driver", self)
        self.monitor = DescriptorMonitor("monitor", self)

    def connect_phase(self):
        self.driver.seq_item_port.connect(self.seqr.seq_item_export)
        self.monitor.driver = self.driver
