"""SpAtten reference models: the bit-exact fixed-point core model and the float algorithm.

`core.SpAttenCoreModel` is the contract the RTL is checked against; docs/architecture.md is
its prose form.
"""

from spatten_dv.models.core import SpAttenCoreModel, dot_products, weighted_sum
from spatten_dv.models.descriptor import Job, JobResult, Status
from spatten_dv.models.float_model import SpAttenFloatModel, attention_float
from spatten_dv.models.layout import write_head
from spatten_dv.models.memory import DramImage
from spatten_dv.models.params import DEFAULT_PARAMS, CoreParams
from spatten_dv.models.softmax import score_scale, softmax_fixed
from spatten_dv.models.topk import topk_indices

__all__ = [
    "DEFAULT_PARAMS", "CoreParams", "DramImage", "Job", "JobResult", "SpAttenCoreModel",
    "SpAttenFloatModel", "Status", "attention_float", "dot_products", "score_scale",
    "softmax_fixed", "topk_indices", "weighted_sum", "write_head",
]
