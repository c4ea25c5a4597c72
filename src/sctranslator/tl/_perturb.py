"""In-silico knockout and over-expression of genes, read out as predicted protein shifts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctranslator.data import UNKNOWN, get_matrix

from ._embed import model_rna
from ._utils import check_data, check_free, check_model, dense, target

if TYPE_CHECKING:
    from sctranslator.model import SCTRANSLATOR

MODES = ("knockout", "overexpression")


def perturb(
    data: AnnData | MuData,
    model: SCTRANSLATOR,
    *,
    genes: str | Sequence[str],
    mode: str = "knockout",
    value: float | None = None,
    proteins: Sequence[str] | None = None,
    groupby: str | None = None,
    key_added: str = "sct_perturb",
    batch_size: int | None = None,
    overwrite: bool = False,
    copy: bool = False,
) -> pd.DataFrame | AnnData | MuData:
    """Predict how proteins shift when genes are knocked out or over-expressed in silico.

    The RNA counts of ``genes`` are changed in a light copy of the cells (the user's object is
    not modified) and proteins are predicted with
    :meth:`~sctranslator.SCTRANSLATOR.predict_protein` from the original and the changed
    counts. ``"knockout"`` sets their counts to 0, ``"overexpression"`` to ``value`` counts
    (default: the gene's largest count among the cells, a level seen in real cells). Because
    RNA is normalised per cell (e.g. counts per 10,000), changing a gene also rescales the
    other genes slightly.

    The model reads a cell through its context: the cell's expressed genes (positive
    values), at most ``max_genes`` of them, those ranked highest by the model's ``context``
    rule. A gene at zero is not part of it. So a knockout removes the genes from the context
    of every cell that expressed them, exactly as if they had not been detected there (in a
    cell with more than ``max_genes`` expressed genes, the next gene in rank takes the freed
    place), and cells that did not express them are unchanged. An over-expressed gene enters
    the context of each cell, unless ``max_genes`` genes of that cell rank above it.

    Parameters
    ----------
    data
        AnnData with the model's RNA layer (``X`` for a model set up with
        ``rna_layer=None``), or MuData with its RNA modality (holding the MuData's cells).
    model
        A trained :class:`~sctranslator.SCTRANSLATOR`.
    genes
        Gene names (``var_names``) to perturb together.
    mode
        ``"knockout"`` or ``"overexpression"``.
    value
        Raw count for ``"overexpression"`` (not allowed for ``"knockout"``).
    proteins
        Proteins to predict; the model's proteins by default.
    groupby
        ``obs`` column to average the shift by (e.g. cell type); all cells by default.
    key_added
        ``obsm[key_added]``: the shift per cell (array of cells by proteins, perturbed minus
        original, on the model's protein scale); ``uns[key_added]``: ``params`` (with
        ``proteins``, the names of the ``obsm`` columns) and ``mean_shift`` (the returned
        table).
    batch_size
        Cells per batch.
    overwrite
        Replace existing entries under ``key_added``.
    copy
        Write into a copy of ``data`` and return the copy instead of the table.

    Returns
    -------
    Tidy DataFrame with columns ``group``, ``protein``, ``n_cells``, ``original``,
    ``perturbed`` and ``shift`` (group means), sorted by ``|shift|`` within each group. The
    group is ``"all cells"`` without ``groupby``. The annotated copy of ``data`` instead
    when ``copy``.

    Examples
    --------
    >>> effect = sct.tl.perturb(mdata, model, genes=["MS4A1"], groupby="celltype")
    >>> effect.query("protein == 'CD20'")
    >>> mdata.uns["sct_perturb"]["params"]["proteins"]  # columns of obsm["sct_perturb"]
    >>> sct.pl.perturbation_effect(mdata)  # reads uns["sct_perturb"]
    """
    check_data(data, "perturb")
    check_model(model)
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode == "knockout" and value is not None:
        raise ValueError("`value` applies to mode='overexpression' only; a knockout sets 0.")
    if value is not None and not (np.isfinite(value) and value >= 0):
        raise ValueError(f"`value` must be a non-negative count, got {value}.")
    genes = [genes] if isinstance(genes, str) else list(genes)
    if not genes:
        raise ValueError("Pass at least one gene.")
    if groupby is not None and groupby not in data.obs:
        raise KeyError(
            f"groupby {groupby!r} not found in obs; available: {list(data.obs.columns)}."
        )
    check_free(data, {"obsm": [key_added], "uns": [key_added]}, overwrite)
    rna, layer = model_rna(data, model)
    columns = _gene_columns(model, rna, genes)

    counts = get_matrix(rna, layer=layer, what="the RNA")
    changed = _set_columns(counts, columns, mode, value)
    light = AnnData(
        obs=pd.DataFrame(index=rna.obs_names.copy()), var=pd.DataFrame(index=rna.var_names.copy())
    )
    if layer is None:
        light.X = changed
    else:
        light.layers[layer] = changed
    original = model.predict_protein(rna, proteins=proteins, batch_size=batch_size)
    perturbed = model.predict_protein(light, proteins=proteins, batch_size=batch_size)
    shift = perturbed - original

    groups = (
        pd.Series("all cells", index=rna.obs_names)
        if groupby is None
        else data.obs[groupby].astype(str)
    )
    groups = groups.to_numpy()
    table = pd.concat(
        {
            "original": original.groupby(groups).mean().stack(),
            "perturbed": perturbed.groupby(groups).mean().stack(),
            "shift": shift.groupby(groups).mean().stack(),
        },
        axis=1,
    )
    table.index.names = ["group", "protein"]
    table = table.reset_index()
    table.insert(2, "n_cells", table["group"].map(pd.Series(groups).value_counts()).astype(int))
    order = (
        table.assign(size=-table["shift"].abs())
        .sort_values(["group", "size"], kind="stable")
        .index
    )
    table = table.loc[order].reset_index(drop=True)

    annotated = target(data, copy)
    annotated.obsm[key_added] = shift.to_numpy(dtype=np.float32)
    annotated.uns[key_added] = {
        "params": {
            "genes": genes,
            "mode": mode,
            "value": value,
            "groupby": groupby,
            "values_set": _set_values(counts, columns, mode, value).tolist(),
            "proteins": [str(p) for p in shift.columns],
        },
        "mean_shift": table,
    }
    return annotated if copy else table


def _gene_columns(model: SCTRANSLATOR, rna: AnnData, genes: list[str]) -> np.ndarray:
    missing = [g for g in genes if g not in rna.var_names]
    if missing:
        raise ValueError(f"{len(missing)} genes are not in the RNA var_names: {missing[:5]}.")
    unknown = [
        g for g, i in zip(genes, model.vocabulary.lookup_genes(genes), strict=True) if i == UNKNOWN
    ]
    if unknown:
        raise ValueError(
            f"{len(unknown)} genes are not in the model's vocabulary, so perturbing them cannot "
            f"change a prediction: {unknown[:5]}."
        )
    return rna.var_names.get_indexer(genes)


def _set_values(counts, columns: np.ndarray, mode: str, value: float | None) -> np.ndarray:
    """Return the count given to each perturbed gene."""
    if mode == "knockout":
        return np.zeros(len(columns))
    if value is not None:
        return np.full(len(columns), float(value))
    return dense(counts[:, columns]).max(axis=0).astype(np.float64)


def _set_columns(counts, columns: np.ndarray, mode: str, value: float | None):
    """Copy ``counts`` with ``columns`` set to the perturbed counts (same format)."""
    values = _set_values(counts, columns, mode, value)
    keep = np.ones(counts.shape[1], dtype=counts.dtype)
    keep[columns] = 0
    if sp.issparse(counts):
        n_cells = counts.shape[0]
        added = sp.csr_matrix(
            (
                np.tile(values, n_cells),
                (np.repeat(np.arange(n_cells), len(columns)), np.tile(columns, n_cells)),
            ),
            shape=counts.shape,
            dtype=counts.dtype,
        )
        return sp.csr_matrix(
            sp.csr_matrix(counts).multiply(keep[None, :]) + added, dtype=counts.dtype
        )
    changed = np.array(counts, copy=True)
    changed[:, columns] = values
    return changed
