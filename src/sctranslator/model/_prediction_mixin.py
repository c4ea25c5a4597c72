"""Prediction over query cells: proteins, latent representation and gene attributions."""

from __future__ import annotations

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
from tqdm.auto import tqdm

from sctranslator.data import check_unique, check_values, get_matrix, rna_loader
from sctranslator.data._panels import allows_missing_genes
from sctranslator.data._vocabulary import UNKNOWN, report_unknown
from sctranslator.data._writer import check_output_path, write_blocks

from ._model_utils import registered_positions
from ._store_mixin import StoreQuery

# Proteins read out per pass, so that memory is bounded for any number of proteins.
_PROTEIN_CHUNK = 512
# Methods of get_gene_attributions.
ATTRIBUTIONS = ("gradient", "attention")


class PredictionMixin:
    """Predict proteins, latent representations and gene attributions of query cells."""

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
            var, uns = self.prediction_annotations(names)
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

    def _latents_and_predictions(self, query: _Query) -> tuple[torch.Tensor, torch.Tensor]:
        """Cell tokens ``z`` and standardised predictions of the registered proteins."""
        protein_ids = self.module.protein_ids.cpu().numpy()
        blocks = list(self._predicted_blocks(query, protein_ids, None, None, False))
        return (
            torch.cat([encoded["z"] for encoded, _ in blocks]),
            torch.cat([predicted for _, predicted in blocks]),
        )

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
        if adata is None and self._store is not None:
            rows = np.arange(self._store.n_obs) if indices is None else np.asarray(indices)
            return StoreQuery(self._store, rows, self.module.gene_ids.cpu().numpy())
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

    def prediction_annotations(self, proteins: Sequence[str]) -> tuple[pd.DataFrame, dict]:
        """Return the annotations of predicted proteins that :meth:`predict_protein` writes.

        Parameters
        ----------
        proteins
            Protein names or tokens, e.g. the columns of a :meth:`predict_protein` result.

        Returns
        -------
        ``var``: per protein, its ``token`` and ``reliability`` (:attr:`protein_reliability`,
        NaN when unscored); ``uns``: the model's settings under ``"sctranslator"``.

        Examples
        --------
        >>> prediction = model.predict_protein(query["rna"])
        >>> var, uns = model.prediction_annotations(prediction.columns)
        >>> anndata.AnnData(prediction.to_numpy(), var=var, uns=uns)
        """
        tokens = [self.vocabulary.tokens[i] for i in self.vocabulary.lookup_proteins(proteins)]
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

    def get_gene_attributions(
        self,
        adata: AnnData | MuData | None = None,
        proteins: Sequence[str] | None = None,
        method: str = "gradient",
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Score the importance of each gene for each predicted protein, averaged over cells.

        ``"gradient"``: gradient x input, ``x * d(prediction) / d(x)`` for the RNA count ``x``
        of each gene (signed; 0 where a cell has no counts), one backward pass per protein
        and batch of cells. ``"attention"``: the attention flowing from each protein query to
        each gene token (:meth:`~sctranslator.module.TranslatorModule.gene_attention`); 0 for
        a gene outside a cell's context. See :func:`sctranslator.tl.interactions`.

        Parameters
        ----------
        adata
            As in :meth:`predict_protein`.
        proteins
            Protein names or tokens; the registered proteins by default.
        method
            ``"gradient"`` or ``"attention"``.
        indices
            Cells to average over; all by default.
        batch_size
            Cells per batch.

        Returns
        -------
        DataFrame of the genes of ``adata`` known to the model by proteins.

        Examples
        --------
        >>> table = model.get_gene_attributions(mdata, proteins=["CD8", "CD20"])
        >>> table["CD20"].nlargest(5)
        """
        if method not in ATTRIBUTIONS:
            raise ValueError(f"method must be one of {ATTRIBUTIONS}, got {method!r}.")
        self._check_if_trained(warn=True)
        names, protein_ids = self._requested_proteins(proteins)
        query = self._query(adata, indices)
        self.module.eval()
        gene_ids = torch.as_tensor(query.gene_ids, device=self.device)
        protein_ids = torch.as_tensor(protein_ids, device=self.device)
        attribute = _gradient_x_input if method == "gradient" else _attention
        total = torch.zeros(len(names), len(gene_ids), dtype=torch.float64)
        for x in query.batches(batch_size)[1]:
            total += attribute(self.module, x.to(self.device), gene_ids, protein_ids).cpu()
        return pd.DataFrame(
            (total / len(query.rows)).numpy().T,
            index=pd.Index(query.var_names[query.columns]),
            columns=pd.Index(names),
        )

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
        positions = registered_positions(self, names, protein_ids)
        known = positions >= 0
        mean, std = np.zeros(len(names)), np.ones(len(names))
        mean[known] = self.module.protein_mean.cpu().numpy()[positions[known]]
        std[known] = self.module.protein_std.cpu().numpy()[positions[known]]
        unscaled = [name for name, k in zip(names, known, strict=True) if not k]
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


@torch.inference_mode()
def _attention(
    module, x: torch.Tensor, gene_ids: torch.Tensor, protein_ids: torch.Tensor
) -> torch.Tensor:
    """Attention summed over cells, ``(proteins, genes)`` in the columns of ``x``."""
    attention, tokens, _ = module.gene_attention(x, gene_ids, protein_ids)
    position = torch.full((int(gene_ids.max()) + 1,), -1, device=x.device)
    position[gene_ids] = torch.arange(len(gene_ids), device=x.device)
    index = position[tokens].unsqueeze(1).expand(-1, len(protein_ids), -1)
    per_cell = torch.zeros(len(x), len(protein_ids), len(gene_ids), device=x.device)
    per_cell.scatter_add_(2, index, attention.float())
    return per_cell.sum(0).double()


def _gradient_x_input(
    module, x: torch.Tensor, gene_ids: torch.Tensor, protein_ids: torch.Tensor
) -> torch.Tensor:
    """Gradient x input summed over cells, ``(proteins, genes)``."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        encoded = module.inference(x, gene_ids=gene_ids)
        prediction = module.generative(encoded["context"], None, protein_ids)["protein"]
        rows = []
        for j in range(len(protein_ids)):
            (grad,) = torch.autograd.grad(
                prediction[:, j].sum(), x, retain_graph=j < len(protein_ids) - 1
            )
            rows.append((grad * x).detach().sum(0))
    return torch.stack(rows).double()
