"""Behavioural performance model of the SpAtten core (docs/perf.md).

Predicts per job its accept and result cycles, latency and DRAM bytes from the job's shape
(tokens, kept keys, values fetched, widths, LSB refetch, prune sizes) in about a millisecond per
job, and per decode step its span, for the `default` configuration (today's RTL: 1 key/cycle,
two overlapping job stages) and the `paper` configuration (a design-space prediction:
SpAtten's published parallelism on HBM2; no RTL exists for it).

Modules, one concern each: `configs` (the two configurations), `layout_bytes` (the one door to
models/layout.py: bytes and beats of fetching a set of tokens), `bursts` (the fetcher's burst
and DRAM-transaction count), `dram` (fetch time: a bandwidth + latency formula calibrated on
the DRAM timing model), `stages` (cycle formula of every phase), `pipeline` (when each job's
phases run on the two job stages, with the stages' shared DRAM and prune state), `shape` (job
shapes from a workload or a trace, through the reference model), `steps` (per-step spans, ops,
GOP/s), `measured` (the RTL measurements the model is checked against).
"""
