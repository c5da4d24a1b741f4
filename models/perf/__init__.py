"""Behavioural performance model of the SpAtten core (docs/perf.md).

Predicts cycles and DRAM bytes per job from the job's shape (tokens, kept keys, values fetched,
widths, LSB refetch, prune sizes) in well under a millisecond per job, for the `default`
configuration (today's RTL: sequential phases, 1 key/cycle) and the `paper` configuration (a
design-space prediction: SpAtten's published parallelism on HBM2; no RTL exists for it).

Modules, one concern each: `configs` (the two configurations), `layout_bytes` (the one door to
models/layout.py: bytes and beats of fetching a set of tokens), `bursts` (the fetcher's burst
and DRAM-transaction count), `dram` (fetch time: a bandwidth + latency formula calibrated on
the DRAM timing model), `stages` (cycle formula of every phase), `shape` (job shapes from a
workload or a trace, through the reference model), `steps` (per-step aggregation, ops, GOP/s).
"""
