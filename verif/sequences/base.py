"""Base of every job sequence: access to the environment's shared resources and job helpers."""

from __future__ import annotations

import random

import torch
from pyuvm import ConfigDB, uvm_sequence

from spatten_dv.models.descriptor import Job
from spatten_dv.verif.items import JobItem


class JobSequence(uvm_sequence):
    """Subclasses implement `body()` and send jobs with `await self.send(job, label, meta)`."""

    def __init__(self, name: str = ""):
        super().__init__(name or type(self).__name__)
        db = ConfigDB()
        self.cfg = db.get(None, "", "CFG")
        self.params = db.get(None, "", "PARAMS")
        self.memory = db.get(None, "", "MEMORY")
        self.alloc = db.get(None, "", "ALLOC")
        self.logger = db.get(None, "", "LOGGER")
        # one stream of randomness per sequence, derived from the test seed and the name
        self.rng = random.Random(f"{self.cfg.seed}:{self.get_name()}")
        self.gen = torch.Generator().manual_seed(self.rng.randrange(1 << 62))
        self.sent = 0

    async def send(self, job: Job, label: str = "", meta: dict | None = None,
                   check=None) -> None:
        item = JobItem(f"{self.get_name()}[{self.sent}]", job,
                       label=f"{self.get_name()}: {label}" if label else "",
                       meta=dict(meta or {}, sequence=self.get_name()), check=check)
        await self.start_item(item)
        await self.finish_item(item)
        self.sent += 1

    def rand12(self, n: int, scale: float) -> torch.Tensor:
        d = self.params.head_dim
        return (torch.randn(n, d, generator=self.gen) * scale).round().clamp(-2048, 2047) \
            .to(torch.int64)
