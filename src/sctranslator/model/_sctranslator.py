"""The user-facing model: set up, train, predict, save and load."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS
from scvi.model.base import BaseModelClass, UnsupervisedTrainingMixin

from sctranslator.data import (
    CellStore,
    Vocabulary,
    resolve_protein_token,
)
from sctranslator.data._vocabulary import UNKNOWN
from sctranslator.module import TranslatorModule
from sctranslator.train import (
    BestWeights,
    DataInitialization,
    NeighborTeacher,
    TranslatorTrainingPlan,
)

from ._card_mixin import ModelCardMixin
from ._interval_mixin import IntervalMixin
from ._mapping_mixin import ReferenceMappingMixin
from ._model_utils import (
    default_max_epochs,
    is_distributed,
    rna_modality,
)
from ._prediction_mixin import PredictionMixin
from ._saveload_mixin import SaveLoadMixin
from ._setup_mixin import SetupMixin
from ._store_mixin import StoreMixin
from ._transfer import TransferMixin


class SCTRANSLATOR(
    PredictionMixin,
    TransferMixin,
    SaveLoadMixin,
    ModelCardMixin,
    IntervalMixin,
    ReferenceMappingMixin,
    StoreMixin,
    SetupMixin,
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
        adata: AnnData | MuData | CellStore | None = None,
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
        self._store = adata if isinstance(adata, CellStore) else None
        if self._store is not None:
            adata, registry = None, self._registry_from_store(self._store)
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
        )
        NeighborTeacher(target_smoothing, smoothing_neighbors)  # check them before training
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
        (``anndata.read_h5ad(path, backed="r")``): minibatches are then read from disk; a
        model on a :class:`~sctranslator.data.CellStore` reads them from the store
        (:class:`~sctranslator.data.StoreDataModule`), and ``ckpt_path`` with a Lightning
        ``ModelCheckpoint`` callback resumes an interrupted training where it stopped.

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
            ``weight_decay``...), after the model's ``target_smoothing`` and
            ``smoothing_neighbors``.
        datasplitter_kwargs
            Passed to :class:`~scvi.dataloaders.DataSplitter`, or for a model on a
            :class:`~sctranslator.data.CellStore` to
            :class:`~sctranslator.data.StoreDataModule` (``chunk_size``, ``block_size``).
        **trainer_kwargs
            Passed to :class:`~scvi.train.Trainer` (``strategy``, ``precision``...).

        Examples
        --------
        >>> model.train(max_epochs=50, precision="bf16-mixed", gradient_checkpointing=True)
        >>> model.train(accelerator="gpu", devices=4, strategy="ddp")
        """
        self.module.gradient_checkpointing = gradient_checkpointing
        if is_distributed(trainer_kwargs.get("strategy")):
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
        params = self.init_params_["non_kwargs"]
        smoothing = {key: params[key] for key in ("target_smoothing", "smoothing_neighbors")}
        # An epoch of a few hundred cells has fewer batches than Lightning's default logging
        # interval (10 steps); epoch-level metrics are unaffected.
        trainer_kwargs.setdefault("log_every_n_steps", 1)
        datamodule = None
        if self._store is not None:  # read from disk; the split and shuffling are the store's
            datamodule = self._store_datamodule(
                train_size, validation_size, batch_size, datasplitter_kwargs
            )
        super().train(
            max_epochs=max_epochs,
            accelerator=accelerator,
            devices=devices,
            train_size=train_size,
            validation_size=validation_size,
            batch_size=batch_size,
            early_stopping=early_stopping and has_validation,
            plan_kwargs={**smoothing, **(plan_kwargs or {})},
            datasplitter_kwargs=datasplitter_kwargs,
            datamodule=datamodule,
            **trainer_kwargs,
        )
        held_out = self.validation_indices is not None and len(self.validation_indices) > 0
        rows, anchors = self._training_anchors() if held_out else (None, None)  # encoded once
        if reference_mapping and held_out:
            self._fit_reference_mapping(rows, anchors)
        self._calibrate_on_validation_cells(anchors)
        self._score_validation_cells()

    def _registered_names(self, registry_key: str) -> np.ndarray:
        state = self.registry_["field_registries"][registry_key]["state_registry"]
        return np.asarray(state["column_names"]).astype(str)
