"""Transactions of the environment: what sequences send and what monitors publish."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pyuvm import uvm_sequence_item, uvm_subscriber

from spatten_dv.models.descriptor import Job, JobResult


class JobItem(uvm_sequence_item):
    """One job descriptor as a sequence sends it.

    `check` is an optional extra check of the reference model's result that the sequence knows
    about (the GPT-2 workload replay compares counts with its CSV row); it returns a list of
    differences. `meta` is copied into the per-job record (step, layer, head, ...).
    """

    def __init__(self, name: str, job: Job, label: str = "", meta: dict | None = None,
                 check: Callable[[JobResult], list[str]] | None = None):
        super().__init__(name)
        self.job = job
        self.label = label or name
        self.meta = dict(meta or {})
        self.check = check

    def __str__(self) -> str:
        j = self.job
        return (f"{self.label}: id {j.job_id} n {j.n_tokens} w {j.msb_bits}/{j.lsb_bits}/"
                f"{j.v_bits} head {j.head_id}/{j.n_heads}")


class Forward(uvm_subscriber):
    """An analysis export that hands each transaction to a function (one component, several
    inputs: the scoreboard's descriptor/result/state exports, the coverage samplers)."""

    def __init__(self, name, parent, handler: Callable):
        super().__init__(name, parent)
        self.handler = handler

    def write(self, tt):
        self.handler(tt)


@dataclass
class ObservedDescriptor:
    """A descriptor taken by the core (descriptor monitor), unpacked from the pins."""

    index: int  # order of acceptance, from 0
    cycle: int  # clock cycle of the handshake
    job: Job
    item: JobItem | None = None  # the sequence item that was driven, if known
    context: dict = field(default_factory=dict)  # model state before the job (coverage)


@dataclass
class ObservedResult:
    """A result taken from the core (result monitor): result_fields() unpacked, out signed."""

    index: int
    cycle: int
    fields: dict
    wait_cycles: int = 0  # cycles res_valid was high before res_ready (back-pressure)


@dataclass
class StateSnapshot:
    """The pruning state read back through the core's debug port after job `after_index`."""

    after_index: int
    tokens_imp: list[int]
    tokens_kept: list[int]
    heads_imp: list[int]
    heads_kept: list[int]


@dataclass
class BurstObservation:
    """One AXI read burst as the responder served it (for coverage)."""

    channel: int
    beats: int
    latency: int  # AR handshake to first R beat, cycles
    resp: int


@dataclass
class JobRecord:
    """What the scoreboard writes per job (one JSON line)."""

    index: int
    label: str
    meta: dict
    fields: dict = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
