"""Reading query cells and running the network and read-out over them, batch by batch."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from anndata import AnnData
from scvi import REGISTRY_KEYS, settings
from tqdm.auto import tqdm

from sctranslator.components import ReferenceMapping
from sctranslator.data import (
    UNKNOWN,
    Vocabulary,
    allows_missing_genes,
    check_unique,
    check_values,
    get_matrix,
    holds_counts,
    iter_row_chunks,
    registered_layout,
    report_unknown,
    rna_loader,
)
from sctranslator.module import TranslatorModule

from ._model_utils import registered_positions

logger = logging.getLogger(__name__)

# Proteins read out per pass, so that memory is bounded for any number of proteins.
PROTEIN_CHUNK = 512


@dataclass
class Query:
    """RNA counts to predict from: the matrix, names, selected rows and known gene columns."""

    matrix: object
    all_obs_names: np.ndarray
    var_names: np.ndarray
    rows: np.ndarray
    gene_ids: np.ndarray
    columns: np.ndarray
    coverage: np.ndarray | None = None

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
            indices=self.rows,
            batch_size=batch_size or settings.batch_size,
        )
        columns = torch.as_tensor(self.columns)
        return len(loader), (tensors[REGISTRY_KEYS.X_KEY][:, columns] for tensors in loader)


def paired_query(model, adata):
    """Return paired cells ``adata`` laid out as ``model``'s registered data, logging changes.

    ``adata`` itself when it is laid out so; otherwise a new object sharing its matrices
    (:func:`sctranslator.data.registered_layout`), and an INFO log line per change (e.g. the
    name of the one new batch of a query without the batch column).
    """
    registry = model.registry_
    laid_out, changes = registered_layout(
        adata, registry["setup_method_name"], registry["setup_args"]
    )
    for change in changes:
        logger.info(
            "Query laid out as %s's data (yours is unchanged): %s.", type(model).__name__, change
        )
    return laid_out


def rna_query(
    rna: AnnData, layer: str | None, vocabulary: Vocabulary, indices: Sequence[int] | None
) -> Query:
    """Locate and check the RNA counts of ``rna`` in ``layer`` (``X`` when it holds counts).

    Genes the vocabulary does not know are reported and ignored.
    """
    if layer is not None and layer not in rna.layers and holds_counts(rna.X):
        layer = None  # counts in X, e.g. a user's query for a shipped reference
    matrix = get_matrix(rna, layer=layer, what="the query's RNA")
    check_unique(rna.var_names, what="gene")
    var_names = np.asarray(rna.var_names)
    gene_ids = vocabulary.lookup_genes(var_names)
    report_unknown(list(var_names), gene_ids, "genes")
    known = np.flatnonzero(gene_ids != UNKNOWN)
    if len(known) == 0:
        raise ValueError(
            f"None of the {len(var_names)} genes of the query is known to the model "
            f"(e.g. {list(var_names[:3])}); are they gene symbols like the training genes?"
        )
    rows = np.arange(rna.n_obs) if indices is None else np.asarray(indices)
    obs_names = np.asarray(rna.obs_names)
    selected = matrix if indices is None else matrix[rows]
    check_values(
        selected,
        what="the RNA counts",
        obs_names=obs_names[rows],
        allow_nan=allows_missing_genes(rna),
        columns=known,
    )
    coverage = read_coverage(selected, known, obs_names[rows])
    return Query(matrix, obs_names, var_names, rows, gene_ids[known], known, coverage)


def read_coverage(matrix, known: np.ndarray, obs_names: np.ndarray) -> np.ndarray:
    """Fraction of each cell's counts in the ``known`` genes (the genes the model reads).

    Raises on cells without counts; warns, naming the consequences, on cells whose counts are
    all in genes the model does not read (coverage 0).
    """
    in_known, total = [], []
    for _, block in iter_row_chunks(matrix):
        block = np.nan_to_num(block)
        in_known.append(block[:, known].sum(1))
        total.append(block.sum(1))
    in_known = np.concatenate(in_known) if in_known else np.zeros(0)
    total = np.concatenate(total) if total else np.zeros(0)
    empty = total <= 0
    if empty.any():
        raise ValueError(
            f"{int(empty.sum())} cells have no counts in the RNA counts, e.g. "
            f"{', '.join(map(str, obs_names[empty][:5]))}. Filter them out first (e.g. "
            "`sc.pp.filter_cells(adata, min_counts=1)`)."
        )
    coverage = in_known / total
    outside = coverage <= 0
    if outside.any():
        warnings.warn(
            f"{int(outside.sum())} cells have no counts in the {len(known)} genes this model "
            f"reads (e.g. {', '.join(map(str, obs_names[outside][:3]))}): nothing of theirs "
            "is read, so their predictions are each protein's training mean, their novelty "
            "is inf and their intervals unbounded. They are probably of a tissue or assay "
            "the model never saw.",
            UserWarning,
            stacklevel=settings.warnings_stacklevel,
        )
    return coverage.astype(np.float32)


def encode(
    module: TranslatorModule,
    query,
    batch_size: int | None,
    progress_bar: bool | None = False,
    description: str = "Encoding",
) -> Iterator[dict[str, torch.Tensor]]:
    """Yield the encoder outputs (``context``, ``z``...) of each batch of ``query``'s cells.

    Each also holds ``coverage``, the fraction of each cell's counts in the genes the model
    reads (1 for a store's cells), and the ``counts`` read and their ``gene_ids``.
    """
    n_batches, batches = query.batches(batch_size)
    show = n_batches > 10 if progress_bar is None else progress_bar
    module.eval()
    gene_ids = torch.as_tensor(query.gene_ids, device=module.device)
    coverage = getattr(query, "coverage", None)
    start = 0
    for x in tqdm(batches, total=n_batches, desc=description, disable=not show):
        encoded = module.inference(x, gene_ids=gene_ids)
        if coverage is None:  # a store's cells: every gene is read
            cells = torch.ones(len(x), device=module.device)
        else:
            cells = torch.as_tensor(coverage[start : start + len(x)], device=module.device)
        encoded.update(coverage=cells, counts=x, gene_ids=gene_ids)
        start += len(x)
        yield encoded


def read_out(
    module: TranslatorModule,
    mapping: ReferenceMapping,
    context: torch.Tensor,
    protein_ids: torch.Tensor,
    batch_index: torch.Tensor | None = None,
) -> torch.Tensor:
    """Standardised predictions of ``protein_ids``: the network, blended by ``mapping``."""
    chunks = []
    for start in range(0, len(protein_ids), PROTEIN_CHUNK):
        ids = protein_ids[start : start + PROTEIN_CHUNK]
        network = module.generative(context, batch_index, ids)["protein"]
        chunks.append(mapping(network, context[:, 0], ids))
    return torch.cat(chunks, dim=1)


def predicted_blocks(
    module: TranslatorModule,
    mapping: ReferenceMapping,
    query,
    protein_ids: np.ndarray,
    *,
    batch_index: torch.Tensor | None = None,
    batch_size: int | None = None,
    progress_bar: bool | None = False,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Yield each batch's encoder outputs and standardised predictions of ``protein_ids``."""
    protein_ids = torch.as_tensor(protein_ids, device=module.device)
    for encoded in encode(module, query, batch_size, progress_bar, "Predicting"):
        context = encoded["context"]
        index = None if batch_index is None else batch_index.expand(len(context))
        predicted = read_out(module, mapping, context, protein_ids, index)
        unread = encoded["coverage"] <= 0  # nothing read: each protein's training mean
        yield encoded, torch.where(unread[:, None], torch.zeros_like(predicted), predicted)


def latents_and_predictions(
    module: TranslatorModule, mapping: ReferenceMapping, query
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell tokens ``z`` and standardised predictions of the registered proteins."""
    blocks = list(predicted_blocks(module, mapping, query, module.protein_ids.cpu().numpy()))
    return (
        torch.cat([encoded["z"] for encoded, _ in blocks]),
        torch.cat([predicted for _, predicted in blocks]),
    )


@torch.inference_mode()
def attention_attribution(
    module: TranslatorModule,
    mapping: ReferenceMapping,
    x: torch.Tensor,
    gene_ids: torch.Tensor,
    protein_ids: torch.Tensor,
) -> torch.Tensor:
    """Attention from each protein query to each gene, summed over cells, ``(proteins, genes)``."""
    attention, tokens, _ = module.gene_attention(x, gene_ids, protein_ids)
    position = torch.full((int(gene_ids.max()) + 1,), -1, device=x.device)
    position[gene_ids] = torch.arange(len(gene_ids), device=x.device)
    index = position[tokens].unsqueeze(1).expand(-1, len(protein_ids), -1)
    per_cell = torch.zeros(len(x), len(protein_ids), len(gene_ids), device=x.device)
    per_cell.scatter_add_(2, index, attention.float())
    return per_cell.sum(0).double()


def gradient_attribution(
    module: TranslatorModule,
    mapping: ReferenceMapping,
    x: torch.Tensor,
    gene_ids: torch.Tensor,
    protein_ids: torch.Tensor,
) -> torch.Tensor:
    """Gradient x input of each prediction, summed over cells, ``(proteins, genes)``."""
    with torch.enable_grad():
        x = x.detach().clone().requires_grad_(True)
        context = module.inference(x, gene_ids=gene_ids)["context"]
        prediction = read_out(module, mapping, context, protein_ids)
        rows = []
        for j in range(len(protein_ids)):
            (grad,) = torch.autograd.grad(
                prediction[:, j].sum(), x, retain_graph=j < len(protein_ids) - 1
            )
            rows.append((grad * x).detach().sum(0))
    return torch.stack(rows).double()


ATTRIBUTIONS = {"gradient": gradient_attribution, "attention": attention_attribution}


def requested_proteins(
    vocabulary: Vocabulary, registered: Sequence[str], proteins: Sequence[str] | None
) -> tuple[list[str], np.ndarray]:
    """Names and token ids of ``proteins`` (the ``registered`` ones by default).

    Raises
    ------
    ValueError
        When a protein is not in the vocabulary.
    """
    names = list(registered if proteins is None else proteins)
    protein_ids = vocabulary.lookup_proteins(names)
    if (protein_ids == UNKNOWN).any():
        unknown = [n for n, i in zip(names, protein_ids, strict=True) if i == UNKNOWN]
        raise ValueError(
            f"{len(unknown)} proteins are not in the model's vocabulary: {unknown[:5]}."
        )
    return names, protein_ids


def protein_scale(model, names: Sequence[str], protein_ids: np.ndarray) -> tuple[np.ndarray, ...]:
    """Training mean and std of each requested protein, matched by name, then by token.

    Proteins without a training scale get mean 0 and std 1 (standardised), with a warning.
    """
    positions = registered_positions(model, names, protein_ids)
    known = positions >= 0
    panel = model.panel_statistics
    mean, std = np.zeros(len(names)), np.ones(len(names))
    mean[known] = panel.mean.cpu().numpy()[positions[known]]
    std[known] = panel.std.cpu().numpy()[positions[known]]
    unscaled = [name for name, k in zip(names, known, strict=True) if not k]
    if unscaled:
        warnings.warn(
            f"{len(unscaled)} proteins were not measured in training (e.g. {unscaled[:3]}); "
            "their predictions are standardised scores, not on the protein scale.",
            UserWarning,
            stacklevel=settings.warnings_stacklevel,
        )
    return mean.astype(np.float32), std.astype(np.float32)


def batch_index(model, transform_batch: str | None) -> torch.Tensor | None:
    """Code of the training batch ``transform_batch``; ``None`` for the average batch."""
    if transform_batch is None:
        return None
    state = model.registry_["field_registries"][REGISTRY_KEYS.BATCH_KEY]["state_registry"]
    categories = list(state["categorical_mapping"])
    if transform_batch not in categories:
        raise ValueError(
            f"transform_batch {transform_batch!r} is not a training batch: {categories}."
        )
    return torch.tensor([categories.index(transform_batch)], device=model.device)
