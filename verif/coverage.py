"""Functional coverage of the core's features, with cocotb-coverage (no home-made counters).

Covergroups (names in the coverage database):
  top.job.*     descriptor widths (and their legal crosses), n_tokens bins, LSB refetch taken /
                not, v_topk / token_keep / head_keep bins, state-operation flags, threshold
                corners, every status, widths x refetch, status x n_tokens; the re-selection
                controls: reselect (x token_keep), imp_shift 0 / 1 / 2-30 / 31, protection
                (sink, recent, both, overlapping) and protected count vs the token_keep budget.
  top.axi.*     per burst: latency bins (DRAM latency zero to very long), burst length, response,
                channel.
  top.result.*  result back-pressure bins.
  top.pipeline.* job overlap (architecture section 11): a job accepted after the previous result
                (alone), before it (overlapped: its stage A ran beside the previous job's stage B),
                or before it with a state change (hazard: it waited for stage B to empty); crossed
                with the status of the overlapped job.
  top.state.*   pruning-state snapshots: importance saturation, heads pruned.
`CoverageCollector` samples them from what the scoreboard checked and what the monitors saw and
writes the database as XML (`<out>/func_cov.xml`) at the end of the test; `spatten-dv coverage`
merges the per-test files.
"""

from __future__ import annotations

from pathlib import Path

from cocotb_coverage.coverage import (
    CoverCross,
    CoverPoint,
    coverage_db,
    coverage_section,
)
from pyuvm import ConfigDB, uvm_component

from spatten_dv.models.descriptor import Status
from spatten_dv.models.params import IMP_BITS
from spatten_dv.verif.items import Forward

IMP_MAX = (1 << IMP_BITS) - 1
N_BINS = ["1", "2-31", "32-127", "128-511", "512-1023", "1024"]
STATUS_BINS = [s.name for s in Status]
WIDTH_PAIRS_ILLEGAL = [(m, lsb) for m in (4, 6, 8, 12) for lsb in (0, 4, 6, 8) if m + lsb > 12]


def n_bin(n: int) -> str:
    if n <= 1:
        return "1"
    for lo, hi, label in ((2, 31, "2-31"), (32, 127, "32-127"), (128, 511, "128-511"),
                          (512, 1023, "512-1023")):
        if lo <= n <= hi:
            return label
    return "1024"


def refetch_bin(job, ref) -> str:
    if ref.status != Status.OK:
        return "not_run"
    if not job.lsb_bits:
        return "no_lsb_plane"
    return "refetched" if ref.lsb_fetched else "msb_kept"


def vtopk_bin(job, ref) -> str:
    if ref.status != Status.OK:
        return "not_run"
    m = ref.n_keys
    if job.v_topk == 0:
        return "all"
    if job.v_topk == 1 and m > 1:
        return "k1"
    return "pruned" if job.v_topk < m else "k_ge_m"


def keep_bin(keep: int, before: int) -> str:
    if keep == 0:
        return "none"
    return "prunes" if keep < before else "noop"


def shift_bin(job) -> str:
    s = job.imp_shift
    return "0" if s == 0 else "1" if s == 1 else "31" if s == 31 else "2-30"


def protect_bin(job) -> str:
    """Protection of a token prune: which ranges, and whether they overlap (S > n - W)."""
    s, w, n = job.protect_sink, job.protect_recent, job.n_tokens
    if not job.token_keep:
        return "no_prune"
    if not s and not w:
        return "none"
    if s and w:
        return "overlap" if s > n - w else "sink_and_recent"
    return "sink" if s else "recent"


def protect_vs_keep_bin(job) -> str:
    """Protected positions below n_tokens against the token_keep budget."""
    s, w, n = job.protect_sink, job.protect_recent, job.n_tokens
    if not job.token_keep or not (s or w):
        return "n/a"
    protected = len({t for t in range(n) if t < s or t >= n - w})
    if protected == n:
        return "all_protected"
    return "below_keep" if protected < job.token_keep else "ge_keep"


def thresh_bin(job) -> str:
    if job.requant_thresh == 0:
        return "zero"
    return "max" if job.requant_thresh == 0xFFFF else "mid"


