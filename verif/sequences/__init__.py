"""Job sequences, chosen by name (knob `sequences`, a comma list)."""

from __future__ import annotations

from spatten_dv.verif.sequences.corners import CornersSeq, ProbeSeq, SaturationSeq
from spatten_dv.verif.sequences.errors import ErrorsSeq
from spatten_dv.verif.sequences.overlap import OverlapSeq
from spatten_dv.verif.sequences.random_jobs import BackToBackSeq, RandomJobsSeq
from spatten_dv.verif.sequences.reselect import ReselectSeq
from spatten_dv.verif.sequences.trace_replay import TraceReplaySeq
from spatten_dv.verif.sequences.workload_replay import WorkloadReplaySeq

SEQUENCES = {
    "trace_replay": TraceReplaySeq,
    "workload_replay": WorkloadReplaySeq,
    "random": RandomJobsSeq,
    "back_to_back": BackToBackSeq,
    "corners": CornersSeq,
    "errors": ErrorsSeq,
    "saturation": SaturationSeq,
    "probe": ProbeSeq,
    "reselect": ReselectSeq,
    "overlap": OverlapSeq,
}
