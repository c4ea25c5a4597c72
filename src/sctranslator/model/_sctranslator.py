"""The user-facing model: set up, train, predict, save and load."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS, settings
from scvi.data import AnnDataManager
from scvi.data.fields import (
    CategoricalObsField,
    LayerField,
    MuDataCategoricalObsField,
    MuDataLayerField,
    ObsmField,
)
from scvi.model._utils import use_distributed_sampler
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin
from scvi.utils import setup_anndata_dsp
from tqdm.auto import tqdm

from sctranslator.data import (
    Vocabulary,
    check_paired,
    check_unique,
    check_values,
    get_matrix,
    get_modality,
    resolve_protein_token,
    rna_loader,
)
from sctranslator.data._panels import allows_missing_genes
from sctranslator.data._validate import iter_row_chunks
from sctranslator.data._vocabulary import UNKNOWN, report_unknown
from sctranslator.data._writer import check_output_path, write_blocks
from sctranslator.module import TranslatorModule
from sctranslator.train import BestWeights, DataInitialization, TranslatorTrainingPlan

from ._card_mixin import ModelCardMixin
from ._interval_mixin import IntervalMixin
from ._mapping_mixin import ReferenceMappingMixin
from ._model_utils import rna_modality
from ._saveload_mixin import SaveLoadMixin
from ._transfer import TransferMixin

logger = logging.getLogger(__name__)

_PROTEIN_CHUNK = 512


class SCTRANSLATOR(
    TransferMixin,
    SaveLoadMixin,
    ModelCardMixin,
    IntervalMixin,
    ReferenceMappingMixin,
    UnsupervisedTrainingMixin,
    BaseModelClass,
):
    """Translate single-cell RNA into protein abundances with a gene-token transformer.

    A reimplementation of the idea of scTranslator :cite:p:`Liu2025`: genes are tokens (an
    identity from a :class:`~sctranslator.data.Vocabulary` plus an expression value), a
    transformer encodes them, and protein queries cross-attend to the encoded genes. One
    model therefore reads any gene panel and predicts any protein of its vocabulary.

    Parameters
    ----------
    adata
        AnnData or MuData registered with :meth:`setup_anndata` or :meth:`setup_mudata`.
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
        the first training cells, :func:`~sctranslator.train.fit_gene_weights`), so
        housekeeping genes give way to informative ones in full transcriptomes;
        ``"expressed"`` keeps the most expressed. ``benchmarks/accuracy.py`` measures both
        (task ``full_transcriptome``).
    gene_dropout
        Training augmentation: each expressed gene of a cell is left out of its context with
        this probability.
    rna_normalization
        ``"log1p_cp10k"`` (default), ``"log1p"`` or ``"minmax"``; see
        :mod:`sctranslator.nn`.
    protein_normalization
        ``"clr"`` (default), ``"log1p"`` or ``"minmax"``. Predictions are returned on this
        scale.
    protein_rank
        Training targets (standardised proteins) are projected on their top ``protein_rank``
        principal axes, computed from the registered proteins; ``None`` trains on them as
        measured.
    target_smoothing
        Weight, in ``[0, 1]``, of the neighbours' mean in each training target: a cell's
        standardised proteins are blended with the mean of its ``smoothing_neighbors``
        nearest training cells in the joint space of RNA and protein principal components
        (at most 2,048 training cells are candidates), which averages out the protein noise
        of single cells. Validation and predictions use the proteins as measured; 0 turns it
        off.
    smoothing_neighbors
        Number of neighbours averaged for ``target_smoothing``; at most 5 % of the candidate
        cells, so that a small training set is not smoothed towards its mean.
    vocabulary
        Token vocabulary. By default, the registered genes and proteins. A given vocabulary is
        extended with the registered genes and proteins it does not know (transfer learning,
        see :meth:`load_query_data`).
    add_new_genes
        With a given ``vocabulary``: registered genes it lacks join it (``True``) or are not
        read at all (``False``, so they can never displace the genes a reference learnt).
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
        adata: AnnData | MuData | None = None,
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
        protein_rank: int | None = 32,
        target_smoothing: float = 0.5,
        smoothing_neighbors: int = 15,
        vocabulary: Vocabulary | None = None,
        freeze: str | Sequence[str] | None = None,
        add_new_genes: bool = True,
    ):
        super().__init__(adata, registry)
        genes = self._registered_names(REGISTRY_KEYS.X_KEY)
        proteins = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        if vocabulary is None:
            self.vocabulary = Vocabulary.from_panels(genes, proteins)
        else:
            new_proteins = [p for p in proteins if vocabulary.lookup_proteins([p])[0] == UNKNOWN]
            self.vocabulary = vocabulary.extend(
                [
                    *(genes if add_new_genes else []),
                    *(resolve_protein_token(p) for p in new_proteins),
                ]
            )
        self.module = self._module_cls(
            n_tokens=len(self.vocabulary),
            gene_ids=torch.as_tensor(self.vocabulary.lookup_genes(genes)),
            protein_ids=torch.as_tensor(self.vocabulary.lookup_proteins(proteins)),
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
            protein_normalization=protein_normalization,
            protein_rank=protein_rank,
            target_smoothing=target_smoothing,
            smoothing_neighbors=smoothing_neighbors,
        )
        self.module.freeze(freeze)
        if adata is not None:
            self.vocabulary = self.vocabulary.with_ensembl_from(self._rna_data(adata).var)
        self._model_summary_string = (
            f"SCTRANSLATOR: {len(genes)} genes -> {len(proteins)} proteins, vocabulary of "
            f"{len(self.vocabulary)} tokens, n_hidden: {n_hidden}, latents: {n_latents}, "
            f"encoder layers: {n_encoder_layers}, max_genes: {max_genes} ({context}), "
            f"gene_dropout: {gene_dropout}, "
            f"RNA: {rna_normalization}, protein: {protein_normalization}, "
            f"protein_rank: {protein_rank}, target_smoothing: {target_smoothing} "
            f"({smoothing_neighbors} neighbours)"
        )
        self.init_params_ = self._get_init_params(locals())

    @property
    def vocabulary(self) -> Vocabulary:
        """The token vocabulary, saved and loaded with the model (as ``vocabulary_``)."""
        return self.vocabulary_

    @vocabulary.setter
    def vocabulary(self, value: Vocabulary) -> None:
        self.vocabulary_ = value

    def _rna_data(self, adata: AnnData | MuData) -> AnnData:
        """Return the RNA AnnData of ``adata``: itself, or the registered RNA modality."""
        return rna_modality(adata, self.registry_)

    # ----------------------------------------------------------------------------- setup
    @classmethod
    @setup_anndata_dsp.dedent
    def setup_anndata(
        cls,
        adata: AnnData,
        layer: str | None = None,
        protein_expression_obsm_key: str | None = None,
        protein_names_uns_key: str | None = None,
        batch_key: str | None = None,
        **kwargs,
    ):
        """%(summary)s.

        Proteins are read from ``adata.obsm[protein_expression_obsm_key]`` (the totalVI
        layout). NaN marks a protein not measured in a cell; a protein that is zero in every
        cell of a batch also counts as unmeasured there. Both are left out of the loss.

        Parameters
        ----------
        %(param_adata)s
        layer
            Layer with raw RNA counts; ``None`` for ``adata.X``.
        protein_expression_obsm_key
            Key in ``adata.obsm`` with raw protein counts (DataFrame or array).
        protein_names_uns_key
            Key in ``adata.uns`` with the protein names when the ``obsm`` entry is an array.
        %(param_batch_key)s

        Examples
        --------
        >>> adata.obsm["protein_expression"] = protein_counts  # DataFrame, cells x proteins
        >>> sct.SCTRANSLATOR.setup_anndata(
        ...     adata, layer="counts", protein_expression_obsm_key="protein_expression",
        ...     batch_key="batch",
        ... )
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if protein_expression_obsm_key not in adata.obsm:
            raise KeyError(
                f"protein_expression_obsm_key {protein_expression_obsm_key!r} not found in "
                f"adata.obsm; available: {list(adata.obsm)}."
            )
        if batch_key is not None and batch_key not in adata.obs:
            raise KeyError(f"batch_key {batch_key!r} not found in adata.obs.")
        proteins = adata.obsm[protein_expression_obsm_key]
        if isinstance(proteins, pd.DataFrame):
            protein_names, proteins = proteins.columns, proteins.to_numpy()
        elif protein_names_uns_key is not None:
            protein_names = adata.uns[protein_names_uns_key]
        else:
            raise ValueError("Pass `protein_names_uns_key` when proteins are an array.")
        _validate_training_data(
            get_matrix(adata, layer, "the RNA"),
            adata.obs_names,
            adata.var_names,
            proteins,
            protein_names,
            missing_genes=allows_missing_genes(adata),
        )
        fields = [
            LayerField(REGISTRY_KEYS.X_KEY, layer, is_count_data=True),
            CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key),
            ObsmField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                protein_expression_obsm_key,
                colnames_uns_key=protein_names_uns_key,
                is_count_data=False,
            ),
        ]
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(adata, **kwargs)
        cls.register_manager(manager)

    @classmethod
    @setup_anndata_dsp.dedent
    def setup_mudata(
        cls,
        mdata: MuData,
        rna_layer: str | None = None,
        protein_layer: str | None = None,
        batch_key: str | None = None,
        modalities: dict[str, str] | None = None,
        **kwargs,
    ):
        """%(summary_mdata)s.

        The RNA and protein modalities must hold the same cells in the same order; use
        :func:`sctranslator.pp.pair_modalities` on a mosaic. NaN in the protein matrix marks
        a protein not measured in a cell; a protein that is zero in every cell of a batch
        also counts as unmeasured there. Both are left out of the loss.

        Parameters
        ----------
        %(param_mdata)s
        rna_layer
            Layer of the RNA modality with raw counts; ``None`` for ``.X``.
        protein_layer
            Layer of the protein modality with raw counts; ``None`` for ``.X``.
        %(param_batch_key)s
        %(param_modalities)s Keys: ``rna_layer`` and ``protein_layer`` (required),
            ``batch_key`` (the top-level ``obs`` by default).

        Examples
        --------
        >>> mdata = sct.datasets.pbmc_cite_mini()
        >>> sct.SCTRANSLATOR.setup_mudata(
        ...     mdata, rna_layer="counts", protein_layer="counts", batch_key="batch",
        ...     modalities={"rna_layer": "rna", "protein_layer": "prot"},
        ... )
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if modalities is None:
            raise ValueError("`modalities` must be given, e.g. {'rna_layer': 'rna', ...}.")
        modalities = cls._create_modalities_attr_dict(modalities, setup_method_args)
        rna = get_modality(mdata, modalities.rna_layer, "rna_layer")
        protein = get_modality(mdata, modalities.protein_layer, "protein_layer")
        check_paired(mdata, [modalities.rna_layer, modalities.protein_layer])
        batch_obs = (
            mdata.obs if modalities.batch_key is None else mdata.mod[modalities.batch_key].obs
        )
        if batch_key is not None and batch_key not in batch_obs:
            raise KeyError(f"batch_key {batch_key!r} not found in the obs of the MuData.")
        _validate_training_data(
            get_matrix(rna, rna_layer, f"modality {modalities.rna_layer!r}"),
            rna.obs_names,
            rna.var_names,
            get_matrix(protein, protein_layer, f"modality {modalities.protein_layer!r}"),
            protein.var_names,
            missing_genes=allows_missing_genes(rna),
        )
        fields = [
            MuDataLayerField(
                REGISTRY_KEYS.X_KEY,
                rna_layer,
                mod_key=modalities.rna_layer,
                is_count_data=True,
                mod_required=True,
            ),
            MuDataCategoricalObsField(
                REGISTRY_KEYS.BATCH_KEY, batch_key, mod_key=modalities.batch_key
            ),
            MuDataLayerField(
                REGISTRY_KEYS.PROTEIN_EXP_KEY,
                protein_layer,
                mod_key=modalities.protein_layer,
                is_count_data=False,
                mod_required=True,
            ),
        ]
        manager = AnnDataManager(fields=fields, setup_method_args=setup_method_args)
        manager.register_fields(mdata, **kwargs)
        cls.register_manager(manager)

    # -------------------------------------------------------------------------- training
    def train(
        self,
        max_epochs: int | None = None,
        accelerator: str = "auto",
        devices: int | list[int] | str = "auto",
        train_size: float | None = None,
        validation_size: float | None = None,
        batch_size: int = 128,
        early_stopping: bool = True,
        early_stopping_patience: int = 30,
        restore_best_weights: bool = True,
        gradient_checkpointing: bool = False,
        reference_mapping: bool = True,
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train the model with scvi-tools' :class:`~scvi.train.TrainRunner` and Lightning.

        Validation per-protein Pearson (``pearson_validation``) is computed every epoch and
        drives early stopping; with ``restore_best_weights`` the weights of the best epoch are
        kept. Everything is recorded in :attr:`history`. The first training of a new model
        starts from its training cells' RNA (:class:`~sctranslator.train.DataInitialization`:
        PCA gene identities, a standardised cell token); later calls, and models made by
        :meth:`load_query_data`, continue from their weights. Every call fits the panel
        statistics (measured-protein mask, protein scale and axes) and the
        ``target_smoothing`` teacher to its own training cells; validation cells never shape
        the model. After training, :attr:`protein_reliability` is scored on the validation
        cells, and they calibrate :meth:`predict_protein_interval`.

        Scale: ``accelerator="gpu", devices=N, strategy="ddp"`` trains data-parallel (one
        process per device, scvi-tools' distributed sampler splits the cells; multi-node
        through Lightning's cluster environments such as SLURM). Under DDP scvi-tools turns
        early stopping off; the validation Pearson is still summed over all processes, so
        best-weight restore sees the whole validation set. ``precision="bf16-mixed"`` trains
        in bfloat16 mixed precision. The registered data may be an AnnData opened backed
        (``anndata.read_h5ad(path, backed="r")``): minibatches are then read from disk.

        Parameters
        ----------
        max_epochs
            Maximum epochs; by default :func:`default_max_epochs` (about 300,000 cell passes:
            400 epochs for 400 cells, 60 for 5,000, at least 10), so that training a few
            thousand cells on a CPU takes minutes. Early stopping often ends it sooner.
        accelerator
            ``"auto"``, ``"cpu"``, ``"gpu"``... as in Lightning.
        devices
            Devices to use, as in Lightning (e.g. ``2`` with ``strategy="ddp"``).
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
        gradient_checkpointing
            Recompute the attention blocks' activations in the backward pass instead of
            storing them (:func:`torch.utils.checkpoint.checkpoint`): less memory for larger
            batches or contexts, about a third more compute.
        reference_mapping
            After training, add a reference-mapping read-out: RBF kernel ridge from the
            cell token of at most 2,048 training cells to their proteins, with its width,
            penalty and blend with the network chosen on the validation cells
            (:meth:`~sctranslator.module.TranslatorModule.set_reference_mapping`), and kept
            only if it raises their mean per-protein Pearson. Needs validation cells.
        plan_kwargs
            Passed to :class:`~sctranslator.train.TranslatorTrainingPlan` (``lr``,
            ``weight_decay``...).
        datasplitter_kwargs
            Passed to :class:`~scvi.dataloaders.DataSplitter`.
        **trainer_kwargs
            Passed to :class:`~scvi.train.Trainer` (``strategy``, ``precision``...).

        Examples
        --------
        >>> model.train(max_epochs=50, precision="bf16-mixed", gradient_checkpointing=True)
        >>> model.train(accelerator="gpu", devices=4, strategy="ddp")
        """
        self.module.gradient_checkpointing = gradient_checkpointing
        if use_distributed_sampler(trainer_kwargs.get("strategy")):
            # Lightning averages logged values across processes in place; on gloo (CPU DDP)
            # that fails on tensors made under inference mode, so validate under no_grad.
            trainer_kwargs.setdefault("inference_mode", False)
        has_validation = train_size is None or train_size < 1.0
        callbacks = [DataInitialization(), *(trainer_kwargs.pop("callbacks", None) or [])]
        if has_validation:
            trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
            if restore_best_weights:
                callbacks.append(BestWeights("pearson_validation"))
        trainer_kwargs["callbacks"] = callbacks
        if early_stopping and has_validation:
            trainer_kwargs.setdefault("early_stopping_monitor", "pearson_validation")
            trainer_kwargs.setdefault("early_stopping_mode", "max")
            trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
        if max_epochs is None:
            max_epochs = default_max_epochs(self.summary_stats.n_cells)
        # An epoch of a few hundred cells has fewer batches than Lightning's default logging
        # interval (10 steps); epoch-level metrics are unaffected.
        trainer_kwargs.setdefault("log_every_n_steps", 1)
        super().train(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            early_stopping=early_stopping and has_validation,
            plan_kwargs=plan_kwargs,
            datasplitter_kwargs=datasplitter_kwargs,
            **trainer_kwargs,
        )
        if reference_mapping:
            self._fit_reference_mapping()
        self._calibrate_on_validation_cells()
        self._score_validation_cells()

    # ------------------------------------------------------------------------ prediction
    @torch.inference_mode()
    def predict_protein(
        self,
        adata: AnnData | MuData | None = None,
        indices: Sequence[int] | None = None,
        proteins: Sequence[str] | None = None,
        batch_size: int | None = None,
        transform_batch: str | None = None,
        progress_bar: bool | None = None,
        output: str | os.PathLike | None = None,
        overwrite: bool = False,
    ) -> pd.DataFrame | Path:
        """Predict protein abundances from RNA alone.

        The query needs RNA only: its genes may be a subset of the training genes or in
        another order; genes the vocabulary does not know are reported and ignored.

        Memory is bounded for any number of cells when the RNA is read from disk (an
        AnnData opened with ``anndata.read_h5ad(path, backed="r")`` or a MuData read with
        ``mudata.read_h5mu(path, backed=True)``, RNA in ``.X``) and the predictions are
        streamed to ``output``: cells are read, encoded and written one batch at a time.

        Parameters
        ----------
        adata
            AnnData with RNA counts, or MuData with the RNA modality the model was set up
            with; the registered data by default. RNA counts are read from the layer the
            model was set up with; a query without that layer is read from ``X`` when ``X``
            holds raw counts (whole numbers), otherwise the missing layer is an error.
        indices
            Cells to predict; all by default.
        proteins
            Protein names or tokens; the registered proteins by default. Any number.
        batch_size
            Cells per batch; ``scvi.settings.batch_size`` by default.
        transform_batch
            Predict as if measured in this training batch; by default the average batch.
        progress_bar
            Show a progress bar; by default when there are more than 10 batches.
        output
            Write the predictions batch by batch to this ``.h5ad`` file (an AnnData) or
            ``.h5mu`` file (a MuData with the modality ``prot_pred``) instead of returning
            them; ``var["token"]`` and ``uns["sctranslator"]`` as in
            :func:`sctranslator.tl.fill_protein`. Written atomically.
        overwrite
            Replace an existing ``output`` file.

        Returns
        -------
        DataFrame of cells (``obs_names``) by proteins, on the model's protein normalisation
        scale (e.g. CLR); with ``output``, the path written. Proteins without training
        statistics come back standardised (z-scores across cells), with a warning.

        Examples
        --------
        >>> proteins = model.predict_protein(query["rna"])
        >>> rna = anndata.read_h5ad("atlas_rna.h5ad", backed="r")
        >>> model.predict_protein(rna, output="atlas_proteins.h5ad", progress_bar=True)
        """
        if output is not None:
            check_output_path(output, overwrite)
        self._check_if_trained(warn=True)
        names, protein_ids = self._requested_proteins(proteins)
        mean, std = self._protein_scale(names, protein_ids)
        batch_index = self._batch_index(transform_batch)
        query = self._query(adata, indices)
        blocks = (
            predicted.cpu().numpy() * std + mean
            for _, predicted in self._predicted_blocks(
                query, protein_ids, batch_index, batch_size, progress_bar
            )
        )
        if output is not None:
            var, uns = self._prediction_annotations(names)
            return write_blocks(output, blocks, query.obs_names, var, uns, overwrite=overwrite)
        values = np.concatenate(list(blocks))
        return pd.DataFrame(values, index=pd.Index(query.obs_names), columns=names)

    def _requested_proteins(self, proteins: Sequence[str] | None) -> tuple[list[str], np.ndarray]:
        """Names and token ids of ``proteins`` (the registered ones by default); unknown: error."""
        names = list(
            self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY) if proteins is None else proteins
        )
        protein_ids = self.vocabulary.lookup_proteins(names)
        if (protein_ids == UNKNOWN).any():
            unknown = [n for n, i in zip(names, protein_ids, strict=True) if i == UNKNOWN]
            raise ValueError(
                f"{len(unknown)} proteins are not in the model's vocabulary: {unknown[:5]}."
            )
        return names, protein_ids

    def _predicted_blocks(
        self,
        query: _Query,
        protein_ids: np.ndarray,
        batch_index: torch.Tensor | None,
        batch_size: int | None,
        progress_bar: bool | None,
    ) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
        """Yield each batch's encoder outputs and standardised predictions of ``protein_ids``."""
        protein_ids = torch.as_tensor(protein_ids, device=self.device)
        for encoded in self._encode(query, batch_size, progress_bar, "Predicting"):
            context = encoded["context"]
            index = None if batch_index is None else batch_index.expand(len(context))
            chunks = [
                self.module.generative(context, index, protein_ids[s : s + _PROTEIN_CHUNK])[
                    "protein"
                ]
                for s in range(0, len(protein_ids), _PROTEIN_CHUNK)
            ]
            yield encoded, torch.cat(chunks, dim=1)

    def _prediction_annotations(self, names: Sequence[str]) -> tuple[pd.DataFrame, dict]:
        """``var`` (the token of each protein) and ``uns`` (model settings) of predictions."""
        tokens = [self.vocabulary.tokens[i] for i in self.vocabulary.lookup_proteins(names)]
        var = pd.DataFrame({"token": tokens}, index=pd.Index(names).astype(str))
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

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | MuData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Return the encoder's cell token for each cell, ``(cells, n_hidden)``.

        Parameters
        ----------
        adata
            As in :meth:`predict_protein`.
        indices
            Cells; all by default.
        batch_size
            Cells per batch.

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
            [encoded["z"].cpu().numpy() for encoded in self._encode(query, batch_size)]
        )

    def _query(self, adata: AnnData | MuData | None, indices: Sequence[int] | None) -> _Query:
        """Locate and check the RNA counts of ``adata`` (the registered data if None)."""
        adata = self.adata if adata is None else adata
        if adata is None:
            raise ValueError("The model was loaded without data: pass `adata`.")
        args = self.registry_["setup_args"]
        adata = self._rna_data(adata)
        layer = args.get("rna_layer", args.get("layer"))
        if layer is not None and layer not in adata.layers and _holds_counts(adata.X):
            layer = None  # counts in X, e.g. a user's query for a shipped reference
        matrix = get_matrix(adata, layer, "the query's RNA")
        check_unique(adata.var_names, "gene")
        var_names = np.asarray(adata.var_names)
        gene_ids = self.vocabulary.lookup_genes(var_names)
        report_unknown(list(var_names), gene_ids, "genes")
        known = np.flatnonzero(gene_ids != UNKNOWN)
        if len(known) == 0:
            raise ValueError(
                f"None of the {len(var_names)} genes of the query is known to the model "
                f"(e.g. {list(var_names[:3])}); are they gene symbols like the training genes?"
            )
        rows = np.arange(adata.n_obs) if indices is None else np.asarray(indices)
        obs_names = np.asarray(adata.obs_names)
        check_values(
            matrix if indices is None else matrix[rows],
            "the RNA counts",
            obs_names[rows],
            allow_nan=allows_missing_genes(adata),
            require_nonempty=True,
            columns=known,
        )
        return _Query(matrix, obs_names, var_names, rows, gene_ids[known], known)

    def _encode(
        self,
        query: _Query,
        batch_size: int | None,
        progress_bar: bool | None = False,
        description: str = "Encoding",
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Yield the encoder outputs (``context``, ``z``...) of each batch of cells."""
        n_batches, batches = query.batches(batch_size)
        show = n_batches > 10 if progress_bar is None else progress_bar
        self.module.eval()
        gene_ids = torch.as_tensor(query.gene_ids, device=self.device)
        for x in tqdm(batches, total=n_batches, desc=description, disable=not show):
            yield self.module.inference(x, gene_ids=gene_ids)

    # ---------------------------------------------------------------------- statistics
    def _registered_names(self, registry_key: str) -> np.ndarray:
        state = self.registry_["field_registries"][registry_key]["state_registry"]
        return np.asarray(state["column_names"]).astype(str)

    def _batch_index(self, transform_batch: str | None) -> torch.Tensor | None:
        if transform_batch is None:
            return None
        categories = list(
            self.registry_["field_registries"][REGISTRY_KEYS.BATCH_KEY]["state_registry"][
                "categorical_mapping"
            ]
        )
        if transform_batch not in categories:
            raise ValueError(
                f"transform_batch {transform_batch!r} is not a training batch: {categories}."
            )
        return torch.tensor([categories.index(transform_batch)], device=self.device)

    def _protein_scale(
        self, names: Sequence[str], protein_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training mean and std of each requested protein, matched by name, then by token."""
        registered = list(self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY))
        registered_ids = list(self.module.protein_ids.cpu().numpy())
        mean_all = self.module.protein_mean.cpu().numpy()
        std_all = self.module.protein_std.cpu().numpy()
        mean, std, unscaled = np.zeros(len(names)), np.ones(len(names)), []
        for i, (name, token_id) in enumerate(zip(names, protein_ids, strict=True)):
            if name in registered:
                j = registered.index(name)
            elif token_id in registered_ids:
                j = registered_ids.index(token_id)
            else:
                unscaled.append(name)
                continue
            mean[i], std[i] = mean_all[j], std_all[j]
        if unscaled:
            warnings.warn(
                f"{len(unscaled)} proteins were not measured in training (e.g. {unscaled[:3]}); "
                "their predictions are standardised scores, not on the protein scale.",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )
        return mean.astype(np.float32), std.astype(np.float32)