@coverage_section(
    CoverPoint("top.job.msb_bits", xf=lambda j, r, c: j.msb_bits, bins=[4, 6, 8, 12]),
    CoverPoint("top.job.lsb_bits", xf=lambda j, r, c: j.lsb_bits, bins=[0, 4, 6, 8]),
    CoverPoint("top.job.v_bits", xf=lambda j, r, c: j.v_bits, bins=[4, 6, 8, 12]),
    CoverCross("top.job.msb_x_lsb", items=["top.job.msb_bits", "top.job.lsb_bits"],
               ign_bins=WIDTH_PAIRS_ILLEGAL),
    CoverPoint("top.job.n_tokens", xf=lambda j, r, c: n_bin(j.n_tokens), bins=N_BINS),
    CoverPoint("top.job.lsb_refetch", xf=lambda j, r, c: refetch_bin(j, r),
               bins=["no_lsb_plane", "msb_kept", "refetched"]),
    CoverCross("top.job.lsb_width_x_refetch", items=["top.job.lsb_bits", "top.job.lsb_refetch"],
               ign_bins=[(0, "msb_kept"), (0, "refetched"), (4, "no_lsb_plane"),
                         (6, "no_lsb_plane"), (8, "no_lsb_plane")]),
    CoverPoint("top.job.v_topk", xf=lambda j, r, c: vtopk_bin(j, r),
               bins=["all", "k1", "pruned", "k_ge_m"]),
    CoverPoint("top.job.token_keep", xf=lambda j, r, c: keep_bin(j.token_keep, c["tokens"]),
               bins=["none", "prunes", "noop"]),
    CoverPoint("top.job.head_keep", xf=lambda j, r, c: keep_bin(j.head_keep, c["heads"]),
               bins=["none", "prunes", "noop"]),
    CoverPoint("top.job.requant_thresh", xf=lambda j, r, c: thresh_bin(j),
               bins=["zero", "mid", "max"]),
    CoverPoint("top.job.clear_tokens", xf=lambda j, r, c: bool(j.clear_tokens),
               bins=[False, True]),
    CoverPoint("top.job.clear_heads", xf=lambda j, r, c: bool(j.clear_heads), bins=[False, True]),
    CoverPoint("top.job.acc_tokens", xf=lambda j, r, c: bool(j.acc_tokens), bins=[False, True]),
    CoverPoint("top.job.acc_heads", xf=lambda j, r, c: bool(j.acc_heads), bins=[False, True]),
    CoverPoint("top.job.reselect", xf=lambda j, r, c: bool(j.reselect), bins=[False, True]),
    CoverCross("top.job.reselect_x_token_keep",
               items=["top.job.reselect", "top.job.token_keep"]),
    CoverPoint("top.job.imp_shift", xf=lambda j, r, c: shift_bin(j),
               bins=["0", "1", "2-30", "31"]),
    CoverPoint("top.job.protect", xf=lambda j, r, c: protect_bin(j),
               bins=["none", "sink", "recent", "sink_and_recent", "overlap"]),
    CoverPoint("top.job.protect_vs_keep", xf=lambda j, r, c: protect_vs_keep_bin(j),
               bins=["below_keep", "ge_keep", "all_protected"]),
    CoverPoint("top.job.status", xf=lambda j, r, c: Status(r.status).name, bins=STATUS_BINS),
    CoverCross("top.job.status_x_n_tokens", items=["top.job.status", "top.job.n_tokens"],
               ign_bins=[(s, n) for s in STATUS_BINS for n in N_BINS
                         if s not in ("OK", "AXI_SLVERR", "AXI_DECERR")]),
)
def sample_job(job, ref, ctx):
    """ctx: kept tokens below n_tokens and kept heads below n_heads before the job."""


