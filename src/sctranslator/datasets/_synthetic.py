"""Synthetic CITE-seq data with a known ground truth, for benchmarks at any size."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from mudata import MuData

from sctranslator._mudata import no_pull

_CHUNK = 20_000


def synthetic_cite(
    *,
    n_cells: int = 5000,
    n_genes: int = 1000,
    n_proteins: int = 100,
    n_cell_types: int = 8,
    n_batches: int = 3,
    shift: bool = True,
    dropout: float = 0.2,
    batch_effect: float = 0.3,
    n_housekeeping: int = 0,
    seed: int = 0,
) -> MuData:
    """Simulate paired RNA and protein counts with cell types, batch effects and dropout.

    Each cell has a type and a continuous state (5 latent factors). The log RNA rate of a gene
    is a baseline, plus a cell-type effect on ~10% marker genes, plus the state, plus a
    per-batch effect; counts are Poisson at a log-normal depth (median 1,500 counts), with
    extra zeros at rate ``dropout``. Protein ``j`` is coded by gene ``j`` (and named like it,
    ``GENE0000_ADT``): its true log abundance is half its gene's biological
    log rate, a cell-type effect, a nonlinear (softplus) function of the state, and its counts
    are negative binomial on top of a constant background, with a per-batch scale. The last
    ``n_housekeeping`` genes are highly expressed in every cell and carry no cell type or
    state, like ribosomal and mitochondrial genes of a full transcriptome.

    The last batch is the query. With ``shift``, its cell-type composition differs from the
    reference batches (the reference's rarest type is the query's most common one), so a model
    must extrapolate beyond the reference's proportions.

    Parameters
    ----------
    n_cells
        Number of cells, split evenly over batches.
    n_genes
        Number of genes (``GENE0000``...).
    n_proteins
        Number of proteins (at most ``n_genes``); protein ``j`` is named ``GENEj_ADT``.
    n_cell_types
        Number of cell types.
    n_batches
        Number of batches (at least 2); the last is the query.
    shift
        Make the query's cell-type composition differ from the reference's.
    dropout
        Probability that a nonzero RNA count is dropped to zero.
    batch_effect
        Standard deviation of the per-batch, per-gene log-scale effect.
    n_housekeeping
        Number of uninformative, highly expressed genes (at most ``n_genes - n_proteins``);
        e.g. 150 of 20,000 genes take about 40 % of a cell's counts.
    seed
        Random seed.

    Returns
    -------
    MuData with modalities ``rna`` (sparse counts in ``X`` and ``layers["counts"]``) and ``prot``
    (counts in ``X`` and ``layers["counts"]``, noise-free expected foreground counts in
    ``layers["truth"]``); top-level ``obs`` has ``batch``, ``celltype`` and ``split``
    (``"reference"`` or ``"query"``).

    Examples
    --------
    >>> mdata = sct.datasets.synthetic_cite(n_cells=2000)
    >>> reference = mdata[mdata.obs["split"] == "reference"].copy()
    """
    if n_batches < 2:
        raise ValueError("n_batches must be at least 2: the last batch is the query.")
    if not 0 < n_proteins <= n_genes:
        raise ValueError(f"n_proteins must be in 1..n_genes ({n_genes}), got {n_proteins}.")
    if not 0 <= n_housekeeping <= n_genes - n_proteins:
        raise ValueError(
            f"n_housekeeping must be in 0..n_genes - n_proteins ({n_genes - n_proteins}), "
            f"got {n_housekeeping}."
        )
    if not 0 <= dropout < 1:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
    rng = np.random.default_rng(seed)
    n_factors = 5
    gene_base = rng.normal(-1.0, 1.2, n_genes)
    type_effect = rng.normal(0, 1.5, (n_cell_types, n_genes)) * (
        rng.random((n_cell_types, n_genes)) < 0.1
    )
    state_loading = rng.normal(0, 0.4, (n_factors, n_genes)) * (
        rng.random((n_factors, n_genes)) < 0.3
    )
    housekeeping = slice(n_genes - n_housekeeping, n_genes)
    if n_housekeeping:  # draws nothing otherwise, so other data are unchanged
        gene_base[housekeeping] = rng.normal(4.0, 0.5, n_housekeeping)
    type_effect[:, housekeeping] = 0.0
    state_loading[:, housekeeping] = 0.0
    rna_batch = rng.normal(0, batch_effect, (n_batches, n_genes))
    protein_type = rng.normal(0, 0.7, (n_cell_types, n_proteins))
    protein_state = rng.normal(0, 0.5, (n_factors, n_proteins))
    protein_batch = rng.normal(0, batch_effect, (n_batches, n_proteins))
    protein_base = rng.normal(3.0, 0.8, n_proteins)

    batch = np.repeat(np.arange(n_batches), int(np.ceil(n_cells / n_batches)))[:n_cells]
    reference_mix = rng.dirichlet(np.full(n_cell_types, 2.0))
    query_mix = reference_mix.copy()
    if shift:
        rare, common = np.argmin(reference_mix), np.argmax(reference_mix)
        query_mix[[rare, common]] = query_mix[[common, rare]]
    is_query = batch == n_batches - 1
    cell_type = np.where(
        is_query,
        rng.choice(n_cell_types, n_cells, p=query_mix),
        rng.choice(n_cell_types, n_cells, p=reference_mix),
    )
    state = rng.normal(0, 1, (n_cells, n_factors))

    rna_blocks = []
    truth = np.empty((n_cells, n_proteins), np.float32)
    protein = np.empty((n_cells, n_proteins), np.float32)
    for start in range(0, n_cells, _CHUNK):
        rows = slice(start, min(start + _CHUNK, n_cells))
        biological = gene_base + type_effect[cell_type[rows]] + state[rows] @ state_loading
        logits = biological + rna_batch[batch[rows]]
        share = np.exp(logits - logits.max(1, keepdims=True))
        share /= share.sum(1, keepdims=True)
        depth = rng.lognormal(np.log(1500), 0.35, (len(share), 1))
        counts = rng.poisson(share * depth)
        counts[rng.random(counts.shape) < dropout] = 0
        rna_blocks.append(sp.csr_matrix(counts.astype(np.float32)))

        log_abundance = (
            protein_base
            + 0.5 * (biological[:, :n_proteins] - gene_base[:n_proteins])
            + protein_type[cell_type[rows]]
            + np.logaddexp(0, state[rows] @ protein_state)
        )
        foreground = np.exp(log_abundance + protein_batch[batch[rows]])
        mean = foreground + 20.0
        dispersion = 10.0
        protein[rows] = rng.negative_binomial(dispersion, dispersion / (dispersion + mean))
        truth[rows] = np.exp(log_abundance)

    obs_names = pd.Index([f"cell{i:07d}" for i in range(n_cells)])
    genes = pd.Index([f"GENE{i:04d}" for i in range(n_genes)])
    rna_counts = sp.vstack(rna_blocks).tocsr()
    rna = AnnData(X=rna_counts, obs=pd.DataFrame(index=obs_names), var=pd.DataFrame(index=genes))
    rna.layers["counts"] = rna_counts.copy()
    proteins = pd.Index([f"{gene}_ADT" for gene in genes[:n_proteins]])
    prot = AnnData(X=protein, obs=pd.DataFrame(index=obs_names), var=pd.DataFrame(index=proteins))
    prot.layers["counts"] = protein.copy()
    prot.layers["truth"] = truth
    with no_pull():
        mdata = MuData({"rna": rna, "prot": prot})
    mdata.obs = pd.DataFrame(
        {
            "batch": pd.Categorical([f"batch{b}" for b in batch]),
            "celltype": pd.Categorical([f"type{c}" for c in cell_type]),
            "split": pd.Categorical(np.where(is_query, "query", "reference")),
        },
        index=obs_names,
    )
    return mdata
