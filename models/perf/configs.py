"""The model's configurations: `default` and `paper`, the two design points the RTL builds.

`default` is the RTL as built (hdl/spatten_core.v, docs/architecture.md section 1): one key per
cycle through the Q.K array (QK_MULS 64 at D = 64), one softmax lane, one value per cycle through
prob.V (64 multipliers), a 16-comparator top-k engine, one AXI read channel of 256 bits on
DDR4-2400R; jobs overlap on two job stages (front: prunes, key scan, K passes, value top-k;
back: V pass, accumulation, result; models/perf/pipeline.py) when `overlap` is on, else one job
at a time (the core before the overlap).
`paper` is SpAtten's published design point, built by the same core with `--config paper`
(QK_MULS = PV_MULS = 512, docs/architecture.md section 11.1): 8 keys/cycle through Q.K, 8
softmax lanes, 8 values/cycle through prob.V, 16 top-k comparators, HBM2 with 8 channels, the
wide fetcher (8 token indices and every channel's R beat a cycle into a 256-beat reorder buffer),
the wide key-list scan and token accumulation; the same job flow as `default`. Calibrated on four
whole decode steps of that RTL (models/perf/measured.py, docs/perf.md "Agreement").
A configuration with `built` False is a design-space point without RTL (a sweep's other widths);
its figures are labelled predictions.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class PipelineTiming:
    """The pipeline's constants (cycles), settled on the RTL (docs/perf.md)."""

    # hdl/spatten_core.v: A ends in HAND (1 cycle when B is empty: the handoff), B starts with
    # B_START the cycle after; A is IDLE then and accepts the next descriptor (desc_valid
    # waiting); B is empty (B_IDLE) the cycle after its result is taken; a hazard job loops in
    # CHECK until B is empty and goes on the cycle after.
    handoff: float = 1.0  # the handoff cycle (HAND) -> B's first cycle: HAND counts in cycles
    accept: float = 1.0  # the handoff cycle -> the next descriptor accepted
    b_free: float = 1.0  # the result taken -> B can take the next job (B_IDLE)
    hazard: float = 2.0  # the result taken -> a waiting hazard job's next phase
    # fitted on the RTL's spans (docs/perf.md "Agreement"; `measured --fit`, re-fitted after the
    # K MSB fetch was made to follow the key-list scan): while the V fetch of job i and the K
    # fetch of job i+1 stream together the V fetch gets 30 % of the binding resource, and the
    # two together need 5 % LESS than the sum of their streaming parts: the fluid model counts
    # each fetch's start-up (DRAM latency, refresh) as fixed and alone, and interleaved they
    # hide part of it. Span error over the 13 measured pipelined steps: RMS 2.3 %, max 4.8 %.
    contention: float = -0.05  # extra DRAM time of two interleaved fetch streams (share)
    v_share: float = 0.3  # the V fetch's share of a saturated channel


TIMING = PipelineTiming()
# The RTL overlaps jobs (hdl/spatten_core.v): the configurations' default job flow. Switched on
# once the pipeline constants were settled on the RTL (docs/perf.md "Job overlap").
CORE_OVERLAPS = True


@dataclass(frozen=True)
class PerfConfig:
    name: str
    keys_per_cycle: int = 1  # Q.K: QK_MULS / D keys per cycle
    softmax_lanes: int = 8  # scores per cycle in each softmax pass (the core's SM_LANES)
    values_per_cycle: int = 1  # prob.V: PV multipliers / D value vectors per cycle
    topk_comparators: int = 16  # top-k rows of this many values per cycle
    dram: str = "DDR4_2400R"  # a preset of models/dram/presets.py or "ideal"
    channels: int = 1  # AXI read channels = DRAM channels
    ideal_latency: int = 20  # cycles, dram = "ideal"
    r_beats_per_cycle: int = 1  # R beats the fetcher takes per cycle (1 per channel in `paper`)
    max_outstanding: int = 8  # bursts in flight (the fetcher's MAX_OUTSTANDING; in `paper` the
    # wide fetcher's reorder buffer, 256 beats = 16 bursts of 16, binds before its 64 bursts)
    refresh_window: bool = True  # a refresh due up to nRFC before a fetch delays it (dram.py);
    # False in `paper`: measured there a fetch starts in the calibrated latency (HBM2's 8
    # channels refresh one at a time; the other seven keep the reorder buffer filling)
    built: bool = True  # False: no RTL of this configuration (a prediction; a sweep's points)
    overlap: bool = CORE_OVERLAPS  # two job stages (models/perf/pipeline.py); False: sequential
    timing: PipelineTiming | None = None  # the pipeline constants (None: TIMING)

    @property
    def label(self) -> str:
        what = (f"the RTL's --config {self.name}" if self.built else
                "design-space PREDICTION (no RTL of this configuration)")
        return (f"{self.name}: {self.keys_per_cycle} key(s)/cycle, {self.softmax_lanes} softmax "
                f"lane(s), {self.values_per_cycle} value(s)/cycle, {self.topk_comparators} top-k "
                f"comparators, {self.dram} x {self.channels} channel(s) - {what}")

    def with_(self, **changes) -> PerfConfig:
        return replace(self, **changes)


DEFAULT = PerfConfig("default")
PAPER = PerfConfig("paper", keys_per_cycle=8, softmax_lanes=8, values_per_cycle=8,
                   topk_comparators=16, dram="HBM2_2000Mbps", channels=8, r_beats_per_cycle=8,
                   max_outstanding=16, refresh_window=False)
CONFIGS = {"default": DEFAULT, "paper": PAPER}