def _holds_counts(matrix, n_rows: int = 1000) -> bool:
    """Whether the first ``n_rows`` of ``matrix`` are whole non-negative numbers (raw counts)."""
    if matrix is None:
        return False
    block = matrix[: min(n_rows, matrix.shape[0])]
    values = block.data if hasattr(block, "data") and hasattr(block, "nnz") else np.asarray(block)
    values = np.asarray(values)
    return bool(np.all(values >= 0) and np.allclose(values, np.round(values)))


def default_max_epochs(n_cells: int, cell_passes: int = 300_000) -> int:
    """Epochs for about ``cell_passes`` cells seen in training, between 10 and 400.

    Examples
    --------
    >>> default_max_epochs(400), default_max_epochs(5000), default_max_epochs(10**6)
    (400, 60, 10)
    """
    return int(np.clip(np.ceil(cell_passes / max(n_cells, 1)), 10, 400))


@dataclass
class _Query:
    """RNA counts to predict from: the matrix, names, selected rows and known gene columns."""

    matrix: object
    all_obs_names: np.ndarray
    var_names: np.ndarray
    rows: np.ndarray
    gene_ids: np.ndarray
    columns: np.ndarray

    @property
    def obs_names(self) -> np.ndarray:
        """Names of the selected cells."""
        return self.all_obs_names[self.rows]

    def batches(self, batch_size: int | None) -> tuple[int, Iterator[torch.Tensor]]:
        """Return the number of batches and an iterator over their counts on the known genes."""
        loader = rna_loader(
            self.matrix,
            self.all_obs_names,
            self.var_names,
            self.rows,
            batch_size or settings.batch_size,
        )
        columns = torch.as_tensor(self.columns)
        return len(loader), (tensors[REGISTRY_KEYS.X_KEY][:, columns] for tensors in loader)


def _validate_training_data(
    rna, obs_names, gene_names, proteins, protein_names, missing_genes: bool = False
) -> None:
    check_unique(gene_names, "gene")
    check_unique(protein_names, "protein")
    check_values(rna, "the RNA counts", obs_names, allow_nan=missing_genes, require_nonempty=True)
    check_values(proteins, "the protein counts", obs_names, allow_nan=True)
    measured = sum(int((~np.isnan(b)).sum()) for _, b in iter_row_chunks(proteins))
    if measured == 0:
        raise ValueError("The protein matrix has no measured value (all NaN).")
