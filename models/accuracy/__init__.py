"""Accuracy study: the float SpAtten algorithm inside a real model's attention, vs. H2O and
StreamingLLM at the same K/V budget (docs/accuracy.md).

Teacher-forced perplexity over chunks of a text. Inside every attention module, each query
position t is its own simulated decode step over the t + 1 tokens before it (a causal LM's
decode step). Everything is vectorized over heads, query positions and a batch of chunks,
except the cascades (token and head pruning, H2O eviction), which are sequential in t by
nature and run as one numpy loop over t per layer, vectorized over the batch and the heads.

SpAtten (docs/architecture.md, sections 5-7, applied per query position):

* cascade token pruning: importance of token s for query t at layer l = the attention
  probabilities s received in the layers before l (all heads not pruned) from every query
  t' <= t. Keep the top max(16, ceil(r_l (t + 1))) of the candidates (top-k, the lower index
  winning ties), the candidates being the tokens kept at layer l - 1 for query t and not pruned
  at layer l for an earlier query. So a token pruned at (l, t) stays pruned at every
  (l' >= l, t' >= t). With `recent`, the newest floor(recent * budget) tokens are exempt (a
  deviation from the spec, see docs/accuracy.md). r_l is ramped: `dense_layers` layers at 1,
  then linearly down to r_min over `ramp_layers` layers, then r_min; r_min is solved so that
  the mean keep ratio over the layers is `keys`.
* cascade head pruning: the same with heads, importance = sum_d |out_d| of the head (in V's
  integer units), keep ceil(h_l * H) heads, h_l ramped the same way down to `heads`. A pruned
  head's output is zero (HEAD_SKIPPED: nothing fetched, nothing accumulated).
* progressive quantization: Q (per query vector), K and V (per chunk, layer and KV head) as
  12-bit integers; scores with K at `msb_bits` (formats.effective: truncated, midpoint
  reconstruction); rows whose max probability < `requant_thresh` are recomputed with
  `msb_bits + lsb_bits` bits.
* local value pruning: only the top ceil(`values` * kept) probabilities of a row fetch and use
  their V (the others contribute nothing; no renormalization). V at `v_bits`.

H2O (heavy hitters + recent window, half each, per layer and head, evicted tokens never return)
and StreamingLLM (4 sink tokens + recent window) keep max(16, ceil(f (t + 1))) tokens per
query with full-precision K/V. Dense is the model's own (eager) attention.

K/V bytes per scored token are counted as the core would fetch them for that decode step: per
layer and query head (one job each), kept keys x msb_bits (+ lsb_bits for rows that refetch) +
fetched values x v_bits, times head_dim / 8; unquantized K/V count as 12 bits (the core's full
precision). The padded DRAM footprint (docs/architecture.md section 3, stride per plane) is
reported too.
"""

from spatten_dv.models.accuracy.attention import (  # noqa: F401
    ATTN_NAME,
    QMAX,
    _quantize,
    _Study,
    register_attention,
)
from spatten_dv.models.accuracy.configs import (  # noqa: F401
    ALL_CONFIGS,
    CONFIGS_BY_NAME,
    DEFAULT_NAMES,
    FULL_BITS,
    METHODS,
    MIN_KEEP,
    StudyConfig,
    keep_count,
    layer_schedule,
    select_configs,
)
from spatten_dv.models.accuracy.evaluation import (  # noqa: F401
    DATA_DIR,
    DEFAULT_TEXT,
    Chunks,
    evaluate,
    make_chunks,
    read_text,
    run_study,
)
from spatten_dv.models.accuracy.masks import cascade, h2o_masks, streaming_mask  # noqa: F401
from spatten_dv.models.accuracy.report import (  # noqa: F401
    ConfigResult,
    load_results,
    plot,
    plot_title,
    table,
    write_results,
)
