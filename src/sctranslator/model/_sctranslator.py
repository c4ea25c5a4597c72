"""The user-facing model: set up, train, predict, save and load."""

from __future__ import annotations

import logging
import os
import tempfile
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
from sctranslator.data._validate import iter_row_chunks
from sctranslator.data._vocabulary import UNKNOWN, report_unknown
from sctranslator.module import TranslatorModule
from sctranslator.train import BestWeights, TranslatorTrainingPlan

logger = logging.getLogger(__name__)

_PROTEIN_CHUNK = 512


class SCTRANSLATOR(UnsupervisedTrainingMixin, BaseModelClass):
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
    n_encoder_layers
        Transformer layers over the gene tokens.
    n_decoder_layers
        Cross-attention layers of the protein queries.
    dropout
        Dropout rate.
    max_genes
        Context limit: a cell with more genes keeps its ``max_genes`` most expressed ones.
    rna_normalization
        ``"log1p_cp10k"`` (default), ``"log1p"`` or ``"minmax"``; see
        :mod:`sctranslator.nn`.
    protein_normalization
        ``"clr"`` (default), ``"log1p"`` or ``"minmax"``. Predictions are returned on this
        scale.
    vocabulary
        Token vocabulary. By default, the registered genes and proteins.

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
        n_encoder_layers: int = 2,
        n_decoder_layers: int = 2,
        dropout: float = 0.1,
        max_genes: int = 256,
        rna_normalization: str = "log1p_cp10k",
        protein_normalization: str = "clr",
        vocabulary: Vocabulary | None = None,
    ):
        super().__init__(adata, registry)
        genes = self._registered_names(REGISTRY_KEYS.X_KEY)
        proteins = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        if vocabulary is None:
            self.vocabulary = Vocabulary.from_panels(genes, proteins)
        else:
            new_proteins = [p for p in proteins if vocabulary.lookup_proteins([p])[0] == UNKNOWN]
            self.vocabulary = vocabulary.extend(
                [*genes, *(resolve_protein_token(p) for p in new_proteins)]
            )
        self.module = self._module_cls(
            n_tokens=len(self.vocabulary),
            gene_ids=torch.as_tensor(self.vocabulary.lookup_genes(genes)),
            protein_ids=torch.as_tensor(self.vocabulary.lookup_proteins(proteins)),
            n_batch=self.summary_stats.n_batch,
            n_hidden=n_hidden,
            n_heads=n_heads,
            n_encoder_layers=n_encoder_layers,
            n_decoder_layers=n_decoder_layers,
            dropout=dropout,
            max_genes=max_genes,
            rna_normalization=rna_normalization,
            protein_normalization=protein_normalization,
        )
        if adata is not None:
            self._init_protein_statistics()
        self._model_summary_string = (
            f"SCTRANSLATOR: {len(genes)} genes -> {len(proteins)} proteins, vocabulary of "
            f"{len(self.vocabulary)} tokens, n_hidden: {n_hidden}, encoder layers: "
            f"{n_encoder_layers}, decoder layers: {n_decoder_layers}, max_genes: {max_genes}, "
            f"RNA: {rna_normalization}, protein: {protein_normalization}"
        )
        self.init_params_ = self._get_init_params(locals())

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
            get_matrix(adata, layer, "the RNA"), adata.obs_names, adata.var_names,
            proteins, protein_names,
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
        """
        setup_method_args = cls._get_setup_method_args(**locals())
        if modalities is None:
            raise ValueError("`modalities` must be given, e.g. {'rna_layer': 'rna', ...}.")
        modalities = cls._create_modalities_attr_dict(modalities, setup_method_args)
        rna = get_modality(mdata, modalities.rna_layer, "rna_layer")
        protein = get_modality(mdata, modalities.protein_layer, "protein_layer")
        check_paired(mdata, [modalities.rna_layer, modalities.protein_layer])
        batch_obs = mdata.obs if modalities.batch_key is None else mdata.mod[modalities.batch_key].obs
        if batch_key is not None and batch_key not in batch_obs:
            raise KeyError(f"batch_key {batch_key!r} not found in the obs of the MuData.")
        _validate_training_data(
            get_matrix(rna, rna_layer, f"modality {modalities.rna_layer!r}"),
            rna.obs_names, rna.var_names,
            get_matrix(protein, protein_layer, f"modality {modalities.protein_layer!r}"),
            protein.var_names,
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
        plan_kwargs: dict | None = None,
        datasplitter_kwargs: dict | None = None,
        **trainer_kwargs,
    ):
        """Train the model with scvi-tools' :class:`~scvi.train.TrainRunner` and Lightning.

        Validation per-protein Pearson (``pearson_validation``) is computed every epoch and
        drives early stopping; with ``restore_best_weights`` the weights of the best epoch are
        kept. Everything is recorded in :attr:`history`.

        Parameters
        ----------
        max_epochs
            Maximum epochs; by default scvi-tools' heuristic (400 for small data, fewer as
            cells grow).
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
        plan_kwargs
            Passed to :class:`~sctranslator.train.TranslatorTrainingPlan` (``lr``,
            ``weight_decay``...).
        datasplitter_kwargs
            Passed to :class:`~scvi.dataloaders.DataSplitter`.
        **trainer_kwargs
            Passed to :class:`~scvi.train.Trainer` (``strategy``, ``precision``...).
        """
        has_validation = train_size is None or train_size < 1.0
        if has_validation:
            trainer_kwargs.setdefault("check_val_every_n_epoch", 1)
            if restore_best_weights:
                callbacks = list(trainer_kwargs.pop("callbacks", None) or [])
                trainer_kwargs["callbacks"] = [*callbacks, BestWeights("pearson_validation")]
        if early_stopping and has_validation:
            trainer_kwargs.setdefault("early_stopping_monitor", "pearson_validation")
            trainer_kwargs.setdefault("early_stopping_mode", "max")
            trainer_kwargs.setdefault("early_stopping_patience", early_stopping_patience)
        return super().train(
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
    ) -> pd.DataFrame:
        """Predict protein abundances from RNA alone.

        The query needs RNA only: its genes may be a subset of the training genes or in
        another order; genes the vocabulary does not know are reported and ignored.

        Parameters
        ----------
        adata
            AnnData with RNA counts, or MuData with the RNA modality the model was set up
            with; the registered data by default. RNA is read from the registered layer.
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

        Returns
        -------
        DataFrame of cells (``obs_names``) by proteins, on the model's protein normalisation
        scale (e.g. CLR). Proteins without training statistics come back standardised
        (z-scores across cells), with a warning.
        """
        self._check_if_trained(warn=True)
        names = list(self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY) if proteins is None else proteins)
        protein_ids = self.vocabulary.lookup_proteins(names)
        if (protein_ids == UNKNOWN).any():
            unknown = [n for n, i in zip(names, protein_ids, strict=True) if i == UNKNOWN]
            raise ValueError(
                f"{len(unknown)} proteins are not in the model's vocabulary: {unknown[:5]}."
            )
        mean, std = self._protein_scale(names, protein_ids)
        batch_index = self._batch_index(transform_batch)
        protein_ids = torch.as_tensor(protein_ids, device=self.device)
        query = self._query(adata, indices)
        rows = []
        for context in self._encode(query, batch_size, progress_bar, "Predicting"):
            index = None if batch_index is None else batch_index.expand(len(context))
            chunks = [
                self.module.generative(context, index, protein_ids[s : s + _PROTEIN_CHUNK])["protein"]
                for s in range(0, len(protein_ids), _PROTEIN_CHUNK)
            ]
            rows.append(torch.cat(chunks, dim=1).cpu().numpy())
        values = np.concatenate(rows) * std + mean
        return pd.DataFrame(values, index=pd.Index(query.obs_names), columns=names)

    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | MuData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """The encoder's cell token for each cell, ``(cells, n_hidden)``.

        Parameters
        ----------
        adata
            As in :meth:`predict_protein`.
        indices
            Cells; all by default.
        batch_size
            Cells per batch.
        """
        self._check_if_trained(warn=True)
        query = self._query(adata, indices)
        return np.concatenate(
            [context[:, 0].cpu().numpy() for context in self._encode(query, batch_size)]
        )

    def _query(self, adata: AnnData | MuData | None, indices: Sequence[int] | None) -> _Query:
        """Locate and check the RNA counts of ``adata`` (the registered data if None)."""
        adata = self.adata if adata is None else adata
        if adata is None:
            raise ValueError("The model was loaded without data: pass `adata`.")
        args = self.registry_["setup_args"]
        if isinstance(adata, MuData):
            mod_key = (args.get("modalities") or {}).get("rna_layer", "rna")
            adata = get_modality(adata, mod_key, "the RNA")
        layer = args.get("rna_layer", args.get("layer"))
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
    ) -> Iterator[torch.Tensor]:
        """Yield the encoder output ``(cells, 1 + genes, n_hidden)`` of each batch of cells."""
        loader = rna_loader(
            query.matrix, query.all_obs_names, query.var_names, query.rows,
            batch_size or settings.batch_size,
        )
        show = len(loader) > 10 if progress_bar is None else progress_bar
        self.module.eval()
        gene_ids = torch.as_tensor(query.gene_ids, device=self.device)
        columns = torch.as_tensor(query.columns)
        for tensors in tqdm(loader, desc=description, disable=not show):
            x = tensors[REGISTRY_KEYS.X_KEY][:, columns]
            yield self.module.inference(x, gene_ids=gene_ids)["context"]

    # ---------------------------------------------------------------------- statistics
    def _registered_names(self, registry_key: str) -> np.ndarray:
        state = self.registry_["field_registries"][registry_key]["state_registry"]
        return np.asarray(state["column_names"]).astype(str)

    def _batch_index(self, transform_batch: str | None) -> torch.Tensor | None:
        if transform_batch is None:
            return None
        categories = list(self.registry_["field_registries"][REGISTRY_KEYS.BATCH_KEY]["state_registry"]["categorical_mapping"])
        if transform_batch not in categories:
            raise ValueError(f"transform_batch {transform_batch!r} is not a training batch: {categories}.")
        return torch.tensor([categories.index(transform_batch)], device=self.device)

    def _protein_scale(self, names: Sequence[str], protein_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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

    def _init_protein_statistics(self) -> None:
        """Measured-protein mask per batch and normalised mean/std per protein, from the data."""
        module = self.module
        proteins = self.adata_manager.get_from_registry(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        if isinstance(proteins, pd.DataFrame):
            proteins = proteins.to_numpy()
        batches = np.asarray(self.adata_manager.get_from_registry(REGISTRY_KEYS.BATCH_KEY)).ravel().astype(np.int64)
        n_batch, n_proteins = module.protein_batch_mask.shape
        nonzero = np.zeros((n_batch, n_proteins), dtype=bool)
        total, total_sq, count = (np.zeros(n_proteins) for _ in range(3))
        for start, block in iter_row_chunks(proteins):
            batch = batches[start : start + len(block)]
            np.logical_or.at(nonzero, batch, np.nan_to_num(block) > 0)
        module.protein_batch_mask = torch.as_tensor(nonzero)
        for start, block in iter_row_chunks(proteins):
            batch = torch.as_tensor(batches[start : start + len(block)])
            measured = module.protein_batch_mask[batch]
            values = torch.as_tensor(block, dtype=torch.float32)
            values = module.normalize_protein(torch.where(measured, values, torch.nan)).double().numpy()
            seen = ~np.isnan(values)
            values = np.where(seen, values, 0.0)
            total += values.sum(0)
            total_sq += (values**2).sum(0)
            count += seen.sum(0)
        mean = total / np.maximum(count, 1)
        std = np.sqrt(np.maximum(total_sq / np.maximum(count, 1) - mean**2, 0))
        never = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)[count == 0]
        if len(never):
            warnings.warn(
                f"{len(never)} proteins are never measured (NaN or all zero): {list(never[:5])}.",
                UserWarning,
                stacklevel=settings.warnings_stacklevel,
            )
        module.protein_mean = torch.as_tensor(mean, dtype=torch.float32)
        module.protein_std = torch.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=torch.float32)

    # ------------------------------------------------------------------------ save/load
    def save(
        self,
        dir_path: str | os.PathLike,
        prefix: str | None = None,
        overwrite: bool = False,
        save_anndata: bool = False,
        **kwargs,
    ) -> None:
        """Save the model to ``dir_path``, atomically.

        The files are first written to a temporary folder beside ``dir_path`` and then moved
        into place, so an interrupted save leaves no half-written model. An existing folder is
        refused unless ``overwrite=True``; then only the model's own files in it are replaced.

        Parameters
        ----------
        dir_path
            Target folder.
        prefix
            Prefix of the file names.
        overwrite
            Replace the model files of an existing folder.
        save_anndata
            Also save the registered data.
        **kwargs
            Passed to :meth:`scvi.model.base.BaseModelClass.save`.
        """
        target = Path(dir_path)
        if target.exists() and not overwrite:
            raise FileExistsError(f"{target} already exists; pass overwrite=True to replace it.")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{target.name}.") as tmp:
            staging = Path(tmp) / "model"
            super().save(str(staging), prefix=prefix, save_anndata=save_anndata, **kwargs)
            if not target.exists():
                staging.rename(target)
                return
            for item in staging.iterdir():
                os.replace(item, target / item.name)


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


def _validate_training_data(rna, obs_names, gene_names, proteins, protein_names) -> None:
    check_unique(gene_names, "gene")
    check_unique(protein_names, "protein")
    check_values(rna, "the RNA counts", obs_names, require_nonempty=True)
    check_values(proteins, "the protein counts", obs_names, allow_nan=True)
    measured = sum(int((~np.isnan(b)).sum()) for _, b in iter_row_chunks(proteins))
    if measured == 0:
        raise ValueError("The protein matrix has no measured value (all NaN).")
