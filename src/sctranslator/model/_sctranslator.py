"""The user-facing model: set up, train, predict, transfer, save and load."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from sctranslator._docstrings import model_dsp
from sctranslator._warnings import quiet_dependencies
from sctranslator.components import IntervalCalibration, PanelStatistics, ReferenceMapping
from sctranslator.data import (
    CellStore,
    Vocabulary,
    check_output_path,
    rna_location,
    rna_modality,
    write_blocks,
)
from sctranslator.module import TranslatorModule
from sctranslator.train import TranslatorTrainingPlan, trainer_settings

from . import _held_out, _transfer
from ._card import ModelCardMixin
from ._intervals import IntervalMixin
from ._model_utils import default_max_epochs
from ._prediction import (
    ATTRIBUTIONS,
    batch_index,
    encode,
    predicted_blocks,
    protein_scale,
    requested_proteins,
    rna_query,
)
from ._reference import ReferenceMixin
from ._saveload_mixin import SaveLoadMixin
from ._setup_mixin import SetupMixin
from ._store import StoreQuery, registry_from_store, store_datamodule


class SCTRANSLATOR(
    IntervalMixin,
    ReferenceMixin,
    ModelCardMixin,
    SaveLoadMixin,
    SetupMixin,
    UnsupervisedTrainingMixin,
    BaseModelClass,
):
    """Translate single-cell RNA into protein abundances with a gene-token transformer.

    A reimplementation of the idea of scTranslator :cite:p:`Liu2025`: genes are tokens (an
    identity from a :class:`~sctranslator.data.Vocabulary` plus an expression value), a
    transformer encodes them, and protein queries cross-attend to the encoded genes. One
    model therefore reads any gene panel and predicts any protein of its vocabulary. The
    network is :attr:`module`; what is fitted around training lives in
    :attr:`panel_statistics`, :attr:`reference_mapping` and :attr:`calibration`
    (:mod:`sctranslator.components`).

    Parameters
    ----------
    adata
        AnnData or MuData registered with :meth:`setup_anndata` or :meth:`setup_mudata`, or
        a :class:`~sctranslator.data.CellStore` (datasets with different panels, read from
        disk during training; no setup needed).
    registry
        A saved registry, to build the model without data (used by :meth:`load`).
    n_hidden
        Width of every token.
    n_heads
        Attention heads.
    n_latents
        Latent tokens that read a cell's gene tokens (cross-attention), so cost per cell is
        linear in its number of genes.
    n_encoder_layers
        Transformer layers over the cell token and the latents.
    dropout
        Dropout rate.
    max_genes
        Context limit: a cell's tokens are its expressed genes (zero and NaN values are not
        tokens), at most ``max_genes`` of them.
    context
        Which expressed genes a cell with more than ``max_genes`` keeps: ``"informative"``
        ranks them by value times the gene's weight (how strongly it tracks the proteins in
        the first training cells, :func:`~sctranslator.components.fit_gene_weights`);
        ``"expressed"`` keeps the most expressed.
    gene_dropout
        Training augmentation: each expressed gene of a cell is left out of its context with
        this probability.
    rna_normalization
        ``"log1p_cp10k"`` (default), ``"log1p"`` or ``"minmax"``; see :mod:`sctranslator.nn`.
    protein_normalization
        ``"clr"`` (default), ``"log1p"`` or ``"minmax"``. Predictions are on this scale.
    gradient_checkpointing
        Recompute the attention blocks' activations in the backward pass instead of storing
        them: less memory for larger batches or contexts, about a third more compute.
    vocabulary
        Token vocabulary; by default the registered genes and proteins. A given vocabulary
        decides which genes are read (registered genes it lacks are not) and gains the
        registered proteins it lacks (see :meth:`load_query_data`).
    freeze
        Parameters that training leaves unchanged: ``"encoder"`` (the gene encoder), a list of
        submodule names, or ``None``; see
        :meth:`~sctranslator.module.TranslatorModule.freeze`.

    Examples
    --------
    >>> mdata = sct.datasets.pbmc_cite_mini()
    >>> sct.SCTRANSLATOR.setup_mudata(
    ...     mdata,
    ...     rna_layer="counts",
    ...     protein_layer="counts",
    ...     batch_key="batch",
    ...     modalities={"rna_layer": "rna", "protein_layer": "prot"},
    ... )
    >>> model = sct.SCTRANSLATOR(mdata)
    >>> model.train()
    >>> proteins = model.predict_protein(mdata["rna"])
    """

    _module_cls = TranslatorModule
    _training_plan_cls = TranslatorTrainingPlan

    def __init__(
        self,
        adata: AnnData | MuData | CellStore | None = None,
        *,
        registry: dict | None = None,
        n_hidden: int = 64,
        n_heads: int = 4,
        n_latents: int = 16,
        n_encoder_layers: int = 2,
        dropout: float = 0.1,
        max_genes: int = 128,
        context: str = "informative",
        gene_dropout: float = 0.3,
        rna_normalization: str = "log1p_cp10k",
        protein_normalization: str = "clr",
        gradient_checkpointing: bool = False,
        vocabulary: Vocabulary | None = None,
        freeze: str | Sequence[str] | None = None,
    ):
        self._store = adata if isinstance(adata, CellStore) else None
        if self._store is not None:
            adata, registry = None, registry_from_store(type(self), self._store)
        super().__init__(adata, registry)
        genes = self._registered_names(REGISTRY_KEYS.X_KEY)
        proteins = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        self.vocabulary_ = _transfer.model_vocabulary(vocabulary, genes, proteins)
        self.module = self._module_cls(
            n_tokens=len(self.vocabulary_),
            gene_ids=torch.as_tensor(self.vocabulary_.lookup_genes(genes)),
            protein_ids=torch.as_tensor(self.vocabulary_.lookup_proteins(proteins)),
            n_batch=self.summary_stats.n_batch,
            n_hidden=n_hidden,
            n_heads=n_heads,
            n_latents=n_latents,
            n_encoder_layers=n_encoder_layers,
            dropout=dropout,
            max_genes=max_genes,
            context=context,
            gene_dropout=gene_dropout,
            rna_normalization=rna_normalization,
            gradient_checkpointing=gradient_checkpointing,
        )
        self.module.freeze(freeze)
        self.panel_statistics = PanelStatistics(
            len(proteins), self.summary_stats.n_batch, protein_normalization
        )
        self.reference_mapping = ReferenceMapping()
        self.calibration = IntervalCalibration()
        if adata is not None:
            self.vocabulary_ = self.vocabulary_.with_ensembl_from(self._rna(adata).var)
        self._model_summary_string = (
            f"SCTRANSLATOR: {len(genes)} genes -> {len(proteins)} proteins, vocabulary of "
            f"{len(self.vocabulary_)} tokens, n_hidden: {n_hidden}, latents: {n_latents}, "
            f"encoder layers: {n_encoder_layers}, max_genes: {max_genes} ({context}), "
            f"gene_dropout: {gene_dropout}, RNA: {rna_normalization}, protein: "
            f"{protein_normalization}"
        )
        self.init_params_ = self._get_init_params(locals())

    @property
    def vocabulary(self) -> Vocabulary:
        """The token vocabulary, saved and loaded with the model."""
        return self.vocabulary_

    def to_device(self, device: str | int | torch.device) -> None:
        """Move the module and the fitted components to ``device``.

        Parameters
        ----------
        device
            As in :meth:`scvi.model.base.BaseModelClass.to_device`.

        Examples
        --------
        >>> model.to_device("cpu")
        """
        super().to_device(device)
        for component in self._components():
            component.to(self.device)

    def _components(self) -> tuple[torch.nn.Module, ...]:
        return self.panel_statistics, self.reference_mapping, self.calibration

    def _rna(self, adata: AnnData | MuData) -> AnnData:
        return rna_modality(adata, self.registry_["setup_args"])

    def _registered_names(self, registry_key: str) -> np.ndarray:
        state = self.registry_["field_registries"][registry_key]["state_registry"]
        return np.asarray(state["column_names"]).astype(str)

    def _source(self):
        """Return the registered cells: a cell store, or the manager of the registered data."""
        return self._store if self._store is not None else self.adata_manager

    def _query(self, adata: AnnData | MuData | None, indices: Sequence[int] | None):
        """Return the RNA of ``adata`` (the registered cells if None) to predict from."""
        if adata is None and self._store is not None:
            rows = np.arange(self._store.n_obs) if indices is None else np.asarray(indices)
            return StoreQuery(self._store, rows, self.module.gene_ids.cpu().numpy())
        adata = self.adata if adata is None else adata
        if adata is None:
            raise ValueError("The model was loaded without data: pass `adata`.")
        layer = rna_location(self.registry_["setup_args"])[1]
        return rna_query(self._rna(adata), layer, self.vocabulary_, indices)

    # -------------------------------------------------------------------------- training
    def train(
        self,
        *,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float | None = None,
        validation_size: float | None = None,
        batch_size: int = 128,
        early_stopping: bool = True,
        early_stopping_patience: int = 30,
        restore_best_weights: bool = True,
        reference_mapping: bool = True,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ) -> None:
        """Train with scvi-tools' :class:`~scvi.train.TrainRunner` and Lightning.

        Validation per-protein Pearson (``pearson_validation``) is computed every epoch and
        drives early stopping; with ``restore_best_weights`` the best epoch's weights are
        kept (:attr:`history` records everything). The first training of a new model starts
        from its training cells' RNA (:class:`~sctranslator.train.DataInitialization`); later
        calls, and models made by :meth:`load_query_data`, continue from their weights.
        Every call fits :attr:`panel_statistics` and the plan's targets to its own training
        cells. After training, the validation cells choose the :attr:`reference_mapping`,
        fit the :attr:`calibration` of :meth:`predict_protein_interval` and score
        :attr:`protein_reliability`; validation cells never shape the network.

        ``accelerator="gpu", devices=N, strategy="ddp"`` trains data-parallel (scvi-tools
        turns early stopping off under DDP); ``precision="bf16-mixed"`` in bfloat16. Data may
        be an AnnData opened backed, or a :class:`~sctranslator.data.CellStore`, read from
        disk (``ckpt_path`` with a Lightning ``ModelCheckpoint`` resumes a store training).
        Lightning's banners ("GPU available", "💡 Tip", "`Trainer.fit` stopped") are hidden,
        the progress bar is not (``enable_progress_bar``); ``scvi.settings.verbosity =
        logging.DEBUG`` shows them.

        Parameters
        ----------
        max_epochs
            By default :func:`default_max_epochs` (about 300,000 cell passes, 10 to 400).
        accelerator, devices
            As in Lightning (e.g. ``"gpu"``, ``2`` with ``strategy="ddp"``).
        train_size
            Fraction of cells for training (0.9 by default); the rest validate.
        validation_size
            Fraction of cells for validation; ``1 - train_size`` by default.
        batch_size
            Cells per minibatch.
        early_stopping
            Stop when ``pearson_validation`` has not improved for
            ``early_stopping_patience`` epochs.
        early_stopping_patience
            Epochs without improvement before stopping.
        restore_best_weights
            Keep the weights of the epoch with the best ``pearson_validation``.
        reference_mapping
            Fit the :attr:`reference_mapping` read-out on the validation cells (kept only if
            it raises their mean per-protein Pearson). Needs validation cells.
        plan_kwargs
            Passed to :class:`~sctranslator.train.TranslatorTrainingPlan`: ``lr``,
            ``weight_decay``, ``protein_rank`` (32), ``target_smoothing`` (0.5),
            ``smoothing_neighbors`` (15), ``masked_genes`` (0: the self-supervised objective
            on RNA, which lets RNA-only cells train the encoder)...
        datasplitter_kwargs
            Passed to :class:`~scvi.dataloaders.DataSplitter`, or for a cell store to
            :class:`~sctranslator.data.StoreDataModule` (``chunk_size``, ``block_size``).
        **trainer_kwargs
            Passed to :class:`~scvi.train.Trainer` (``strategy``, ``precision``...).

        Examples
        --------
        >>> model.train(max_epochs=50, precision="bf16-mixed")
        >>> model.train(accelerator="gpu", devices=4, strategy="ddp")
        """
        has_validation = train_size is None or train_size < 1.0
        trainer_kwargs = trainer_settings(
            trainer_kwargs,
            has_validation=has_validation,
            early_stopping=early_stopping,
            early_stopping_patience=early_stopping_patience,
            restore_best_weights=restore_best_weights,
        )
        datamodule = None
        if self._store is not None:  # read from disk; the split and shuffling are the store's
            datamodule = store_datamodule(
                self._store, train_size, validation_size, batch_size, datasplitter_kwargs
            )
        self.reference_mapping.clear()  # of other weights; refitted below
        names = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        with quiet_dependencies():
            super().train(
                max_epochs=max_epochs or default_max_epochs(self.summary_stats.n_cells),
                accelerator=accelerator,
                devices=devices,
                train_size=train_size,
                validation_size=validation_size,
                batch_size=batch_size,
                early_stopping=early_stopping and has_validation,
                plan_kwargs={
                    "panel": self.panel_statistics,
                    "protein_names": names,
                    **(plan_kwargs or {}),
                },
                datasplitter_kwargs=datasplitter_kwargs,
                datamodule=datamodule,
                **trainer_kwargs,
            )
        self.to_device(self.device)
        _held_out.after_training(self, reference_mapping=reference_mapping)

    # ------------------------------------------------------------------------ prediction
    @torch.inference_mode()
    @model_dsp.dedent
    def predict_protein(
        self,
        adata: AnnData | MuData | None = None,
        *,
        indices: Sequence[int] | None = None,
        proteins: Sequence[str] | None = None,
        batch_size: int | None = None,
        transform_batch: str | None = None,
        progress_bar: bool | None = None,
        output: str | os.PathLike | None = None,
        overwrite: bool = False,
    ) -> pd.DataFrame | Path:
        """Predict protein abundances from RNA alone.

        The query's genes may be a subset of the training genes or in another order; genes
        the vocabulary does not know are reported and ignored. A cell with counts, but none
        in the genes the model reads, is predicted as each protein's training mean, with a
        warning (its novelty is ``inf``); a cell without counts is refused. Memory is
        bounded for any number of cells when the RNA is read from disk
        (``anndata.read_h5ad(path, backed="r")``) and the predictions are streamed to
        ``output``.

        Parameters
        ----------
        %(param_query)s
        %(param_indices)s
        %(param_proteins)s
        %(param_batch_size)s
        transform_batch
            Predict as if measured in this training batch; by default the average batch.
        progress_bar
            Show a progress bar; by default when there are more than 10 batches.
        output
            Write the predictions batch by batch, atomically, to this ``.h5ad`` file (an
            AnnData) or ``.h5mu`` file (modality ``prot_pred``) instead of returning them.
        overwrite
            Replace an existing ``output`` file.

        Returns
        -------
        DataFrame of cells by proteins on the protein normalisation's scale (e.g. CLR), or
        the path written. Proteins without a training scale come back standardised, with a
        warning.

        Examples
        --------
        >>> proteins = model.predict_protein(query["rna"])
        >>> rna = anndata.read_h5ad("atlas_rna.h5ad", backed="r")
        >>> model.predict_protein(rna, output="atlas_proteins.h5ad", progress_bar=True)
        """
        if output is not None:
            check_output_path(output, overwrite)
        self._check_if_trained(warn=True)
        names, protein_ids = self._requested(proteins)
        mean, std = protein_scale(self, names, protein_ids)
        query = self._query(adata, indices)
        blocks = (
            predicted.cpu().numpy() * std + mean
            for _, predicted in predicted_blocks(
                self.module,
                self.reference_mapping,
                query,
                protein_ids,
                batch_index=batch_index(self, transform_batch),
                batch_size=batch_size,
                progress_bar=progress_bar,
            )
        )
        if output is not None:
            var, uns = self.prediction_annotations(names)
            return write_blocks(output, blocks, query.obs_names, var, uns, overwrite=overwrite)
        values = np.concatenate(list(blocks))
        return pd.DataFrame(values, index=pd.Index(query.obs_names), columns=names)

    def _requested(self, proteins: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
        registered = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        return requested_proteins(self.vocabulary_, registered, proteins)

    @torch.inference_mode()
    @model_dsp.dedent
    def get_latent_representation(
        self,
        adata: AnnData | MuData | None = None,
        *,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Return the encoder's cell token of each cell, ``(cells, n_hidden)``.

        Parameters
        ----------
        %(param_query)s
        %(param_indices)s
        %(param_batch_size)s

        Returns
        -------
        Array ``(cells, n_hidden)``.

        Examples
        --------
        >>> mdata["rna"].obsm["X_sctranslator"] = model.get_latent_representation(mdata)
        """
        self._check_if_trained(warn=True)
        query = self._query(adata, indices)
        return np.concatenate(
            [encoded["z"].cpu().numpy() for encoded in encode(self.module, query, batch_size)]
        )

    @model_dsp.dedent
    def get_gene_attributions(
        self,
        adata: AnnData | MuData | None = None,
        *,
        proteins: Sequence[str] | None = None,
        method: str = "gradient",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Score the importance of each gene for each predicted protein, averaged over cells.

        ``"gradient"``: gradient x input, ``x * d(prediction) / d(x)`` of each gene's RNA
        count (signed; 0 where a cell has no counts). ``"attention"``: the attention flowing
        from each protein query to each gene token
        (:meth:`~sctranslator.module.TranslatorModule.gene_attention`). See
        :func:`sctranslator.tl.interactions`.

        Parameters
        ----------
        %(param_query)s
        %(param_proteins)s
        method
            ``"gradient"`` or ``"attention"``.
        %(param_indices)s
        %(param_batch_size)s

        Returns
        -------
        DataFrame of the genes of ``adata`` known to the model by proteins.

        Examples
        --------
        >>> table = model.get_gene_attributions(mdata, proteins=["CD8", "CD20"])
        """
        if method not in ATTRIBUTIONS:
            raise ValueError(f"method must be one of {tuple(ATTRIBUTIONS)}, got {method!r}.")
        self._check_if_trained(warn=True)
        names, protein_ids = self._requested(proteins)
        query = self._query(adata, indices)
        self.module.eval()
        gene_ids = torch.as_tensor(query.gene_ids, device=self.device)
        protein_ids = torch.as_tensor(protein_ids, device=self.device)
        total = torch.zeros(len(names), len(gene_ids), dtype=torch.float64)
        for x in query.batches(batch_size)[1]:
            total += ATTRIBUTIONS[method](
                self.module, self.reference_mapping, x.to(self.device), gene_ids, protein_ids
            ).cpu()
        return pd.DataFrame(
            (total / len(query.rows)).numpy().T,
            index=pd.Index(query.var_names[query.columns]),
            columns=pd.Index(names),
        )

    def prediction_annotations(self, proteins: Sequence[str]) -> tuple[pd.DataFrame, dict]:
        """Return the annotations of predicted proteins that :meth:`predict_protein` writes.

        Parameters
        ----------
        proteins
            Protein names or tokens, e.g. the columns of a :meth:`predict_protein` result.

        Returns
        -------
        ``var``: per protein, its ``token`` and ``reliability`` (NaN when unscored); ``uns``:
        the model's settings under ``"sctranslator"``.

        Examples
        --------
        >>> var, uns = model.prediction_annotations(prediction.columns)
        """
        tokens = [self.vocabulary_.tokens[i] for i in self.vocabulary_.lookup_proteins(proteins)]
        var = pd.DataFrame({"token": tokens}, index=pd.Index(proteins).astype(str))
        var["reliability"] = self.protein_reliability.reindex(var.index).to_numpy()
        params = self.init_params_["non_kwargs"]
        uns = {
            "sctranslator": {
                "model": type(self).__name__,
                "summary": self._model_summary_string,
                "rna_normalization": params["rna_normalization"],
                "protein_normalization": params["protein_normalization"],
                "max_genes": self.module.max_genes,
            }
        }
        return var, uns
