"""Accuracy study under SpAtten's decode protocol (docs/accuracy.md).

Per window of a held-out text: one dense prefill of the prompt (about 1000 tokens) that records
each token's attention (per layer and head, summed over the prompt queries) and each head's
|output|; then teacher-forced decode steps (each feeds the next token and scores the one after
it) in which every configuration, one batch row each, attends over the cached K/V with its own
policy (models/accuracy/policies.py):

* SpAtten: at every step the token set is re-selected from all tokens by accumulated importance
  (`reselect`), cascading over depth within the step (layer l keeps ceil(r_l N) of layer l-1's
  set, r_l the per8 workload's ratio at that depth, scaled); head pruning likewise; progressive
  quantization (MSB K, LSB refetch of rows whose max probability is under the threshold, V
  bits); local V pruning (top fraction of each head's probabilities, no renormalisation).
  Knobs as on the core: `reselect`, `imp_shift`, `protect_sink`, `protect_recent`.
* H2O: per layer and head, recent half + heavy hitters by accumulated attention, evictions
  final; StreamingLLM: sinks + recent. Both at SpAtten's K/V bytes (`match`).
* Dense: every token at 12 bits; equals the model's own loss.

K/V bytes per decoded token are counted as the core fetches them (per layer and query head:
kept keys x MSB bits, + LSB bits for refetch rows, + fetched values x V bits, x head_dim / 8).
"""

from spatten_dv.models.accuracy.attention import ATTN_NAME, register_attention  # noqa: F401
from spatten_dv.models.accuracy.configs import (  # noqa: F401
    ALL_CONFIGS,
    CONFIGS_BY_NAME,
    DEFAULT_NAMES,
    FULL_BITS,
    METHODS,
    StudyConfig,
    default_text,
    depth_ratios,
    keep_count,
    per8_shape,
    resolve,
    select_configs,
)
from spatten_dv.models.accuracy.evaluation import (  # noqa: F401
    WindowResult,
    model_dims,
    read_text,
    run_study,
    run_window,
    window_starts,
)
from spatten_dv.models.accuracy.policies import make_policy, top_ranked  # noqa: F401
from spatten_dv.models.accuracy.report import plot, summarize, table, write_outputs  # noqa: F401
