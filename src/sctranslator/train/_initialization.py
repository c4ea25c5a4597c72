"""Data-dependent set-up of the training plan and module at the start of each training."""

from __future__ import annotations

import warnings

import lightning.pytorch as pl
import numpy as np
import torch
from scvi import REGISTRY_KEYS, settings

from sctranslator.components import fit_gene_weights
from sctranslator.data import read_all_cells, read_cells, sample_rows


class DataInitialization(pl.Callback):
    """Set the training plan and the module up from the training cells before each training.

    Only training cells are read; the validation cells never shape the model, so early
    stopping and best-epoch restore score truly held-out cells. The callback

    - fits the plan's :class:`~sctranslator.components.PanelStatistics` to every training
      cell (read in row chunks);

    and, on at most ``max_cells`` training cells (:func:`~sctranslator.data.sample_rows`),

    - fits the plan's ``protein_axes`` (the targets' principal axes, ``protein_rank``);
    - unless the module is already initialised (trained before, or transferred from a
      reference), sets its gene weights (:func:`~sctranslator.components.fit_gene_weights`,
      with ``context="informative"``) and calls
      :meth:`~sctranslator.module.TranslatorModule.initialize_from_data` on their RNA;
    - fits the plan's :class:`~sctranslator.train.NeighborTeacher` to them, so the teacher
      always belongs to the data being trained on.

    Under DDP every process computes the same set-up, then takes the first process's.

    Parameters
    ----------
    max_cells
        Largest number of training cells read for the axes, the start and the teacher.
    """

    def __init__(self, max_cells: int = 2048):
        super().__init__()
        self.max_cells = max_cells

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Set the plan and module up from the training split of the data module."""
        module, panel, teacher = pl_module.module, pl_module.panel, pl_module.teacher
        teacher.clear()  # never a teacher from other data
        pl_module.protein_axes = None
        splitter = trainer.datamodule
        if getattr(splitter, "train_idx", None) is None:
            warnings.warn(
                "The data module has no `train_idx`: the model is not set up from the "
                "training cells (no panel statistics, data-dependent start or target "
                "smoothing).",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )
            return
        source = getattr(splitter, "store", None) or splitter.adata_manager
        rows = np.sort(np.asarray(splitter.train_idx))
        never = panel.fit(
            lambda: (
                (chunk[REGISTRY_KEYS.PROTEIN_EXP_KEY], chunk[REGISTRY_KEYS.BATCH_KEY])
                for chunk in read_cells(source, rows)
            )
        )
        if never.any():
            names = np.asarray(pl_module.protein_names)[never]
            warnings.warn(
                f"{int(never.sum())} proteins are never measured in the training cells (NaN or "
                f"all zero), e.g. {list(names[:5])}; they are left out of the loss.",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )
        smoothing = teacher.smoothing > 0
        project = pl_module.protein_rank < len(panel.mean)
        if bool(module.initialized) and not smoothing and not project:
            self._broadcast(trainer, pl_module)
            return
        sample = sample_rows(rows, self.max_cells)
        if project:
            # Read before the RNA below, whose loader draws from torch's global generator.
            proteins = self._proteins(read_all_cells(source, sample), module.device)
            pl_module.protein_axes = _principal_axes(panel, *proteins, pl_module.protein_rank)
        if bool(module.initialized) and not smoothing:
            self._broadcast(trainer, pl_module)
            return
        cells = read_all_cells(source, sample, rna=True)
        proteins, batch = self._proteins(cells, module.device)
        x = torch.as_tensor(cells[REGISTRY_KEYS.X_KEY], device=module.device)
        target = panel.standardize(proteins, batch)
        if not bool(module.initialized):
            if module.context == "informative":  # first: it decides the context of the start
                known, gene_ids = module.read_registered_genes(x)
                weights = fit_gene_weights(module.normalize_rna(known), target)
                if weights is not None:
                    module.set_gene_weights(weights, gene_ids)
            module.initialize_from_data(x)
        if smoothing:
            teacher.fit(torch.nan_to_num(module.normalize_rna(x)), target)
        self._broadcast(trainer, pl_module)

    @staticmethod
    def _proteins(cells: dict[str, np.ndarray], device: torch.device) -> tuple[torch.Tensor, ...]:
        """Protein counts and batch codes of cells read by :func:`read_all_cells`."""
        return tuple(
            torch.as_tensor(cells[key], device=device)
            for key in (REGISTRY_KEYS.PROTEIN_EXP_KEY, REGISTRY_KEYS.BATCH_KEY)
        )

    @staticmethod
    def _broadcast(trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Under DDP, give every process the first process's set-up (module, panel, plan)."""
        if trainer.world_size == 1:
            return
        state = {
            "module": pl_module.module.state_dict(),
            "panel": pl_module.panel.state_dict(),
            "axes": pl_module.protein_axes,
            "teacher": pl_module.teacher,
        }
        state = trainer.strategy.broadcast(state, src=0)
        pl_module.module.load_state_dict(state["module"])
        pl_module.panel.load_state_dict(state["panel"])
        pl_module.protein_axes, pl_module.teacher = state["axes"], state["teacher"]


@torch.no_grad()
def _principal_axes(panel, proteins: torch.Tensor, batch: torch.Tensor, rank: int) -> torch.Tensor:
    """Top ``rank`` principal axes ``(proteins, rank)`` of the cells' standardised proteins.

    Unmeasured values count as the mean (0); the proteins are centred on the training mean,
    so the axes go through the origin. Columns beyond the data's rank are zero.
    """
    normalized = panel.normalized(proteins, batch).double()
    standardized = ((normalized - panel.mean) / panel.std).nan_to_num().float()
    q = min(rank + 8, *standardized.shape)
    axes = torch.svd_lowrank(standardized, q=q, niter=4)[2][:, :rank]
    full = torch.zeros(proteins.shape[1], rank, device=proteins.device)
    full[:, : axes.shape[1]] = axes
    return full
