"""Where sequences place K/V planes in the simulated DRAM.

`PlaneAllocator.place()` writes a head's three planes (models/layout.py write_head) into the
shared DramImage. Addresses come from a ring of slots: a slot is written again only after
`slots` more placements, and at most four placed jobs are live at once (the core's two job
stages, docs/architecture.md section 11, one descriptor offered and one placed by a sequence
blocked in start_item), so a job's planes are never overwritten while the core or the
scoreboard can still read them (slots >= 5; 8 by default). Each slot holds L_MAX tokens of
12-bit planes.
"""

from __future__ import annotations

import torch

from spatten_dv.models.layout import PlaneBases, write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams

BASE = 0xC000_0000  # above the GPT-2 workload planes (traces/workload.py PLANES_BASE)


class PlaneAllocator:
    def __init__(self, memory: DramImage, params: CoreParams = DEFAULT_PARAMS, slots: int = 8,
                 base: int = BASE):
        self.memory = memory
        self.params = params
        self.slots = slots
        self.base = base
        # 3 planes of at most 12 bits, each 4 KiB aligned, plus a spare page between slots
        per_plane = (params.max_tokens * params.token_bytes(12) + 4095) & ~4095
        self.slot_bytes = 3 * per_plane + 4096
        self.placed = 0
        self._private = self.end

    def place_private(self, k12: torch.Tensor, v12: torch.Tensor, msb: int, lsb: int,
                      vb: int) -> PlaneBases:
        """Planes that are never overwritten (e.g. with DRAM error ranges on them)."""
        pb = write_head(self.memory, self._private, k12, v12, msb, lsb, vb, self.params)
        self._private = pb.end + 4096
        return pb

    def place(self, k12: torch.Tensor, v12: torch.Tensor, msb: int, lsb: int,
              vb: int) -> PlaneBases:
        slot = self.placed % self.slots
        self.placed += 1
        return write_head(self.memory, self.base + slot * self.slot_bytes, k12, v12, msb, lsb,
                          vb, self.params)

    @property
    def end(self) -> int:  # first byte after the ring
        return self.base + self.slots * self.slot_bytes
