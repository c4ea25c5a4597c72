"""Transfer from a pre-trained reference: zero-shot, query models and fine-tuning."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Self

import numpy as np
from anndata import AnnData
from mudata import MuData
from scvi import REGISTRY_KEYS, settings

from sctranslator._scvi_compat import setup_manager
from sctranslator.data._vocabulary import UNKNOWN, protein_coding_genes

from ._fine_tune import choose_interpolation, interpolate_parameters, starting_parameters
from ._model_utils import protein_names, registered_positions, rna_modality

logger = logging.getLogger(__name__)


class TransferMixin:
    """Reference models: :meth:`load_pretrained`, :meth:`load_query_data`, :meth:`fine_tune`."""

    # -------------------------------------------------------------------------- transfer
    @classmethod
    def load_pretrained(
        cls,
        name_or_path: str | os.PathLike = "pbmc",
        accelerator: str = "auto",
        device: int | str = "auto",
    ) -> Self:
        """Open a pre-trained reference, shipped by name or saved in a folder, without data.

        The model predicts straight away from any RNA whose genes its vocabulary knows
        (zero-shot, any subset or order; other genes are ignored), and serves as the
        reference of :meth:`load_query_data` and :meth:`fine_tune`. Its
        :meth:`model_card` says what it was trained on and how well each protein is predicted.

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
        >>> print(reference.model_card())
        >>> proteins = reference.predict_protein(query["rna"])
        """
        return cls.load(name_or_path, adata=None, accelerator=accelerator, device=device)

    @classmethod
    def load_query_data(
        cls,
        adata: AnnData | MuData,
        reference: Self | str | os.PathLike,
        freeze: str | Sequence[str] | None = "encoder",
        rna_normalization: str | None = None,
        protein_normalization: str | None = None,
        add_new_genes: bool = False,
    ) -> Self:
        """Build a new model for ``adata`` from the weights of a pre-trained ``reference``.

        Unlike scvi-tools' :meth:`~scvi.model.base.ArchesMixin.load_query_data`, the query may
        have other genes and other proteins than the reference. New proteins join the
        vocabulary: a new protein token starts from the mean embedding of its coding genes
        (antibody table, :func:`sctranslator.data.protein_aliases`) where the reference knows
        them, otherwise from a random vector. Genes the reference never learnt are not read
        (unless ``add_new_genes``), so they cannot push learnt genes out of a cell's
        ``max_genes`` context. The architecture and, unless overridden, the normalisations are
        the reference's; so are the mean and standard deviation of the shared proteins
        (other statistics are computed from the training cells). The reference is not
        changed: its weights are copied.

        Parameters
        ----------
        adata
            Paired RNA and protein data. If it is not yet set up, it is set up with the
            reference's setup arguments (layers, modalities, batch key).
        reference
            A trained model or the folder of a saved one (:meth:`load_pretrained`).
        freeze
            Parameters left unchanged by training; ``"encoder"`` (default) keeps the
            pre-trained gene encoder (value embedding, latents, read-in and encoder layers)
            and trains the token identities, the protein queries and the read-out; ``None``
            trains everything. See ``benchmarks/pretraining.py``.
        rna_normalization, protein_normalization
            Override the reference's normalisations (e.g. bulk pre-training, single-cell
            fine-tuning).
        add_new_genes
            Let genes the reference does not know join the vocabulary as untrained tokens
            (e.g. pre-training on one panel, then training on another for many epochs).

        Returns
        -------
        A new, untrained :class:`SCTRANSLATOR`; call :meth:`train`, or use :meth:`fine_tune`.

        Raises
        ------
        ValueError
            When ``adata`` shares no gene or no protein with the reference.

        Examples
        --------
        >>> reference = sct.SCTRANSLATOR.load_pretrained("pretrained")
        >>> model = sct.SCTRANSLATOR.load_query_data(few_cells, reference)
        >>> model.train(max_epochs=100, train_size=1.0)
        """
        if not isinstance(reference, cls):
            reference = cls.load_pretrained(reference)
        registry = reference.registry_
        rna = rna_modality(adata, registry)
        if not (reference.vocabulary.lookup_genes(rna.var_names) != UNKNOWN).any():
            raise ValueError(
                f"None of the {rna.n_vars} genes of `adata` (e.g. {list(rna.var_names[:3])}) is "
                "known to the reference: use gene symbols (or Ensembl IDs) of the same species."
            )
        query_proteins = protein_names(adata, registry)
        if not (reference.vocabulary.lookup_proteins(query_proteins) != UNKNOWN).any():
            raise ValueError(
                f"None of the {len(query_proteins)} proteins of `adata` (e.g. "
                f"{list(query_proteins[:3])}) is known to the reference; check the antibody "
                "names with `sct.pp.map_protein_names`."
            )
        if setup_manager(cls, adata) is None:
            getattr(cls, registry["setup_method_name"])(adata, **registry["setup_args"])
        params = {
            k: v
            for k, v in reference.init_params_["non_kwargs"].items()
            if k not in ("vocabulary", "freeze")
        }
        if rna_normalization is not None:
            params["rna_normalization"] = rna_normalization
        if protein_normalization is not None:
            params["protein_normalization"] = protein_normalization
        params.pop("add_new_genes", None)
        model = cls(
            adata,
            vocabulary=reference.vocabulary,
            freeze=freeze,
            add_new_genes=add_new_genes,
            **params,
        )
        known = len(reference.vocabulary)
        sources = [
            reference.vocabulary.lookup_genes(protein_coding_genes(token))
            for token in model.vocabulary.tokens[known:]
        ]
        model.module.transfer_from(
            reference.module,
            [ids[ids != UNKNOWN] for ids in sources],
            reference_positions(model, reference).tolist(),
        )
        logger.info(
            "Transferred %s: %d tokens shared, %d new (%s).",
            type(reference).__name__,
            known,
            len(model.vocabulary) - known,
            ", ".join(model.vocabulary.tokens[known:][:5]),
        )
        return model

    def fine_tune(
        self,
        adata: AnnData | MuData,
        freeze: str | Sequence[str] | None = "encoder",
        max_epochs: int = 200,
        interpolation: float | str = "cv",
        n_folds: int = 4,
        **train_kwargs,
    ) -> Self:
        """Adapt this (pre-trained) model to ``adata``: return a new, trained model.

        :meth:`load_query_data` with this model as the reference (genes it never learnt are
        not read; its protein scale is kept), then :meth:`train` on every cell for
        ``max_epochs`` (a few cells, e.g. 20, are too few to hold some out for early
        stopping). The weights are then pulled back towards the transferred start,
        ``start + w * (fine-tuned - start)`` (weight-space ensembling, WiSE-FT): with ``w``
        chosen by ``n_folds``-fold cross-validation over the cells (``interpolation="cv"``;
        out-of-fold mean per-protein Pearson, ties to the smaller ``w``), fine-tuning keeps
        the reference's predictions where the few cells cannot improve them. The reference's
        reference-mapping read-out (:meth:`train`) is kept, for the proteins it knows, in the
        cross-validated models and in the result. The chosen ``w``
        and the scores are in ``model.fine_tuning_``; :attr:`protein_reliability` is the
        out-of-fold Pearson of each protein at that ``w``. At ``w = 0`` the model predicts the
        proteins this model knows as this model does, so it keeps this model's calibrated
        intervals (:meth:`predict_protein_interval`; NaN for new proteins); otherwise, calibrate
        it on other paired cells (:meth:`calibrate`). This model is not changed.

        Parameters
        ----------
        adata
            Paired RNA and protein data, e.g. 20 labelled cells of a new dataset; it may
            measure proteins this model has never seen.
        freeze
            As in :meth:`load_query_data`.
        max_epochs
            Training epochs.
        interpolation
            ``"cv"``, or a fixed weight in ``[0, 1]`` (1: the fine-tuned weights as trained;
            0: the reference's weights, with new proteins at their starting point).
        n_folds
            Folds of the cross-validation (``n_folds + 1`` fine-tunings in all).
        **train_kwargs
            Passed to :meth:`train` (``plan_kwargs``, ``batch_size``...).

        Returns
        -------
        The fine-tuned model.

        Examples
        --------
        >>> reference = sct.SCTRANSLATOR.load_pretrained("pbmc")
        >>> model = reference.fine_tune(twenty_cells)
        >>> model.fine_tuning_["interpolation"]
        >>> proteins = model.predict_protein(query["rna"])
        """
        if interpolation != "cv" and not 0 <= float(interpolation) <= 1:
            raise ValueError(f"interpolation must be 'cv' or in [0, 1], not {interpolation!r}.")
        train_kwargs = {"enable_progress_bar": False, **train_kwargs}

        def fit(rows: np.ndarray | None) -> tuple[Self, dict]:
            model = type(self).load_query_data(adata, self, freeze=freeze)
            start = starting_parameters(model.module)
            split = {}
            if rows is not None:  # the other cells are a test set: never trained on
                rest = np.setdiff1d(np.arange(adata.n_obs), rows)
                indexing = [rows, np.array([], dtype=int), rest]
                split = {"datasplitter_kwargs": {"external_indexing": indexing}}
            model.train(max_epochs=max_epochs, train_size=1.0, **split, **train_kwargs)
            model.module.copy_reference_mapping(self.module)  # same normalisation and scale
            return model, start

        scores, reliability = {}, None
        if interpolation == "cv":
            interpolation, scores, reliability = choose_interpolation(
                adata.n_obs, fit, n_folds, settings.seed
            )
        model, start = fit(None)
        interpolate_parameters(model.module, start, float(interpolation))
        if float(interpolation) == 0:  # this model's predictions of its proteins: its intervals
            positions = reference_positions(model, self).tolist()
            model.module.calibration.copy_from(self.module.calibration, positions)
        model.fine_tuning_ = {"interpolation": float(interpolation), "cv_scores": scores}
        if reliability is not None:  # out-of-fold Pearson: the few cells' held-out estimate
            names = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
            model.protein_reliability_ = {
                str(n): float(r) for n, r in zip(names, reliability, strict=True) if np.isfinite(r)
            }
        return model


def reference_positions(model, reference) -> np.ndarray:
    """Position among ``reference``'s registered proteins of each of ``model``'s (``-1``: none)."""
    names = model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
    return registered_positions(reference, names, model.module.protein_ids.tolist())
