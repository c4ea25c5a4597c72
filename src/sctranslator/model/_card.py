"""The model card: what a model was trained on, how well it predicts, and what it is for."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
from scvi import REGISTRY_KEYS

CARD_FIELDS = ("training_data", "licence", "intended_use", "limits")
# Antibodies with no target (isotype controls) measure background only.
_CONTROL = re.compile(r"(igg|isotype|control|ctrl)", re.I)


def noise_flags(names: pd.Index, fitted_std: np.ndarray, measured: np.ndarray) -> pd.Series:
    """Why a protein behaves like noise: an isotype control, or no variation in training."""
    flags = pd.Series("", index=names, dtype=object)
    flags[[bool(_CONTROL.search(str(n))) for n in names]] = "isotype control"
    flags[~measured] = "never measured in training"
    flags[measured & (fitted_std == 1.0)] = "constant in training"
    return flags


def render_card(
    title: str,
    fields: dict,
    summary: str,
    genes: np.ndarray,
    proteins: pd.DataFrame,
    normalizations: dict[str, str],
) -> str:
    """Markdown text of a model card.

    ``proteins`` is indexed by protein name with columns ``token``, ``reliability`` (held-out
    Pearson) and ``flag``.
    """

    def field(name: str) -> str:
        value = fields.get(name)
        return value if value else "not recorded (set it with `model.set_model_card(...)`)"

    scored = proteins["reliability"].dropna()
    lines = [
        f"# Model card: {title}",
        "",
        f"- **Model**: {summary}",
        f"- **Training data**: {field('training_data')}",
        f"- **Licence of the training data**: {field('licence')}",
        f"- **Intended use**: {field('intended_use')}",
        f"- **Limits**: {field('limits')}",
        f"- **Normalisation**: RNA {normalizations['rna']}, proteins "
        f"{normalizations['protein']}; predictions are on the protein scale.",
        f"- **Genes** ({len(genes)}): {', '.join(map(str, genes[:20]))}"
        + (", ..." if len(genes) > 20 else ""),
        "",
        "## Proteins and their held-out Pearson",
        "",
    ]
    if len(scored):
        lines.append(
            f"Pearson correlation on cells held out from training (validation cells), per "
            f"protein: median {scored.median():.2f} over {len(scored)} proteins. It ranks "
            "proteins by how far their predictions can be trusted; on another lab's cells "
            "expect lower values."
        )
    else:
        lines.append("No held-out cells were scored (trained with `train_size=1.0`).")
    lines += ["", "| protein | token | held-out Pearson | note |", "|---|---|---|---|"]
    for name, row in proteins.sort_values("reliability", ascending=False).iterrows():
        value = "" if pd.isna(row["reliability"]) else f"{row['reliability']:.2f}"
        lines.append(f"| {name} | {row['token']} | {value} | {row['flag']} |")
    return "\n".join(lines) + "\n"


def model_card_text(model) -> str:
    """Return the model card of ``model``: its card fields, settings, genes and proteins."""
    names = pd.Index(model._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY))
    tokens = [model.vocabulary.tokens[i] for i in model.module.protein_ids.tolist()]
    panel = model.panel_statistics
    proteins = pd.DataFrame(
        {
            "token": tokens,
            "reliability": model.protein_reliability.reindex(names).to_numpy(),
            "flag": noise_flags(
                names, panel.std.cpu().numpy(), panel.measured.any(0).cpu().numpy()
            ),
        },
        index=names,
    )
    params = model.init_params_["non_kwargs"]
    return render_card(
        type(model).__name__,
        getattr(model, "card_", None) or {},
        model._model_summary_string,
        model._registered_names(REGISTRY_KEYS.X_KEY),
        proteins,
        {"rna": params["rna_normalization"], "protein": params["protein_normalization"]},
    )


class ModelCardMixin:
    """The model card and per-protein reliability of a model with registered proteins.

    Needs from the model class: ``_registered_names``, ``vocabulary``, ``module.protein_ids``,
    ``panel_statistics``, ``init_params_`` and ``_model_summary_string``; sets ``card_``.
    """

    def set_model_card(
        self,
        *,
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
        >>> model.set_model_card(training_data="Seurat v4 PBMC (GSE164378)", licence="MIT")
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
        """Return the model card, as Markdown (saved as ``MODEL_CARD.md`` by :meth:`save`).

        It gives the training data and licence, intended use and limits, normalisations,
        genes, and each protein with its token and :attr:`protein_reliability`.

        Examples
        --------
        >>> print(sct.SCTRANSLATOR.load_pretrained("pbmc").model_card())
        """
        return model_card_text(self)

    @property
    def protein_reliability(self) -> pd.Series:
        """Each protein's held-out Pearson over the validation cells of the last training.

        NaN where a protein was not measured there, or without validation cells. Saved with
        the model; a fine-tuned model has its out-of-fold Pearson.
        """
        names = self._registered_names(REGISTRY_KEYS.PROTEIN_EXP_KEY)
        values = getattr(self, "protein_reliability_", None) or {}
        return pd.Series(
            [values.get(n, np.nan) for n in names], index=names, dtype=float, name="reliability"
        )
