"""Model card and per-protein reliability of a trained model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from scvi import REGISTRY_KEYS

from ._card import held_out_pearson, noise_flags, render_card
from ._model_utils import MAX_HELD_OUT, measured_proteins, sample_rows


class ModelCardMixin:
    """What a model was trained on and how well it predicts each protein."""

    # ------------------------------------------------------------------------- model card
    def set_model_card(
        self,
        training_data: str | None = None,
        licence: str | None = None,
        intended_use: str | None = None,
        limits: str | None = None,
    ) -> None:
        """Record what the model was trained on and what it is for; saved with the model.

        Parameters
        ----------
        training_data
            The data set(s) and cells the model was trained on, with their source.
        licence
            The licence of the training data.
        intended_use
            What the model is for (e.g. "human PBMC, 10x 3' RNA").
        limits
            Where it is untested or known to fail.

        Examples
        --------
        >>> model.set_model_card(
        ...     training_data="Seurat v4 PBMC CITE-seq (GSE164378), 800 cells",
        ...     licence="MIT (scmidas 0.3.0)",
        ... )
        """
        given = {
            "training_data": training_data,
            "licence": licence,
            "intended_use": intended_use,
            "limits": limits,
        }
        self.card_ = {
            **(getattr(self, "card_", None) or {}),
            **{k: v for k, v in given.items() if v is not None},
        }

    def model_card(self) -> str:
        """Return the model card, as Markdown.

        It gives the training data and licence, intended use and limits, normalisations,
        genes, and each protein with its token and :attr:`protein_reliability`.

        Returns
        -------
        Markdown text (also saved as ``MODEL_CARD.md`` by :meth:`save`).

        Examples
        --------
        >>> print(sct.SCTRANSLATOR.load_pretrained("pbmc").model_card())
        """
        names = pd.Index(self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY))
        tokens = [self.vocabulary.tokens[i] for i in self.module.protein_ids.tolist()]
        measured = self.module.protein_batch_mask.any(0).cpu().numpy()
        proteins = pd.DataFrame(
            {
                "token": tokens,
                "reliability": self.protein_reliability.reindex(names).to_numpy(),
                "flag": noise_flags(names, self.module.protein_std.cpu().numpy(), measured),
            },
            index=names,
        )
        params = self.init_params_["non_kwargs"]
        return render_card(
            type(self).__name__,
            getattr(self, "card_", None) or {},
            self._model_summary_string,
            self._registered_names(REGISTRY_KEYS.X_KEY),
            proteins,
            {"rna": params["rna_normalization"], "protein": params["protein_normalization"]},
        )

    @property
    def protein_reliability(self) -> pd.Series:
        """Expected quality of each protein's prediction: its held-out Pearson.

        The Pearson correlation between predicted and measured values of each registered
        protein over the validation cells of the last :meth:`train` (NaN where it was not
        measured, or without validation cells). Saved with the model.
        """
        names = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        values = getattr(self, "protein_reliability_", None) or {}
        return pd.Series(
            [values.get(n, np.nan) for n in names], index=names, dtype=float, name="reliability"
        )

    @torch.inference_mode()
    def _score_validation_cells(self) -> None:
        """Set :attr:`protein_reliability` from the validation cells of the last training."""
        rows = sample_rows(
            self.validation_indices if self.validation_indices is not None else [], MAX_HELD_OUT
        )
        if len(rows) == 0:
            self.protein_reliability_ = None
            return
        names = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        prediction = self.predict_protein(indices=rows, progress_bar=False).to_numpy()
        measured = measured_proteins(self, rows)
        pearson = held_out_pearson(prediction, measured)
        self.protein_reliability_ = {
            str(n): float(r) for n, r in zip(names, pearson, strict=True) if np.isfinite(r)
        }