@coverage_section(
    CoverPoint("top.axi.latency", xf=lambda b: ("0-15" if b.latency < 16 else "16-63"
                                                if b.latency < 64 else "64-255"
                                                if b.latency < 256 else "256+"),
               bins=["0-15", "16-63", "64-255", "256+"]),
    CoverPoint("top.axi.burst_len", xf=lambda b: ("1" if b.beats == 1 else "2-15"
                                                  if b.beats < 16 else "16"),
               bins=["1", "2-15", "16"]),
    CoverPoint("top.axi.resp", xf=lambda b: b.resp, bins=[0, 2, 3],
               bins_labels=["OKAY", "SLVERR", "DECERR"]),
    CoverPoint("top.axi.channel", xf=lambda b: b.channel, bins=[0, 1, 2, 3]),
)
def sample_burst(burst):
    pass


PIPELINE_BINS = ["alone", "overlapped", "hazard_wait"]
COVERGROUPS = ("top.job", "top.axi", "top.result", "top.state", "top.pipeline")


def pipeline_bin(job, accept_cycle: int, prev_result_cycle: int | None) -> str:
    if prev_result_cycle is None or accept_cycle >= prev_result_cycle:
        return "alone"
    return "hazard_wait" if job.changes_pruning_state else "overlapped"


@coverage_section(
    CoverPoint("top.pipeline.accept", xf=lambda kind, status: kind, bins=PIPELINE_BINS),
    CoverPoint("top.pipeline.status", xf=lambda kind, status: status,
               bins=["OK", "ended_in_A", "AXI_error"]),
    CoverCross("top.pipeline.overlap_x_status",
               items=["top.pipeline.accept", "top.pipeline.status"],
               ign_bins=[("hazard_wait", "ended_in_A"), ("alone", "ended_in_A"),
                         ("alone", "AXI_error"), ("hazard_wait", "AXI_error")]),
)
def sample_pipeline(kind, status):
    pass


def pipeline_status_bin(ref) -> str:
    if ref.status == Status.OK:
        return "OK"
    return "AXI_error" if ref.status in (Status.AXI_SLVERR, Status.AXI_DECERR) else "ended_in_A"


@coverage_section(
    CoverPoint("top.result.backpressure", xf=lambda r: ("0" if r.wait_cycles == 0 else "1-3"
                                                        if r.wait_cycles <= 3 else "4+"),
               bins=["0", "1-3", "4+"]),
)
def sample_result(res):
    pass


@coverage_section(
    CoverPoint("top.state.head_importance_saturated",
               xf=lambda s: any(v >= IMP_MAX for v in s.heads_imp), bins=[False, True]),
    CoverPoint("top.state.token_importance_saturated",
               xf=lambda s: any(v >= IMP_MAX for v in s.tokens_imp), bins=[False, True]),
    CoverPoint("top.state.heads_kept", xf=lambda s: ("all" if all(s.heads_kept) else "one"
                                                     if sum(s.heads_kept) == 1 else "some"),
               bins=["all", "some", "one"]),
)
def sample_state(snap):
    pass


class CoverageCollector(uvm_component):
    """Subscribes to the scoreboard's checked jobs, the AXI monitors, results and states."""

    def build_phase(self):
        self.cfg = ConfigDB().get(self, "", "CFG")
        self.job_export = Forward("job_export", self, self.on_job)
        self.burst_export = Forward("burst_export", self, sample_burst)
        self.result_export = Forward("result_export", self, sample_result)
        self.state_export = Forward("state_export", self, sample_state)
        self.prev_result_cycle = None  # result cycle of the job before (pipeline bins)

    def on_job(self, checked) -> None:
        desc, ref, res = checked
        sample_job(desc.job, ref, desc.context)
        sample_pipeline(pipeline_bin(desc.job, desc.cycle, self.prev_result_cycle),
                        pipeline_status_bin(ref))
        self.prev_result_cycle = res.cycle

    def report_phase(self):
        names = list(COVERGROUPS)
        parts = [f"{n[4:]} {coverage_db[n].cover_percentage:.1f} %" for n in names
                 if n in coverage_db]
        self.logger.info("functional coverage: total %.1f %% (%s)",
                         coverage_db["top"].cover_percentage, ", ".join(parts))
        if self.cfg.out:
            Path(self.cfg.out).mkdir(parents=True, exist_ok=True)
            coverage_db.export_to_xml(filename=str(Path(self.cfg.out) / "func_cov.xml"))
