"""Transfer from a pre-trained reference: the query model's vocabulary, weights and fine-tuning."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS, settings

from sctranslator._scvi_compat import setup_manager
from sctranslator.data import (
    UNKNOWN,
    Vocabulary,
    protein_coding_genes,
    protein_names,
    resolve_protein_token,
    rna_modality,
)

from ._fine_tune import choose_interpolation, interpolate_parameters, starting_parameters
from ._prediction import paired_query

logger = logging.getLogger(__name__)

# Settings a query model takes from its reference: the architecture and the normalisations.
_NOT_INHERITED = ("vocabulary", "freeze")


def model_vocabulary(
    vocabulary: Vocabulary | None, genes: Sequence[str], proteins: Sequence[str]
) -> Vocabulary:
    """Return a new model's vocabulary: ``vocabulary`` (or its panels'), with its proteins.

    A given vocabulary decides which genes are read; registered proteins it lacks join it.
    """
    if vocabulary is None:
        return Vocabulary.from_panels(genes, proteins)
    new = [p for p in proteins if vocabulary.lookup_proteins([p])[0] == UNKNOWN]
    return vocabulary.extend([resolve_protein_token(p) for p in new])


def query_model(
    cls: type,
    adata: AnnData | MuData,
    reference,
    *,
    freeze: str | Sequence[str] | None,
    normalizations: dict[str, str | None],
    add_new_genes: bool,
):
    """Build a model of ``cls`` for ``adata`` that starts from ``reference``'s weights."""
    args = reference.registry_["setup_args"]
    if setup_manager(cls, adata) is None:  # not set up yet: laid out as the reference's
        adata = paired_query(reference, adata)
    rna = rna_modality(adata, args)
    genes = reference.vocabulary.lookup_genes(rna.var_names)
    if not (genes != UNKNOWN).any():
        raise ValueError(
            f"None of the {rna.n_vars} genes of `adata` (e.g. {list(rna.var_names[:3])}) is "
            "known to the reference: use gene symbols (or Ensembl IDs) of the same species."
        )
    query_proteins = protein_names(adata, args)
    if not (reference.vocabulary.lookup_proteins(query_proteins) != UNKNOWN).any():
        raise ValueError(
            f"None of the {len(query_proteins)} proteins of `adata` (e.g. "
            f"{list(query_proteins[:3])}) is known to the reference; check the antibody "
            "names with `sct.pp.map_protein_names`."
        )
    if setup_manager(cls, adata) is None:
        getattr(cls, reference.registry_["setup_method_name"])(adata, **args)
    params = {
        k: v for k, v in reference.init_params_["non_kwargs"].items() if k not in _NOT_INHERITED
    }
    params.update(
        {f"{kind}_normalization": value for kind, value in normalizations.items() if value}
    )
    vocabulary = reference.vocabulary
    if add_new_genes:
        vocabulary = vocabulary.extend(list(rna.var_names[genes == UNKNOWN]))
    model = cls(adata, vocabulary=vocabulary, freeze=freeze, **params)
    known = len(reference.vocabulary)
    sources = [
        reference.vocabulary.lookup_genes(protein_coding_genes(token))
        for token in model.vocabulary.tokens[known:]
    ]
    model.module.transfer_from(reference.module, [ids[ids != UNKNOWN] for ids in sources])
    if params["protein_normalization"] == reference.init_params_["non_kwargs"].get(
        "protein_normalization"
    ):  # the same scale: keep the reference's scale of the proteins they share
        positions = model._reference_positions(reference).tolist()
        model.panel_statistics.copy_scale_from(reference.panel_statistics, positions)
    logger.info(
        "Transferred %s: %d tokens shared, %d new (%s).",
        type(reference).__name__,
        known,
        len(model.vocabulary) - known,
        ", ".join(model.vocabulary.tokens[known:][:5]),
    )
    return model


def fine_tune(
    reference,
    adata: AnnData | MuData,
    *,
    freeze: str | Sequence[str] | None,
    max_epochs: int,
    interpolation: float | str,
    n_folds: int,
    train_kwargs: dict,
):
    """Fine-tune a query model of ``reference`` on ``adata``, interpolated towards its start."""
    if interpolation != "cv" and not 0 <= float(interpolation) <= 1:
        raise ValueError(f"interpolation must be 'cv' or in [0, 1], not {interpolation!r}.")
    train_kwargs = {"enable_progress_bar": False, **train_kwargs}
    cls = type(reference)
    if setup_manager(cls, adata) is None:  # laid out once, for every fold
        adata = paired_query(reference, adata)

    def fit(rows: np.ndarray | None):
        model = cls.load_query_data(adata, reference, freeze=freeze)
        start = starting_parameters(model.module)
        split = {}
        if rows is not None:  # the other cells are a test set: never trained on
            rest = np.setdiff1d(np.arange(adata.n_obs), rows)
            indexing = [rows, np.array([], dtype=int), rest]
            split = {"datasplitter_kwargs": {"external_indexing": indexing}}
        model.train(max_epochs=max_epochs, train_size=1.0, **split, **train_kwargs)
        model.reference_mapping.copy_from(reference.reference_mapping)  # same scale
        return model, start

    scores, reliability = {}, None
    if interpolation == "cv":
        interpolation, scores, reliability = choose_interpolation(
            adata.n_obs, fit, n_folds, settings.seed
        )
    model, start = fit(None)
    interpolate_parameters(model.module, start, float(interpolation))
    if float(interpolation) == 0:  # the reference's predictions of its proteins: its intervals
        positions = model._reference_positions(reference).tolist()
        model.calibration.copy_from(reference.calibration, positions)
    model.fine_tuning_ = {"interpolation": float(interpolation), "cv_scores": scores}
    if reliability is not None:  # out-of-fold Pearson: the few cells' held-out estimate
        names = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        model.protein_reliability_ = {
            str(n): float(r) for n, r in zip(names, reliability, strict=True) if np.isfinite(r)
        }
    return model
