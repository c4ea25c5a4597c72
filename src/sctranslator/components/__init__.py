"""What is fitted around training, each in one file: state, fit and how it is applied.

- :class:`PanelStatistics`: the measured-protein rule and each protein's scale, from the
  training cells at the start of every training.
- :func:`fit_gene_weights`: how informative each gene is, for the context rule of the module.
- :class:`ReferenceMapping`: a kernel-ridge read-out from the cell token, after training.
- :class:`IntervalCalibration`: conformal prediction intervals and novelty, after training.

Each component is a torch module with buffers only (no parameters): it moves with the model
to its device and is saved in its own safetensors file (:func:`component_state`,
:func:`load_component_state`). See ``docs/design.md``.
"""

from ._calibration import IntervalCalibration
from ._gene_weights import fit_gene_weights
from ._mapping import ReferenceMapping
from ._panel import PanelStatistics, measured_in_batches
from ._state import component_state, load_component_state

__all__ = [
    "IntervalCalibration",
    "PanelStatistics",
    "ReferenceMapping",
    "component_state",
    "fit_gene_weights",
    "load_component_state",
    "measured_in_batches",
]
