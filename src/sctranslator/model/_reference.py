"""Reference models: open a pre-trained one, build query models from it, fine-tune it."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Self

import numpy as np
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS

from . import _transfer
from ._model_utils import registered_positions


class ReferenceMixin:
    """:meth:`load_pretrained`, :meth:`load_query_data` and :meth:`fine_tune`.

    Needs from the model class: ``load``, ``train``, a ``vocabulary``, a ``module`` with
    ``transfer_from`` and the fitted components ``panel_statistics``, ``reference_mapping``
    and ``calibration`` (:mod:`sctranslator.components`).
    """

    @classmethod
    def load_pretrained(
        cls,
        name_or_path: str | os.PathLike = "pbmc",
        *,
        accelerator: str = "auto",
        device: int | str = "auto",
    ) -> Self:
        """Open a pre-trained reference, shipped by name or saved in a folder, without data.

        It predicts straight away from any RNA whose genes its vocabulary knows, and serves
        as the reference of :meth:`load_query_data` and :meth:`fine_tune`.

        Parameters
        ----------
        name_or_path
            A shipped reference (:func:`~sctranslator.model.shipped_references`; ``"pbmc"``:
            human PBMC CITE-seq) or a folder written by :meth:`save`.
        accelerator, device
            Where to load the weights, as in :meth:`load`.

        Returns
        -------
        The model; ``adata`` is ``None``.

        Examples
        --------
        >>> reference = sct.SCTRANSLATOR.load_pretrained("pbmc")
        """
        return cls.load(name_or_path, accelerator=accelerator, device=device)

    @classmethod
    def load_query_data(
        cls,
        adata: AnnData | MuData,
        reference: Self | str | os.PathLike,
        *,
        freeze: str | Sequence[str] | None = "encoder",
        rna_normalization: str | None = None,
        protein_normalization: str | None = None,
        add_new_genes: bool = False,
    ) -> Self:
        """Build a new, untrained model for ``adata`` from a pre-trained ``reference``.

        Unlike scvi-tools' ``load_query_data``, the query may have other genes and proteins,
        and need not be laid out as the reference's data: an AnnData (proteins in ``obsm``) or
        a MuData (RNA and protein modalities), with raw counts in ``X`` or in the reference's
        layers, with or without the reference's batch column. A query not laid out so is not
        changed: the model holds a new object that shares its matrices, with the counts where
        the reference reads them and, without the batch column, every cell in one new batch
        ``"query"`` (``model.adata.obs["batch"]``); each change is logged (logger
        ``sctranslator``, INFO). A query laid out as the reference's is registered itself,
        as by ``setup_mudata``.
        New proteins join the vocabulary, starting from the mean embedding of their coding
        genes (:func:`sctranslator.data.protein_aliases`) or a random vector. Genes the
        reference never learnt are not read unless ``add_new_genes``, so they cannot push
        learnt genes out of a cell's context. The architecture, normalisations (unless
        overridden) and the scale of shared proteins are the reference's; its weights are
        copied, never changed.

        Parameters
        ----------
        adata
            Paired RNA and protein counts (see above); set up with the reference's setup
            arguments if it is not set up yet.
        reference
            A trained model or the folder of a saved one.
        freeze
            Parameters left unchanged by training; ``"encoder"`` keeps the pre-trained gene
            encoder; ``None`` trains everything.
        rna_normalization, protein_normalization
            Override the reference's normalisations (e.g. bulk pre-training).
        add_new_genes
            Let genes the reference does not know join the vocabulary as untrained tokens.

        Returns
        -------
        A new :class:`SCTRANSLATOR`; call :meth:`train`, or use :meth:`fine_tune`.

        Examples
        --------
        >>> model = sct.SCTRANSLATOR.load_query_data(few_cells, reference)
        >>> model.train(max_epochs=100, train_size=1.0)
        """
        if not isinstance(reference, cls):
            reference = cls.load_pretrained(reference)
        return _transfer.query_model(
            cls,
            adata,
            reference,
            freeze=freeze,
            normalizations={"rna": rna_normalization, "protein": protein_normalization},
            add_new_genes=add_new_genes,
        )

    def fine_tune(
        self,
        adata: AnnData | MuData,
        *,
        freeze: str | Sequence[str] | None = "encoder",
        max_epochs: int = 200,
        interpolation: float | str = "cv",
        n_folds: int = 4,
        **train_kwargs,
    ) -> Self:
        """Adapt this (pre-trained) model to ``adata``: return a new, trained model.

        :meth:`load_query_data` with this model as the reference, then :meth:`train` on every
        cell for ``max_epochs``; the weights are then pulled back towards the start,
        ``start + w * (fine-tuned - start)`` (WiSE-FT), with ``w`` chosen by ``n_folds``-fold
        cross-validation (out-of-fold mean per-protein Pearson, ties to the smaller ``w``).
        The :attr:`reference_mapping` of this model is kept. ``model.fine_tuning_`` holds
        ``w`` and the scores; :attr:`protein_reliability` is the out-of-fold Pearson. At
        ``w = 0`` the model keeps this model's :attr:`calibration` (NaN for new proteins).
        This model is not changed.

        Parameters
        ----------
        adata
            Paired RNA and protein counts, e.g. 20 labelled cells, laid out as for
            :meth:`load_query_data` (counts in ``X`` or layers, with or without a batch
            column; not changed); it may measure new proteins.
        freeze
            As in :meth:`load_query_data`.
        max_epochs
            Training epochs.
        interpolation
            ``"cv"``, or a fixed weight in ``[0, 1]`` (1: as fine-tuned; 0: this model).
        n_folds
            Folds of the cross-validation (``n_folds + 1`` fine-tunings in all).
        **train_kwargs
            Passed to :meth:`train` (``plan_kwargs``, ``batch_size``...).

        Returns
        -------
        The fine-tuned model.

        Examples
        --------
        >>> twenty_cells = mudata.MuData({"rna": rna_counts, "prot": protein_counts})
        >>> model = sct.SCTRANSLATOR.load_pretrained("pbmc").fine_tune(twenty_cells)
        >>> model.fine_tuning_["interpolation"]
        """
        return _transfer.fine_tune(
            self,
            adata,
            freeze=freeze,
            max_epochs=max_epochs,
            interpolation=interpolation,
            n_folds=n_folds,
            train_kwargs=train_kwargs,
        )

    def _reference_positions(self, reference) -> np.ndarray:
        """Position among ``reference``'s registered proteins of each of this model's."""
        names = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        return registered_positions(reference, names, self.module.protein_ids.tolist())
